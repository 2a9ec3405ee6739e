//! The benchmark's receiver: answers 200 at once and records, per benchmark event, its arrival
//! and lag (receipt time - the `sent_at_ns` put in the payload; same clock, same process).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use parking_lot::Mutex;

use crate::adapter::Adapter;

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What arrived for the run in progress (events `base..base + n`).
#[derive(Default)]
pub struct Run {
    pub base: u64,
    pub n: u64,
    seen: Vec<bool>,
    pub unique: u64,
    pub duplicates: u64,
    pub lags_ns: Vec<u64>,
    pub last_at: Option<Instant>,
    /// Sequence numbers outside the run (warm-ups, late arrivals of an earlier run).
    pub other: HashSet<u64>,
}

impl Run {
    fn record(&mut self, seq: u64, lag_ns: u64, at: Instant) {
        if seq < self.base || seq >= self.base + self.n {
            self.other.insert(seq);
            return;
        }
        let i = (seq - self.base) as usize;
        if self.seen[i] {
            self.duplicates += 1;
            return;
        }
        self.seen[i] = true;
        self.unique += 1;
        self.lags_ns.push(lag_ns);
        self.last_at = Some(at);
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub run: Arc<Mutex<Run>>,
    /// While true, deliveries wait unanswered (and unrecorded): the system's workers are held
    /// and what is posted meanwhile piles up as a backlog.
    paused: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Receiver {
    pub async fn start(adapter: Arc<dyn Adapter>) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let run: Arc<Mutex<Run>> = Arc::default();
        let r = run.clone();
        let paused = Arc::new(tokio::sync::watch::Sender::new(false));
        let p = paused.clone();
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let (run, adapter, mut gate) = (r.clone(), adapter.clone(), p.subscribe());
            async move {
                let _ = gate.wait_for(|paused| !*paused).await;
                let (at, now) = (Instant::now(), now_ns());
                if let Some((seq, sent)) = adapter.receipt(&body) {
                    run.lock().record(seq, now.saturating_sub(sent), at);
                }
                "ok"
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, run, paused })
    }

    pub fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Starts recording the run of events `base..base + n`, forgetting the last one.
    pub fn begin(&self, base: u64, n: u64) {
        *self.run.lock() = Run {
            base,
            n,
            seen: vec![false; n as usize],
            ..Run::default()
        };
    }

    pub fn unique(&self) -> u64 {
        self.run.lock().unique
    }

    pub fn saw_other(&self, seq: u64) -> bool {
        self.run.lock().other.contains(&seq)
    }
}
