//! The console's pages in headless Chromium (tests/support/browser.rs) against a real gateway on
//! port 0: each test saves a screenshot under target/screenshots/ and runs axe-core on its page.

use std::time::Duration;

use axum::response::IntoResponse;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::{ADMIN, Receiver, TestGateway};

/// The harness itself: Chromium opens a page the gateway serves, reads it, photographs it, and
/// axe-core really reports violations (a raw JSON document has no `lang` and no `<title>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_harness_drives_chromium_against_a_real_gateway() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = TestGateway::start().await;
    browser.goto(&gw.url("/api/v1/openapi.json")).await;
    let text = browser.text("body").await;
    assert!(text.contains("\"openapi\""), "page text: {text:.200}");
    let shot = browser.screenshot("harness-openapi-json").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    let found = browser.axe("openapi.json").await;
    if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/node_modules/axe-core/axe.min.js")
        .is_file()
    {
        let ids: Vec<&str> = found.iter().map(|v| v.id.as_str()).collect();
        assert!(
            ids.contains(&"html-has-lang"),
            "axe-core found only {ids:?}"
        );
    }
    browser.close().await;
    gw.stop().await;
}

/// Signs the browser in with `token` through the sign-in form.
async fn sign_in(browser: &Browser, gw: &TestGateway, token: &str) {
    browser.goto(&gw.url("/console/sign-in")).await;
    browser.fill("#api_key", token).await;
    browser
        .click("form[action='/console/sign-in'] button[type=submit]")
        .await;
    browser.wait_for("nav[aria-label]").await;
}

/// Opens `path`, saves a screenshot as `name` and fails on a critical or serious axe-core finding.
async fn look(browser: &Browser, gw: &TestGateway, path: &str, name: &str) -> String {
    browser.goto(&gw.url(path)).await;
    browser.wait_for("main h1").await;
    browser.screenshot(name).await;
    browser.assert_accessible(name).await;
    browser.text("main").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_explains_a_non_matching_webhook() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = TestGateway::start().await;
    let fires = gw
        .create_webhook(
            json!({"name": "fires-on-trigger", "url": "http://127.0.0.1:9/a",
            "trigger_events": ["incident.triggered"]}),
        )
        .await;
    let skips = gw
        .create_webhook(
            json!({"name": "resolved-only", "url": "http://127.0.0.1:9/b",
            "trigger_events": ["incident.resolved"]}),
        )
        .await;
    sign_in(&browser, &gw, ADMIN).await;
    look(
        &browser,
        &gw,
        "/console/dry-run?sample=squadcast-triggered",
        "dry-run-form",
    )
    .await;
    let event = browser.text("#event").await;
    assert!(
        event.contains("incident_triggered"),
        "the Squadcast sample is loaded: {event:.80}"
    );
    browser.click("#dry-run button[type=submit]").await;
    browser.wait_for("#decisions").await;
    let row = |id: &Value| format!("#decisions tr[data-id='{}']", id.as_str().unwrap());
    let fired = browser.text(&row(&fires["id"])).await;
    assert!(fired.contains("fires"), "{fired}");
    let skipped = browser.text(&row(&skips["id"])).await;
    assert!(skipped.contains("does not fire"), "{skipped}");
    assert!(
        skipped.contains("not among the triggers") && skipped.contains("incident.resolved"),
        "the reason names the triggers: {skipped}"
    );
    let summary = browser.text("#fired-summary").await;
    assert!(summary.starts_with("1 of 2"), "{summary}");
    browser.screenshot("dry-run-result").await;
    browser.assert_accessible("dry-run result").await;

    // An event that is not JSON: the problem is shown next to the field, nothing else.
    browser.fill("#event", "{not json").await;
    browser.click("#dry-run button[type=submit]").await;
    let err = browser.text("#event-error").await;
    assert!(!err.is_empty());
    browser.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_page_shows_a_new_token_once() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = TestGateway::start().await;
    sign_in(&browser, &gw, ADMIN).await;
    look(&browser, &gw, "/console/keys", "keys").await;
    browser.fill("#key-name", "platform publisher").await;
    browser
        .client()
        .execute(
            "document.getElementById('key-role').value = 'publisher';",
            vec![],
        )
        .await
        .unwrap();
    browser.click("#key-form button[type=submit]").await;
    browser.wait_for("#key-created:not([hidden])").await;
    let token: String = browser
        .client()
        .execute("return document.getElementById('new-token').value;", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("gw_"), "{token}");
    browser.screenshot("keys-token-shown").await;
    // The token works, and it is the one in the list.
    let (s, keys) = gw
        .call(Method::GET, "/api/v1/events/evt_none", Some(&token), None)
        .await;
    assert_eq!(s, 404, "the new publisher key authenticates: {keys}");
    let (_, keys) = gw.admin(Method::GET, "/api/v1/keys", None).await;
    let id = keys["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "platform publisher")
        .expect("listed")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A reload shows the key, never its token.
    browser.goto(&gw.url("/console/keys")).await;
    let page = browser.wait_for_text("#keys", "platform publisher").await;
    assert!(
        !browser.source().await.contains(&token),
        "the token is shown once only"
    );
    assert!(page.contains("publisher"));

    // Revoke it from the page: the API refuses the token from then on.
    browser
        .client()
        .execute("window.confirm = function () { return true; };", vec![])
        .await
        .unwrap();
    browser
        .click(&format!("button.revoke[data-id='{id}']"))
        .await;
    browser
        .wait_for_text(&format!("tr[data-id='{id}'] .key-state"), "revoked")
        .await;
    browser.screenshot("keys-revoked").await;
    let (s, _) = gw
        .call(Method::GET, "/api/v1/events/evt_none", Some(&token), None)
        .await;
    assert_eq!(s, 401);
    browser.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_draws_its_charts_from_real_deliveries() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.set_fallback(|r| {
        if r.path == "/bad" {
            StatusCode::BAD_REQUEST.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    });
    let gw = TestGateway::start().await;
    gw.create_webhook(
        json!({"name": "good", "url": receiver.url("/good"), "trigger_events": ["*"]}),
    )
    .await;
    let bad = gw
        .create_webhook(
            json!({"name": "bad", "url": receiver.url("/bad"), "trigger_events": ["*"]}),
        )
        .await;
    let off = gw
        .create_webhook(
            json!({"name": "off", "url": receiver.url("/off"), "trigger_events": ["*"]}),
        )
        .await;
    let (s, _) = gw
        .admin(
            Method::PATCH,
            &format!("/api/v1/webhooks/{}/", off["id"].as_str().unwrap()),
            Some(&json!({"is_webhook_enabled": false})),
        )
        .await;
    assert_eq!(s, 200);
    for i in 0..3 {
        gw.post_event(&json!({"event_type": "incident_triggered", "id": format!("inc-{i}"), "message": "disk full"}))
            .await;
    }
    receiver.wait_for(6, Duration::from_secs(20)).await;
    // The failed attempts are recorded (a 400 is final) before the page is read.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, st) = gw
            .admin(
                Method::GET,
                "/api/v1/stats/deliveries?bucket_secs=3600",
                None,
            )
            .await;
        let sum = |k: &str| {
            st["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b[k].as_u64().unwrap())
                .sum::<u64>()
        };
        if sum("delivered") == 3 && sum("failed") + sum("retrying") >= 3 {
            assert_eq!(st["webhooks"]["disabled"], 1, "{st}");
            assert_eq!(st["webhooks"]["total"], 3, "{st}");
            assert!(st["latency"]["p99_ms"].is_u64(), "{st}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never showed the attempts: {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = bad;

    sign_in(&browser, &gw, ADMIN).await;
    look(&browser, &gw, "/console/?window=1h", "overview").await;
    let bars: Value = browser
        .client()
        .execute(
            "return Array.from(document.querySelectorAll('#chart-deliveries rect.bar')).map(r => r.getAttribute('fill'));",
            vec![],
        )
        .await
        .unwrap();
    let fills: Vec<&str> = bars
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(fills.contains(&"#1b6e34"), "a delivered bar: {fills:?}");
    assert!(
        fills.iter().any(|f| *f == "#b3261e" || *f == "#8a4b00"),
        "a failed bar: {fills:?}"
    );
    let lines: Value = browser
        .client()
        .execute(
            "return document.querySelectorAll('#chart-latency polyline').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(lines, json!(2), "p50 and p99 lines");
    assert_eq!(browser.text("#disabled-webhooks").await, "1");
    let attempts: u64 = browser.text("#attempt-count").await.parse().unwrap();
    assert!(attempts >= 6, "{attempts}");
    browser.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_page_lists_the_first_party_plugins_and_tries_one() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = TestGateway::start().await;
    let hook = gw
        .create_webhook(
            json!({"name": "to-slack", "url": "http://127.0.0.1:9/s", "trigger_events": ["*"],
            "plugins": [{"name": "slack"}]}),
        )
        .await;
    sign_in(&browser, &gw, ADMIN).await;
    let page = look(&browser, &gw, "/console/plugins", "plugins").await;
    for name in ["template", "placeholders", "slack", "signed-header"] {
        assert!(
            browser
                .source()
                .await
                .contains(&format!("data-name=\"{name}\"")),
            "{name} listed: {page:.300}"
        );
    }
    let slack = browser.text("#plugins tr[data-name='slack']").await;
    assert!(slack.contains("to-slack"), "the webhook using it: {slack}");
    let _ = hook;

    // Try the slack transformer on the Squadcast sample.
    let option: Value = browser
        .client()
        .execute(
            "var s = document.getElementById('try-plugin'); var o = Array.from(s.options).find(o => o.value.indexOf('slack/') === 0); s.value = o.value; return o.value;",
            vec![],
        )
        .await
        .unwrap();
    assert!(option.as_str().unwrap().starts_with("slack/"));
    browser.click("#try-form button[type=submit]").await;
    browser.wait_for("#try-result:not([hidden])").await;
    let summary = browser.text("#try-summary").await;
    assert!(summary.starts_with("Ran"), "{summary}");
    let request = browser.text("#try-request").await;
    assert!(request.starts_with("POST "), "{request}");
    assert!(
        request.contains("Sample incident for testing webhooks"),
        "the event reached the plugin: {request}"
    );
    browser.screenshot("plugins-try").await;
    browser.assert_accessible("plugin try result").await;
    browser.close().await;
    gw.stop().await;
}
