//! Ordered delivery (`ordering: "per_webhook"`): each event's body carries the `seq` it was posted
//! with, and the receiver checks the order it gets them in.
//! - 200 events to an ordered webhook whose receiver answers 500 to every 7th request arrive in
//!   order, each after the previous one's success, and all of them arrive;
//! - an unordered webhook beside an ordered one whose head keeps failing gets all its deliveries
//!   while the ordered stream is held, and the held stream then resumes in order;
//! - on PostgreSQL, two gateway nodes share an ordered stream and one is killed (SIGKILL) mid-way:
//!   the other finishes it, in order over first successful receipts (a delivery the killed node
//!   had in flight may arrive twice: delivery is at least once);
//! - on SQLite, one gateway is stopped (SIGTERM) mid-stream and started again on the same data
//!   dir: the stream goes on in order, each event answered 200 exactly once (a graceful stop
//!   finishes and records the attempts in flight, so nothing is sent twice).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, GatewayProcess, Receiver, TestGateway, call};
use gateway::store::suite::{pg_test_url, with_pg};

/// Events per run.
const EVENTS: u64 = 200;

/// What the receiver answered to one request.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    seq: u64,
    ok: bool,
}

/// A receiver that answers 500 to every `fail_every`-th request (0: never) and, while `held`,
/// to every request; records each request's `seq` and whether it was answered 200.
#[derive(Clone)]
struct OrderedReceiver {
    rx: Receiver,
    log: Arc<Mutex<Vec<Receipt>>>,
    held: Arc<Mutex<bool>>,
}

impl OrderedReceiver {
    async fn start(fail_every: usize, held: bool) -> Self {
        let rx = Receiver::start().await;
        let log: Arc<Mutex<Vec<Receipt>>> = Arc::default();
        let held = Arc::new(Mutex::new(held));
        let (sink, hold) = (log.clone(), held.clone());
        let mut n = 0usize;
        rx.set_fallback(move |r| {
            n += 1;
            let ok = !*hold.lock() && (fail_every == 0 || !n.is_multiple_of(fail_every));
            let seq = r.json()["seq"].as_u64().unwrap_or(u64::MAX);
            sink.lock().push(Receipt { seq, ok });
            if ok {
                StatusCode::OK.into_response()
            } else {
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        });
        OrderedReceiver { rx, log, held }
    }

    fn url(&self) -> String {
        self.rx.url("/hook")
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.log.lock().clone()
    }

    /// The seqs answered 200, first occurrence of each, in arrival order.
    fn first_successes(&self) -> Vec<u64> {
        let mut seen = HashSet::new();
        self.receipts()
            .into_iter()
            .filter(|r| r.ok && seen.insert(r.seq))
            .map(|r| r.seq)
            .collect()
    }

    /// Waits until every seq below `n` was answered 200.
    async fn wait_all(&self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while (self.first_successes().len() as u64) < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} delivered: {:?}",
                self.first_successes().len(),
                self.first_successes()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An ordered webhook body: retries at once (the receiver's failures are single requests).
fn webhook(name: &str, url: &str, ordering: &str, delays: &[u64]) -> Value {
    json!({
        "name": name,
        "url": url,
        "trigger_events": ["*"],
        "ordering": ordering,
        "retry": {"type": "schedule", "delays_secs": delays},
    })
}

/// Asserts the receiver saw the stream in order: the first successes are 0..n, and no request
/// for an event came before the previous event's success.
fn assert_in_order(rx: &OrderedReceiver, n: u64) {
    assert_eq!(
        rx.first_successes(),
        (0..n).collect::<Vec<_>>(),
        "first successful receipts in event order"
    );
    let mut done = 0u64; // events 0..done have succeeded
    for r in rx.receipts() {
        assert!(
            r.seq <= done,
            "event {} sent before event {done} had succeeded",
            r.seq
        );
        if r.ok && r.seq == done {
            done += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_webhook_gets_200_events_in_order_through_failures() {
    let gw = TestGateway::start().await;
    let rx = OrderedReceiver::start(7, false).await;
    let w = gw
        .create_webhook(webhook("ordered", &rx.url(), "per_webhook", &[0, 0, 0]))
        .await;
    assert_eq!(w["ordering"], "per_webhook", "{w}");
    for seq in 0..EVENTS {
        gw.post_event(&json!({"event_type": "incident.triggered", "seq": seq}))
            .await;
    }
    rx.wait_all(EVENTS, Duration::from_secs(120)).await;
    assert_in_order(&rx, EVENTS);
    let failures = rx.receipts().iter().filter(|r| !r.ok).count();
    assert!(
        failures >= (EVENTS / 7) as usize,
        "only {failures} failures: the receiver's faults were not exercised"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unordered_webhook_is_not_held_by_an_ordered_stream_with_a_failing_head() {
    let gw = TestGateway::start().await;
    let ordered = OrderedReceiver::start(0, true).await;
    let unordered = OrderedReceiver::start(0, false).await;
    // The ordered head retries every second for 20 s: the stream is held meanwhile.
    gw.create_webhook(webhook("ordered", &ordered.url(), "per_webhook", &[1; 20]))
        .await;
    let plain = gw
        .create_webhook(webhook("unordered", &unordered.url(), "none", &[1; 20]))
        .await;
    assert_eq!(plain["ordering"], "none");
    for seq in 0..EVENTS {
        gw.post_event(&json!({"event_type": "incident.triggered", "seq": seq}))
            .await;
    }
    unordered.wait_all(EVENTS, Duration::from_secs(60)).await;
    let sent: HashSet<u64> = ordered.receipts().iter().map(|r| r.seq).collect();
    assert_eq!(
        sent,
        HashSet::from([0]),
        "while the unordered webhook got all {EVENTS}, the ordered one got only its failing head"
    );
    assert!(ordered.receipts().iter().all(|r| !r.ok));

    // The receiver recovers: the head's next retry succeeds and the rest follow in order.
    *ordered.held.lock() = false;
    ordered.wait_all(EVENTS, Duration::from_secs(120)).await;
    assert_in_order(&ordered, EVENTS);
    gw.stop().await;
}

/// The shared server's URL with every connection's `search_path` set to `schema`.
fn schema_url(schema: &str) -> String {
    let base = pg_test_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

fn spawn_node(dir: &tempfile::TempDir, envs: &[(&str, &str)]) -> GatewayProcess {
    tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), envs))
}

/// Posts event `seq` with its own idempotency key to the first node that answers 202.
async fn post_seq(client: &reqwest::Client, nodes: &[String], seq: u64) {
    let body = json!({"event_type": "incident.triggered", "seq": seq});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for url in nodes
            .iter()
            .cycle()
            .skip(seq as usize % nodes.len())
            .take(nodes.len())
        {
            let sent = client
                .post(url)
                .header("Authorization", ADMIN)
                .header("Idempotency-Key", format!("ordering-{seq}"))
                .json(&body)
                .send()
                .await;
            if sent.is_ok_and(|r| r.status() == StatusCode::ACCEPTED) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "event {seq} was never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_stream_survives_a_killed_node_on_postgres() {
    with_pg("ordering_kill", |_store, schema| async move {
        let url = schema_url(&schema);
        let envs = [
            ("GATEWAY_DATABASE_URL", url.as_str()),
            ("GATEWAY_DELIVERY__LEASE_SECS", "5"),
            ("GATEWAY_DELIVERY__TIMEOUT_SECS", "4"),
            ("GATEWAY_DELIVERY__WORKERS", "4"),
        ];
        let rx = OrderedReceiver::start(7, false).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        // The webhook exists before the second node starts, so both match it from the start.
        let first = spawn_node(&dirs[0], &envs);
        let (s, w) = call(
            &client,
            Method::POST,
            &first.url("/api/v1/webhooks/"),
            Some(ADMIN),
            Some(&webhook("ordered", &rx.url(), "per_webhook", &[0, 0, 0])),
        )
        .await;
        assert_eq!(s, 201, "{w}");
        let mut nodes = [first, spawn_node(&dirs[1], &envs)];
        let ingest: Vec<String> = nodes.iter().map(|n| n.url("/api/v1/events")).collect();

        // Posted one after another (so the order they were accepted in is defined), alternating
        // between the nodes; node 1 is killed once a quarter has been delivered.
        let (poster_client, poster_urls) = (client.clone(), ingest.clone());
        let poster = tokio::spawn(async move {
            for seq in 0..EVENTS {
                post_seq(&poster_client, &poster_urls, seq).await;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while (rx.first_successes().len() as u64) < EVENTS / 4 {
            assert!(Instant::now() < deadline, "deliveries never got going");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        nodes[1].kill9();
        poster.await.unwrap();

        rx.wait_all(EVENTS, Duration::from_secs(180)).await;
        assert_in_order(&rx, EVENTS);
        let twice = rx.receipts().iter().filter(|r| r.ok).count() - EVENTS as usize;
        println!("{twice} deliveries arrived twice after the kill (at least once)");
        nodes[0].terminate();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_stream_survives_a_restart_on_sqlite() {
    const N: u64 = 60;
    let envs = [
        ("GATEWAY_DELIVERY__LEASE_SECS", "5"),
        ("GATEWAY_DELIVERY__TIMEOUT_SECS", "4"),
    ];
    // Every 7th request fails and its retry waits a second: the stream is still going when the
    // gateway is stopped.
    let rx = OrderedReceiver::start(7, false).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = spawn_node(&dir, &envs);
    let (s, w) = call(
        &client,
        Method::POST,
        &gw.url("/api/v1/webhooks/"),
        Some(ADMIN),
        Some(&webhook("ordered", &rx.url(), "per_webhook", &[1; 10])),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let half = N / 2;
    for seq in 0..half {
        post_seq(&client, &[gw.url("/api/v1/events")], seq).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.first_successes().len() < 10 {
        assert!(Instant::now() < deadline, "deliveries never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::block_in_place(|| gw.terminate());
    let before = rx.first_successes().len() as u64;
    assert!(
        before < half,
        "the stop came after the whole first half was delivered: nothing left to resume"
    );

    // Started again on the same data dir; the second half is posted to it.
    let gw = spawn_node(&dir, &envs);
    for seq in half..N {
        post_seq(&client, &[gw.url("/api/v1/events")], seq).await;
    }
    rx.wait_all(N, Duration::from_secs(120)).await;
    assert_in_order(&rx, N);
    let mut successes = vec![0u32; N as usize];
    for r in rx.receipts().iter().filter(|r| r.ok) {
        successes[r.seq as usize] += 1;
    }
    let twice: Vec<usize> = (0..successes.len())
        .filter(|&s| successes[s] != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "answered 200 more than once after a graceful restart: {twice:?}"
    );
    assert!(
        rx.receipts().iter().any(|r| !r.ok),
        "the receiver's failures were not exercised"
    );
    let mut gw = gw;
    tokio::task::block_in_place(|| gw.terminate());
}
