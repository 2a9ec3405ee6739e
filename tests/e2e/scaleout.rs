//! Scale-out on PostgreSQL: several real gateway processes (`gateway-under-test`) on one database.
//! - nodes share the queue, and a node killed with SIGKILL only costs redeliveries of what it had
//!   in flight (same `webhook-id`), after its leases run out;
//! - the database stopped and restarted under load: 503s while it is down, then ingest and
//!   delivery resume by themselves, nothing acknowledged lost;
//! - one `Idempotency-Key` posted to two nodes at once makes one event;
//! - a webhook created through one node fires for events posted to another.
//!
//! Each test gets a fresh schema on the shared server (dropped afterwards), or, when it stops its
//! database, a throwaway server of its own. Skipped with the reason printed when PostgreSQL is
//! unreachable, unless `GATEWAY_TEST_REQUIRE_POSTGRES=1`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use gateway::model::DeliveryStatus;
use gateway::store::Store;
use gateway::store::suite::throwaway::Throwaway;
use gateway::store::suite::{pg_test_url, with_pg};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, GatewayProcess, call};

/// The shared server's URL with every connection's `search_path` set to `schema`.
fn schema_url(schema: &str) -> String {
    let base = pg_test_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// Starts a node off the async workers (spawning waits for the address it prints).
fn spawn_node(dir: &tempfile::TempDir, envs: &[(&str, &str)]) -> GatewayProcess {
    tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), envs))
}

/// One request the receiver got: the event's `seq`, the `webhook-id`, when it arrived.
#[derive(Debug, Clone)]
struct Arrival {
    seq: u64,
    webhook_id: String,
    at: Instant,
}

/// A receiver that takes `delay` to answer 200 (asynchronously, so many requests overlap), and
/// records each request on arrival together with how many were in flight at once.
#[derive(Clone)]
struct SlowReceiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Arrival>>>,
    max_in_flight: Arc<AtomicUsize>,
}

/// Decrements the in-flight count however the request ends (the sender may die mid-request).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SlowReceiver {
    async fn start(delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let me = SlowReceiver {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let in_flight = Arc::new(AtomicUsize::new(0));
        let rc = me.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (rc, in_flight) = (rc.clone(), in_flight.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                let _guard = InFlight(in_flight);
                rc.max_in_flight.fetch_max(now, Ordering::SeqCst);
                let seq = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["seq"].as_u64())
                    .unwrap_or(u64::MAX);
                let webhook_id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                rc.got.lock().push(Arrival {
                    seq,
                    webhook_id,
                    at: Instant::now(),
                });
                tokio::time::sleep(delay).await;
                StatusCode::OK
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        me
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.got.lock().clone()
    }

    fn seqs(&self) -> HashSet<u64> {
        self.got.lock().iter().map(|a| a.seq).collect()
    }

    /// Waits until every seq in `want` arrived at least once.
    async fn wait_for_all(&self, want: &HashSet<u64>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = want.difference(&self.seqs()).count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} accepted events never delivered",
                want.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn create_webhook(client: &reqwest::Client, node: &GatewayProcess, url: &str) -> String {
    let body = json!({"name": "scale-out", "url": url, "trigger_events": ["*"]});
    let (s, w) = call(
        client,
        Method::POST,
        &node.url("/api/v1/webhooks/"),
        Some(ADMIN),
        Some(&body),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    w["id"].as_str().unwrap().to_string()
}

/// Posts an event; `Some((status, body, headers))`, or `None` when no answer came.
async fn post_event(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    key: Option<&str>,
) -> Option<(StatusCode, Value, HeaderMap)> {
    let mut req = client.post(url).header("Authorization", ADMIN).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.ok()?;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    Some((status, v, headers))
}

/// Waits until every delivery in the store has succeeded (none pending, in flight or failed).
async fn wait_all_succeeded(store: &dyn Store, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = store.delivery_counts().await.unwrap();
        let not_done: u64 = counts
            .iter()
            .filter(|(s, _)| *s != DeliveryStatus::Succeeded)
            .map(|(_, n)| n)
            .sum();
        if not_done == 0 {
            return counts.iter().map(|(_, n)| n).sum();
        }
        assert!(
            Instant::now() < deadline,
            "deliveries not all succeeded: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `cond` until it holds; panics after `secs`.
async fn wait_until(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const LEASE_ENVS: [(&str, &str); 3] = [
    ("GATEWAY_DELIVERY__LEASE_SECS", "5"),
    ("GATEWAY_DELIVERY__TIMEOUT_SECS", "4"),
    ("GATEWAY_DELIVERY__WORKERS", "4"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_queue_and_a_killed_nodes_deliveries_come_back_after_its_leases() {
    with_pg("scaleout_kill", |store, schema| async move {
        let url = schema_url(&schema);
        let delay = Duration::from_millis(250);
        let rx = SlowReceiver::start(delay).await;
        let mut envs = vec![("GATEWAY_DATABASE_URL", url.as_str())];
        envs.extend(LEASE_ENVS);
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        // The webhook exists before the other nodes start, so every node matches it from the start.
        let first = spawn_node(&dirs[0], &envs);
        create_webhook(&client, &first, &rx.url()).await;
        let mut nodes = vec![first];
        nodes.extend(dirs[1..].iter().map(|d| spawn_node(d, &envs)));
        let ingest_urls: Vec<String> = nodes.iter().map(|n| n.url("/api/v1/events")).collect();

        // A paced burst, round-robin over the nodes, for about three seconds: seq -> event id.
        let total = 300u64;
        let accepted: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
        let mut posters = Vec::new();
        for p in 0..3u64 {
            let (client, urls, accepted) = (client.clone(), ingest_urls.clone(), accepted.clone());
            posters.push(tokio::spawn(async move {
                for seq in (p..total).step_by(3) {
                    let url = &urls[(seq % 3) as usize];
                    let body = json!({"event_type": "incident.triggered", "seq": seq});
                    if let Some((s, v, _)) = post_event(&client, url, &body, None).await
                        && s == StatusCode::ACCEPTED
                    {
                        accepted
                            .lock()
                            .insert(seq, v["id"].as_str().unwrap().to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }));
        }
        // Kill node 2 once deliveries are flowing and its workers are busy.
        let deadline = Instant::now() + Duration::from_secs(30);
        while rx.arrivals().len() < 60 {
            assert!(Instant::now() < deadline, "deliveries never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        nodes[2].kill9();
        let killed_at = Instant::now();
        for p in posters {
            p.await.unwrap();
        }
        let accepted = accepted.lock().clone();
        let posted_to_survivors = accepted.keys().filter(|s| *s % 3 != 2).count();
        assert!(
            accepted.len() > posted_to_survivors,
            "the killed node accepted nothing before it died"
        );
        println!(
            "accepted {} of {total} ({} by the killed node)",
            accepted.len(),
            accepted.len() - posted_to_survivors
        );

        // Every accepted event arrives, and every delivery ends succeeded.
        let want: HashSet<u64> = accepted.keys().copied().collect();
        rx.wait_for_all(&want, Duration::from_secs(90)).await;
        let deliveries = wait_all_succeeded(store.as_ref(), Duration::from_secs(30)).await;
        assert!(
            deliveries >= accepted.len() as u64,
            "{deliveries} deliveries for {} accepted events",
            accepted.len()
        );
        for id in accepted.values() {
            let ds = store.deliveries_for_event(id).await.unwrap();
            assert_eq!(ds.len(), 1, "event {id}: {ds:?}");
        }

        // The work was shared: each node runs 4 workers, so more than 4 requests at once at the
        // receiver means several nodes were delivering together.
        let max_in_flight = rx.max_in_flight.load(Ordering::SeqCst);
        assert!(
            max_in_flight > 4,
            "at most {max_in_flight} requests in flight: only one node delivered"
        );

        // Duplicates: only what the killed node had in flight (the copy before the kill arrived at
        // most one receiver delay and a little before it), sent again with the same webhook-id
        // once its lease ran out (5 s after the claim), never twice by live nodes.
        let mut by_seq: HashMap<u64, Vec<Arrival>> = HashMap::new();
        for a in rx.arrivals() {
            by_seq.entry(a.seq).or_default().push(a);
        }
        let mut duplicated = 0;
        for (seq, copies) in &by_seq {
            let ids: HashSet<&str> = copies.iter().map(|a| a.webhook_id.as_str()).collect();
            assert_eq!(
                ids.len(),
                1,
                "seq {seq}: a redelivery changed its webhook-id: {ids:?}"
            );
            if copies.len() == 1 {
                continue;
            }
            duplicated += 1;
            assert_eq!(
                copies.len(),
                2,
                "seq {seq} delivered {} times",
                copies.len()
            );
            let (a, b) = (&copies[0], &copies[1]);
            assert!(
                a.at <= killed_at && a.at + delay + Duration::from_secs(1) >= killed_at,
                "seq {seq}: first copy was not in flight at the kill"
            );
            assert!(
                b.at >= a.at + Duration::from_secs(3),
                "seq {seq}: sent again {:?} later, before the lease ran out",
                b.at - a.at
            );
        }
        assert!(
            duplicated >= 1,
            "the killed node had nothing in flight: the test proved nothing about leases"
        );
        println!(
            "max in flight {max_in_flight}; {duplicated} deliveries redelivered after the kill"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_under_load_answers_503_then_recovers_without_restarting_the_gateway() {
    let Some(server) = tokio::task::spawn_blocking(Throwaway::create_or_skip)
        .await
        .unwrap()
    else {
        return;
    };
    let db_url = server.url();
    let rx = SlowReceiver::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let mut envs = vec![
        ("GATEWAY_DATABASE_URL", db_url.as_str()),
        ("GATEWAY_POSTGRES__CONNECT_TIMEOUT_SECS", "2"),
    ];
    envs.extend(LEASE_ENVS);
    let node = spawn_node(&dir, &envs);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    create_webhook(&client, &node, &rx.url()).await;

    // Two posters, back to back, each event with its own key: seq -> outcome.
    #[derive(Debug, Clone)]
    enum Outcome {
        Accepted(String),
        Unavailable,
        Other(String),
    }
    let outcomes: Arc<Mutex<Vec<(u64, Outcome, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ingest = node.url("/api/v1/events");
    let mut posters = Vec::new();
    for _ in 0..2 {
        let (client, url, outcomes, stop, next) = (
            client.clone(),
            ingest.clone(),
            outcomes.clone(),
            stop.clone(),
            next.clone(),
        );
        posters.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let seq = next.fetch_add(1, Ordering::SeqCst);
                let body = json!({"event_type": "incident.triggered", "seq": seq});
                let outcome =
                    match post_event(&client, &url, &body, Some(&format!("restart-{seq}"))).await {
                        Some((StatusCode::ACCEPTED, v, _)) => {
                            Outcome::Accepted(v["id"].as_str().unwrap().to_string())
                        }
                        Some((StatusCode::SERVICE_UNAVAILABLE, v, h)) => {
                            let problem = h
                                .get("content-type")
                                .is_some_and(|c| c == "application/problem+json");
                            assert!(
                                problem && v["status"] == 503 && v["detail"].is_string(),
                                "503 without a problem body: {h:?} {v}"
                            );
                            Outcome::Unavailable
                        }
                        Some((s, v, _)) => Outcome::Other(format!("{s}: {v}")),
                        None => Outcome::Other("no answer".into()),
                    };
                outcomes.lock().push((seq, outcome, Instant::now()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let count = |pred: &dyn Fn(&Outcome) -> bool| {
        outcomes.lock().iter().filter(|(_, o, _)| pred(o)).count()
    };
    wait_until("ingests before the stop", 20, || {
        count(&|o| matches!(o, Outcome::Accepted(_))) >= 200
    })
    .await;

    // Down: ingest answers 503 with a problem body, and the node is not ready.
    tokio::task::block_in_place(|| server.stop("immediate")).unwrap();
    let stopped_at = Instant::now();
    wait_until("a 503 while the database is down", 15, || {
        count(&|o| matches!(o, Outcome::Unavailable)) >= 1
    })
    .await;
    println!("first 503 {:?} after the stop", stopped_at.elapsed());
    let (s, v) = call(&client, Method::GET, &node.url("/readyz"), None, None).await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz while the database is down: {v}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted_while_down = outcomes
        .lock()
        .iter()
        .filter(|(_, o, at)| {
            matches!(o, Outcome::Accepted(_)) && *at > stopped_at + Duration::from_millis(500)
        })
        .count();
    assert_eq!(accepted_while_down, 0, "202 while the database was down");

    // Back on the same port: ingest, readiness and delivery resume by themselves.
    tokio::task::block_in_place(|| server.start()).unwrap();
    let restarted_at = Instant::now();
    let accepted_after = || {
        outcomes
            .lock()
            .iter()
            .filter(|(_, o, at)| matches!(o, Outcome::Accepted(_)) && *at > restarted_at)
            .count()
    };
    wait_until("202s after the restart", 30, || accepted_after() >= 100).await;
    println!("ingest back {:?} after the restart", restarted_at.elapsed());
    stop.store(true, Ordering::SeqCst);
    for p in posters {
        p.await.unwrap();
    }
    // Ready again once no write has failed for `health.write_failure_window_secs` (5 s).
    let ready_by = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, why) = call(&client, Method::GET, &node.url("/readyz"), None, None).await;
        if s == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "/readyz after the restart: {s} {why}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let outcomes = outcomes.lock().clone();
    let others: Vec<_> = outcomes
        .iter()
        .filter_map(|(seq, o, _)| {
            if let Outcome::Other(why) = o {
                Some((seq, why))
            } else {
                None
            }
        })
        .collect();
    assert!(
        others.len() <= 2,
        "answers other than 202 and 503 (at most the requests in flight at the stop may be cut): {others:?}"
    );
    let accepted: HashMap<u64, String> = outcomes
        .iter()
        .filter_map(|(seq, o, _)| {
            if let Outcome::Accepted(id) = o {
                Some((*seq, id.clone()))
            } else {
                None
            }
        })
        .collect();
    let unavailable = outcomes
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Unavailable))
        .count();
    println!(
        "{} accepted, {unavailable} answered 503, {} other",
        accepted.len(),
        others.len()
    );

    // Every 202 is stored with its delivery, and delivered.
    for (seq, id) in &accepted {
        let (s, ev) = call(
            &client,
            Method::GET,
            &node.url(&format!("/api/v1/events/{id}")),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(s, 200, "accepted event {id} (seq {seq}) lost");
        assert_eq!(ev["deliveries"].as_array().map(Vec::len), Some(1), "{ev}");
    }
    let want: HashSet<u64> = accepted.keys().copied().collect();
    rx.wait_for_all(&want, Duration::from_secs(60)).await;
    // Nothing refused with 503 was half stored: re-posting its key now creates it (one delivery).
    if let Some((seq, _, _)) = outcomes
        .iter()
        .find(|(_, o, _)| matches!(o, Outcome::Unavailable))
    {
        let body = json!({"event_type": "incident.triggered", "seq": seq});
        let (s, v, h) = post_event(&client, &ingest, &body, Some(&format!("restart-{seq}")))
            .await
            .expect("an answer");
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert!(
            h.get("idempotent-replayed").is_none(),
            "a refused ingest left its key behind"
        );
    }
    drop(node);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_posted_to_two_nodes_at_once_makes_one_event() {
    with_pg("scaleout_idem", |store, schema| async move {
        let url = schema_url(&schema);
        // API-only nodes: this test is about intake.
        let envs = [
            ("GATEWAY_DATABASE_URL", url.as_str()),
            ("GATEWAY_DELIVERY__ENABLED", "false"),
        ];
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let client = reqwest::Client::new();
        let a = spawn_node(&dirs[0], &envs);
        create_webhook(&client, &a, "http://127.0.0.1:9/hook").await;
        let b = spawn_node(&dirs[1], &envs);
        let (ua, ub) = (a.url("/api/v1/events"), b.url("/api/v1/events"));
        let keys = 40;
        let mut ids = HashSet::new();
        for k in 0..keys {
            let key = format!("same-key-{k}");
            // Different bodies on purpose: the key alone decides.
            let body_a = json!({"event_type": "incident.triggered", "seq": k, "via": "a"});
            let body_b = json!({"event_type": "incident.triggered", "seq": k, "via": "b"});
            let (ra, rb) = tokio::join!(
                post_event(&client, &ua, &body_a, Some(&key)),
                post_event(&client, &ub, &body_b, Some(&key)),
            );
            let ((sa, va, ha), (sb, vb, hb)) = (ra.unwrap(), rb.unwrap());
            assert_eq!(
                (sa, sb),
                (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
                "{va} {vb}"
            );
            assert_eq!(va["id"], vb["id"], "key {key} made two events");
            let replayed = [&ha, &hb]
                .iter()
                .filter(|h| h.get("idempotent-replayed").is_some())
                .count();
            assert_eq!(replayed, 1, "exactly one of the two answers is the replay");
            ids.insert(va["id"].as_str().unwrap().to_string());
        }
        assert_eq!(ids.len(), keys as usize);
        // One event per key in the store: one delivery each, nothing more.
        let total: u64 = store
            .delivery_counts()
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(total, keys);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_created_through_one_node_fires_for_events_posted_to_another() {
    with_pg("scaleout_subs", |_store, schema| async move {
        let url = schema_url(&schema);
        let envs = [
            ("GATEWAY_DATABASE_URL", url.as_str()),
            ("GATEWAY_POSTGRES__WEBHOOKS_REFRESH_SECS", "1"),
        ];
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let (a, b) = (spawn_node(&dirs[0], &envs), spawn_node(&dirs[1], &envs));
        let rx = SlowReceiver::start(Duration::ZERO).await;
        let client = reqwest::Client::new();
        // Node b started before the webhook existed; within a refresh it matches it.
        create_webhook(&client, &a, &rx.url()).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seq = 0;
        loop {
            let (s, v, _) = post_event(
                &client,
                &b.url("/api/v1/events"),
                &json!({"event_type": "incident.triggered", "seq": seq}),
                None,
            )
            .await
            .unwrap();
            assert_eq!(s, StatusCode::ACCEPTED, "{v}");
            let (_, ev) = call(
                &client,
                Method::GET,
                &b.url(&format!("/api/v1/events/{}", v["id"].as_str().unwrap())),
                Some(ADMIN),
                None,
            )
            .await;
            if ev["deliveries"].as_array().is_some_and(|d| d.len() == 1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node b never picked up the webhook created through node a"
            );
            seq += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        rx.wait_for_all(&HashSet::from([seq]), Duration::from_secs(20))
            .await;
    })
    .await;
}
