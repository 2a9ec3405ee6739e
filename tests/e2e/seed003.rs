//! Every request of seed 003 (Grafana OnCall's webhooks API) replayed against a real server: the
//! documented response shapes (field names and types, paging keys, masking).

use crate::support::{ADMIN, TestGateway};
use reqwest::Method;
use serde_json::{Value, json};

/// The fields of OnCall's webhook object and the JSON types each may have.
const ONCALL_FIELDS: &[(&str, &[&str])] = &[
    ("id", &["string"]),
    ("name", &["string"]),
    ("is_webhook_enabled", &["bool"]),
    ("team", &["null", "string"]),
    ("data", &["null", "string"]),
    ("username", &["null", "string"]),
    ("password", &["null", "string"]),
    ("authorization_header", &["null", "string"]),
    ("trigger_template", &["null", "string"]),
    ("headers", &["null", "string"]),
    ("url", &["string"]),
    ("forward_all", &["bool"]),
    ("http_method", &["string"]),
    ("trigger_type", &["string"]),
    ("integration_filter", &["null", "array"]),
];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn assert_oncall_shape(w: &Value) {
    for (field, kinds) in ONCALL_FIELDS {
        let v = w
            .get(*field)
            .unwrap_or_else(|| panic!("missing field {field} in {w}"));
        assert!(
            kinds.contains(&kind(v)),
            "field {field} has type {} in {w}",
            kind(v)
        );
    }
}

fn assert_envelope(page: &Value, count: u64) {
    for k in [
        "next",
        "previous",
        "results",
        "page_size",
        "count",
        "current_page_number",
        "total_pages",
    ] {
        assert!(page.get(k).is_some(), "paging key {k} missing in {page}");
    }
    assert_eq!(page["count"], count);
    assert_eq!(page["page_size"], 50);
    assert_eq!(page["current_page_number"], 1);
    assert_eq!(page["total_pages"], 1);
    assert!(page["next"].is_null() && page["previous"].is_null());
    assert_eq!(page["results"].as_array().unwrap().len() as u64, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_requests_get_the_documented_shapes() {
    let gw = TestGateway::start().await;
    // List webhooks (empty), with the seed's bare `Authorization: <token>` form.
    let (s, page) = gw
        .call(Method::GET, "/api/v1/webhooks/", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200);
    assert_envelope(&page, 0);

    // Create webhook: the seed's exact body.
    let body = json!({"name": "New Webhook", "url": "https://example.com", "http_method": "POST", "trigger_type": "resolve"});
    let (s, created) = gw
        .call(Method::POST, "/api/v1/webhooks/", Some(ADMIN), Some(&body))
        .await;
    assert_eq!(s, 201, "{created}");
    assert_oncall_shape(&created);
    let expected = json!({"name": "New Webhook", "is_webhook_enabled": true, "team": null, "data": null, "username": null,
        "password": null, "authorization_header": null, "trigger_template": null, "headers": null,
        "url": "https://example.com", "forward_all": true, "http_method": "POST", "trigger_type": "resolve",
        "integration_filter": null});
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&created[k], v, "field {k}");
    }
    let id = created["id"].as_str().unwrap().to_string();

    // The list example's webhook: a data template, a secret authorization header, a filter.
    let demo = json!({"name": "Demo Webhook", "url": "https://example.com", "http_method": "POST", "trigger_type": "acknowledge",
        "data": "{\"labels\" : {{ alert_payload.commonLabels | tojson()}}}", "authorization_header": "Bearer s3cret-value",
        "integration_filter": ["CRV8A5MXC751A"], "forward_all": false});
    let (s, demo_view) = gw
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(&format!("Bearer {ADMIN}")),
            Some(&demo),
        )
        .await;
    assert_eq!(s, 201, "{demo_view}");
    assert_oncall_shape(&demo_view);
    assert_eq!(demo_view["authorization_header"], "****************");
    assert_eq!(demo_view["integration_filter"], json!(["CRV8A5MXC751A"]));
    assert_eq!(demo_view["data"], demo["data"]);
    assert!(
        !demo_view.to_string().contains("s3cret-value"),
        "secret leaked: {demo_view}"
    );

    // Get webhook, with and without the trailing slash.
    for path in [
        format!("/api/v1/webhooks/{id}/"),
        format!("/api/v1/webhooks/{id}"),
    ] {
        let (s, got) = gw.call(Method::GET, &path, Some(ADMIN), None).await;
        assert_eq!(s, 200);
        assert_oncall_shape(&got);
        assert_eq!(got["id"], id);
        assert_eq!(got["trigger_type"], "resolve");
    }

    // Update webhook with only `is_webhook_enabled`: nothing else changes.
    let (s, updated) = gw
        .call(
            Method::PUT,
            &format!("/api/v1/webhooks/{id}/"),
            Some(ADMIN),
            Some(&json!({"is_webhook_enabled": false})),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_oncall_shape(&updated);
    assert_eq!(updated["is_webhook_enabled"], false);
    for k in [
        "name",
        "url",
        "forward_all",
        "http_method",
        "trigger_type",
        "data",
        "team",
        "integration_filter",
    ] {
        assert_eq!(updated[k], created[k], "PUT changed {k}");
    }

    // Sending the mask back keeps the stored secret.
    let demo_id = demo_view["id"].as_str().unwrap();
    let (s, _) = gw
        .call(
            Method::PUT,
            &format!("/api/v1/webhooks/{demo_id}/"),
            Some(ADMIN),
            Some(&json!({"authorization_header": "****************", "name": "Demo 2"})),
        )
        .await;
    assert_eq!(s, 200);

    // List webhooks: both, masked, in the envelope.
    let (s, page) = gw
        .call(Method::GET, "/api/v1/webhooks/", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200);
    assert_envelope(&page, 2);
    for w in page["results"].as_array().unwrap() {
        assert_oncall_shape(w);
    }

    // Paging: page_size 1 gives links.
    let (_, p1) = gw
        .call(
            Method::GET,
            "/api/v1/webhooks/?page_size=1",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(p1["total_pages"], 2);
    assert!(p1["next"].as_str().unwrap().contains("page=2"));
    assert!(p1["previous"].is_null());

    // Delete webhook, then it is gone.
    let (s, _) = gw
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}/"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, problem) = gw
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(problem["status"], 404);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_health_are_served() {
    let gw = TestGateway::start().await;
    let (s, doc) = gw
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, 200);
    assert!(doc["paths"]["/api/v1/events"]["post"].is_object(), "{doc}");
    assert!(doc["paths"]["/api/v1/webhooks/"]["get"].is_object());
    let (s, _) = gw.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, 200);
    let (s, _) = gw.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, 200);
    gw.stop().await;
}
