//! Per-call cost of a transformer plugin (fresh store + instance + call) against the same
//! transform written in native Rust, and throughput with 2 tokio workers.
//!
//! Run: `cargo bench -p webhook-gateway --bench plugin_call` (release build). Optional env:
//! `PLUGIN_BENCH_CALLS` (default 5000 per latency case), `PLUGIN_BENCH_SECS` (default 3, for the
//! throughput case). Plain std timing with percentiles; no harness.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway::plugin::{
    PluginContext, PluginHost, PluginLimits, TransformInput, Transformed, builtin_plugins,
};
use serde_json::{Value, json};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn squadcast_event() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/squadcast/incident_triggered.json"
    ))
    .expect("squadcast fixture")
}

fn context() -> PluginContext {
    PluginContext {
        webhook_id: "wh_bench".into(),
        webhook_name: "bench".into(),
        event_type: "incident.triggered".into(),
        delivery_id: "msg_bench".into(),
        url: "https://hooks.slack.test/x".into(),
        method: "POST".into(),
        now_ms: 1_700_000_000_000,
        attempt: 1,
        previous: None,
    }
}

/// The slack plugin's transform, natively: the plugin crate's own code (event read, message
/// built and serialized), compiled for the host instead of wasm32-wasip2.
fn native_slack(event_json: &str, ctx: &gateway_sdk::Context) -> String {
    use gateway_sdk::Transformer;
    let event = gateway_sdk::Event::from_json_unchecked(event_json.to_string());
    match slack::Slack::transform(&event, ctx, &Value::Null).unwrap() {
        gateway_sdk::Outcome::Send(r) => r.body.unwrap(),
        gateway_sdk::Outcome::Skip(reason) => panic!("skipped: {reason}"),
    }
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        mean,
    }
}

fn print(name: &str, s: &Stats) {
    println!(
        "{name:<52} p50 {:>8.1} us   p99 {:>8.1} us   mean {:>8.1} us",
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.mean.as_secs_f64() * 1e6
    );
}

fn main() {
    let calls = env_num("PLUGIN_BENCH_CALLS", 5000) as usize;
    let secs = env_num("PLUGIN_BENCH_SECS", 3);
    let event = squadcast_event();
    let dir = std::env::temp_dir().join(format!("plugin-bench-{}", std::process::id()));
    let host = PluginHost::new(PluginLimits::default(), &dir).unwrap();
    let bytes = |name: &str| {
        builtin_plugins()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
            .bytes
    };
    let slack = host.prepare(bytes("slack")).unwrap().sha256;
    let template = host.prepare(bytes("template")).unwrap().sha256;
    let grafana_config = json!({"body": "{\"labels\" : {{ alert_payload.commonLabels | tojson()}}, \"text\": {{ message | tojson }}}"}).to_string();
    let grafana_event = json!({
        "message": "Sample incident",
        "alert_payload": {"commonLabels": {"job": "node", "severity": "critical", "alertname": "InstanceDown"}}
    })
    .to_string();

    println!(
        "plugin_call: {calls} calls per latency case, release build, {} cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Native floor: the same plugin code, same input (the SDK's entry glue converts the WIT
    // context into this one).
    let native_ctx = {
        let c = context();
        gateway_sdk::Context {
            webhook_id: c.webhook_id,
            webhook_name: c.webhook_name,
            event_type: c.event_type,
            delivery_id: c.delivery_id,
            url: c.url,
            method: c.method,
            now_ms: c.now_ms,
            attempt: c.attempt,
            previous: None,
        }
    };
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        std::hint::black_box(native_slack(
            std::hint::black_box(&event),
            std::hint::black_box(&native_ctx),
        ));
        samples.push(t.elapsed());
    }
    print("native Rust slack transform", &stats(samples));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let input = |config: &str, event: &str| TransformInput {
        event_json: event.to_string(),
        context: context(),
        config_json: config.to_string(),
    };

    // `Spaced`: the last call's recycling task has dropped its store and prepared the next
    // instance before the call starts (calls of one plugin not closer than ~20 us);
    // `BackToBack`: the next call starts at once and races that task (when it finds no prepared
    // instance it instantiates inline).
    #[derive(Clone, Copy, PartialEq)]
    enum Pace {
        Spaced,
        BackToBack,
    }
    for (name, sha, config, ev, pace) in [
        (
            "wasm slack, prepared instance + call",
            &slack,
            "null",
            event.as_str(),
            Pace::Spaced,
        ),
        (
            "wasm slack, back-to-back calls",
            &slack,
            "null",
            event.as_str(),
            Pace::BackToBack,
        ),
        (
            "wasm template/minijinja, prepared instance + call",
            &template,
            grafana_config.as_str(),
            grafana_event.as_str(),
            Pace::Spaced,
        ),
    ] {
        // The calls run in a task on a runtime worker, as deliveries do (a recycling task spawned
        // there lands on the same worker without waking another thread).
        let (host, sha, input) = (host.clone(), sha.clone(), input(config, ev));
        let samples = rt
            .block_on(rt.spawn(async move {
                // Warm-up.
                for _ in 0..100 {
                    host.transform(&sha, input.clone()).await.unwrap();
                }
                let mut samples = Vec::with_capacity(calls);
                for _ in 0..calls {
                    if pace == Pace::Spaced {
                        host.settle().await;
                    }
                    let call = input.clone();
                    let t = Instant::now();
                    let out = host.transform(&sha, call).await.unwrap();
                    samples.push(t.elapsed());
                    assert!(matches!(out.outcome, Transformed::Request(_)));
                }
                samples
            }))
            .unwrap();
        print(name, &stats(samples));
    }

    // Throughput: 2 tokio workers, 8 tasks calling the slack plugin in a loop.
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (host, slack, event, done) =
                    (host.clone(), slack.clone(), event.clone(), done.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let i = TransformInput {
                            event_json: event.clone(),
                            context: context(),
                            config_json: "null".into(),
                        };
                        host.transform(&slack, i).await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let n = done.load(Ordering::Relaxed);
    println!(
        "wasm slack throughput, 2 tokio workers, 8 tasks: {:.0} calls/s ({n} calls in {secs} s)",
        n as f64 / secs as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
