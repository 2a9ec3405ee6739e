//! One measured run: post the events (closed loop, fixed rate, or a burst to drain), wait for
//! the receiver to have them all, and measure what the gateway's processes spent meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::adapter::{Adapter, event_body};
use crate::procfs;
use crate::receiver::{Receiver, now_ns};
use crate::report::{Metrics, pct_ms};

#[derive(Clone, Copy, Debug)]
pub enum Load {
    Closed {
        events: u64,
        concurrency: usize,
    },
    Rate {
        rate: u64,
        seconds: u64,
    },
    /// Posted while the receiver holds every delivery unanswered; released when posting ends.
    Drain {
        events: u64,
        concurrency: usize,
    },
}

impl Load {
    fn events(self) -> u64 {
        match self {
            Load::Closed { events, .. } | Load::Drain { events, .. } => events,
            Load::Rate { rate, seconds } => rate * seconds,
        }
    }
}

pub struct Ctx {
    pub adapter: Arc<dyn Adapter>,
    pub receiver: Receiver,
    pub pids: Vec<u32>,
    pub wait: Duration,
    pub sample: Arc<Value>,
}

/// Posts one event; returns whether it was accepted and how long the answer took.
async fn post(ctx: &Ctx, seq: u64) -> (bool, Duration) {
    let body = event_body(&ctx.sample, seq, now_ns());
    let t0 = Instant::now();
    let r = ctx.adapter.post_event(seq as usize, body).send().await;
    let ok = matches!(&r, Ok(r) if ctx.adapter.accepted(r.status()));
    (ok, t0.elapsed())
}

/// Until every posted event of the run arrived, or nothing new came for `ctx.wait`.
async fn wait_for_all(ctx: &Ctx, expected: u64) {
    let (mut last, mut since) = (ctx.receiver.unique(), Instant::now());
    while last < expected && since.elapsed() < ctx.wait {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = ctx.receiver.unique();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// Peak of the summed VmRSS of `pids`, sampled every 100 ms until `stop` is set.
fn sample_rss(pids: Vec<u32>, stop: Arc<AtomicU64>) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        while stop.load(Ordering::Relaxed) == 0 {
            peak = peak.max(procfs::sum_mb(&pids, "VmRSS"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak.max(procfs::sum_mb(&pids, "VmRSS"))
    })
}

pub async fn run_once(ctx: Arc<Ctx>, load: Load, base: u64) -> anyhow::Result<Metrics> {
    let n = load.events();
    ctx.receiver.begin(base, n);
    let load_avg = procfs::load1();
    let cpu0 = procfs::cpu_ms(&ctx.pids)?;
    let drain = matches!(load, Load::Drain { .. });
    ctx.receiver.pause(drain);
    let stop = Arc::new(AtomicU64::new(0));
    let rss = sample_rss(ctx.pids.clone(), stop.clone());
    let started = Instant::now();
    let mut results = Vec::with_capacity(n as usize);
    match load {
        Load::Closed { concurrency, .. } | Load::Drain { concurrency, .. } => {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..concurrency.max(1) {
                let (ctx, next) = (ctx.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return out;
                        }
                        out.push(post(&ctx, base + i).await);
                    }
                }));
            }
            for t in tasks {
                results.extend(t.await?);
            }
        }
        Load::Rate { rate, .. } => {
            // Open loop: one request every 1/rate s, whatever the answers.
            let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = Vec::with_capacity(n as usize);
            for i in 0..n {
                tick.tick().await;
                let ctx = ctx.clone();
                tasks.push(tokio::spawn(async move { post(&ctx, base + i).await }));
            }
            for t in tasks {
                results.push(t.await?);
            }
        }
    }
    let posted = started.elapsed();
    let posted_at = Instant::now();
    ctx.receiver.pause(false);
    if drain && posted > Duration::from_secs(10) {
        eprintln!(
            "warning: posting took {:.1} s; held deliveries may have hit the system's delivery timeout (retries then lengthen the drain)",
            posted.as_secs_f64()
        );
    }
    let accepted = results.iter().filter(|(ok, _)| *ok).count() as u64;
    wait_for_all(&ctx, accepted).await;
    let cpu = procfs::cpu_ms(&ctx.pids)? - cpu0;
    stop.store(1, Ordering::Relaxed);
    let peak_rss = rss.await?;
    let hwm = procfs::sum_mb(&ctx.pids, "VmHWM");

    let mut ingest: Vec<Duration> = results.iter().map(|(_, l)| *l).collect();
    ingest.sort();
    let run = ctx.receiver.run.lock();
    let mut lags: Vec<Duration> = run
        .lags_ns
        .iter()
        .map(|&ns| Duration::from_nanos(ns))
        .collect();
    lags.sort();
    let delivered_in = run
        .last_at
        .map(|t| t.saturating_duration_since(started))
        .unwrap_or(posted);
    let mut m = Metrics::default();
    m.push("accepted/s", accepted as f64 / posted.as_secs_f64());
    m.push(
        "delivered/s",
        run.unique as f64 / delivered_in.as_secs_f64().max(1e-9),
    );
    m.push("ingest p50 ms", pct_ms(&ingest, 0.50));
    m.push("ingest p99 ms", pct_ms(&ingest, 0.99));
    m.push("lag p50 ms", pct_ms(&lags, 0.50));
    m.push("lag p99 ms", pct_ms(&lags, 0.99));
    if drain {
        // Nothing was received while paused: the whole accepted set is the backlog.
        let backlog = accepted;
        let took = run
            .last_at
            .map(|t| t.saturating_duration_since(posted_at))
            .unwrap_or_default();
        m.push("backlog", backlog as f64);
        m.push("drain s", took.as_secs_f64());
        m.push("drained/s", backlog as f64 / took.as_secs_f64().max(1e-9));
    }
    m.push("CPU ms/event", cpu / accepted.max(1) as f64);
    m.push("peak RSS MB", peak_rss);
    m.push("VmHWM MB", hwm);
    m.push("refused", (n - accepted) as f64);
    m.push("lost", accepted.saturating_sub(run.unique) as f64);
    m.push("duplicates", run.duplicates as f64);
    m.push("load", load_avg);
    Ok(m)
}

/// Posts a warm-up event to every ingest URL until the receiver has one from each: connections
/// open, plugins compile, and every node knows the subscription before anything is measured.
pub async fn warm_up(ctx: &Ctx) -> anyhow::Result<()> {
    let deadline = Instant::now() + ctx.wait;
    ctx.receiver.begin(0, 0);
    for node in 0..ctx.adapter.nodes() {
        let mut seq = (1u64 << 48) + node as u64;
        loop {
            let body = event_body(&ctx.sample, seq, now_ns());
            let _ = ctx.adapter.post_event(seq as usize, body).send().await;
            let tried = Instant::now();
            while !ctx.receiver.saw_other(seq) && tried.elapsed() < Duration::from_millis(500) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if ctx.receiver.saw_other(seq) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {node}: no warm-up event arrived"
            );
            // Round-robin picks the node from the sequence number: the next try goes to the
            // same node.
            seq += ctx.adapter.nodes() as u64;
        }
    }
    Ok(())
}
