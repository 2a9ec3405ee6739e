//! Authenticator log lines on the attempt record: a JavaScript authenticator made as a plugin
//! author makes one logs on every call, and each attempt's record carries its own line (after the
//! transformer's, on the attempt that ran the transform) in the deliveries, attempts and
//! responses APIs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{WAIT, guest, upload};
use crate::delivery::wait_status;
use crate::plugin_langs::run;
use crate::support::{Receiver, TestGateway};

/// A JavaScript authenticator as an author makes one (`plugin new`, built with componentize-js
/// from .tools/) that also logs a line per call: no first-party authenticator logs. `None` after
/// printing why when componentize-js is missing (a failure with GATEWAY_TEST_REQUIRE_PLUGIN_LANGS=1).
fn logging_authenticator(parent: &Path, name: &str) -> Option<Vec<u8>> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/node_modules/.bin");
    if !bin.join("componentize-js").is_file() {
        assert!(
            std::env::var("GATEWAY_TEST_REQUIRE_PLUGIN_LANGS").as_deref() != Ok("1"),
            "componentize-js is not installed (run ./scripts/test-deps.sh)"
        );
        eprintln!("SKIPPED: componentize-js is not installed (./scripts/test-deps.sh)");
        return None;
    }
    let mut new = std::process::Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
    new.current_dir(parent).args([
        "plugin",
        "new",
        name,
        "--lang",
        "js",
        "--role",
        "authenticator",
    ]);
    run(new, Duration::from_secs(60), "plugin new");
    let dir = parent.join(name);
    let app = dir.join("app.js");
    let src = std::fs::read_to_string(&app).unwrap();
    let entry = "export function authenticate(request, attempt) {\n";
    assert!(src.contains(entry), "{src}");
    let logged = src.replace(
        entry,
        &format!("{entry}  log('info', `signing attempt ${{attempt.attempt}}`);\n"),
    );
    let logged = format!("import {{ log }} from 'webhook-gateway:plugin/log@0.1.0';\n{logged}");
    std::fs::write(&app, logged).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut build = std::process::Command::new("npm");
    build
        .current_dir(&dir)
        .env("PATH", path)
        .args(["run", "build"]);
    run(build, Duration::from_secs(900), "npm run build");
    Some(std::fs::read(dir.join(format!("{name}.wasm"))).unwrap())
}

/// The `plugin_logs` of every record in `v` (a page's `results`, or a delivery's `attempt_log`),
/// in a stable order.
fn plugin_logs_of(v: &Value) -> Vec<Value> {
    let mut logs: Vec<Value> = v
        .as_array()
        .unwrap_or_else(|| panic!("records: {v}"))
        .iter()
        .map(|r| r["plugin_logs"].clone())
        .collect();
    logs.sort_by_key(|l| l.to_string());
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticator_log_lines_are_in_each_attempt_record() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().to_path_buf();
    let Some(wasm) =
        tokio::task::spawn_blocking(move || logging_authenticator(&parent, "js-logger"))
            .await
            .unwrap()
    else {
        return;
    };
    let rx = Receiver::start().await;
    rx.respond(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    let gw = TestGateway::start().await;
    let (s, p) = upload(&gw, "js-logger", "0.1.0", wasm).await;
    assert_eq!((s, p["kind"].as_str()), (201, Some("authenticator")), "{p}");
    let (s, p) = upload(&gw, "hostile", "1.0.0", guest("hostile")).await;
    assert_eq!(s, 201, "{p}");
    let w = gw
        .create_webhook(json!({"name": "logged", "url": rx.url("/a"), "trigger_events": ["*"],
            "retry": {"type": "fixed", "count": 1, "interval_secs": 1},
            "secrets": {"partner_key": "k3y-for-the-log-test"},
            "plugins": [{"name": "hostile", "version": "1.0.0", "config": {"mode": "ok"}}],
            "authenticator": {"name": "js-logger", "version": "0.1.0", "config": {"secret": "partner_key"}}}))
        .await;
    let wid = w["id"].as_str().unwrap().to_string();
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered", "message": "m"}))
        .await;
    rx.wait_for(2, WAIT).await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    let did = e["deliveries"][0]["id"].as_str().unwrap().to_string();
    let d = wait_status(&gw, &did, "succeeded").await;
    let line = |level: &str, plugin: &str, role: &str, message: &str| json!({"plugin": plugin, "role": role, "level": level, "message": message});
    // The transform runs once, on the first attempt, before its authenticator; the
    // authenticator runs (and logs) on every attempt, each line on its own attempt.
    let mut want = vec![
        json!([
            line(
                "info",
                "hostile@1.0.0",
                "transformer",
                "hostile guest behaving"
            ),
            line(
                "info",
                "js-logger@0.1.0",
                "authenticator",
                "signing attempt 1"
            )
        ]),
        json!([line(
            "info",
            "js-logger@0.1.0",
            "authenticator",
            "signing attempt 2"
        )]),
    ];
    want.sort_by_key(|l| l.to_string());
    assert_eq!(
        plugin_logs_of(&d["attempt_log"]),
        want,
        "deliveries API: {d}"
    );
    for api in ["attempts", "responses"] {
        let (s, page) = gw
            .admin(Method::GET, &format!("/api/v1/webhooks/{wid}/{api}"), None)
            .await;
        assert_eq!(s, 200, "{page}");
        assert_eq!(plugin_logs_of(&page["results"]), want, "{api} API: {page}");
    }
    gw.stop().await;
}
