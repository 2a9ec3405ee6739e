//! Event intake: the Squadcast samples of seed 000 are accepted and normalised; matching creates
//! one delivery per (webhook, url); idempotency returns the first answer.

use crate::support::{TestGateway, fixture};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squadcast_samples_are_accepted_and_normalised() {
    let gw = TestGateway::start_with(|c| c.delivery.workers = 1, None).await;
    // Two urls on a resolved-only webhook, and a catch-all status-change webhook.
    let resolved = gw
        .create_webhook(json!({"name": "resolved", "urls": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"], "trigger_events": ["incident_resolved"]}))
        .await;
    let status = gw.create_webhook(json!({"name": "status", "url": "http://127.0.0.1:9/s", "http_method": "POST", "trigger_type": "status change"})).await;
    let disabled = gw
        .create_webhook(json!({"name": "off", "url": "http://127.0.0.1:9/x", "http_method": "POST", "trigger_type": "resolve", "is_webhook_enabled": false}))
        .await;
    let cases = [
        ("incident_triggered.json", "incident.triggered", vec![]),
        ("incident_reassigned.json", "incident.reassigned", vec![]),
        (
            "incident_acknowledged.json",
            "incident.acknowledged",
            vec![&status],
        ),
        (
            "incident_resolved.json",
            "incident.resolved",
            vec![&resolved, &resolved, &status],
        ),
    ];
    for (file, canonical, expect) in cases {
        let body = fixture(&format!("squadcast/{file}"));
        let id = gw.post_event(&body).await;
        let (s, ev) = gw
            .admin(Method::GET, &format!("/api/v1/events/{id}"), None)
            .await;
        assert_eq!(s, 200);
        assert_eq!(ev["event_type"], canonical, "{file}");
        assert_eq!(ev["source_type"], body["event_type"]);
        assert_eq!(ev["payload"], body, "stored payload differs for {file}");
        assert_eq!(ev["scope"]["team_id"], body["owner"]["id"]);
        assert_eq!(ev["scope"]["service_id"], body["service"]["id"]);
        let mut got: Vec<String> = ev["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["webhook_id"].as_str().unwrap().to_string())
            .collect();
        let mut want: Vec<String> = expect
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "deliveries for {file}");
        assert!(!got.contains(&disabled["id"].as_str().unwrap().to_string()));
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_first_answer() {
    let gw = TestGateway::start().await;
    let body = json!({"event_type": "incident.triggered", "message": "m"});
    let send = |key: &'static str| {
        gw.client
            .post(gw.url("/api/v1/events"))
            .header("Authorization", crate::support::ADMIN)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let a = send("k-1").await.unwrap();
    assert_eq!(a.status(), 202);
    let a: serde_json::Value = a.json().await.unwrap();
    let b = send("k-1").await.unwrap();
    assert_eq!(b.status(), 202);
    assert_eq!(b.headers().get("idempotent-replayed").unwrap(), "true");
    let b: serde_json::Value = b.json().await.unwrap();
    // The first answer again, saying it is a repeat.
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a.get("replayed"), None, "{a}");
    assert_eq!(b["replayed"], true, "{b}");
    let c: serde_json::Value = send("k-2").await.unwrap().json().await.unwrap();
    assert_ne!(a["id"], c["id"]);
    // The same body with an `id`, posted twice without a key, is one event; a new status is not.
    let ev = json!({"event_type": "incident_triggered", "id": "INC-1"});
    let first = gw.post_event(&ev).await;
    assert_eq!(gw.post_event(&ev).await, first);
    let next = gw
        .post_event(&json!({"event_type": "incident_resolved", "id": "INC-1"}))
        .await;
    assert_ne!(next, first);
    gw.stop().await;
}
