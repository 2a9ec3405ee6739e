//! The console's webhook pages in headless Chromium against a real gateway on port 0 and a real
//! receiver: create through the form (filter group, API-key auth, HMAC-SHA512 signing), a field
//! error next to its field, Test (the receiver's status, and the real cause on a closed port),
//! Logs (attempt, payload, plugin log lines, resend, an inert `<script>`), de-activate. Each test
//! saves screenshots under target/screenshots/ and runs axe-core on every page it visits.

use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::{ADMIN, Receiver, TestGateway};

const WAIT: Duration = Duration::from_secs(15);
const API_KEY_VALUE: &str = "apikey-5ecret-value-0002";
const HMAC_SECRET: &str = "hmac-5ecret-0123456789abcdef";
const PASSWORD: &str = "basic-pass-5ecret-0001";
const BEARER: &str = "bearer-5ecret-token-0003";
const STANDARD_SECRET: &str = "whsec_c3RhbmRhcmQtNWVjcmV0LWZvci10ZXN0cw==";

async fn sign_in(b: &Browser, gw: &TestGateway) {
    b.goto(&gw.url("/console/sign-in")).await;
    b.assert_accessible("sign-in").await;
    b.screenshot("console-sign-in").await;
    b.fill("#api_key", ADMIN).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_text("main h1", "Webhooks").await;
}

/// Runs `js` (with `arguments`) in the page and returns its result.
async fn js(b: &Browser, script: &str) -> Value {
    tokio::time::timeout(WAIT, b.client().execute(script, vec![]))
        .await
        .expect("script answered in time")
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Sets a select (or input) by id and tells the page it changed.
async fn set(b: &Browser, id: &str, value: &str) {
    let script = format!(
        "var e = document.getElementById({id:?}); e.value = {value:?}; e.dispatchEvent(new Event('change')); return e.value;"
    );
    assert_eq!(
        js(b, &script).await,
        json!(value),
        "{id} has no option {value}"
    );
}

async fn webhook_named(gw: &TestGateway, name: &str) -> Value {
    let (s, page) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/?name={name}"), None)
        .await;
    assert_eq!(s, 200);
    page["results"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_made_through_the_form_is_stored_as_entered_and_field_errors_sit_by_their_field()
{
    let Some(b) = Browser::start().await else {
        return;
    };
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    sign_in(&b, &gw).await;
    b.assert_accessible("webhooks (empty)").await;
    b.goto(&gw.url("/console/webhooks/new")).await;
    b.wait_for("form[data-loaded=true]").await;
    b.assert_accessible("editor (new)").await;

    b.fill("#f-name", "pager").await;
    set(&b, "f-scope-kind", "global").await;
    b.fill("#f-urls", "ftp://example.com/not-http").await;
    b.click("input[name=trigger][value='incident.triggered']")
        .await;
    b.click("#save").await;
    // The API's refusal: in the summary, and next to the URLs, tied to the input.
    b.wait_for_text("#summary", "urls").await;
    let err = b.wait_for_text("#err-urls", "scheme").await;
    assert!(err.contains("ftp"), "{err}");
    let described = js(
        &b,
        "return document.getElementById('f-urls').getAttribute('aria-describedby');",
    )
    .await;
    assert!(
        described.as_str().unwrap_or("").contains("err-urls"),
        "{described}"
    );
    b.screenshot("console-editor-field-error").await;
    b.assert_accessible("editor with a field error").await;

    b.fill("#f-urls", &rx.url("/pager")).await;
    b.click("#add-group").await;
    b.fill("#groups .group .r-field", "severity").await;
    js(
        &b,
        "var s = document.querySelector('#groups .group .r-op'); s.value = 'in'; return s.value;",
    )
    .await;
    b.fill("#groups .group .r-value", "critical, high").await;
    set(&b, "f-groups-match", "any").await;
    set(&b, "f-auth-type", "api_key").await;
    b.fill("#f-auth-name", "X-Api-Key").await;
    b.fill("#f-auth-value", API_KEY_VALUE).await;
    set(&b, "f-signing-type", "hmac_sha512").await;
    b.fill("#f-signing-header", "X-Callgoose-Signature").await;
    b.fill("#f-signing-secret", HMAC_SECRET).await;
    b.click("#save").await;
    b.wait_for_text("#saved", "Created").await;
    b.wait_for("form[data-loaded=true]").await;
    b.screenshot("console-editor-created").await;
    b.assert_accessible("editor (edit)").await;
    let html = b.source().await;
    assert!(
        !html.contains(API_KEY_VALUE) && !html.contains(HMAC_SECRET),
        "a secret in the page"
    );

    // Stored as entered, seen through the API.
    let w = webhook_named(&gw, "pager").await;
    assert_eq!(w["scope"], json!({"kind": "global"}));
    assert_eq!(w["urls"], json!([rx.url("/pager")]));
    assert_eq!(w["trigger_events"], json!(["incident.triggered"]));
    assert_eq!(
        w["filter"],
        json!({"match": "any", "rules": [{"match": "all", "rules": [
            {"field": "severity", "op": "in", "value": ["critical", "high"]}]}]})
    );
    assert_eq!(w["auth"]["type"], "api_key");
    assert_eq!(w["auth"]["name"], "X-Api-Key");
    assert_eq!(w["auth"]["in"], "header");
    assert_eq!(w["signing"]["type"], "hmac_sha512");
    assert_eq!(w["signing"]["header"], "X-Callgoose-Signature");
    let (_, secret) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{}/secret", w["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(secret["secret"], HMAC_SECRET);
    // And it works: a critical event arrives with the key and the signature; a low one does not.
    gw.post_event(&json!({"event_type": "incident.triggered", "id": "low-1", "severity": "low"}))
        .await;
    gw.post_event(
        &json!({"event_type": "incident.triggered", "id": "crit-1", "severity": "critical"}),
    )
    .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some(API_KEY_VALUE));
    assert!(got[0].header("x-callgoose-signature").is_some());
    assert!(got[0].json()["id"] == "crit-1", "{}", got[0].json());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 1, "the low-severity event is filtered out");

    // The list shows it with its scope, triggers, state and health; search finds it.
    b.goto(&gw.url("/console/webhooks?q=pag")).await;
    let row = b.text("#webhooks tbody tr").await;
    assert!(
        row.contains("pager")
            && row.contains("global")
            && row.contains("incident.triggered")
            && row.contains("active"),
        "{row}"
    );
    b.screenshot("console-webhooks-list").await;
    b.assert_accessible("webhooks list").await;
    b.goto(&gw.url("/console/webhooks?q=nothing-like-it")).await;
    assert!(b.text("main").await.contains("No webhooks match"));
    b.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_shows_the_receivers_status_and_on_a_closed_port_the_real_cause() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let w = gw
        .create_webhook(json!({"name": "tested", "urls": [rx.url("/t")], "trigger_events": ["*"]}))
        .await;
    let id = w["id"].as_str().unwrap();
    sign_in(&b, &gw).await;
    b.goto(&gw.url(&format!("/console/webhooks/{id}"))).await;
    b.wait_for("form[data-loaded=true]").await;
    b.click("#test").await;
    b.wait_for_text("#test-status", "200").await;
    assert_eq!(b.text("#test-outcome").await, "success");
    assert_eq!(
        rx.wait_for(1, WAIT).await.len(),
        1,
        "the receiver got the test event"
    );
    b.screenshot("console-test-ok").await;
    b.assert_accessible("editor after a test").await;

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (s, v) = gw
        .admin(
            Method::PUT,
            &format!("/api/v1/webhooks/{id}/"),
            Some(&json!({"urls": [format!("http://127.0.0.1:{closed}/gone")]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    b.goto(&gw.url(&format!("/console/webhooks/{id}"))).await;
    b.wait_for("form[data-loaded=true]").await;
    b.click("#test").await;
    let cause = b.wait_for_text("#test-error", "refused").await;
    assert_eq!(b.text("#test-status").await, "no response", "{cause}");
    b.screenshot("console-test-refused").await;
    b.assert_accessible("editor after a failed test").await;
    b.close().await;
    gw.stop().await;
}

/// The test guest that logs one line when it behaves (plugins/testdata/hostile).
fn logging_guest() -> Vec<u8> {
    let p = std::path::PathBuf::from(gateway::testing::GUESTS_DIR).join("hostile.wasm");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_the_attempt_payload_and_plugin_lines_inertly_resend_and_deactivate_stops() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let r = gw
        .client
        .post(gw.url("/api/v1/plugins?name=logger&version=1.0.0"))
        .header("Authorization", ADMIN)
        .header("Content-Type", "application/wasm")
        .body(logging_guest())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let w = gw
        .create_webhook(
            json!({"name": "logged", "urls": [rx.url("/logged")], "trigger_events": ["*"],
            "plugins": [{"name": "logger", "config": {"mode": "behave"}}]}),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    let xss = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
    gw.post_event(&json!({"event_type": "incident.triggered", "id": "xss-1", "message": xss}))
        .await;
    assert_eq!(rx.wait_for(1, WAIT).await.len(), 1);

    sign_in(&b, &gw).await;
    b.goto(&gw.url(&format!("/console/webhooks/{id}/logs")))
        .await;
    b.wait_for("#filters[data-loaded=true]").await;
    let row = b.text("#attempts tbody tr.attempt").await;
    assert!(row.contains("success") && row.contains("200"), "{row}");
    b.click("#attempts tbody tr.attempt button.expand").await;
    let detail = b.text(".attempt-detail").await;
    assert!(
        detail.contains("<script>window.__xss=1</script><img src=x onerror="),
        "the payload shows as text: {detail}"
    );
    // Plugin log lines, when the gateway records them on the attempt, are shown.
    let (_, attempts) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/attempts"),
            None,
        )
        .await;
    let logs = attempts["results"][0]["plugin_logs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !logs.is_empty(),
        "the attempt records the plugin's log lines: {attempts}"
    );
    assert!(detail.contains("hostile guest behaving"), "{detail}");
    // Inert: nothing ran, and the only scripts are the console's own files.
    assert_eq!(
        js(&b, "return typeof window.__xss;").await,
        json!("undefined")
    );
    let srcs = js(&b, "return Array.from(document.querySelectorAll('script')).map(s => s.getAttribute('src') || '');").await;
    for s in srcs.as_array().unwrap() {
        assert!(
            s.as_str().unwrap().starts_with("/console/assets/"),
            "a foreign script: {srcs}"
        );
    }
    b.screenshot("console-logs-expanded").await;
    b.assert_accessible("logs").await;

    // Resend: the same delivery again, now.
    b.click("#attempts tbody tr.attempt button.resend").await;
    b.wait_for_text("#logs-status", "queued").await;
    assert_eq!(rx.wait_for(2, WAIT).await.len(), 2, "resent");

    // De-activate in the editor: the next event is not delivered.
    b.goto(&gw.url(&format!("/console/webhooks/{id}"))).await;
    b.wait_for("form[data-loaded=true]").await;
    b.click("#toggle").await;
    b.wait_for_text("#saved", "De-activated").await;
    let (_, stored) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/{id}/"), None)
        .await;
    assert_eq!(stored["is_webhook_enabled"], false);
    gw.post_event(&json!({"event_type": "incident.triggered", "id": "after-off"}))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.count(), 2, "a de-activated webhook gets nothing");
    b.goto(&gw.url("/console/webhooks")).await;
    assert!(b.text("#webhooks tbody tr").await.contains("inactive"));
    b.screenshot("console-webhooks-inactive").await;
    b.assert_accessible("webhooks list with an inactive webhook")
        .await;
    b.close().await;
    gw.stop().await;
}

/// The editor is filled by its JavaScript, which a page's source does not show: after it loaded
/// each webhook, every input holds the mask or nothing where a secret would be, and the live DOM
/// (`outerHTML`, with every value the script set) holds no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_fills_no_secret_into_its_inputs_or_the_dom() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let gw = TestGateway::start().await;
    let basic = gw
        .create_webhook(json!({"name": "basic", "urls": ["https://example.com/a"], "trigger_events": ["*"],
            "auth": {"type": "basic", "username": "u", "password": PASSWORD},
            "signing": {"type": "hmac_sha512", "header": "X-Callgoose-Signature", "secret": HMAC_SECRET}}))
        .await;
    let api_key = gw
        .create_webhook(json!({"name": "api key", "urls": ["https://example.com/b"], "trigger_events": ["*"],
            "auth": {"type": "api_key", "name": "X-Api-Key", "value": API_KEY_VALUE, "in": "header"},
            "signing": {"type": "standard_webhooks", "secret": STANDARD_SECRET}}))
        .await;
    let bearer = gw
        .create_webhook(
            json!({"name": "bearer", "urls": ["https://example.com/c"], "trigger_events": ["*"],
            "auth": {"type": "bearer", "token": BEARER}}),
        )
        .await;
    let (s, generated) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{}/secret", bearer["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200, "{generated}");
    let generated = generated["secret"].as_str().unwrap().to_string();
    let secrets = [
        PASSWORD,
        API_KEY_VALUE,
        HMAC_SECRET,
        BEARER,
        STANDARD_SECRET,
        generated.as_str(),
        ADMIN,
    ];
    sign_in(&b, &gw).await;
    // (webhook, the inputs where its secrets would be, the input the auth type shows)
    let cases = [
        (
            &basic,
            vec!["#f-auth-password", "#f-signing-secret"],
            "#f-auth-username",
            "u",
        ),
        (
            &api_key,
            vec!["#f-auth-value", "#f-signing-secret"],
            "#f-auth-name",
            "X-Api-Key",
        ),
        (
            &bearer,
            vec!["#f-auth-token", "#f-signing-secret"],
            "#f-auth-type",
            "bearer",
        ),
    ];
    for (w, secret_inputs, loaded, want) in cases {
        let id = w["id"].as_str().unwrap();
        let name = w["name"].as_str().unwrap().replace(' ', "-");
        b.goto(&gw.url(&format!("/console/webhooks/{id}"))).await;
        b.wait_for("form[data-loaded=true]").await;
        // The form really was filled from the webhook (so an empty value is not a blank form).
        assert_eq!(
            b.value(loaded).await,
            want,
            "{name}: the editor loaded the webhook"
        );
        for input in &secret_inputs {
            let v = b.value(input).await;
            assert!(
                v.is_empty() || v == gateway::model::webhook::MASK,
                "{name}: {input} holds {v:?}, not the mask or nothing"
            );
        }
        let values = b
            .execute("return Array.from(document.querySelectorAll('input, textarea, select')).map(e => (e.id || e.name) + '=' + e.value);")
            .await;
        let dom = b.dom().await;
        for secret in secrets {
            assert!(
                !values.to_string().contains(secret),
                "{name}: an input holds a secret: {values}"
            );
            assert!(!dom.contains(secret), "{name}: the DOM holds a secret");
        }
        b.screenshot(&format!("console-editor-masked-{name}")).await;
        b.assert_accessible(&format!("editor of {name}")).await;
    }

    // The error page (an unknown webhook) is a page like the others.
    b.goto(&gw.url("/console/webhooks/wh_missing")).await;
    b.wait_for_text("main h1", "Not Found").await;
    b.screenshot("console-error-page").await;
    b.assert_accessible("error page").await;
    b.close().await;
    gw.stop().await;
}
