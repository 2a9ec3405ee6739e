//! Fault injection, written once for every test that needs it (in the spirit of Shopify's
//! Toxiproxy): a TCP [`Proxy`] on 127.0.0.1 between the gateway and PostgreSQL or a receiver,
//! whose toxics are switched on command while traffic flows —
//! - [`Proxy::delay`]: every chunk waits before it is forwarded;
//! - [`Proxy::blackhole`]: connections stay open but nothing passes (no RST, no FIN), new ones too;
//! - [`Proxy::refuse`]: new connections are reset at once;
//! - [`Proxy::reset_all`]: every open connection is reset (RST) now;
//! - [`Proxy::cut_after`]: the next connections are reset after the server sent them N bytes
//!   (a response cut mid-way);
//! - [`Proxy::cut_commits`] (PostgreSQL proxies): the client's `COMMIT` reaches the server, then
//!   both directions are reset before the answer comes back — the commit landed and the client
//!   cannot know. Optionally only for transactions that ran a statement containing a needle
//!   (`"INSERT INTO attempts"`), followed through prepared statements.
//!
//! Plus process faults ([`sigstop`], [`sigcont`]) and a small full-able disk ([`TinyDisk`], a
//! size-limited tmpfs; root only, otherwise `None` with a printed reason).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

mod pg;
mod process;
#[cfg(test)]
mod tests;

pub use pg::PgScan;
pub use process::{TinyDisk, sigcont, sigstop};

/// Which `COMMIT`s to cut, and how many more.
#[derive(Debug, Clone)]
struct CommitCut {
    needle: Option<String>,
    remaining: usize,
}

struct Shared {
    upstream: SocketAddr,
    postgres: bool,
    delay_ms: AtomicU64,
    refuse: AtomicBool,
    /// `true` while blackholed.
    hole: watch::Sender<bool>,
    /// Bumped by `reset_all`.
    kill: watch::Sender<u64>,
    /// (bytes, connections): the next `connections` connections are cut after `bytes`.
    cut_after: Mutex<Option<(usize, usize)>>,
    commit_cut: Mutex<Option<CommitCut>>,
    commits_cut: AtomicUsize,
    connections: AtomicUsize,
}

impl Shared {
    /// Waits while blackholed.
    async fn flowing(&self) {
        let mut rx = self.hole.subscribe();
        let _ = rx.wait_for(|h| !*h).await;
    }

    async fn delay(&self) {
        let ms = self.delay_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Whether this COMMIT is to be cut (consumes one).
    fn take_commit_cut(&self, marked: bool) -> bool {
        let mut cut = self.commit_cut.lock();
        let Some(c) = cut.as_mut() else {
            return false;
        };
        if c.needle.is_some() && !marked {
            return false;
        }
        c.remaining -= 1;
        if c.remaining == 0 {
            *cut = None;
        }
        self.commits_cut.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn needle(&self) -> Option<String> {
        self.commit_cut
            .lock()
            .as_ref()
            .and_then(|c| c.needle.clone())
    }
}

/// A TCP proxy on 127.0.0.1:0 in front of `upstream`; stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A plain TCP proxy (receivers).
    pub async fn start(upstream: SocketAddr) -> Proxy {
        Self::start_inner(upstream, false).await
    }

    /// A proxy that follows the PostgreSQL wire protocol client-to-server (for
    /// [`Proxy::cut_commits`]).
    pub async fn postgres(upstream: SocketAddr) -> Proxy {
        Self::start_inner(upstream, true).await
    }

    async fn start_inner(upstream: SocketAddr, postgres: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            postgres,
            delay_ms: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            hole: watch::channel(false).0,
            kill: watch::channel(0).0,
            cut_after: Mutex::new(None),
            commit_cut: Mutex::new(None),
            commits_cut: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                sh.connections.fetch_add(1, Ordering::Relaxed);
                if sh.refuse.load(Ordering::Relaxed) {
                    let _ = client.set_zero_linger();
                    drop(client);
                    continue;
                }
                tokio::spawn(serve(client, sh.clone()));
            }
        });
        Proxy { addr, shared, task }
    }

    /// `host:port` of the proxy, for URLs.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    pub fn delay(&self, d: Duration) {
        self.shared
            .delay_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn blackhole(&self, on: bool) {
        self.shared.hole.send_replace(on);
    }

    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::Relaxed);
    }

    pub fn reset_all(&self) {
        self.shared.kill.send_modify(|n| *n += 1);
    }

    /// The next `connections` connections are reset after the server sent them `bytes` bytes.
    pub fn cut_after(&self, bytes: usize, connections: usize) {
        *self.shared.cut_after.lock() = (connections > 0).then_some((bytes, connections));
    }

    /// Cuts the next `count` COMMITs (of transactions that ran a statement containing `needle`,
    /// when given) after forwarding them. PostgreSQL proxies only.
    pub fn cut_commits(&self, needle: Option<&str>, count: usize) {
        assert!(self.shared.postgres, "cut_commits needs Proxy::postgres");
        *self.shared.commit_cut.lock() = (count > 0).then(|| CommitCut {
            needle: needle.map(str::to_string),
            remaining: count,
        });
    }

    /// COMMITs cut so far.
    pub fn commits_cut(&self) -> usize {
        self.shared.commits_cut.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Every toxic off.
    pub fn heal(&self) {
        self.delay(Duration::ZERO);
        self.refuse(false);
        self.cut_after(0, 0);
        *self.shared.commit_cut.lock() = None;
        self.blackhole(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset_all();
        self.blackhole(false);
    }
}

/// Why a pump stopped early: the connection is to be reset.
struct Cut;

async fn serve(client: TcpStream, sh: Arc<Shared>) {
    let budget = {
        let mut c = sh.cut_after.lock();
        match c.as_mut() {
            Some((bytes, left)) => {
                let b = *bytes;
                *left -= 1;
                if *left == 0 {
                    *c = None;
                }
                Some(b)
            }
            None => None,
        }
    };
    let Ok(server) = TcpStream::connect(sh.upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let mut kill = sh.kill.subscribe();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let cut = AtomicBool::new(false);
    let reset = {
        let up = pump_up(&mut cr, &mut sw, &sh, &cut);
        let down = pump_down(&mut sr, &mut cw, &sh, &cut, budget);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => match r { Ok(()) => up_done = true, Err(Cut) => break true },
                r = &mut down, if !down_done => match r { Ok(()) => down_done = true, Err(Cut) => break true },
                _ = kill.changed() => break true,
            }
            if up_done && down_done {
                break false;
            }
        }
    };
    if reset {
        let _ = cr.as_ref().set_zero_linger();
        let _ = sr.as_ref().set_zero_linger();
    }
}

/// Client to server; on a PostgreSQL proxy, watches for the COMMIT to cut.
async fn pump_up(
    r: &mut OwnedReadHalf,
    w: &mut OwnedWriteHalf,
    sh: &Shared,
    cut: &AtomicBool,
) -> Result<(), Cut> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut scan = PgScan::default();
    loop {
        let n = r.read(&mut buf).await.map_err(|_| Cut)?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        sh.flowing().await;
        sh.delay().await;
        let mut end = n;
        if sh.postgres {
            let needle = sh.needle();
            for (at, commit_marked) in scan.feed(&buf[..n], needle.as_deref()) {
                if sh.take_commit_cut(commit_marked) {
                    end = at;
                    // Set before the COMMIT leaves, so its answer can never be forwarded.
                    cut.store(true, Ordering::SeqCst);
                    break;
                }
            }
        }
        w.write_all(&buf[..end]).await.map_err(|_| Cut)?;
        if cut.load(Ordering::SeqCst) {
            let _ = w.flush().await;
            return Err(Cut);
        }
    }
}

/// Server to client, cut after `budget` bytes when given, or as soon as a COMMIT was cut.
async fn pump_down(
    r: &mut OwnedReadHalf,
    w: &mut OwnedWriteHalf,
    sh: &Shared,
    cut: &AtomicBool,
    mut budget: Option<usize>,
) -> Result<(), Cut> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await.map_err(|_| Cut)?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        sh.flowing().await;
        sh.delay().await;
        if cut.load(Ordering::SeqCst) {
            return Err(Cut);
        }
        if let Some(left) = budget.as_mut() {
            if n >= *left {
                let _ = w.write_all(&buf[..*left]).await;
                let _ = w.flush().await;
                return Err(Cut);
            }
            *left -= n;
        }
        w.write_all(&buf[..n]).await.map_err(|_| Cut)?;
    }
}
