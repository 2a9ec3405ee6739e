//! Operating the gateway from its log and its traces: one info line per attempt outcome and per
//! refused request (the real binary's stderr), and OTLP trace export to a real local collector.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::support::{ADMIN, GatewayProcess, Receiver, call};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until `pred` holds for the gateway's log lines; returns the matching lines.
fn wait_logs(gw: &GatewayProcess, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found: Vec<String> = gw.logs.lock().iter().filter(|l| pred(l)).cloned().collect();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_and_every_refused_request_is_one_info_line() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::spawn(dir.path(), &[]);
    let client = reqwest::Client::new();
    let ok_url = rx
        .url("/ok")
        .replace("http://", "http://ops:pw-in-url-0451@");
    let (s, ok) = call(
        &client,
        Method::POST,
        &gw.url("/api/v1/webhooks/"),
        Some(ADMIN),
        Some(
            &json!({"name": "ok", "url": ok_url, "trigger_events": ["incident.triggered"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 60}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{ok}");
    let dead = format!("http://127.0.0.1:{}/down", closed_port());
    let (s, down) = call(
        &client,
        Method::POST,
        &gw.url("/api/v1/webhooks/"),
        Some(ADMIN),
        Some(
            &json!({"name": "down", "url": dead, "trigger_events": ["incident.triggered"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 60}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{down}");
    let (s, ev) = call(
        &client,
        Method::POST,
        &gw.url("/api/v1/events"),
        Some(ADMIN),
        Some(&json!({"event_type": "incident.triggered", "message": "ops"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{ev}");
    rx.wait_for(1, WAIT).await;

    let (ok_id, down_id) = (ok["id"].as_str().unwrap(), down["id"].as_str().unwrap());
    let success = wait_logs(&gw, |l| {
        l.contains(&format!("webhook={ok_id}")) && l.contains(" attempt")
    });
    assert_eq!(
        success.len(),
        1,
        "one line for the one attempt: {success:#?}"
    );
    let line = &success[0];
    for want in [
        "INFO",
        "delivery=msg_",
        "status=200",
        "error_kind=none",
        "duration_ms=",
        "url=http://",
    ] {
        assert!(line.contains(want), "{want:?} in {line}");
    }
    assert!(
        !line.contains("pw-in-url-0451"),
        "credentials of the url are masked: {line}"
    );
    let failed = wait_logs(&gw, |l| {
        l.contains(&format!("webhook={down_id}")) && l.contains(" attempt")
    });
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(
        failed[0].contains("error_kind=transport") && failed[0].contains("status=0"),
        "{}",
        failed[0]
    );

    // Refused requests: a bad event body names its field; an unknown key is 401.
    let (s, p) = call(
        &client,
        Method::POST,
        &gw.url("/api/v1/events"),
        Some(ADMIN),
        Some(&json!({"message": "no type"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    let (s, _) = call(
        &client,
        Method::GET,
        &gw.url("/api/v1/webhooks/?token=abc"),
        Some("not-a-key"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let refused = wait_logs(&gw, |l| {
        l.contains("request refused") && l.contains("status=400")
    });
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        refused[0].contains("path=/api/v1/events") && refused[0].contains("field=event_type"),
        "{}",
        refused[0]
    );
    let unauth = wait_logs(&gw, |l| {
        l.contains("request refused") && l.contains("status=401")
    });
    assert_eq!(unauth.len(), 1, "{unauth:#?}");
    assert!(
        !unauth[0].contains("token=abc") && !unauth[0].contains("not-a-key"),
        "{}",
        unauth[0]
    );
}

/// A real OTLP/HTTP collector endpoint: records every JSON export body.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                sink.lock().push(v);
                (StatusCode::OK, axum::Json(json!({})))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

/// One exported span.
#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    /// Empty for a root span.
    parent: String,
    name: String,
    attributes: Value,
}

/// Every exported span.
fn spans(exports: &[Value]) -> Vec<Span> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out = Vec::new();
    for e in exports {
        for rs in e["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push(Span {
                        trace: text(&s["traceId"]),
                        id: text(&s["spanId"]),
                        parent: text(&s["parentSpanId"]),
                        name: text(&s["name"]),
                        attributes: s["attributes"].clone(),
                    });
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_one_trace_tree_from_acceptance_to_each_attempt() {
    let (endpoint, exports) = collector().await;
    let rx = Receiver::start().await;
    // The first attempt fails: the event has two attempts, the second a retry a second later.
    rx.respond(StatusCode::SERVICE_UNAVAILABLE);
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::spawn(dir.path(), &[("GATEWAY_OTLP__ENDPOINT", &endpoint)]);
    let client = reqwest::Client::new();
    let (s, w) = call(
        &client,
        Method::POST,
        &gw.url("/api/v1/webhooks/"),
        Some(ADMIN),
        Some(
            &json!({"name": "traced", "url": rx.url("/t"), "trigger_events": ["incident.triggered"],
            "data": "{\"id\": \"{{ event.id }}\"}",
            "retry": {"type": "fixed", "count": 1, "interval_secs": 1}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let (s, ev) = call(
        &client,
        Method::POST,
        &gw.url("/api/v1/events"),
        Some(ADMIN),
        Some(&json!({"event_type": "incident.triggered"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{ev}");
    rx.wait_for(2, WAIT).await;
    // The second attempt's record is written after the receiver answered: wait for its log line.
    let attempts = wait_logs(&gw, |l| l.contains(" attempt ") && l.contains("attempt=2"));
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    // Stopping flushes the batch exporter.
    gw.terminate();
    let got = spans(&exports.lock());
    let accepted: Vec<_> = got.iter().filter(|s| s.name == "event.accepted").collect();
    assert_eq!(accepted.len(), 1, "{got:#?}");
    let root = accepted[0];
    assert_eq!(root.trace.len(), 32, "a 16-byte trace id in hex: {root:?}");
    let trace: Vec<&Span> = got.iter().filter(|s| s.trace == root.trace).collect();
    let count = |name: &str| trace.iter().filter(|s| s.name == name).count();
    assert_eq!(
        (
            count("event.matched"),
            count("delivery.transform"),
            count("delivery.attempt")
        ),
        (1, 1, 2),
        "one match, one transform and two attempts in the event's trace: {trace:#?}"
    );

    // One tree: a single root, event.accepted, and every other span's parent is in the trace.
    let roots: Vec<_> = trace.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {trace:#?}");
    assert_eq!(
        roots[0].id, root.id,
        "the root is event.accepted: {trace:#?}"
    );
    for s in &trace {
        if s.parent.is_empty() {
            continue;
        }
        let parent = trace.iter().find(|p| p.id == s.parent).unwrap_or_else(|| {
            panic!(
                "{} has a parent outside the exported trace: {trace:#?}",
                s.name
            )
        });
        // The stages hang from the acceptance, never from each other (a retry on another node
        // hours later has only the event id to go by).
        if matches!(
            s.name.as_str(),
            "event.matched" | "delivery.transform" | "delivery.attempt"
        ) {
            assert_eq!(
                parent.id, root.id,
                "the parent of {} is event.accepted, not {}: {trace:#?}",
                s.name, parent.name
            );
        }
    }

    let first = trace
        .iter()
        .filter(|s| s.name == "delivery.attempt")
        .find(|s| {
            s.attributes
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["key"] == "http.status" && a["value"] == json!({"intValue": "200"}))
        });
    assert!(
        first.is_some(),
        "the retry's span has status 200: {trace:#?}"
    );
}
