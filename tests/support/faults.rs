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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

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

/// Follows the frontend (client-to-server) side of the PostgreSQL wire protocol far enough to
/// find COMMITs and whether their transaction ran a statement containing a needle.
#[derive(Default)]
pub struct PgScan {
    buf: Vec<u8>,
    typed: bool,
    /// Every prepared statement's text by name (the needle is armed later than most Parses:
    /// statements are prepared once per connection and cached).
    statements: HashMap<Vec<u8>, Vec<u8>>,
    /// The current transaction ran a statement containing the needle.
    marked_tx: bool,
}

fn cstr(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl PgScan {
    /// Feeds a chunk; returns, for every COMMIT completed in it, the chunk offset just past it
    /// and whether its transaction was marked.
    pub fn feed(&mut self, chunk: &[u8], needle: Option<&str>) -> Vec<(usize, bool)> {
        let before = self.buf.len();
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            let (len, body_at) = if self.typed {
                if rest.len() < 5 {
                    break;
                }
                (
                    1 + u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize,
                    5,
                )
            } else {
                if rest.len() < 4 {
                    break;
                }
                (
                    u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize,
                    4,
                )
            };
            if len < body_at || rest.len() < len {
                break;
            }
            let msg = rest[..len].to_vec();
            pos += len;
            if !self.typed {
                let code = msg
                    .get(4..8)
                    .map(|c| u32::from_be_bytes(c.try_into().unwrap()));
                // SSLRequest / GSSENCRequest come before the (untyped) startup message.
                if !matches!(code, Some(80877103 | 80877104)) {
                    self.typed = true;
                }
                continue;
            }
            let body = &msg[body_at..];
            match msg[0] {
                b'Q' => {
                    let (q, _) = cstr(body);
                    if needle.is_some_and(|n| contains(q, n)) {
                        self.marked_tx = true;
                    }
                    let text = String::from_utf8_lossy(q).trim().to_ascii_uppercase();
                    if text.starts_with("COMMIT") || text.starts_with("END") {
                        out.push((pos - before, self.marked_tx));
                        self.marked_tx = false;
                    } else if text.starts_with("ROLLBACK") {
                        self.marked_tx = false;
                    }
                }
                b'P' => {
                    let (name, rest) = cstr(body);
                    let (q, _) = cstr(rest);
                    if needle.is_some_and(|n| contains(q, n)) {
                        self.marked_tx = true;
                    }
                    self.statements.insert(name.to_vec(), q.to_vec());
                }
                b'B' => {
                    let (_portal, rest) = cstr(body);
                    let (stmt, _) = cstr(rest);
                    if let (Some(n), Some(q)) = (needle, self.statements.get(stmt))
                        && contains(q, n)
                    {
                        self.marked_tx = true;
                    }
                }
                _ => {}
            }
        }
        self.buf.drain(..pos);
        out
    }
}

/// Pauses a process (SIGSTOP).
pub fn sigstop(pid: u32) {
    signal(pid, "STOP");
}

/// Resumes a paused process (SIGCONT).
pub fn sigcont(pid: u32) {
    signal(pid, "CONT");
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// A size-limited tmpfs that a test can fill up and free again.
pub struct TinyDisk {
    pub dir: PathBuf,
    _holder: tempfile::TempDir,
}

impl TinyDisk {
    /// Mounts a tmpfs of `mib` MiB, or says why not (not root, no mount) and returns `None`.
    pub fn mount_or_skip(mib: u32) -> Option<TinyDisk> {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if uid != "0" {
            println!("skipped: filling a disk needs root to mount a tmpfs (uid {uid})");
            return None;
        }
        let holder = tempfile::tempdir().expect("tempdir");
        let dir = holder.path().to_path_buf();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(TinyDisk {
                dir,
                _holder: holder,
            }),
            Ok(o) => {
                println!(
                    "skipped: mounting a tmpfs failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("skipped: no mount command: {e}");
                None
            }
        }
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Writes a file until the disk is full; returns its size.
    pub fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).expect("filler");
        let block = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        let _ = f.sync_all();
        n
    }

    /// Deletes the filler.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An upstream that echoes, and sends `hello` bytes first when asked.
    async fn echo(hello: usize) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    if hello > 0 && s.write_all(&vec![b'h'; hello]).await.is_err() {
                        return;
                    }
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(addr: SocketAddr, within: Duration) -> Result<Vec<u8>, String> {
        let io = async {
            let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            s.write_all(b"ping").await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            Ok(b.to_vec())
        };
        tokio::time::timeout(within, io)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    #[tokio::test]
    async fn passes_and_delays() {
        let p = Proxy::start(echo(0).await).await;
        assert_eq!(
            roundtrip(p.addr, Duration::from_secs(2)).await.unwrap(),
            b"ping"
        );
        p.delay(Duration::from_millis(150));
        let t = Instant::now();
        assert_eq!(
            roundtrip(p.addr, Duration::from_secs(2)).await.unwrap(),
            b"ping"
        );
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "both ways delayed"
        );
    }

    #[tokio::test]
    async fn blackhole_holds_then_releases() {
        let p = Proxy::start(echo(0).await).await;
        p.blackhole(true);
        let mut s = TcpStream::connect(p.addr).await.expect("still accepts");
        s.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut b))
                .await
                .is_err(),
            "nothing passes, nothing closes"
        );
        p.blackhole(false);
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut b))
            .await
            .expect("released")
            .unwrap();
        assert_eq!(&b, b"ping");
    }

    #[tokio::test]
    async fn refuse_and_reset_all() {
        let p = Proxy::start(echo(0).await).await;
        let mut open = TcpStream::connect(p.addr).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        open.read_exact(&mut b).await.unwrap();
        p.reset_all();
        let mut rest = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(2), open.read_to_end(&mut rest)).await;
        assert!(
            matches!(r, Ok(Err(_)) | Ok(Ok(0))),
            "the open connection is reset: {r:?}"
        );
        p.refuse(true);
        assert!(roundtrip(p.addr, Duration::from_secs(2)).await.is_err());
        p.refuse(false);
        assert!(roundtrip(p.addr, Duration::from_secs(2)).await.is_ok());
    }

    #[tokio::test]
    async fn cut_after_n_bytes() {
        let p = Proxy::start(echo(100).await).await;
        p.cut_after(10, 1);
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 256];
        loop {
            match tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
                Err(_) => panic!("not cut"),
            }
        }
        assert_eq!(got.len(), 10);
        // Only the next connection was cut.
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        let mut hello = vec![0u8; 100];
        s.read_exact(&mut hello).await.expect("whole greeting");
    }

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn scan_finds_commits_of_marked_transactions_across_chunks() {
        let mut startup = 8u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&196608u32.to_be_bytes());
        let mut stream = startup;
        stream.extend(typed(b'Q', b"BEGIN\0"));
        stream.extend(typed(
            b'P',
            b"s1\0INSERT INTO attempts (id) VALUES ($1)\0\0\0",
        ));
        stream.extend(typed(b'Q', b"COMMIT\0"));
        let first_commit_end = stream.len();
        stream.extend(typed(b'Q', b"BEGIN\0"));
        stream.extend(typed(b'P', b"s2\0SELECT 1\0\0\0"));
        stream.extend(typed(b'Q', b"COMMIT\0"));
        stream.extend(typed(b'Q', b"BEGIN\0"));
        stream.extend(typed(b'B', b"\0s1\0\0\0\0\0\0\0"));
        stream.extend(typed(b'Q', b"COMMIT\0"));
        let mut scan = PgScan::default();
        let mut found = Vec::new();
        let mut off = 0;
        // Fed in awkward 7-byte chunks.
        for (i, chunk) in stream.chunks(7).enumerate() {
            // Armed only after the first statement was prepared, as in a running gateway.
            let needle = (i > 8).then_some("INSERT INTO attempts");
            for (at, marked) in scan.feed(chunk, needle) {
                found.push((off + at, marked));
            }
            off += chunk.len();
        }
        assert_eq!(found.len(), 3);
        assert_eq!(found[0], (first_commit_end, true));
        assert!(!found[1].1, "a transaction without the needle");
        assert!(found[2].1, "the marked prepared statement, bound again");
        assert_eq!(found[2].0, stream.len());
    }

    #[test]
    fn scan_skips_ssl_request() {
        let mut s = 8u32.to_be_bytes().to_vec();
        s.extend_from_slice(&80877103u32.to_be_bytes());
        s.extend_from_slice(&8u32.to_be_bytes());
        s.extend_from_slice(&196608u32.to_be_bytes());
        s.extend(typed(b'Q', b"commit\0"));
        assert_eq!(PgScan::default().feed(&s, None), vec![(s.len(), false)]);
    }
}
