//! Delivery end to end: signatures checked by independent verifiers, every auth type and both
//! send-as modes as the receiver sees them, test sends, resend and recover, the responses log.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha512;

use crate::support::{Receiver, TestGateway, fixture};

const WAIT: Duration = Duration::from_secs(15);

async fn secret_of(gw: &TestGateway, id: &str) -> Value {
    let (s, v) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/{id}/secret"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_signature_verifies_independently() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let w = gw
        .create_webhook(
            json!({"name": "sw", "url": rx.url("/hook"), "trigger_events": ["incident.triggered"]}),
        )
        .await;
    let secret = secret_of(&gw, w["id"].as_str().unwrap()).await;
    let secret = secret["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let body = fixture("squadcast/incident_triggered.json");
    gw.post_event(&body).await;
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.json(), body, "the whole Squadcast payload is forwarded");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("webhook-id").unwrap().starts_with("msg_"));
    // The standardwebhooks crate (Svix's reference verifier) accepts it...
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&r.body, &r.headers)
        .expect("signature verifies");
    // ...and refuses a tampered body.
    let mut tampered = r.body.to_vec();
    tampered[10] ^= 1;
    assert!(verifier.verify(&tampered, &r.headers).is_err());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callgoose_hmac_sha512_verifies_by_the_seed_steps() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let w = gw
        .create_webhook(
            json!({"name": "cg", "url": rx.url("/cg"), "trigger_events": ["incident.created"],
            "signing": {"type": "hmac_sha512", "header": "X-Callgoose-Signature"}}),
        )
        .await;
    assert_eq!(w["signing"]["secret"], "****************");
    let key = secret_of(&gw, w["id"].as_str().unwrap()).await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    gw.post_event(&json!({"event_type": "incident.created", "id": "INC-9"}))
        .await;
    let r = &rx.wait_for(1, WAIT).await[0];
    // Seed 002: split the header value on ',' into timestamp and signature...
    let value = r.header("X-Callgoose-Signature").expect("signature header");
    let (ts, sig) = value.split_once(',').expect("timestamp,signature");
    let ts_num: i64 = ts.parse().expect("GMT unix timestamp");
    assert!((chrono::Utc::now().timestamp() - ts_num).abs() < 300);
    // ...build signPayload = timestamp + "." + body, HMAC-SHA512 it with the key, compare.
    let mut sign_payload = ts.as_bytes().to_vec();
    sign_payload.push(b'.');
    sign_payload.extend_from_slice(&r.body);
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(&sign_payload);
    assert_eq!(sig, hex::encode(mac.finalize().into_bytes()));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_type_and_send_as_mode_reaches_the_receiver() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases = [
        (
            json!({"auth": {"type": "basic", "username": "u1", "password": "p1"}}),
            "/basic",
        ),
        (
            json!({"auth": {"type": "bearer", "token": "tok-1"}}),
            "/bearer",
        ),
        (
            json!({"auth": {"type": "api_key", "name": "X-Api-Key", "value": "key-1", "in": "header"}}),
            "/apikey-header",
        ),
        (
            json!({"auth": {"type": "api_key", "name": "api_key", "value": "key-2", "in": "query"}}),
            "/apikey-query",
        ),
        (
            json!({"authorization_header": "Token grafana-1"}),
            "/grafana-header",
        ),
        (
            json!({"username": "gu", "password": "gp"}),
            "/grafana-basic",
        ),
        (
            json!({"send_as": "query", "http_method": "GET", "signing": {"type": "none"}}),
            "/query",
        ),
        (
            json!({"http_method": "PUT", "headers": "{\"X-Team\": \"sre\"}"}),
            "/put",
        ),
    ];
    for (extra, path) in &cases {
        let mut body =
            json!({"name": path, "url": rx.url(path), "trigger_events": ["incident.acknowledged"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        gw.create_webhook(body).await;
    }
    gw.post_event(&json!({"event_type": "incident_acknowledged", "message": "disk full", "n": 3}))
        .await;
    let got = rx.wait_for(cases.len(), WAIT).await;
    let by = |p: &str| {
        got.iter()
            .find(|r| r.path == p)
            .unwrap_or_else(|| panic!("nothing at {p}"))
    };
    assert_eq!(
        by("/basic").header("authorization"),
        Some(format!("Basic {}", b64("u1:p1")).as_str())
    );
    assert_eq!(by("/bearer").header("authorization"), Some("Bearer tok-1"));
    assert_eq!(by("/apikey-header").header("x-api-key"), Some("key-1"));
    assert!(
        by("/apikey-query")
            .query
            .as_deref()
            .unwrap()
            .contains("api_key=key-2")
    );
    assert_eq!(
        by("/grafana-header").header("authorization"),
        Some("Token grafana-1")
    );
    assert_eq!(
        by("/grafana-basic").header("authorization"),
        Some(format!("Basic {}", b64("gu:gp")).as_str())
    );
    let q = by("/query");
    assert_eq!(q.method, "GET");
    assert!(q.body.is_empty(), "query mode sends no body");
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.query.as_deref().unwrap().as_bytes())
            .into_owned()
            .collect();
    assert!(
        pairs.contains(&("message".into(), "disk full".into())),
        "{pairs:?}"
    );
    assert!(pairs.contains(&("n".into(), "3".into())), "{pairs:?}");
    let put = by("/put");
    assert_eq!(put.method, "PUT");
    assert_eq!(put.header("x-team"), Some("sre"));
    assert_eq!(put.json()["message"], "disk full");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_send_resend_recover_and_the_responses_log() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let w = gw
        .create_webhook(json!({"name": "ops", "url": rx.url("/ops"), "trigger_events": ["incident.resolved"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 60}, "authorization_header": "Bearer very-secret"}))
        .await;
    let id = w["id"].as_str().unwrap();

    // Test button: sends the sample now and answers with the attempt.
    let (s, attempt) = gw
        .admin(Method::POST, &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    assert_eq!(s, 200, "{attempt}");
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["outcome"], "success");
    assert_eq!(rx.count(), 1);
    assert_eq!(rx.received()[0].json()["event_type"], "incident_triggered");

    // A failing delivery (no retries), then resend it: the receiver sees the same webhook-id.
    rx.respond(StatusCode::INTERNAL_SERVER_ERROR);
    let ev = gw
        .post_event(&json!({"event_type": "resolve", "message": "m1"}))
        .await;
    rx.wait_for(2, WAIT).await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    let did = e["deliveries"][0]["id"].as_str().unwrap().to_string();
    wait_status(&gw, &did, "failed").await;
    let (s, _) = gw
        .admin(
            Method::POST,
            &format!("/api/v1/deliveries/{did}/resend"),
            None,
        )
        .await;
    assert_eq!(s, 202);
    let got = rx.wait_for(3, WAIT).await;
    assert_eq!(got[1].header("webhook-id"), got[2].header("webhook-id"));
    wait_status(&gw, &did, "succeeded").await;

    // Recover every failed delivery since a time.
    rx.respond(StatusCode::BAD_GATEWAY);
    rx.respond(StatusCode::BAD_GATEWAY);
    let since = chrono::Utc::now().to_rfc3339();
    let e1 = gw
        .post_event(&json!({"event_type": "resolve", "message": "m2"}))
        .await;
    let e2 = gw
        .post_event(&json!({"event_type": "resolve", "message": "m3"}))
        .await;
    rx.wait_for(5, WAIT).await;
    for e in [&e1, &e2] {
        let (_, ev) = gw
            .admin(Method::GET, &format!("/api/v1/events/{e}"), None)
            .await;
        wait_status(&gw, ev["deliveries"][0]["id"].as_str().unwrap(), "failed").await;
    }
    let (s, n) = gw
        .admin(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/recover"),
            Some(&json!({"since": since})),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(n["requeued"], 2);
    rx.wait_for(7, WAIT).await;
    for e in [&e1, &e2] {
        let (_, ev) = gw
            .admin(Method::GET, &format!("/api/v1/events/{e}"), None)
            .await;
        wait_status(
            &gw,
            ev["deliveries"][0]["id"].as_str().unwrap(),
            "succeeded",
        )
        .await;
    }

    // OnCall's responses log: its exact keys and types, newest first, secrets masked.
    let (s, page) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/responses"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    for k in [
        "next",
        "previous",
        "results",
        "page_size",
        "count",
        "current_page_number",
        "total_pages",
    ] {
        assert!(page.get(k).is_some(), "{k}");
    }
    assert_eq!(page["count"], 7);
    for r in page["results"].as_array().unwrap() {
        for k in [
            "timestamp",
            "url",
            "request_trigger",
            "request_headers",
            "request_data",
            "status_code",
            "content",
            "event_data",
        ] {
            assert!(r.get(k).is_some(), "responses entry lacks {k}: {r}");
        }
        assert!(r["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(r["event_data"].is_string() && r["request_data"].is_string());
        let headers: Value = serde_json::from_str(r["request_headers"].as_str().unwrap()).unwrap();
        let auth = headers
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        assert_eq!(
            auth.map(|(_, v)| v.as_str().unwrap()),
            Some("****************"),
            "{headers}"
        );
    }
    assert!(!page.to_string().contains("very-secret"));
    // The fuller attempts API filters by outcome.
    let (_, failed) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/attempts?status=failed"),
            None,
        )
        .await;
    assert_eq!(failed["count"], 3);
    let (s, _) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/attempts?status=bogus"),
            None,
        )
        .await;
    assert_eq!(s, 400);

    // Metrics.
    let text = gw
        .client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("gateway_delivery_attempts_total{outcome=\"success\"}"),
        "{text}"
    );
    assert!(text.contains("gateway_delivery_latency_seconds_bucket"));
    assert!(text.contains("gateway_deliveries{status=\"succeeded\"}"));
    assert!(text.contains("gateway_webhooks_disabled"));
    gw.stop().await;
}

/// Waits until a delivery reaches `status`.
pub async fn wait_status(gw: &TestGateway, delivery: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, d) = gw
            .admin(Method::GET, &format!("/api/v1/deliveries/{delivery}"), None)
            .await;
        if d["status"] == status {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery {delivery} never reached {status}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secrets_sign_side_by_side_during_the_grace_period() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let w = gw
        .create_webhook(json!({"name": "rot", "url": rx.url("/rot"), "trigger_events": ["*"]}))
        .await;
    let id = w["id"].as_str().unwrap();
    let old = secret_of(&gw, id).await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, rotated) = gw
        .admin(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/secret/rotate"),
            Some(&json!({"grace_period_secs": 3600})),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    assert_eq!(secret_of(&gw, id).await["secret"], new.as_str());
    gw.post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(
        r.header("webhook-signature").unwrap().split(' ').count(),
        2,
        "old and new both sign"
    );
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&r.body, &r.headers)
            .expect("verifies with either secret");
    }
    // Managers may not read or rotate secrets.
    let (_, k) = gw
        .admin(
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"name": "m", "role": "manager", "team_id": "T"})),
        )
        .await;
    let (s, _) = gw
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/secret"),
            k["token"].as_str(),
            None,
        )
        .await;
    assert_eq!(s, 403);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_on_the_command_line_work_once_shown() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_gateway-under-test");
    let out = std::process::Command::new(exe)
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "keys",
            "create",
            "--role",
            "manager",
            "--team",
            "T9",
        ])
        .env("GATEWAY_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("gw_"));
    let listed = std::process::Command::new(exe)
        .args(["--data-dir", dir.path().to_str().unwrap(), "keys", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("manager") && listed.contains("T9") && !listed.contains(&token),
        "{listed}"
    );
    let gw = crate::support::GatewayProcess::spawn(dir.path(), &[]);
    let client = reqwest::Client::new();
    let (s, w) = crate::support::call(
        &client,
        Method::POST,
        &gw.url("/api/v1/webhooks/"),
        Some(&format!("Bearer {token}")),
        Some(&json!({"name": "t9", "url": "https://example.com", "http_method": "POST", "trigger_type": "resolve"})),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["team"], "T9");
}
