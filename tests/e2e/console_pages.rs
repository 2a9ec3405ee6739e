//! The console's pages in headless Chromium (tests/support/browser.rs) against a real gateway on
//! port 0: each test saves a screenshot under target/screenshots/ and runs axe-core on its page.

use crate::support::TestGateway;
use crate::support::browser::Browser;

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
        assert!(ids.contains(&"html-has-lang"), "axe-core found only {ids:?}");
    }
    browser.close().await;
    gw.stop().await;
}
