//! The fault matrix: each cell runs a burst of events through a gateway while one fault is
//! injected (harness in `tests/support/faults/`), with a receiver counting what arrives, then
//! checks "every 202 delivered at least once, duplicates share a webhook-id, nothing stuck" and
//! prints `cell=<name> accepted=N delivered=N duplicates=N recover_ms=N`.
//!
//! Cells needing PostgreSQL print that they were skipped when it is absent (unless
//! `GATEWAY_TEST_REQUIRE_POSTGRES=1`); the disk-full cell needs root to mount a tmpfs.

mod local;
mod postgres;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::config::Config;
use parking_lot::Mutex;
use serde_json::json;

use crate::support::{ADMIN, Receiver};

/// Small leases and timeouts so every cell recovers within seconds.
pub const LEASE_SECS: u64 = 5;
pub const TIMEOUT_SECS: u64 = 2;

pub fn fast(c: &mut Config) {
    c.delivery.lease_secs = LEASE_SECS;
    c.delivery.timeout_secs = TIMEOUT_SECS;
    c.postgres.connect_timeout_secs = 1;
    c.postgres.operation_timeout_secs = 2;
    c.postgres.webhooks_refresh_secs = 1;
}

/// The same settings as environment for child processes.
pub const FAST_ENV: &[(&str, &str)] = &[
    ("GATEWAY_DELIVERY__LEASE_SECS", "5"),
    ("GATEWAY_DELIVERY__TIMEOUT_SECS", "2"),
    ("GATEWAY_POSTGRES__CONNECT_TIMEOUT_SECS", "1"),
    ("GATEWAY_POSTGRES__OPERATION_TIMEOUT_SECS", "2"),
    ("GATEWAY_POSTGRES__WEBHOOKS_REFRESH_SECS", "1"),
];

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A webhook for every event, retried every second (so a failed attempt comes back quickly).
pub async fn create_webhook(client: &reqwest::Client, base: &str, url: &str) {
    let body = json!({"name": "faults", "url": url, "trigger_events": ["*"], "timeout_secs": TIMEOUT_SECS,
        "retry": {"type": "fixed", "count": 20, "interval_secs": 1}});
    let r = client
        .post(format!("{base}/api/v1/webhooks/"))
        .header("Authorization", ADMIN)
        .json(&body)
        .send()
        .await
        .expect("create webhook");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// Seqs the gateway answered 202 for, shared by concurrent bursts.
#[derive(Clone, Default)]
pub struct Accepted(Arc<Mutex<HashSet<u64>>>, Arc<Mutex<HashMap<u16, usize>>>);

impl Accepted {
    pub fn seqs(&self) -> HashSet<u64> {
        self.0.lock().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }
    /// Answers other than 202, by status (0: no answer).
    pub fn refused(&self) -> HashMap<u16, usize> {
        self.1.lock().clone()
    }
}

/// Posts events `from..to` to `base` (re-read before each post, so a restarted node is found)
/// with `concurrency` posters, `gap` apart per poster, recording the 202s in `acc`.
pub async fn burst(
    base: Arc<Mutex<String>>,
    from: u64,
    to: u64,
    concurrency: u64,
    gap: Duration,
    acc: Accepted,
) {
    let client = client();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (client, base, acc) = (client.clone(), base.clone(), acc.clone());
        set.spawn(async move {
            let mut seq = from + w;
            while seq < to {
                let url = format!("{}/api/v1/events", base.lock().clone());
                let body = json!({"event_type": "incident_triggered", "seq": seq, "message": "fault matrix"});
                let status = match client
                    .post(url)
                    .header("Authorization", ADMIN)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                if status == 202 {
                    acc.0.lock().insert(seq);
                } else {
                    *acc.1.lock().entry(status).or_default() += 1;
                }
                seq += concurrency;
                tokio::time::sleep(gap).await;
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Waits until every accepted seq arrived, then checks duplicates share a webhook-id and the
/// node's queue drains; prints the cell's line. `healed` is when the fault ended.
pub async fn verify(
    cell: &str,
    receiver: &Receiver,
    accepted: &Accepted,
    healed: Instant,
    base: &str,
    timeout: Duration,
) {
    let want = accepted.seqs();
    assert!(!want.is_empty(), "cell {cell}: nothing was accepted");
    let deadline = Instant::now() + timeout;
    loop {
        let missing = want
            .difference(&arrived(receiver).keys().copied().collect())
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cell {cell}: {missing} of {} accepted events never delivered",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Recovered: everything accepted arrived and nothing is left queued or stuck.
    drained(cell, base, Duration::from_secs(30)).await;
    let recover_ms = healed.elapsed().as_millis();
    let by_seq = arrived(receiver);
    for (seq, ids) in &by_seq {
        assert!(
            ids.iter().all(|i| !i.is_empty() && i == &ids[0]),
            "cell {cell}: seq {seq} arrived under different webhook-ids: {ids:?}"
        );
    }
    let arrivals: usize = by_seq.values().map(Vec::len).sum();
    let duplicates = arrivals - by_seq.len();
    // Events whose 202 was lost (a cut commit, a killed node) may still be delivered: not a loss.
    let unanswered = by_seq.keys().filter(|s| !want.contains(s)).count();
    println!(
        "cell={cell} accepted={} delivered={} duplicates={duplicates} recover_ms={recover_ms} delivered_without_202={unanswered} refused={:?}",
        want.len(),
        want.iter().filter(|s| by_seq.contains_key(s)).count(),
        accepted.refused()
    );
}

/// What the receiver got: the `webhook-id`s each seq arrived under.
fn arrived(receiver: &Receiver) -> HashMap<u64, Vec<String>> {
    let mut by_seq: HashMap<u64, Vec<String>> = HashMap::new();
    for r in receiver.received() {
        if let Some(seq) = r.json()["seq"].as_u64() {
            by_seq
                .entry(seq)
                .or_default()
                .push(r.header("webhook-id").unwrap_or_default().to_string());
        }
    }
    by_seq
}

/// Nothing pending or in flight on the node, and `/readyz` answers 200, within `timeout`.
pub async fn drained(cell: &str, base: &str, timeout: Duration) {
    let client = client();
    let deadline = Instant::now() + timeout;
    loop {
        let queued = match client.get(format!("{base}/metrics")).send().await {
            Ok(r) => queue_depth(&r.text().await.unwrap_or_default()),
            Err(_) => None,
        };
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if queued == Some(0) && ready == 200 {
            return;
        }
        if Instant::now() >= deadline {
            let why = client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .map(|r| r.status().to_string())
                .unwrap_or_default();
            panic!("cell {cell}: stuck: queue depth {queued:?}, readyz {ready} {why}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// pending + in_flight from the Prometheus text.
pub fn queue_depth(text: &str) -> Option<u64> {
    let mut n = 0;
    for line in text.lines() {
        for s in ["pending", "in_flight"] {
            if let Some(rest) = line.strip_prefix(&format!("gateway_deliveries{{status=\"{s}\"}} "))
            {
                n += rest.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(n)
}
