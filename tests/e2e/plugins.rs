//! Plugins end to end: first-party plugins shaping real deliveries as the seeds show, hostile
//! plugins failing only their own delivery, replay after replacing a plugin, and upload checks.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::delivery::wait_status;
use crate::support::{ADMIN, Receiver, TestGateway, fixture};

mod authenticator_logs;

const WAIT: Duration = Duration::from_secs(60);

pub(crate) fn guest(name: &str) -> Vec<u8> {
    let p = PathBuf::from(gateway::testing::GUESTS_DIR).join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub(crate) async fn upload(
    gw: &TestGateway,
    name: &str,
    version: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let r = gw
        .client
        .post(gw.url(&format!("/api/v1/plugins?name={name}&version={version}")))
        .header("Authorization", ADMIN)
        .header("Content-Type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_party_plugins_render_as_the_seeds_show() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let (_, list) = gw.admin(Method::GET, "/api/v1/plugins", None).await;
    let names: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in ["template", "placeholders", "slack", "signed-header"] {
        assert!(
            names.contains(&n),
            "{n} is installed without any step: {list}"
        );
    }
    // Slack: the Squadcast sample as a Slack message with blocks.
    gw.create_webhook(json!({"name": "slack", "url": rx.url("/slack"), "trigger_events": ["incident.triggered"], "plugins": [{"name": "slack"}],
        "filter": {"services": ["team-2-service-1"]}})).await;
    // Grafana OnCall: a `data` template with tojson, exactly seed 003's "Demo Webhook".
    gw.create_webhook(json!({"name": "Demo Webhook", "url": rx.url("/oncall"), "http_method": "POST", "trigger_type": "acknowledge",
        "data": "{\"labels\" : {{ alert_payload.commonLabels | tojson()}}}", "integration_filter": ["CRV8A5MXC751A"]})).await;
    // Callgoose: seed 002's custom payload with placeholders and if/return.
    let callgoose_body = "{  \"id\" : \"{{incident.id}}\",  \"title\" : \"{{incident.title}}\",  \"urgency\" : {{{ if(incident.urgency==high) return(\"high\"); if(incident_urgency==low) return(\"low\"); return (\"none\"); }}}}";
    gw.create_webhook(json!({"name": "callgoose", "url": rx.url("/callgoose"), "trigger_events": ["incident.created"],
        "plugins": [{"name": "placeholders", "config": {"body": callgoose_body}}]})).await;

    gw.post_event(&fixture("squadcast/incident_triggered.json"))
        .await;
    let oncall_event = gw
        .post_event(&fixture("oncall/alert_group_acknowledged.json"))
        .await;
    gw.post_event(&json!({"event_type": "incident.created", "id": "INC-123", "title": "Its a title", "urgency": "high"})).await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{oncall_event}"), None)
        .await;
    let d = wait_status(
        &gw,
        e["deliveries"][0]["id"]
            .as_str()
            .expect("the OnCall event matched"),
        "succeeded",
    )
    .await;
    let got = rx.wait_for(3, WAIT).await;
    let at = |p: &str| {
        got.iter()
            .find(|r| r.path == p)
            .unwrap_or_else(|| panic!("nothing at {p}: {d}"))
    };

    let slack = at("/slack").json();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("Sample incident for testing webhooks"),
        "{slack}"
    );
    let blocks = slack["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert!(slack.to_string().contains("Team 2 Service 1"));

    let oncall = at("/oncall");
    assert_eq!(
        oncall.json(),
        json!({"labels": {"alertname": "InstanceDown", "job": "node", "severity": "critical"}})
    );
    assert!(std::str::from_utf8(&oncall.body).unwrap().contains(
        "{\"alertname\": \"InstanceDown\", \"job\": \"node\", \"severity\": \"critical\"}"
    ));

    // (The Squadcast sample is an incident.created too; pick the Callgoose event's delivery.)
    let got = rx.wait_for(4, WAIT).await;
    let callgoose = got
        .iter()
        .filter(|r| r.path == "/callgoose")
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .find(|b| b.contains("INC-123"))
        .expect("the Callgoose event was delivered");
    assert_eq!(
        callgoose,
        "{  \"id\" : \"INC-123\",  \"title\" : \"Its a title\",  \"urgency\" : \"high\"}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_fail_only_their_own_delivery_and_can_be_replayed() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let (s, p) = upload(&gw, "hostile", "1.0.0", guest("hostile")).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["kind"], "transformer");
    // (mode, what the attempt log must say)
    let modes = [
        ("loop", "timed out"),
        ("memory", "memory"),
        ("panic", "panicked on purpose"),
        ("recursion", "trap"),
        ("huge-output", "memory"),
        ("big-output", "output"),
        ("bad-header", "header"),
        ("garbage", ""),
    ];
    let mut hooks = Vec::new();
    for (mode, _) in &modes {
        let w = gw
            .create_webhook(
                json!({"name": mode, "url": rx.url(&format!("/{mode}")), "trigger_events": ["*"],
                "plugins": [{"name": "hostile", "config": {"mode": mode}}]}),
            )
            .await;
        hooks.push(w["id"].as_str().unwrap().to_string());
    }
    gw.create_webhook(json!({"name": "good", "url": rx.url("/good"), "trigger_events": ["*"]}))
        .await;
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered", "message": "m"}))
        .await;
    // The good webhook is delivered; every hostile one fails with its own clear error.
    rx.wait_for(1, WAIT).await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    let deliveries = e["deliveries"].as_array().unwrap().clone();
    let mut wrong = Vec::new();
    for ((mode, expect), wid) in modes.iter().zip(&hooks) {
        let d = deliveries
            .iter()
            .find(|d| d["webhook_id"] == wid.as_str())
            .unwrap();
        let d = wait_status(&gw, d["id"].as_str().unwrap(), "failed").await;
        let err = d["attempt_log"][0]["error"]
            .as_str()
            .unwrap()
            .to_lowercase();
        if !err.contains("plugin") || !err.contains(expect) {
            wrong.push(format!("{mode}: want {expect:?} in {err}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        rx.received().iter().filter(|r| r.path == "/good").count(),
        1
    );
    assert_eq!(rx.count(), 1, "no hostile delivery reached the receiver");
    // Still healthy: another event is delivered to the good webhook.
    gw.post_event(&json!({"event_type": "incident.resolved"}))
        .await;
    rx.wait_for(2, WAIT).await;

    // Replace the plugin (a fixed version) and replay the failed delivery of the panicking one.
    let panic_hook = &hooks[2];
    let (s, _) = upload(&gw, "fixed", "1.0.0", guest("hostile")).await;
    assert_eq!(s, 201);
    let (s, w) = gw
        .admin(
            Method::PUT,
            &format!("/api/v1/webhooks/{panic_hook}/"),
            Some(&json!({"plugins": [{"name": "fixed", "config": {"mode": "ok"}}]})),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    let failed = deliveries
        .iter()
        .find(|d| d["webhook_id"] == panic_hook.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = gw
        .admin(
            Method::POST,
            &format!("/api/v1/deliveries/{failed}/resend"),
            None,
        )
        .await;
    assert_eq!(s, 202);
    let got = rx.wait_for(3, WAIT).await;
    let replayed = got
        .iter()
        .find(|r| r.path == "/panic")
        .expect("the replayed event arrived");
    assert_eq!(replayed.json()["message"], "m");
    wait_status(&gw, &failed, "succeeded").await;
    // A plugin in use cannot be deleted; an unused one can.
    let (s, p) = gw
        .admin(Method::DELETE, "/api/v1/plugins/fixed/1.0.0", None)
        .await;
    assert_eq!(s, 409, "{p}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_log_lines_are_in_the_attempt_record() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let (s, p) = upload(&gw, "hostile", "1.0.0", guest("hostile")).await;
    assert_eq!(s, 201, "{p}");
    let mut hooks = Vec::new();
    for mode in ["ok", "log-flood"] {
        let w = gw
            .create_webhook(json!({"name": mode, "url": rx.url(&format!("/{mode}")),
                "trigger_events": ["*"],
                "plugins": [{"name": "hostile", "version": "1.0.0", "config": {"mode": mode}}]}))
            .await;
        hooks.push(w["id"].as_str().unwrap().to_string());
    }
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered", "message": "m"}))
        .await;
    rx.wait_for(2, WAIT).await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    let delivery_of = |wid: &str| {
        e["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["webhook_id"] == wid)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The delivery's attempt log, the attempts API and OnCall's responses log all carry them.
    let ok = &hooks[0];
    let d = wait_status(&gw, &delivery_of(ok), "succeeded").await;
    let want = json!([{"plugin": "hostile@1.0.0", "role": "transformer", "level": "info",
        "message": "hostile guest behaving"}]);
    assert_eq!(d["attempt_log"][0]["plugin_logs"], want, "{d}");
    let (_, attempts) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{ok}/attempts"),
            None,
        )
        .await;
    assert_eq!(attempts["results"][0]["plugin_logs"], want, "{attempts}");
    let (_, responses) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{ok}/responses"),
            None,
        )
        .await;
    assert_eq!(responses["results"][0]["plugin_logs"], want, "{responses}");
    // A flood is capped: the plugin limit's lines, each cut, then the host's count of the rest.
    let d = wait_status(&gw, &delivery_of(&hooks[1]), "succeeded").await;
    let lines = d["attempt_log"][0]["plugin_logs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(lines.len(), 101, "100 lines and the host's note");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 0 yyy")
    );
    assert!(lines[0]["message"].as_str().unwrap().len() <= 1_100);
    assert_eq!(lines[100]["level"], "host");
    assert!(
        lines[100]["message"]
            .as_str()
            .unwrap()
            .contains("4900 more"),
        "{}",
        lines[100]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_validated() {
    let gw = TestGateway::start_with(|c| c.plugins.max_component_bytes = 4 << 20, None).await;
    let (s, p) = upload(
        &gw,
        "junk",
        "1.0.0",
        b"\0asm not really a component".to_vec(),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "body");
    let (s, p) = upload(&gw, "wrong", "1.0.0", guest("wrong_world")).await;
    assert_eq!(s, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("world"),
        "{p}"
    );
    let (s, _) = upload(&gw, "big", "1.0.0", vec![0u8; 5 << 20]).await;
    assert_eq!(s, 413);
    let (s, p) = upload(&gw, "Bad Name", "1.0.0", guest("hostile")).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("name")));
    // Versions are semantic versions ("newest" is semver order).
    for bad in ["1", "v1.0.0", "1.0", "latest"] {
        let (s, p) = upload(&gw, "hostile", bad, guest("hostile")).await;
        assert_eq!(
            (s, p["field"].as_str()),
            (400, Some("version")),
            "{bad}: {p}"
        );
        assert!(
            p["detail"].as_str().unwrap().contains("semantic version"),
            "{p}"
        );
    }
    // A webhook naming a missing plugin, or an authenticator as a transformer, is refused.
    let (s, p) = gw
        .admin(Method::POST, "/api/v1/webhooks/", Some(&json!({"name": "x", "url": "https://e.com", "trigger_events": ["*"], "plugins": [{"name": "nope"}]})))
        .await;
    assert_eq!(
        (s.as_u16(), p["field"].as_str()),
        (400, Some("plugins[0].name")),
        "{p}"
    );
    let (s, p) = gw
        .admin(Method::POST, "/api/v1/webhooks/", Some(&json!({"name": "x", "url": "https://e.com", "trigger_events": ["*"], "plugins": [{"name": "signed-header"}]})))
        .await;
    assert_eq!(
        (s.as_u16(), p["field"].as_str()),
        (400, Some("plugins[0].name")),
        "{p}"
    );
    let (_, list) = gw.admin(Method::GET, "/api/v1/plugins", None).await;
    assert!(
        list["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["builtin"] == true),
        "nothing refused was stored: {list}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticator_signs_with_secret_handles_on_every_attempt() {
    use hmac::{Hmac, Mac};
    let rx = Receiver::start().await;
    rx.respond(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    let clock = gateway::clock::ManualClock::new(chrono::Utc::now().timestamp_millis());
    let gw = TestGateway::start_with(|_| {}, Some(std::sync::Arc::new(clock.clone()))).await;
    let w = gw
        .create_webhook(json!({"name": "auth", "url": rx.url("/auth"), "trigger_events": ["*"],
            "auth": {"type": "bearer", "token": "tok-handle-only"},
            "authenticator": {"name": "signed-header", "config": {"secret": "signing_secret", "header": "X-Signature",
                "timestamp_header": "X-Timestamp", "bearer_secret": "token"}}}))
        .await;
    let (_, sec) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{}/secret", w["id"].as_str().unwrap()),
            None,
        )
        .await;
    let key = sec["secret"].as_str().unwrap().to_string();
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    rx.wait_for(1, WAIT).await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    let did = e["deliveries"][0]["id"].as_str().unwrap().to_string();
    // The retry runs the authenticator again with a fresh time.
    let deadline = std::time::Instant::now() + WAIT;
    while rx.count() < 2 {
        clock.advance_ms(10_000);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(std::time::Instant::now() < deadline);
    }
    let got = rx.received();
    assert_ne!(got[0].header("x-timestamp"), got[1].header("x-timestamp"));
    for r in &got {
        let ts = r.header("x-timestamp").expect("timestamp header");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&r.body);
        assert_eq!(
            r.header("x-signature"),
            Some(hex::encode(mac.finalize().into_bytes()).as_str())
        );
        assert_eq!(r.header("authorization"), Some("Bearer tok-handle-only"));
    }
    let d = wait_status(&gw, &did, "succeeded").await;
    assert!(
        !d.to_string().contains("tok-handle-only"),
        "secret placed by the plugin is masked: {d}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_run_and_replay_from_the_command_line() {
    let exe = env!("CARGO_BIN_EXE_gateway-under-test");
    let guests = PathBuf::from(gateway::testing::GUESTS_DIR);
    let event = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/squadcast/incident_triggered.json");
    let out = std::process::Command::new(exe)
        .args([
            "plugin",
            "run",
            "--plugin",
            guests.join("slack.wasm").to_str().unwrap(),
            "--event",
            event.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"blocks\""), "{text}");
    assert!(text.to_lowercase().contains("memory"), "{text}");

    // Replay a stored delivery's exact input, with secrets masked.
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    gw.create_webhook(json!({"name": "r", "url": rx.url("/r"), "trigger_events": ["*"], "auth": {"type": "bearer", "token": "replay-SECRET"},
        "plugins": [{"name": "template", "config": {"body": "{\"m\": {{ message | tojson }}}"}}]}))
        .await;
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered", "message": "hello"}))
        .await;
    rx.wait_for(1, WAIT).await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    let did = e["deliveries"][0]["id"].as_str().unwrap().to_string();
    wait_status(&gw, &did, "succeeded").await;
    let dir = gw.dir.path().to_path_buf();
    let out = std::process::Command::new(exe)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "plugin",
            "replay",
            &did,
        ])
        .env("GATEWAY_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("{\"m\": \"hello\"}"), "{text}");
    assert!(text.contains("template"), "{text}");
    assert!(!text.contains("replay-SECRET"), "{text}");
    gw.stop().await;
}

/// DELETE of a plugin version: a webhook naming that version blocks it; a webhook naming no
/// version uses the newest, so it blocks only the newest, and only when the next newest is
/// missing or of another kind. (Regression: every version was blocked by such a webhook.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_plugin_version_is_blocked_only_by_the_webhooks_that_use_it() {
    let gw = TestGateway::start().await;
    for (version, bytes) in [
        ("0.5.0", guest("signed_header")),
        ("1.0.0", guest("hostile")),
        ("1.1.0", guest("hostile")),
        ("2.0.0", guest("hostile")),
    ] {
        let (s, p) = upload(&gw, "shaper", version, bytes).await;
        assert_eq!(s, 201, "{version}: {p}");
    }
    let hook = |name: &str, version: Option<&str>| {
        let mut r = json!({"name": "shaper", "config": {"mode": "ok"}});
        if let Some(v) = version {
            r["version"] = json!(v);
        }
        json!({"name": name, "url": "https://example.com/hook", "trigger_events": ["*"],
            "plugins": [r]})
    };
    let unpinned = gw.create_webhook(hook("newest", None)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pinned = gw.create_webhook(hook("pinned", Some("1.1.0"))).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let delete = |version: &str| {
        let path = format!("/api/v1/plugins/shaper/{version}");
        let gw = &gw;
        async move {
            let (s, p) = gw.admin(Method::DELETE, &path, None).await;
            (s.as_u16(), p.to_string())
        }
    };
    // A version a webhook names: 409 naming that webhook only.
    let (s, p) = delete("1.1.0").await;
    assert_eq!(s, 409, "{p}");
    assert!(
        p.contains(&pinned) && !p.contains(&unpinned) && p.contains("name this version"),
        "{p}"
    );
    // An older version no webhook names: deleted, though a webhook names no version.
    assert_eq!(delete("1.0.0").await.0, 204);
    // The newest, with a transformer to take its place: deleted; "newest" is now 1.1.0.
    assert_eq!(delete("2.0.0").await.0, 204);
    let (s, _) = gw
        .admin(Method::DELETE, &format!("/api/v1/webhooks/{pinned}"), None)
        .await;
    assert!(s.is_success(), "{s}");
    // The newest, the next newest being an authenticator: 409 naming the webhook and why.
    let (s, p) = delete("1.1.0").await;
    assert_eq!(s, 409, "{p}");
    assert!(
        p.contains(&unpinned)
            && p.contains("name no version and use the newest")
            && p.contains("shaper@0.5.0, is an authenticator, not a transformer"),
        "{p}"
    );
    // The authenticator, older and unused: deleted; then the newest has nothing to take its place.
    assert_eq!(delete("0.5.0").await.0, 204);
    let (s, p) = delete("1.1.0").await;
    assert_eq!(s, 409, "{p}");
    assert!(
        p.contains(&unpinned) && p.contains("no other version is installed"),
        "{p}"
    );
    // With the webhook gone, the last version goes too.
    let (s, _) = gw
        .admin(
            Method::DELETE,
            &format!("/api/v1/webhooks/{unpinned}"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s}");
    assert_eq!(delete("1.1.0").await.0, 204);
    let (_, list) = gw.admin(Method::GET, "/api/v1/plugins", None).await;
    assert!(!list.to_string().contains("\"shaper\""), "{list}");
    gw.stop().await;
}
