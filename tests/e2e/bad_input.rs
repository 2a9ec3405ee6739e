//! Bad input table: each refused input gets its 4xx, a problem body naming the field, and leaves
//! the store unchanged.

use crate::support::{ADMIN, TestGateway};
use reqwest::Method;
use serde_json::{Value, json};

fn counts(gw: &TestGateway) -> (i64, i64, i64, String) {
    let db = rusqlite::Connection::open(gw.dir.path().join("gateway.db")).unwrap();
    let n = |t: &str| {
        db.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    let docs: String = db
        .query_row("SELECT COALESCE(group_concat(doc, '|'), '') FROM (SELECT doc FROM webhooks ORDER BY id)", [], |r| r.get(0))
        .unwrap();
    (n("events"), n("deliveries"), n("webhooks"), docs)
}

async fn raw(
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = gw
        .client
        .request(method, gw.url(path))
        .header("Authorization", ADMIN)
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if s >= 400 {
        assert_eq!(
            ct.as_deref(),
            Some("application/problem+json"),
            "{path} {v}"
        );
    }
    (s, v)
}

/// (method, path, body, extra headers, status, field named)
type Case<'a> = (
    Method,
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    u16,
    Option<&'a str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_inputs_leave_the_store_unchanged() {
    let gw = TestGateway::start_with(|c| c.max_event_bytes = 4096, None).await;
    let w = gw
        .create_webhook(
            json!({"name": "w", "url": "https://example.com/hook", "http_method": "POST", "trigger_type": "resolve"}),
        )
        .await;
    let wpath = format!("/api/v1/webhooks/{}/", w["id"].as_str().unwrap());
    gw.post_event(&json!({"event_type": "resolve"})).await;
    let before = counts(&gw);
    assert_eq!((before.0, before.2), (1, 1));

    let big = format!(
        "{{\"event_type\":\"resolve\",\"pad\":\"{}\"}}",
        "x".repeat(5000)
    );
    let long_key = "k".repeat(300);
    let many_headers: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let cases: Vec<Case> = vec![
        (Method::POST, "/api/v1/events", "{not json".into(), vec![], 400, None),
        (Method::POST, "/api/v1/events", "[1,2]".into(), vec![], 400, None),
        (Method::POST, "/api/v1/events", "\"text\"".into(), vec![], 400, None),
        (Method::POST, "/api/v1/events", "{\"message\":\"no type\"}".into(), vec![], 400, Some("event_type")),
        (Method::POST, "/api/v1/events", "{\"event_type\":\"bad type!\"}".into(), vec![], 400, Some("event_type")),
        (Method::POST, "/api/v1/events", "{\"event_type\":42}".into(), vec![], 400, Some("event_type")),
        (Method::POST, "/api/v1/events", big, vec![], 413, None),
        (Method::POST, "/api/v1/events", "{\"event_type\":\"resolve\"}".into(), vec![("Idempotency-Key", long_key.as_str())], 400, Some("Idempotency-Key")),
        (Method::POST, "/api/v1/webhooks/", "{\"url\":\"https://e.com\",\"trigger_type\":\"resolve\"}".into(), vec![], 400, Some("name")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"ftp://e.com\",\"trigger_type\":\"resolve\"}".into(), vec![], 400, Some("url")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"not a url\",\"trigger_type\":\"resolve\"}".into(), vec![], 400, Some("url")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"http_method\":\"FETCH\"}".into(), vec![], 400, Some("http_method")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"http_method\":\"POST\",\"trigger_type\":\"no such!\"}".into(), vec![], 400, Some("trigger_type")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_events\":[\"resolve\", \"bad one!\"]}".into(), vec![], 400, Some("trigger_events[1]")),
        (Method::POST, "/api/v1/webhooks/", json!({"name": "n", "url": "https://e.com", "http_method": "POST", "trigger_type": "resolve", "headers": many_headers}).to_string(), vec![], 400, Some("headers")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"headers\":\"{not json\"}".into(), vec![], 400, Some("headers")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"retry\":{\"type\":\"fixed\",\"count\":99,\"interval_secs\":60}}".into(), vec![], 400, Some("retry.count")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"failure_email\":\"nope\"}".into(), vec![], 400, Some("failure_email")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"integration_filter\":\"x\"}".into(), vec![], 400, Some("integration_filter")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"auth\":{\"type\":\"magic\"}}".into(), vec![], 400, Some("auth")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"signing\":{\"type\":\"standard_webhooks\",\"secret\":\"plain\"}}".into(), vec![], 400, Some("signing.secret")),
        (Method::POST, "/api/v1/webhooks/", "{\"name\":\"n\",\"url\":\"https://e.com\",\"trigger_type\":\"resolve\",\"ordering\":\"sometimes\"}".into(), vec![], 400, Some("ordering")),
        (Method::POST, "/api/v1/webhooks/", "[]".into(), vec![], 400, None),
        (Method::POST, "/api/v1/webhooks/", "{oops".into(), vec![], 400, None),
        (Method::PUT, wpath.as_str(), "{\"url\":\"gopher://x\"}".into(), vec![], 400, Some("url")),
        (Method::PUT, wpath.as_str(), "{\"name\":\"renamed\",\"is_webhook_enabled\":\"yes\"}".into(), vec![], 400, Some("is_webhook_enabled")),
        (Method::PUT, wpath.as_str(), "{\"name\":null}".into(), vec![], 400, Some("name")),
        (Method::PUT, wpath.as_str(), "{\"ordering\":true}".into(), vec![], 400, Some("ordering")),
        // Grafana OnCall: an unusable `page` is page 1; the gateway's own `page_size` stays strict.
        (Method::GET, "/api/v1/webhooks/?page_size=0", String::new(), vec![], 400, Some("page_size")),
        (Method::GET, "/api/v1/webhooks/?page_size=1000", String::new(), vec![], 400, Some("page_size")),
        (Method::GET, "/api/v1/events/evt_missing", String::new(), vec![], 404, None),
    ];
    for (method, path, body, headers, status, field) in cases {
        let mut hs = headers.clone();
        if !body.is_empty() {
            hs.push(("content-type", "application/json"));
        }
        let (s, problem) = raw(&gw, method.clone(), path, &body, &hs).await;
        assert_eq!(
            s,
            status,
            "{method} {path} {}: {problem}",
            &body[..body.len().min(80)]
        );
        assert_eq!(problem["status"], status);
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
        if let Some(f) = field {
            assert_eq!(
                problem["field"],
                f,
                "{method} {path} {}: {problem}",
                &body[..body.len().min(80)]
            );
        }
        assert_eq!(
            counts(&gw),
            before,
            "store changed after refused {method} {path}"
        );
    }
    gw.stop().await;
}

/// (path, authorization, MiB sent, status, field)
type Early<'a> = (&'a str, Option<&'a str>, usize, u16, Option<&'a str>);

/// A refusal made before the body is read (key check, query parameter, declared length, size
/// limit) still reaches a client that is busy sending a large body, instead of a connection reset;
/// and the connection stays usable. Several rounds, because without the drain the reset is a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_made_before_the_body_is_read_reach_a_client_still_sending() {
    let gw = TestGateway::start_with(|c| c.plugins.max_component_bytes = 4 << 20, None).await;
    let before = counts(&gw);
    let cases: [Early; 4] = [
        (
            "/api/v1/plugins?name=Bad%20Name&version=1.0.0",
            Some(ADMIN),
            3,
            400,
            Some("name"),
        ),
        (
            "/api/v1/plugins?name=anon&version=1.0.0",
            None,
            3,
            401,
            None,
        ),
        (
            "/api/v1/plugins?name=big&version=1.0.0",
            Some(ADMIN),
            12,
            413,
            None,
        ),
        ("/api/v1/events", Some(ADMIN), 6, 413, None),
    ];
    for round in 0..4 {
        for (path, auth, mib, status, field) in cases {
            let mut req = gw.client.post(gw.url(path)).body(vec![b'x'; mib << 20]);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}, {path}: no answer: {e:?}"));
            assert_eq!(r.status().as_u16(), status, "round {round}, {path}");
            let problem: Value = r.json().await.unwrap();
            assert_eq!(problem["status"], status, "{problem}");
            if let Some(f) = field {
                assert_eq!(problem["field"], f, "{problem}");
            }
        }
    }
    let (s, _) = gw.admin(Method::GET, "/api/v1/plugins", None).await;
    assert_eq!(s.as_u16(), 200);
    assert_eq!(counts(&gw), before, "nothing refused was stored");
    gw.stop().await;
}

/// A plugin or authenticator config that names a secret the webhook lacks (`secret`, `*_secret`,
/// `secrets`) is refused when saved, naming the field and listing the names it could use; with
/// the secret added the same webhook is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_config_naming_a_missing_secret_is_refused_at_save() {
    let gw = TestGateway::start().await;
    let hook = |auth_config: Value, secrets: Value| {
        json!({"name": "signed", "url": "https://example.com/hook", "trigger_events": ["*"],
            "secrets": secrets,
            "authenticator": {"name": "signed-header", "config": auth_config}})
    };
    let cases = [
        (
            json!({"secret": "signing_key"}),
            json!({"partner": "p4ss"}),
            "authenticator.config.secret",
            "signing_key",
        ),
        (
            json!({"secret": "partner", "bearer_secret": "token"}),
            json!({"partner": "p4ss"}),
            "authenticator.config.bearer_secret",
            "token",
        ),
    ];
    for (config, secrets, field, missing) in cases {
        let body = hook(config, secrets).to_string();
        let (s, problem) = raw(
            &gw,
            Method::POST,
            "/api/v1/webhooks/",
            &body,
            &[("Content-Type", "application/json")],
        )
        .await;
        assert_eq!(s, 400, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(missing), "{detail}");
        assert!(
            detail.contains("partner") && detail.contains("signing_secret"),
            "lists the names it could use: {detail}"
        );
        assert!(!detail.contains("p4ss"), "never a secret's value: {detail}");
    }
    // A transformer's config follows the same convention.
    let body = json!({"name": "t", "url": "https://example.com/hook", "trigger_events": ["*"],
        "plugins": [{"name": "template", "config": {"body": "{}", "api_secret": "nope"}}]})
    .to_string();
    let (s, problem) = raw(
        &gw,
        Method::POST,
        "/api/v1/webhooks/",
        &body,
        &[("Content-Type", "application/json")],
    )
    .await;
    assert_eq!(
        (s, problem["field"].as_str()),
        (400, Some("plugins[0].config.api_secret")),
        "{problem}"
    );
    // Named secrets and the signing secret are accepted.
    let ok = gw
        .create_webhook(hook(
            json!({"secret": "signing_secret", "bearer_secret": "partner"}),
            json!({"partner": "p4ss"}),
        ))
        .await;
    assert_eq!(ok["authenticator"]["name"], "signed-header", "{ok}");
    gw.stop().await;
}

/// A plugin removed behind the gateway's back (here straight from the store) fails the delivery
/// permanently, saying "plugin" once: `plugin error: ghost is not installed`. (Regression: it
/// read "plugin error: plugin ghost is not installed".) The gateway may remember a resolved
/// plugin for a moment, so events are posted until one finds it gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_gone_at_delivery_is_named_once_in_the_error() {
    use super::plugins::{guest, upload};
    use std::time::{Duration, Instant};
    let rx = crate::support::Receiver::start().await;
    let gw = TestGateway::start().await;
    let (s, p) = upload(&gw, "ghost", "1.0.0", guest("hostile")).await;
    assert_eq!(s, 201, "{p}");
    gw.create_webhook(json!({"name": "ghostly", "url": rx.url("/ghost"),
        "trigger_events": ["*"], "plugins": [{"name": "ghost", "config": {"mode": "ok"}}]}))
        .await;
    let store = gateway::server::open_store(&crate::support::test_config(gw.dir.path()))
        .await
        .unwrap();
    store.delete_plugin("ghost", "1.0.0").await.unwrap();
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = 'found: loop {
        let ev = gw
            .post_event(&json!({"event_type": "incident.triggered", "title": "t"}))
            .await;
        // Wait for this event's delivery to finish one way or the other.
        loop {
            assert!(
                Instant::now() < deadline,
                "no delivery failed for the missing plugin"
            );
            let (_, e) = gw
                .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
                .await;
            match e["deliveries"][0]["status"].as_str() {
                Some("failed") => {
                    break 'found e["deliveries"][0]["id"].as_str().unwrap().to_string();
                }
                Some("succeeded") => break,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (_, d) = gw
        .admin(Method::GET, &format!("/api/v1/deliveries/{failed}"), None)
        .await;
    let why = d["last_error"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("plugin error: ghost is not installed"),
        "{d}"
    );
    assert_eq!(why.matches("plugin").count(), 1, "{why}");
    gw.stop().await;
}
