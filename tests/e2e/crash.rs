//! Crash test: concurrent ingests, the real binary killed with SIGKILL mid-way, restarted: every
//! event that got a 202 is there with its delivery rows, none twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{ADMIN, GatewayProcess};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    // Deliveries go to a closed local port and stay pending: this test is about intake.
    let envs = [("GATEWAY_DELIVERY__WORKERS", "1")];
    let mut gw = GatewayProcess::spawn(dir.path(), &envs);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (s, w) = crate::support::call(&client, Method::POST, &gw.url("/api/v1/webhooks/"), Some(ADMIN),
        Some(&json!({"name": "all", "urls": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"], "trigger_events": ["*"], "retry": {"type": "schedule", "delays_secs": [3600]}}))).await;
    assert_eq!(s, 201, "{w}");

    // key -> event id, for every 202.
    let accepted: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let base = gw.url("/api/v1/events");
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (client, base, accepted, sent) =
            (client.clone(), base.clone(), accepted.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..2_000 {
                let key = format!("crash-{t}-{i}");
                sent.lock().insert(key.clone());
                let r = client
                    .post(&base)
                    .header("Authorization", ADMIN)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"event_type": "incident_triggered", "message": key}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .insert(key, v["id"].as_str().unwrap().to_string());
                    }
                    _ => return,
                }
            }
        }));
    }
    // Kill once a good number are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while accepted.lock().len() < 1_500 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let accepted = accepted.lock().clone();
    assert!(
        accepted.len() >= 1_500,
        "only {} accepted before the kill",
        accepted.len()
    );

    // Restart on the same data: every accepted event is there, with both delivery rows.
    let gw = GatewayProcess::spawn(dir.path(), &envs);
    for (key, id) in accepted.iter().take(300) {
        let (s, ev) = crate::support::call(
            &client,
            Method::GET,
            &gw.url(&format!("/api/v1/events/{id}")),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(s, 200, "accepted event {id} ({key}) lost");
        assert_eq!(ev["deliveries"].as_array().unwrap().len(), 2, "{ev}");
    }
    // Re-posting an accepted key returns the same id: the idempotency record survived too.
    for (key, id) in accepted.iter().take(50) {
        let r = client
            .post(gw.url("/api/v1/events"))
            .header("Authorization", ADMIN)
            .header("Idempotency-Key", key)
            .json(&json!({"event_type": "incident_triggered", "message": key}))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["id"].as_str(), Some(id.as_str()));
    }
    drop(gw);

    // The whole store, read directly: all accepted present, nothing twice.
    let db = rusqlite::Connection::open(dir.path().join("gateway.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT key, event_id FROM idempotency_keys")
        .unwrap();
    // Stored keys carry their tenant first (a JSON array: this admin key and the event's team),
    // then the caller's key; every post here came from one tenant.
    let stored: HashMap<String, String> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .map(|(k, id)| {
            let (tenant, key) = k.split_once(']').expect("a tenant-scoped key");
            assert!(tenant.starts_with("[\"key\""), "{k}");
            (key.to_string(), id)
        })
        .collect();
    for (key, id) in &accepted {
        assert_eq!(
            stored.get(&format!("key:{key}")),
            Some(id),
            "accepted {key} missing or changed"
        );
    }
    let events: i64 = db
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        events as usize,
        stored.len(),
        "an event was stored twice or without its key"
    );
    let keys_sent = sent.lock().len();
    assert!(stored.len() <= keys_sent);
    let dup: i64 = db
        .query_row("SELECT COUNT(*) FROM (SELECT event_id, webhook_id, url FROM deliveries GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(dup, 0, "duplicate delivery rows");
    let deliveries: i64 = db
        .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        deliveries,
        events * 2,
        "every event has exactly its two deliveries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_redelivers_with_the_same_webhook_id() {
    use axum::response::IntoResponse;
    let rx = crate::support::Receiver::start().await;
    // A slow receiver keeps requests in flight when the gateway dies.
    rx.set_fallback(|_| {
        std::thread::sleep(Duration::from_millis(300));
        axum::http::StatusCode::OK.into_response()
    });
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("GATEWAY_DELIVERY__LEASE_SECS", "5"),
        ("GATEWAY_DELIVERY__TIMEOUT_SECS", "4"),
        ("GATEWAY_DELIVERY__WORKERS", "8"),
    ];
    let mut gw = GatewayProcess::spawn(dir.path(), &envs);
    let client = reqwest::Client::new();
    let (s, _) = crate::support::call(
        &client,
        Method::POST,
        &gw.url("/api/v1/webhooks/"),
        Some(ADMIN),
        Some(&json!({"name": "slow", "url": rx.url("/slow"), "trigger_events": ["*"]})),
    )
    .await;
    assert_eq!(s, 201);
    let n: usize = 40;
    let mut events = Vec::new();
    for i in 0..n {
        let (s, v) = crate::support::call(
            &client,
            Method::POST,
            &gw.url("/api/v1/events"),
            Some(ADMIN),
            Some(&json!({"event_type": "incident.triggered", "seq": i})),
        )
        .await;
        assert_eq!(s, 202);
        events.push(v["id"].as_str().unwrap().to_string());
    }
    rx.wait_for(4, Duration::from_secs(15)).await;
    gw.kill9();
    let before = rx.count();
    assert!(before < n, "the kill came too late to test anything");

    let gw = GatewayProcess::spawn(dir.path(), &envs);
    // Every event reaches the receiver at least once.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seqs: HashSet<u64> = rx
            .received()
            .iter()
            .filter_map(|r| r.json()["seq"].as_u64())
            .collect();
        if seqs.len() == n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} delivered after restart",
            seqs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Duplicates (requests in flight at the kill) carry the same webhook-id.
    let mut ids_by_seq: HashMap<u64, HashSet<String>> = HashMap::new();
    for r in rx.received() {
        ids_by_seq
            .entry(r.json()["seq"].as_u64().unwrap())
            .or_default()
            .insert(r.header("webhook-id").unwrap().to_string());
    }
    assert!(
        ids_by_seq.values().all(|ids| ids.len() == 1),
        "a redelivery changed its webhook-id"
    );
    // And every delivery ends up succeeded.
    for e in &events {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, ev) = crate::support::call(
                &client,
                Method::GET,
                &gw.url(&format!("/api/v1/events/{e}")),
                Some(ADMIN),
                None,
            )
            .await;
            if ev["deliveries"][0]["status"] == "succeeded" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{ev}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
