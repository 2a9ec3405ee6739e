//! The outbound guard and secret hygiene.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::delivery::wait_status;
use crate::support::{ADMIN, GatewayProcess, Receiver, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_unless_allowed() {
    let rx = Receiver::start().await;
    let port = rx.addr.port();
    // No allow-list: loopback, private, metadata and a name resolving to loopback are refused.
    let gw = TestGateway::start_with(|c| c.allowed_networks = String::new(), None).await;
    let targets = [
        format!("http://127.0.0.1:{port}/a"),
        "http://10.0.0.1/b".to_string(),
        "http://169.254.169.254/latest/meta-data".to_string(),
        format!("http://localhost:{port}/c"),
        "http://[::1]/d".to_string(),
    ];
    for (i, url) in targets.iter().enumerate() {
        gw.create_webhook(
            json!({"name": format!("g{i}"), "url": url, "trigger_events": ["incident.triggered"]}),
        )
        .await;
    }
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    for d in e["deliveries"].as_array().unwrap() {
        let d = wait_status(&gw, d["id"].as_str().unwrap(), "failed").await;
        let log = &d["attempt_log"][0];
        let err = log["error"].as_str().unwrap();
        assert!(err.contains("refused"), "{}: {err}", d["url"]);
        assert!(log["status_code"].is_null());
    }
    assert_eq!(rx.count(), 0, "nothing reached the receiver");
    gw.stop().await;

    // Allowed by GATEWAY_ALLOWED_NETWORKS=127.0.0.0/8: delivered.
    let gw = TestGateway::start_with(|c| c.allowed_networks = "127.0.0.0/8".into(), None).await;
    gw.create_webhook(json!({"name": "ok", "url": format!("http://localhost:{port}/ok"), "trigger_events": ["*"]})).await;
    gw.post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    rx.wait_for(1, Duration::from_secs(15)).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_clear() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::spawn(dir.path(), &[("GATEWAY_LOG", "debug")]);
    let client = reqwest::Client::new();
    let secrets = [
        "bearer-SECRET-1",
        "basic-SECRET-2",
        "grafana-SECRET-3",
        "grafana-pass-SECRET-4",
    ];
    let mk = |name: &str, extra: serde_json::Value| {
        let mut b =
            json!({"name": name, "url": rx.url(&format!("/{name}")), "trigger_events": ["*"]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let bodies = [
        mk(
            "bearer",
            json!({"auth": {"type": "bearer", "token": secrets[0]}}),
        ),
        mk(
            "basic",
            json!({"auth": {"type": "basic", "username": "u", "password": secrets[1]}}),
        ),
        mk(
            "grafana",
            json!({"authorization_header": secrets[2], "username": "g", "password": secrets[3]}),
        ),
    ];
    let mut ids = Vec::new();
    let mut answers = String::new();
    for b in &bodies {
        let (s, w) = crate::support::call(
            &client,
            Method::POST,
            &gw.url("/api/v1/webhooks/"),
            Some(ADMIN),
            Some(b),
        )
        .await;
        assert_eq!(s, 201);
        ids.push(w["id"].as_str().unwrap().to_string());
        answers.push_str(&w.to_string());
    }
    let (_, ev) = crate::support::call(
        &client,
        Method::POST,
        &gw.url("/api/v1/events"),
        Some(ADMIN),
        Some(&json!({"event_type": "incident.triggered"})),
    )
    .await;
    rx.wait_for(3, Duration::from_secs(15)).await;
    // The receiver did get them (so they were really used)...
    let got = rx.received();
    assert!(
        got.iter()
            .any(|r| r.header("authorization") == Some("Bearer bearer-SECRET-1"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...but no API answer shows them.
    for path in [
        "/api/v1/webhooks/".to_string(),
        format!("/api/v1/events/{}", ev["id"].as_str().unwrap()),
    ] {
        answers.push_str(
            &crate::support::call(&client, Method::GET, &gw.url(&path), Some(ADMIN), None)
                .await
                .1
                .to_string(),
        );
    }
    for id in &ids {
        for p in ["/", "/responses", "/attempts"] {
            answers.push_str(
                &crate::support::call(
                    &client,
                    Method::GET,
                    &gw.url(&format!("/api/v1/webhooks/{id}{p}")),
                    Some(ADMIN),
                    None,
                )
                .await
                .1
                .to_string(),
            );
        }
    }
    assert!(answers.contains("****************"));
    gw.terminate();
    let logs = gw.logs.lock().join("\n");
    assert!(logs.contains("webhook-gateway"), "logs were captured");
    let db = rusqlite::Connection::open(dir.path().join("gateway.db")).unwrap();
    let attempts: String = db
        .query_row("SELECT group_concat(doc, '|') FROM attempts", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(attempts.contains("****************"), "{attempts}");
    for s in secrets {
        assert!(!answers.contains(s), "API answer shows {s}");
        assert!(!logs.contains(s), "log shows {s}");
        assert!(!attempts.contains(s), "attempt record shows {s}");
    }
}
