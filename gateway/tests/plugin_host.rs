//! Host-level tests of the plugin system: the first-party plugins on the seeds' examples, and
//! every hostile guest failing with its own error while the host keeps serving.

use std::path::PathBuf;
use std::time::Duration;

use gateway::model::PreparedRequest;
use gateway::plugin::{
    AuthInput, ChainStep, GuestError, PluginContext, PluginError, PluginHost, PluginKind,
    PluginLimits, TransformInput, Transformed, builtin_plugins,
};
use serde_json::{Value, json};

fn guest(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("GATEWAY_TEST_GUESTS_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn builtin(name: &str) -> &'static [u8] {
    builtin_plugins()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
        .bytes
}

struct Fixture {
    host: PluginHost,
    _dir: tempfile::TempDir,
}

fn host_with(limits: PluginLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        host: PluginHost::new(limits, dir.path()).unwrap(),
        _dir: dir,
    }
}

fn host() -> Fixture {
    host_with(PluginLimits::default())
}

fn context(event_type: &str) -> PluginContext {
    PluginContext {
        webhook_id: "wh_1".into(),
        webhook_name: "test".into(),
        event_type: event_type.into(),
        delivery_id: "msg_1".into(),
        url: "https://receiver.test/hook".into(),
        method: "POST".into(),
        now_ms: 1_685_549_253_000,
        attempt: 1,
        previous: None,
    }
}

fn input(event: &Value, config: Value) -> TransformInput {
    TransformInput {
        event_json: event.to_string(),
        context: context("incident.triggered"),
        config_json: config.to_string(),
    }
}

fn request(out: Transformed) -> PreparedRequest {
    match out {
        Transformed::Request(r) => r,
        Transformed::Skip(reason) => panic!("unexpected skip: {reason}"),
    }
}

fn header<'a>(r: &'a PreparedRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The event_data of seed 003's webhook responses (Grafana OnCall).
fn grafana_event() -> Value {
    json!({
        "event": {"type": "acknowledge", "time": "2023-08-18T16:38:21.442981+00:00"},
        "user": {"id": "UK49JJNPZMFLJ", "username": "oncall", "email": "admin@localhost"},
        "alert_group_id": "IZQERPWKWCGH1",
        "alert_payload": {
            "status": "firing",
            "groupLabels": {"alertname": "InstanceDown"},
            "commonLabels": {"job": "node", "severity": "critical", "alertname": "InstanceDown"},
            "commonAnnotations": {}
        },
        "integration": {"id": "CRV8A5MXC751A", "type": "alertmanager", "name": "One - Alertmanager", "team": null}
    })
}

fn squadcast(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/squadcast")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn builtins_prepare_as_their_declared_kind() {
    let f = host();
    for p in builtin_plugins() {
        let prepared = f.host.prepare(p.bytes).unwrap();
        assert_eq!(prepared.kind, p.kind, "{}", p.name);
        assert_eq!(prepared.sha256, gateway::plugin::sha256_hex(p.bytes));
    }
}

#[tokio::test]
async fn grafana_data_template_with_tojson_renders_like_oncall() {
    let f = host();
    let sha = f.host.prepare(builtin("template")).unwrap().sha256;
    // seed 003's `data`, verbatim.
    let config = json!({"body": "{\"labels\" : {{ alert_payload.commonLabels | tojson()}}}"});
    let out = f
        .host
        .transform(&sha, input(&grafana_event(), config))
        .await
        .unwrap();
    let r = request(out.outcome);
    assert_eq!(
        r.body.as_deref(),
        Some(
            r#"{"labels" : {"alertname": "InstanceDown", "job": "node", "severity": "critical"}}"#
        )
    );
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(
        (r.method.as_str(), r.url.as_str()),
        ("POST", "https://receiver.test/hook")
    );
    assert!(out.memory_peak_bytes > 0);
}

#[tokio::test]
async fn placeholders_seed_002_example_gives_its_documented_output() {
    let f = host();
    let sha = f.host.prepare(builtin("placeholders")).unwrap().sha256;
    let template = r#"{  "id" : "{{incident.id}}",  "title" : "{{incident.title}}",  "urgency" : {{{ if(incident.urgency==high) return("high"); if(incident_urgency==low) return("low"); return ("none"); }}}}"#;
    let event = json!({"event_type": "incident.created", "id": "INC-123", "message": "Its a title", "urgency": "high"});
    let out = f
        .host
        .transform(&sha, input(&event, json!({ "body": template })))
        .await
        .unwrap();
    let r = request(out.outcome);
    assert_eq!(
        r.body.as_deref(),
        Some(r#"{  "id" : "INC-123",  "title" : "Its a title",  "urgency" : "high"}"#)
    );
}

#[tokio::test]
async fn slack_message_from_the_squadcast_sample() {
    let f = host();
    let sha = f.host.prepare(builtin("slack")).unwrap().sha256;
    let out = f
        .host
        .transform(
            &sha,
            input(&squadcast("incident_triggered"), json!({"channel": "#ops"})),
        )
        .await
        .unwrap();
    let r = request(out.outcome);
    let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body["text"],
        ":red_circle: [Triggered] Sample incident for testing webhooks (Team 2 Service 1)"
    );
    assert_eq!(body["channel"], "#ops");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(
        body["blocks"][1]["fields"][1]["text"],
        "*Service:*\nTeam 2 Service 1"
    );
}

#[tokio::test]
async fn signed_header_hmacs_the_body_with_a_secret_it_cannot_read() {
    use hmac::{Hmac, Mac};
    let f = host();
    let sha = f.host.prepare(builtin("signed-header")).unwrap().sha256;
    let body = r#"{"email":"test@example.com","username":"test_user"}"#;
    let auth = AuthInput {
        request: PreparedRequest {
            method: "POST".into(),
            url: "https://receiver.test/hook".into(),
            query: vec![],
            headers: vec![],
            body: Some(body.into()),
        },
        delivery_id: "msg_1".into(),
        attempt: 2,
        now_ms: 1_649_367_553_000,
        secrets: vec![("key".into(), "s3cr3t".into()), ("token".into(), "t0k".into())],
        config_json: json!({"secret": "key", "header": "X-Sig", "prefix": "sha256=", "bearer_secret": "token"}).to_string(),
    };
    let out = f.host.authenticate(&sha, auth).await.unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cr3t").unwrap();
    mac.update(body.as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(out.add_headers[0], ("X-Sig".to_string(), expected));
    assert_eq!(
        out.add_headers[1],
        ("Authorization".to_string(), "Bearer t0k".to_string())
    );
    assert_eq!(out.secret_names, vec!["Authorization".to_string()]);
}

/// Runs the hostile guest in `mode` and then checks the host still serves a good call.
async fn hostile(f: &Fixture, mode: &str) -> Result<Transformed, PluginError> {
    let sha = f.host.prepare(&guest("hostile")).unwrap().sha256;
    let result = f
        .host
        .transform(&sha, input(&json!({"a": 1}), json!({ "mode": mode })))
        .await
        .map(|o| o.outcome);
    let good = f
        .host
        .transform(&sha, input(&json!({"a": 1}), json!({"mode": "ok"})))
        .await
        .unwrap();
    assert_eq!(
        request(good.outcome).body.as_deref(),
        Some(r#"{"a":1}"#),
        "host broken after {mode}"
    );
    f.host.settle().await;
    assert_eq!(
        f.host.available_slots(),
        f.host.limits().max_concurrency,
        "slot leaked after {mode}"
    );
    result
}

#[tokio::test]
async fn endless_loop_times_out() {
    let f = host();
    let started = std::time::Instant::now();
    let err = hostile(&f, "loop").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Timeout { limit_ms: 100 }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let f = host();
    let err = hostile(&f, "memory").await.unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_bytes } if limit_bytes == 32 << 20),
        "{err}"
    );
}

#[tokio::test]
async fn panic_is_a_trap_carrying_the_panic_message() {
    let f = host();
    let err = hostile(&f, "panic").await.unwrap_err();
    match err {
        PluginError::Trap(msg) => {
            assert!(msg.contains("hostile guest panicked on purpose"), "{msg}")
        }
        other => panic!("expected a trap, got {other}"),
    }
}

#[tokio::test]
async fn deep_recursion_is_a_trap() {
    let f = host();
    let err = hostile(&f, "recursion").await.unwrap_err();
    assert!(matches!(err, PluginError::Trap(_)), "{err}");
}

#[tokio::test]
async fn huge_output_cannot_even_be_built_under_the_memory_cap() {
    let f = host();
    let err = hostile(&f, "huge-output").await.unwrap_err();
    assert!(matches!(err, PluginError::MemoryLimit { .. }), "{err}");
}

#[tokio::test]
async fn output_over_the_output_cap_is_refused() {
    let f = host();
    let err = hostile(&f, "big-output").await.unwrap_err();
    assert!(
        matches!(err, PluginError::OutputTooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_header_name_url_and_non_utf8_are_invalid_output() {
    let f = host();
    for mode in ["bad-header", "bad-url", "garbage"] {
        let err = hostile(&f, mode).await.unwrap_err();
        assert!(
            matches!(err, PluginError::InvalidOutput(_)),
            "{mode}: {err}"
        );
    }
}

#[tokio::test]
async fn log_flood_is_capped() {
    let f = host();
    let sha = f.host.prepare(&guest("hostile")).unwrap().sha256;
    let out = f
        .host
        .transform(&sha, input(&json!({}), json!({"mode": "log-flood"})))
        .await
        .unwrap();
    assert_eq!(out.logs.len(), 101);
    assert!(out.logs[0].len() <= 1024 + 20);
    assert_eq!(
        out.logs[100],
        "[host] 4900 more log lines dropped (limit 100)"
    );
}

#[tokio::test]
async fn plugin_errors_and_skips_come_back_typed() {
    let f = host();
    let err = hostile(&f, "error").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Guest(GuestError::InvalidConfig(ref m)) if m == "hostile guest refuses"),
        "{err}"
    );
    assert_eq!(
        hostile(&f, "skip").await.unwrap(),
        Transformed::Skip("hostile guest skips".into())
    );
}

#[tokio::test]
async fn wrong_world_core_modules_and_junk_are_refused_on_upload() {
    let f = host();
    for (what, bytes) in [
        ("wrong world", guest("wrong_world")),
        ("core module", b"\0asm\x01\0\0\0".to_vec()),
        ("junk", b"hello, not wasm".to_vec()),
    ] {
        let err = f.host.prepare(&bytes).unwrap_err();
        assert!(matches!(err, PluginError::Invalid(_)), "{what}: {err}");
    }
    let err = f
        .host
        .prepare(&guest("wrong_world"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`transform`") && err.contains("run"), "{err}");
}

#[tokio::test]
async fn two_hundred_traps_leak_no_pool_slots() {
    let f = host_with(PluginLimits {
        max_concurrency: 4,
        ..Default::default()
    });
    let sha = f.host.prepare(&guest("hostile")).unwrap().sha256;
    for _ in 0..200 {
        let err = f
            .host
            .transform(&sha, input(&json!({}), json!({"mode": "panic"})))
            .await
            .unwrap_err();
        assert!(matches!(err, PluginError::Trap(_)), "{err}");
    }
    f.host.settle().await;
    assert_eq!(f.host.available_slots(), 4);
    // Every pool slot is still usable at once.
    let calls = (0..4).map(|_| {
        f.host
            .transform(&sha, input(&json!({}), json!({"mode": "ok"})))
    });
    for r in futures_join(calls).await {
        r.unwrap();
    }
}

#[tokio::test]
async fn prepared_instances_take_each_call_s_own_config_secrets_and_cpu_budget() {
    let f = host_with(PluginLimits {
        cpu_deadline_ms: 30,
        ..Default::default()
    });
    let sha = f.host.prepare(&guest("hostile")).unwrap().sha256;
    assert_eq!(f.host.prepared_instances(), 0);
    let ok = f
        .host
        .transform(&sha, input(&json!({"n": 1}), json!({"mode": "ok"})))
        .await
        .unwrap();
    assert_eq!(request(ok.outcome).body.as_deref(), Some(r#"{"n":1}"#));
    f.host.settle().await;
    assert_eq!(f.host.prepared_instances(), 1, "the next instance is ready");
    assert_eq!(f.host.available_slots(), f.host.limits().max_concurrency);

    // The prepared instance runs with this call's config, not the one it was prepared beside.
    let err = f
        .host
        .transform(&sha, input(&json!({}), json!({"mode": "error"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Guest(GuestError::InvalidConfig(_))),
        "{err}"
    );
    f.host.settle().await;
    // Its CPU budget starts with the call: time spent waiting prepared does not count.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let started = std::time::Instant::now();
    let err = f
        .host
        .transform(&sha, input(&json!({}), json!({"mode": "loop"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Timeout { limit_ms: 30 }),
        "{err}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(25),
        "{:?}",
        started.elapsed()
    );
    f.host.settle().await;
    let again = f
        .host
        .transform(&sha, input(&json!({"n": 2}), json!({"mode": "ok"})))
        .await
        .unwrap();
    assert_eq!(request(again.outcome).body.as_deref(), Some(r#"{"n":2}"#));

    // Unloading a plugin drops its prepared instance and gives the slot back.
    f.host.settle().await;
    assert_eq!(f.host.prepared_instances(), 1);
    f.host.unload(&sha);
    assert_eq!(f.host.prepared_instances(), 0);
    assert_eq!(f.host.available_slots(), f.host.limits().max_concurrency);
}

#[tokio::test]
async fn a_prepared_authenticator_uses_the_secrets_of_its_own_call() {
    let f = host();
    let sha = f.host.prepare(builtin("signed-header")).unwrap().sha256;
    let auth = |secret: &str| AuthInput {
        request: PreparedRequest {
            method: "POST".into(),
            url: "https://receiver.test/hook".into(),
            query: vec![],
            headers: vec![],
            body: Some("{}".into()),
        },
        delivery_id: "msg_1".into(),
        attempt: 1,
        now_ms: 1_649_367_553_000,
        secrets: vec![("token".into(), secret.into())],
        config_json: json!({"bearer_secret": "token", "secret": "token"}).to_string(),
    };
    let bearer = |out: gateway::plugin::AuthOutput| {
        out.add_headers
            .into_iter()
            .find(|(n, _)| n == "Authorization")
            .map(|(_, v)| v)
    };
    let first = f.host.authenticate(&sha, auth("one")).await.unwrap();
    assert_eq!(bearer(first).as_deref(), Some("Bearer one"));
    f.host.settle().await;
    assert_eq!(f.host.prepared_instances(), 1);
    let second = f.host.authenticate(&sha, auth("two")).await.unwrap();
    assert_eq!(bearer(second).as_deref(), Some("Bearer two"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_instances_give_their_slots_to_running_calls() {
    let f = host_with(PluginLimits {
        max_concurrency: 4,
        cpu_deadline_ms: 200,
        ..Default::default()
    });
    let hostile = f.host.prepare(&guest("hostile")).unwrap().sha256;
    let slack = f.host.prepare(builtin("slack")).unwrap().sha256;
    for sha in [&hostile, &slack] {
        f.host
            .transform(
                sha,
                input(&squadcast("incident_triggered"), json!({"mode": "ok"})),
            )
            .await
            .unwrap();
        f.host.settle().await;
    }
    // Prepared instances hold at most half of the slots.
    assert_eq!(f.host.prepared_instances(), 2);
    // Four calls at once need all four slots: the prepared instances make way, no call is busy.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (host, sha) = (f.host.clone(), hostile.clone());
            tokio::spawn(async move {
                host.transform(&sha, input(&json!({}), json!({"mode": "loop"})))
                    .await
            })
        })
        .collect();
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, PluginError::Timeout { .. }), "{err}");
    }
    f.host.settle().await;
    assert_eq!(f.host.available_slots(), 4);
}

async fn futures_join<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futs.collect::<Vec<_>>() {
        out.push(f.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_answers_busy() {
    let f = host_with(PluginLimits {
        max_concurrency: 1,
        cpu_deadline_ms: 300,
        ..Default::default()
    });
    let sha = f.host.prepare(&guest("hostile")).unwrap().sha256;
    let host = f.host.clone();
    let sha2 = sha.clone();
    let looping = tokio::spawn(async move {
        host.transform(&sha2, input(&json!({}), json!({"mode": "loop"})))
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = f
        .host
        .transform(&sha, input(&json!({}), json!({"mode": "ok"})))
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Busy(1)), "{err}");
    assert!(err.is_transient());
    assert!(matches!(
        looping.await.unwrap(),
        Err(PluginError::Timeout { .. })
    ));
    f.host
        .transform(&sha, input(&json!({}), json!({"mode": "ok"})))
        .await
        .unwrap();
}

#[tokio::test]
async fn oversized_input_is_refused_before_running() {
    let f = host_with(PluginLimits {
        max_input_bytes: 100,
        ..Default::default()
    });
    let sha = f.host.prepare(&guest("hostile")).unwrap().sha256;
    let err = f
        .host
        .transform(&sha, input(&json!({"x": "y".repeat(200)}), json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PluginError::InputTooLarge { limit: 100, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_and_wrong_kind_plugins_are_refused() {
    let f = host();
    let err = f
        .host
        .transform(&"0".repeat(64), input(&json!({}), json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::NotLoaded(_)), "{err}");
    let auth = f.host.prepare(builtin("signed-header")).unwrap().sha256;
    let err = f
        .host
        .transform(&auth, input(&json!({}), json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::WrongKind {
                expected: "transformer",
                actual: "authenticator"
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn chain_passes_the_previous_request_and_stops_at_a_skip() {
    let f = host();
    let echo = f.host.prepare(&guest("hostile")).unwrap().sha256;
    let template = f.host.prepare(builtin("template")).unwrap().sha256;
    let steps = [
        ChainStep {
            sha256: echo.clone(),
            config_json: json!({"mode": "ok"}).to_string(),
        },
        ChainStep {
            sha256: template.clone(),
            config_json: json!({"body": "{{ message }}"}).to_string(),
        },
    ];
    let out = f
        .host
        .transform_chain(
            &steps,
            &json!({"message": "hi"}).to_string(),
            context("incident.triggered"),
        )
        .await
        .unwrap();
    assert_eq!(request(out.outcome).body.as_deref(), Some("hi"));
    assert_eq!(
        out.logs,
        vec!["#1 [info] hostile guest behaving".to_string()]
    );

    let steps = [
        ChainStep {
            sha256: echo.clone(),
            config_json: json!({"mode": "skip"}).to_string(),
        },
        ChainStep {
            sha256: template,
            config_json: json!({"body": "{{ message }}"}).to_string(),
        },
    ];
    let out = f
        .host
        .transform_chain(&steps, "{}", context("incident.triggered"))
        .await
        .unwrap();
    assert_eq!(out.outcome, Transformed::Skip("hostile guest skips".into()));
}

#[tokio::test]
async fn a_new_host_loads_the_cached_artifact_without_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let sha = {
        let host = PluginHost::new(PluginLimits::default(), dir.path()).unwrap();
        host.prepare(builtin("slack")).unwrap().sha256
    };
    assert!(
        std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(&sha))
    );
    let host = PluginHost::new(PluginLimits::default(), dir.path()).unwrap();
    let kind = host
        .load(&sha, || async {
            Err(PluginError::Internal("loader must not be called".into()))
        })
        .await
        .unwrap();
    assert_eq!(kind, PluginKind::Transformer);
    let out = host
        .transform(&sha, input(&squadcast("incident_resolved"), Value::Null))
        .await
        .unwrap();
    assert!(request(out.outcome).body.unwrap().contains("Resolved"));
}

#[tokio::test]
async fn load_fetches_checks_and_compiles_unknown_plugins() {
    let f = host();
    let bytes = builtin("placeholders").to_vec();
    let sha = gateway::plugin::sha256_hex(&bytes);
    let b = bytes.clone();
    assert_eq!(
        f.host.load(&sha, || async move { Ok(b) }).await.unwrap(),
        PluginKind::Transformer
    );
    let other = "f".repeat(64);
    let err = f
        .host
        .load(&other, || async move { Ok(bytes) })
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err}");
}

#[test]
fn run_cli_prints_request_time_memory_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("hostile.wasm");
    std::fs::write(&plugin, guest("hostile")).unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"event_type": "incident_triggered", "id": "1"}"#).unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"mode": "ok"}"#).unwrap();
    let report = gateway::plugin::run_cli(&plugin, &event, Some(&config)).unwrap();
    assert!(
        report.contains("POST https://receiver.example/webhook"),
        "{report}"
    );
    assert!(report.contains("memory peak"), "{report}");
    assert!(report.contains("[info] hostile guest behaving"), "{report}");
}
