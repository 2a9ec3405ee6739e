//! `webhook-gateway plugin run`: runs a plugin file once against an event file and prints what it
//! produced, with time, memory and the plugin's log lines. For plugin authors' inner loop.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::{
    AuthInput, PluginContext, PluginHost, PluginKind, PluginLimits, TransformInput, Transformed,
};
use crate::model::PreparedRequest;

/// Runs the plugin at `plugin_path` on the event JSON at `event_path` with the optional config
/// JSON, and returns the report to print. Creates its own runtime: call it from synchronous code
/// (the CLI); async callers use [`run_file`].
///
/// For an authenticator the request is `POST https://receiver.example/webhook` with the event as
/// body, and secrets come from the config's `"$secrets": {"name": "value"}` (a CLI-only key,
/// removed before the plugin sees the config).
pub fn run_cli(
    plugin_path: &Path,
    event_path: &Path,
    config_path: Option<&Path>,
) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_file(plugin_path, event_path, config_path))
}

/// What `plugin run` may change: limits, the context the plugin sees, and how many calls to time.
/// Every field is optional; `None` keeps the default.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Calls to make; with more than one the report gives p50 / p99 per call.
    pub repeat: Option<u32>,
    pub memory_mib: Option<usize>,
    pub cpu_ms: Option<u64>,
    pub event_type: Option<String>,
    pub webhook_name: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub attempt: Option<u32>,
    pub now_ms: Option<i64>,
}

/// The async body of [`run_cli`].
pub async fn run_file(
    plugin_path: &Path,
    event_path: &Path,
    config_path: Option<&Path>,
) -> anyhow::Result<String> {
    run_with(plugin_path, event_path, config_path, &RunOptions::default()).await
}

/// [`run_file`] with limits, context fields and a repeat count from `options`. Relative paths are
/// taken from the current folder.
pub async fn run_with(
    plugin_path: &Path,
    event_path: &Path,
    config_path: Option<&Path>,
    options: &RunOptions,
) -> anyhow::Result<String> {
    let bytes = std::fs::read(plugin_path)
        .with_context(|| format!("reading plugin {}", plugin_path.display()))?;
    let event_json = std::fs::read_to_string(event_path)
        .with_context(|| format!("reading event {}", event_path.display()))?;
    let event: serde_json::Value = serde_json::from_str(&event_json)
        .with_context(|| format!("{} is not JSON", event_path.display()))?;
    let mut config: serde_json::Value = match config_path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?
        }
        None => serde_json::Value::Null,
    };
    let secrets: Vec<(String, String)> = config
        .as_object_mut()
        .and_then(|m| m.remove("$secrets"))
        .and_then(|s| s.as_object().cloned())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();

    let cache = std::env::temp_dir().join("webhook-gateway-plugin-cache");
    let mut limits = PluginLimits::default();
    if let Some(m) = options.memory_mib {
        anyhow::ensure!(m > 0, "--memory-mib must be at least 1");
        limits.memory_bytes = m << 20;
    }
    if let Some(ms) = options.cpu_ms {
        anyhow::ensure!(ms > 0, "--cpu-ms must be at least 1");
        limits.cpu_deadline_ms = ms;
    }
    let repeat = options.repeat.unwrap_or(1);
    anyhow::ensure!(repeat > 0, "--repeat must be at least 1");
    // Counting fuel gives a cost that does not move with the machine's load.
    let host = PluginHost::counting_fuel(limits, &cache)?;
    let started = std::time::Instant::now();
    let prepared = host.prepare(&bytes)?;
    let load_time = started.elapsed();
    let now_ms = options.now_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    let attempt = options.attempt.unwrap_or(1);
    let url = options
        .url
        .clone()
        .unwrap_or_else(|| "https://receiver.example/webhook".into());
    let method = options.method.clone().unwrap_or_else(|| "POST".into());
    let raw_type = event
        .get("event_type")
        .and_then(|v| v.as_str())
        .unwrap_or("custom");
    let event_type = match &options.event_type {
        Some(t) => t.clone(),
        None => {
            crate::model::event::canonical_type(raw_type).unwrap_or_else(|_| raw_type.to_string())
        }
    };

    let mut out = String::new();
    writeln!(
        out,
        "plugin: {} ({}, sha256 {})",
        plugin_path.display(),
        prepared.kind.as_str(),
        prepared.sha256
    )?;
    let mut times = Vec::with_capacity(repeat as usize);
    let mut fuels = Vec::with_capacity(repeat as usize);
    let (logs, elapsed, memory) = match prepared.kind {
        PluginKind::Transformer => {
            let context = PluginContext {
                webhook_id: "wh_cli".into(),
                webhook_name: options
                    .webhook_name
                    .clone()
                    .unwrap_or_else(|| "plugin run".into()),
                event_type,
                delivery_id: "msg_cli".into(),
                url,
                method,
                now_ms,
                attempt,
                previous: None,
            };
            let input = TransformInput {
                event_json,
                context,
                config_json: config.to_string(),
            };
            let mut result = host.transform(&prepared.sha256, input.clone()).await?;
            times.push(result.elapsed);
            fuels.extend(result.fuel);
            for _ in 1..repeat {
                result = host.transform(&prepared.sha256, input.clone()).await?;
                times.push(result.elapsed);
                fuels.extend(result.fuel);
            }
            match &result.outcome {
                Transformed::Request(r) => write_request(&mut out, r)?,
                Transformed::Skip(reason) => writeln!(out, "skip: {reason}")?,
            }
            (result.logs, result.elapsed, result.memory_peak_bytes)
        }
        PluginKind::Authenticator => {
            let request = PreparedRequest {
                method,
                url,
                query: vec![],
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(event_json),
            };
            let input = AuthInput {
                request,
                delivery_id: "msg_cli".into(),
                attempt,
                now_ms,
                secrets,
                config_json: config.to_string(),
            };
            let mut result = host.authenticate(&prepared.sha256, input.clone()).await?;
            times.push(result.elapsed);
            fuels.extend(result.fuel);
            for _ in 1..repeat {
                result = host.authenticate(&prepared.sha256, input.clone()).await?;
                times.push(result.elapsed);
                fuels.extend(result.fuel);
            }
            writeln!(out, "adds headers:")?;
            for (k, v) in &result.add_headers {
                writeln!(out, "  {k}: {v}")?;
            }
            writeln!(out, "adds query:")?;
            for (k, v) in &result.add_query {
                writeln!(out, "  {k}={v}")?;
            }
            (result.logs, result.elapsed, result.memory_peak_bytes)
        }
    };
    writeln!(out, "---")?;
    writeln!(
        out,
        "time: {:.3} ms (compile/load {:.1} ms), memory peak: {:.2} MiB",
        elapsed.as_secs_f64() * 1000.0,
        load_time.as_secs_f64() * 1000.0,
        memory as f64 / (1 << 20) as f64
    )?;
    if repeat > 1 {
        times.sort();
        let ms = |q: f64| {
            let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
            times[i].as_secs_f64() * 1000.0
        };
        writeln!(
            out,
            "calls: {repeat}, per call p50 {:.3} ms, p99 {:.3} ms",
            ms(0.50),
            ms(0.99)
        )?;
    }
    if !fuels.is_empty() {
        fuels.sort_unstable();
        writeln!(
            out,
            "fuel per call: {} (min {}, max {}; about one unit per guest instruction, repeatable)",
            fuels[fuels.len() / 2],
            fuels[0],
            fuels[fuels.len() - 1]
        )?;
    }
    writeln!(out, "logs ({}):", logs.len())?;
    for line in logs {
        writeln!(out, "  {line}")?;
    }
    Ok(out)
}

fn write_request(out: &mut String, r: &PreparedRequest) -> std::fmt::Result {
    let mut url = r.url.clone();
    if !r.query.is_empty()
        && let Ok(mut u) = url::Url::parse(&r.url)
    {
        u.query_pairs_mut()
            .extend_pairs(r.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        url = u.to_string();
    }
    writeln!(out, "{} {url}", r.method)?;
    for (k, v) in &r.headers {
        writeln!(out, "{k}: {v}")?;
    }
    if let Some(body) = &r.body {
        writeln!(out)?;
        writeln!(out, "{body}")?;
    }
    Ok(())
}
