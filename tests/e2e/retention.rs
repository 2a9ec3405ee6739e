//! Retention end to end: thousands of events delivered, the clock moved past a short retention,
//! and the background pruner removes old events, deliveries and attempts (gone through the API)
//! while a delivery still owed (its receiver failing, its retry an hour ahead) stays with its
//! event. On SQLite the file gives the space back: after a second batch of the same size it is no
//! larger than after the first. The same on PostgreSQL (rows gone, owed kept), and
//! `webhook-gateway store prune` run by hand on a stopped gateway's data dir (old sent and
//! refused failure mails go too, a mail still to send stays).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use gateway::clock::Clock;
use gateway::clock::ManualClock;
use gateway::config::Config;
use gateway::model::{MailKind, MailOutcome, OutboxMail};
use gateway::store::Store;
use gateway::store::suite::{pg_test_url, with_pg};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{Receiver, TestGateway, test_config};

/// Events per batch (bounded: a few seconds each on two cores).
const EVENTS: usize = 3_000;
const RETENTION_SECS: u64 = 60;
/// How far the clock moves per batch: past the retention, far short of the owed retry (1 h).
const STEP_MS: i64 = 2 * RETENTION_SECS as i64 * 1_000;
const WAIT: Duration = Duration::from_secs(90);

fn short_retention(c: &mut Config) {
    c.retention.events_secs = RETENTION_SECS;
    c.retention.attempts_secs = RETENTION_SECS;
    c.retention.interval_secs = 1;
    c.retention.batch_size = 500;
}

/// A counter from `/metrics` (0 when not yet reported).
async fn metric(gw: &TestGateway, line_start: &str) -> u64 {
    let text = gw
        .client
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn pruned_events(gw: &TestGateway) -> u64 {
    metric(gw, "gateway_retention_pruned_rows_total{kind=\"events\"}").await
}

async fn passes(gw: &TestGateway) -> u64 {
    metric(gw, "gateway_retention_passes_total").await
}

/// Waits until the pruner has removed `events` events in total, then until two more passes have
/// finished (so the pass that pruned, its vacuum and WAL truncate included, is over, and an idle
/// pass after it confirms nothing is left).
async fn wait_pruned(gw: &TestGateway, events: u64) {
    let deadline = Instant::now() + WAIT;
    while pruned_events(gw).await < events {
        if Instant::now() > deadline {
            let text = gw.client.get(gw.url("/metrics")).send().await.unwrap();
            let text = text.text().await.unwrap();
            let seen: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("gateway_retention") || l.starts_with("gateway_deliveries")
                })
                .collect();
            panic!("pruner never removed {events} events: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = passes(gw).await;
    while passes(gw).await < seen + 2 {
        assert!(Instant::now() < deadline, "pruner stopped passing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pruned_events(gw).await, events, "pruned more than was old");
}

/// Waits until every delivery is recorded as finished but the owed one (the queue gauge holds
/// one pending, none in flight), so moving the clock cannot outrun a lease.
async fn wait_settled(gw: &TestGateway) {
    let deadline = Instant::now() + WAIT;
    loop {
        let pending = metric(gw, "gateway_deliveries{status=\"pending\"}").await;
        let in_flight = metric(gw, "gateway_deliveries{status=\"in_flight\"}").await;
        if (pending, in_flight) == (1, 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never settled: {pending} pending, {in_flight} in flight"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts `n` events of `event_type` from 16 concurrent clients; returns their ids.
async fn post_many(gw: &Arc<TestGateway>, n: usize, event_type: &str) -> Vec<String> {
    let mut set = JoinSet::new();
    for w in 0..16 {
        let gw = gw.clone();
        let event_type = event_type.to_string();
        set.spawn(async move {
            let mut ids = Vec::new();
            for i in (w..n).step_by(16) {
                ids.push(
                    gw.post_event(&json!({"event_type": event_type, "message": format!("disk full on host {i}")}))
                        .await,
                );
            }
            ids
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(got) = set.join_next().await {
        ids.extend(got.unwrap());
    }
    ids
}

async fn status_of(gw: &TestGateway, path: &str) -> (StatusCode, Value) {
    gw.admin(Method::GET, path, None).await
}

/// The webhooks' attempt log total.
async fn attempts_total(gw: &TestGateway, webhook: &str) -> u64 {
    let (s, v) = status_of(gw, &format!("/api/v1/webhooks/{webhook}/attempts")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["count"].as_u64().expect("attempts count")
}

/// The delivery an owed event keeps, once it is pending with a retry ahead.
async fn owed_delivery(gw: &TestGateway, event: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, e) = status_of(gw, &format!("/api/v1/events/{event}")).await;
        let d = &e["deliveries"][0];
        if d["status"] == "pending" && d["attempts"] == 1 {
            return d["id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "owed delivery never retried: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the pruned batch is gone and the owed delivery is not.
async fn assert_gone_and_owed_kept(gw: &TestGateway, old: &[String], owed: (&str, &str), ok: &str) {
    for id in old.iter().step_by(old.len() / 20) {
        let (s, _) = status_of(gw, &format!("/api/v1/events/{id}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "old event {id} is still there");
    }
    assert_eq!(attempts_total(gw, ok).await, 0, "old attempts still listed");
    let (s, e) = status_of(gw, &format!("/api/v1/events/{}", owed.0)).await;
    assert_eq!(s, StatusCode::OK, "the owed event was pruned: {e}");
    let (s, d) = status_of(gw, &format!("/api/v1/deliveries/{}", owed.1)).await;
    assert_eq!(s, StatusCode::OK, "the owed delivery was pruned: {d}");
    assert_eq!(d["status"], "pending");
}

/// What the scenario leaves: (webhook ids, the owed event and delivery).
struct Setup {
    ok: String,
    owed_event: String,
    owed_delivery: String,
}

async fn setup(gw: &Arc<TestGateway>, ok_rx: &Receiver, owed_rx: &Receiver) -> Setup {
    owed_rx.set_fallback(|_| {
        let mut r = StatusCode::SERVICE_UNAVAILABLE.into_response();
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("3600"));
        r
    });
    let ok = gw
        .create_webhook(json!({"name": "ok", "url": ok_rx.url("/ok"), "trigger_events": ["incident.triggered"]}))
        .await;
    gw.create_webhook(
        json!({"name": "owed", "url": owed_rx.url("/owed"), "trigger_events": ["incident.resolved"],
        "auto_disable": {"after_failures": null, "after_days": null}}),
    )
    .await;
    let owed_event = gw
        .post_event(&json!({"event_type": "incident.resolved"}))
        .await;
    let owed_delivery = owed_delivery(gw, &owed_event).await;
    Setup {
        ok: ok["id"].as_str().unwrap().to_string(),
        owed_event,
        owed_delivery,
    }
}

/// One batch: `EVENTS` events delivered, the clock moved past the retention, and pruned.
async fn batch(
    gw: &Arc<TestGateway>,
    clock: &ManualClock,
    rx: &Receiver,
    round: usize,
) -> Vec<String> {
    let ids = post_many(gw, EVENTS, "incident.triggered").await;
    rx.wait_for(EVENTS * round, WAIT).await;
    wait_settled(gw).await;
    clock.advance_ms(STEP_MS);
    wait_pruned(gw, (EVENTS * round) as u64).await;
    ids
}

fn sqlite_bytes(dir: &Path) -> u64 {
    ["gateway.db", "gateway.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_prunes_old_rows_keeps_owed_and_gives_the_space_back() {
    let (ok_rx, owed_rx) = (Receiver::start().await, Receiver::start().await);
    let clock = ManualClock::new(chrono::Utc::now().timestamp_millis());
    let gw =
        Arc::new(TestGateway::start_with(short_retention, Some(Arc::new(clock.clone()))).await);
    let s = setup(&gw, &ok_rx, &owed_rx).await;
    let dir = gw.dir.path().to_path_buf();
    // After an idle pass the WAL is empty: what the gateway holds before any batch.
    wait_pruned(&gw, 0).await;
    let base = sqlite_bytes(&dir);

    let ids = post_many(&gw, EVENTS, "incident.triggered").await;
    ok_rx.wait_for(EVENTS, WAIT).await;
    wait_settled(&gw).await;
    let full = sqlite_bytes(&dir);
    clock.advance_ms(STEP_MS);
    wait_pruned(&gw, EVENTS as u64).await;
    let first = sqlite_bytes(&dir);
    assert!(
        first.saturating_sub(base) < full.saturating_sub(base) / 4,
        "pruning gave no space back: {base} bytes before the batch, {full} with it, {first} after pruning"
    );
    assert_gone_and_owed_kept(&gw, &ids, (&s.owed_event, &s.owed_delivery), &s.ok).await;

    let ids = batch(&gw, &clock, &ok_rx, 2).await;
    let second = sqlite_bytes(&dir);
    assert_gone_and_owed_kept(&gw, &ids, (&s.owed_event, &s.owed_delivery), &s.ok).await;
    eprintln!(
        "sqlite bytes: {base} before, {full} with 3,000 events, {first} pruned, {second} after a second batch pruned"
    );
    assert!(
        second <= first,
        "the file grew across a second batch of the same size: {first} -> {second} bytes"
    );
    assert_eq!(owed_rx.count(), 1, "the owed retry is an hour ahead");
    Arc::into_inner(gw).expect("one owner").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prunes_old_rows_and_keeps_owed() {
    with_pg("retention_e2e", |_store, schema| async move {
        let base = pg_test_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        let (ok_rx, owed_rx) = (Receiver::start().await, Receiver::start().await);
        let clock = ManualClock::new(chrono::Utc::now().timestamp_millis());
        let gw = Arc::new(
            TestGateway::start_with(
                |c| {
                    short_retention(c);
                    c.database_url = url;
                },
                Some(Arc::new(clock.clone())),
            )
            .await,
        );
        let s = setup(&gw, &ok_rx, &owed_rx).await;
        for round in 1..=2 {
            let ids = batch(&gw, &clock, &ok_rx, round).await;
            assert_gone_and_owed_kept(&gw, &ids, (&s.owed_event, &s.owed_delivery), &s.ok).await;
        }
        Arc::into_inner(gw).expect("one owner").stop().await;
    })
    .await;
}

/// `webhook-gateway store prune` on a stopped gateway's data dir, with its flags.
fn prune_cli(dir: &Path, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("--data-dir")
        .arg(dir)
        .args(["store", "prune"])
        .args(args)
        .env("GATEWAY_LOG", "warn")
        .output()
        .expect("run store prune");
    assert!(
        out.status.success(),
        "store prune failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_prune_by_hand_prints_what_it_removed() {
    let rx = Receiver::start().await;
    // Ten days ago: older than `--events-days 5`, younger than the default 30 days.
    let clock = ManualClock::new(chrono::Utc::now().timestamp_millis() - 10 * 86_400_000);
    // The data dir outlives the gateway (whose own temp dir goes when it stops).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = test_config(&data);
    let gw = TestGateway::start_in(
        tempfile::tempdir().unwrap(),
        config,
        Some(Arc::new(clock.clone())),
    );
    let gw = Arc::new(gw.await);
    gw.create_webhook(json!({"name": "ok", "url": rx.url("/ok"), "trigger_events": ["*"]}))
        .await;
    let ids = post_many(&gw, 40, "incident.triggered").await;
    rx.wait_for(40, WAIT).await;
    // Recorded, not only sent: the last event's delivery has succeeded.
    let deadline = Instant::now() + WAIT;
    for id in &ids {
        while status_of(&gw, &format!("/api/v1/events/{id}")).await.1["deliveries"][0]["status"]
            != "succeeded"
        {
            assert!(Instant::now() < deadline, "event {id} never delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Arc::into_inner(gw).expect("one owner").stop().await;
    // Failure mails of ten days ago in the outbox: two sent, one refused, one still to send.
    let ten_days_ago = clock.now_ms();
    let store = gateway::store::sqlite::SqliteStore::open(&data.join("gateway.db")).unwrap();
    for (id, outcome) in [
        ("sent_1", Some(MailOutcome::Sent)),
        ("sent_2", Some(MailOutcome::Sent)),
        (
            "refused",
            Some(MailOutcome::Rejected {
                error: "550".into(),
            }),
        ),
        ("unsent", None),
    ] {
        let mail = OutboxMail {
            id: id.into(),
            webhook_id: "wh_gone".into(),
            kind: MailKind::FailureDigest,
            recipient: "ops@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            attempts: 0,
            next_attempt_at: i64::MAX / 2,
            created_at: ten_days_ago,
        };
        store.enqueue_mail(&mail).await.unwrap();
        if let Some(o) = outcome {
            store.finish_mail(id, &o, ten_days_ago).await.unwrap();
        }
    }
    drop(store);

    // Younger than 30 days (the default): nothing goes.
    let kept = prune_cli(&data, &[]);
    assert!(
        kept.starts_with(
            "removed 0 events, 0 deliveries, 0 attempts, 0 idempotency keys, 0 mails; freed "
        ),
        "{kept}"
    );
    let removed = prune_cli(&data, &["--events-days", "5", "--attempts-days", "5"]);
    assert!(
        removed.starts_with(
            "removed 40 events, 40 deliveries, 40 attempts, 0 idempotency keys, 3 mails; freed "
        ),
        "{removed}"
    );
    let store = gateway::store::sqlite::SqliteStore::open(&data.join("gateway.db")).unwrap();
    let unsent: Vec<String> = store
        .claim_mail(i64::MAX / 2, i64::MAX / 2, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(unsent, ["unsent"], "a mail still to send is never pruned");
    drop(store);
    let again = prune_cli(&data, &["--events-days", "5", "--vacuum"]);
    assert!(again.starts_with("removed 0 events"), "{again}");

    // A gateway on the pruned files finds none of the events.
    let mut config = test_config(&data);
    config.delivery.enabled = false;
    let gw = TestGateway::start_in(tempfile::tempdir().unwrap(), config, None).await;
    for id in &ids {
        let (s, _) = status_of(&gw, &format!("/api/v1/events/{id}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{id} survived store prune");
    }
    gw.stop().await;
}
