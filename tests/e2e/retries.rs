//! Retry schedules, Retry-After, 410, 3xx and auto-disable, walked with an injected clock instead
//! of sleeping through minutes and days.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use gateway::clock::{Clock, ManualClock};
use reqwest::Method;
use serde_json::{Value, json};

use super::delivery::wait_status;
use crate::support::{Receiver, TestGateway};

const WAIT: Duration = Duration::from_secs(15);

async fn gateway_with_clock() -> (TestGateway, ManualClock) {
    let clock = ManualClock::new(chrono::Utc::now().timestamp_millis());
    let gw = TestGateway::start_with(|_| {}, Some(Arc::new(clock.clone()))).await;
    (gw, clock)
}

async fn delivery_of(gw: &TestGateway, event: &str) -> String {
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{event}"), None)
        .await;
    e["deliveries"][0]["id"]
        .as_str()
        .expect("one delivery")
        .to_string()
}

/// Waits until a delivery has made `n` attempts (and is not in flight).
async fn wait_attempts(gw: &TestGateway, id: &str, n: u64) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, d) = gw
            .admin(Method::GET, &format!("/api/v1/deliveries/{id}"), None)
            .await;
        if d["attempts"] == n && d["status"] != "in_flight" {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery {id} never reached {n} attempts: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_schedule_failing_k_times_then_succeeding() {
    let rx = Receiver::start().await;
    let (gw, clock) = gateway_with_clock().await;
    gw.create_webhook(json!({"name": "r", "url": rx.url("/r"), "trigger_events": ["*"]}))
        .await;
    let k = 4;
    for _ in 0..k {
        rx.respond(StatusCode::SERVICE_UNAVAILABLE);
    }
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let id = delivery_of(&gw, &ev).await;
    // Standard Webhooks schedule: 5 s, 5 min, 30 min, 2 h (each within ±20% jitter).
    let delays = [5_000i64, 300_000, 1_800_000, 7_200_000];
    for (i, delay) in delays.iter().enumerate() {
        let d = wait_attempts(&gw, &id, i as u64 + 1).await;
        assert_eq!(d["status"], "pending");
        let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let wait = next - clock.now_ms();
        assert!(
            wait >= delay * 8 / 10 - 1_000 && wait <= delay * 12 / 10 + 1_000,
            "retry {} after {wait} ms, want ~{delay}",
            i + 1
        );
        // Not due yet: nothing is sent before the time.
        clock.advance_ms(wait - 1_000);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rx.count(), i + 1, "sent early");
        clock.advance_ms(1_000);
    }
    let got = rx.wait_for(k + 1, WAIT).await;
    wait_status(&gw, &id, "succeeded").await;
    assert_eq!(got.len(), k + 1);
    let ids: std::collections::HashSet<_> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "every attempt carries one webhook-id");
    // Each attempt is signed with its own time.
    let stamps: Vec<i64> = got
        .iter()
        .map(|r| r.header("webhook-timestamp").unwrap().parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[1] > w[0]), "{stamps:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_a_fixed_policy_fails_the_delivery() {
    let rx = Receiver::start().await;
    rx.set_fallback(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    let (gw, clock) = gateway_with_clock().await;
    gw.create_webhook(json!({"name": "f", "url": rx.url("/f"), "trigger_events": ["*"],
        "retry": {"type": "fixed", "count": 2, "interval_secs": 60}, "auto_disable": {"after_failures": null, "after_days": null}}))
        .await;
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let id = delivery_of(&gw, &ev).await;
    for n in 1..=2 {
        wait_attempts(&gw, &id, n).await;
        clock.advance_ms(60_000);
    }
    let d = wait_status(&gw, &id, "failed").await;
    assert_eq!(d["attempts"], 3);
    assert!(
        d["last_error"].as_str().unwrap().contains("exhausted"),
        "{d}"
    );
    assert_eq!(rx.count(), 3);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_410_and_redirects() {
    let rx = Receiver::start().await;
    let (gw, clock) = gateway_with_clock().await;
    let w = gw
        .create_webhook(json!({"name": "x", "url": rx.url("/x"), "trigger_events": ["*"], "retry": {"type": "fixed", "count": 3, "interval_secs": 1}}))
        .await;
    // Retry-After: 120 outweighs the 1 s interval.
    rx.respond((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")]));
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let id = delivery_of(&gw, &ev).await;
    let d = wait_attempts(&gw, &id, 1).await;
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(next - clock.now_ms() >= 119_000, "Retry-After ignored: {d}");
    // A redirect is a failure and is not followed.
    rx.respond((StatusCode::FOUND, [("location", "/elsewhere")]));
    clock.advance_ms(121_000);
    let d = wait_attempts(&gw, &id, 2).await;
    assert_eq!(d["last_status_code"], 302);
    assert_eq!(d["status"], "pending");
    assert!(rx.received().iter().all(|r| r.path != "/elsewhere"));
    // 410 Gone: the delivery fails and the webhook is disabled.
    rx.respond(StatusCode::GONE);
    clock.advance_ms(2_000);
    let d = wait_status(&gw, &id, "failed").await;
    assert_eq!(d["last_status_code"], 410);
    let (_, wv) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{}/", w["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(wv["is_webhook_enabled"], false);
    assert!(wv["disabled_reason"].as_str().unwrap().contains("410"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_disable_by_count_and_age_then_reenable() {
    let bad = Receiver::start().await;
    bad.set_fallback(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    let ops = Receiver::start().await;
    let (gw, clock) = gateway_with_clock().await;
    // Operators subscribe to the operational event.
    gw.create_webhook(
        json!({"name": "ops", "url": ops.url("/ops"), "trigger_events": ["webhook.disabled"]}),
    )
    .await;
    let by_count = gw
        .create_webhook(json!({"name": "count", "url": bad.url("/count"), "trigger_events": ["incident.triggered"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 1}, "failure_email": "oncall@example.com",
            "auto_disable": {"after_failures": 3, "after_days": null}}))
        .await;
    let count_id = by_count["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        gw.post_event(&json!({"event_type": "incident.triggered", "n": i}))
            .await;
        bad.wait_for(i + 1, WAIT).await;
    }
    let got = ops.wait_for(1, WAIT).await;
    let op = got[0].json();
    assert_eq!(op["event_type"], "webhook.disabled");
    assert_eq!(op["webhook"]["id"], count_id);
    assert_eq!(op["webhook"]["failure_email"], "oncall@example.com");
    let (_, w) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/{count_id}/"), None)
        .await;
    assert_eq!(w["is_webhook_enabled"], false);
    // A disabled webhook gets nothing.
    let before = bad.count();
    gw.post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bad.count(), before);
    // Re-enabled through the API, it receives again (and its failure count restarts).
    bad.set_fallback(|_| StatusCode::OK.into_response());
    let (s, _) = gw
        .admin(
            Method::PUT,
            &format!("/api/v1/webhooks/{count_id}/"),
            Some(&json!({"is_webhook_enabled": true})),
        )
        .await;
    assert_eq!(s, 200);
    gw.post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    bad.wait_for(before + 1, WAIT).await;

    // By age: failing for more than one day disables, whatever the count.
    bad.set_fallback(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    let by_age = gw
        .create_webhook(json!({"name": "age", "url": bad.url("/age"), "trigger_events": ["incident.resolved"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 1}, "auto_disable": {"after_failures": null, "after_days": 1}}))
        .await;
    let age_id = by_age["id"].as_str().unwrap().to_string();
    let n = bad.count();
    gw.post_event(&json!({"event_type": "incident.resolved"}))
        .await;
    bad.wait_for(n + 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, w) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/{age_id}/"), None)
        .await;
    assert_eq!(w["is_webhook_enabled"], true, "one failure is not a day");
    clock.advance_ms(25 * 3600 * 1000);
    gw.post_event(&json!({"event_type": "incident.resolved"}))
        .await;
    let got = ops.wait_for(2, WAIT).await;
    assert_eq!(got[1].json()["webhook"]["id"], age_id);
    let (_, w) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/{age_id}/"), None)
        .await;
    assert_eq!(w["is_webhook_enabled"], false);
    gw.stop().await;
}
