//! Load generator for the README's figures. Starts gateways in this process (`run()` on
//! 127.0.0.1:0, each on its own runtime, as separate processes would be) and a fast local
//! receiver, then drives them over HTTP.
//!
//! ```text
//! cargo run --release -p gateway-e2e --bin loadgen -- ingest  [--events N] [--concurrency C]
//! cargo run --release -p gateway-e2e --bin loadgen -- ingest  --rate R [--seconds S]
//! cargo run --release -p gateway-e2e --bin loadgen -- deliver [--events N] [--concurrency C]
//! cargo run --release -p gateway-e2e --bin loadgen -- deliver --rate R [--seconds S]
//!   ... [--database-url postgres://...] [--nodes N] [--retention on]
//! ```
//! By default the gateway uses a temp SQLite database. `--database-url` uses PostgreSQL instead,
//! in a fresh schema that is dropped at the end; `--nodes N` starts N gateways on it, each with
//! its own data_dir, and spreads the requests round-robin over them.
//! `ingest` runs with delivery workers off (an API-only node) and measures accepted events/s and
//! the latency of the 202. `deliver` turns workers on and measures signed deliveries/s received
//! and ingest-to-receipt latency. Every event matches one webhook. `--retention on` runs the
//! pruner aggressively beside the load: every second, keeping events and attempts 2 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::http::HeaderMap;
use parking_lot::Mutex;
use serde_json::json;

const ADMIN: &str = "loadgen-admin-token-0123456789";

struct Args {
    mode: String,
    events: usize,
    concurrency: usize,
    rate: Option<u64>,
    seconds: u64,
    database_url: Option<String>,
    nodes: usize,
    /// Shape every delivery with the `template` plugin (a WebAssembly call per delivery).
    template: bool,
    /// Prune every second with a 2 s retention while the load runs.
    retention: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().context(
        "usage: loadgen ingest|deliver [--events N] [--concurrency C] [--rate R --seconds S] [--database-url URL] [--nodes N] [--template on] [--retention on]",
    )?;
    let mut a = Args {
        mode,
        events: 50_000,
        concurrency: 64,
        rate: None,
        seconds: 10,
        database_url: None,
        nodes: 1,
        template: false,
        retention: false,
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--events" => a.events = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            "--rate" => a.rate = Some(v.parse()?),
            "--seconds" => a.seconds = v.parse()?,
            "--database-url" => a.database_url = Some(v),
            "--nodes" => a.nodes = v.parse()?,
            "--template" => a.template = v == "on",
            "--retention" => a.retention = v == "on",
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    anyhow::ensure!(a.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        a.nodes == 1 || a.database_url.is_some(),
        "--nodes > 1 needs --database-url (nodes share one database)"
    );
    Ok(a)
}

/// A fresh schema for this run: the URL that selects it, and its name (to drop it afterwards).
fn fresh_schema(url: &str) -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!("loadgen_{}_{nanos:x}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    (
        format!("{url}{sep}options=-csearch_path%3D{schema}"),
        schema,
    )
}

/// One gateway on its own runtime; dropping the runtime stops it.
struct Node {
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn start_node(database_url: Option<&str>, deliver: bool, retention: bool) -> anyhow::Result<Node> {
    let dir = tempfile::tempdir()?;
    // GATEWAY_* variables apply (e.g. GATEWAY_DELIVERY__WORKERS), as for the real binary.
    let mut config = gateway::config::Config::load(None, &gateway::config::Overrides::default())?;
    config.data_dir = dir.path().to_path_buf();
    config.database_url = database_url.unwrap_or_default().to_string();
    config.admin_token = ADMIN.into();
    config.allowed_networks = "127.0.0.0/8".into();
    config.log = "warn".into();
    config.delivery.enabled = deliver;
    if retention {
        config.retention.events_secs = 2;
        config.retention.attempts_secs = 2;
        config.retention.interval_secs = 1;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let parts = rt.block_on(gateway::server::Parts::new(config))?;
    rt.spawn(gateway::server::run(
        parts,
        listener,
        std::future::pending(),
    ));
    Ok(Node {
        addr,
        _rt: rt,
        _dir: dir,
    })
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(label: &str, mut lat: Vec<Duration>, elapsed: Duration, count: usize) {
    lat.sort();
    println!(
        "{label}: {count} in {:.2}s = {:.0}/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.90).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// Receipt times by event sequence number (from the body's `seq`).
type Receipts = Arc<Mutex<Vec<(u64, Instant)>>>;

async fn start_receiver(receipts: Receipts) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(move |_h: HeaderMap, body: Bytes| {
        let receipts = receipts.clone();
        async move {
            let now = Instant::now();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(seq) = v["seq"].as_u64()
            {
                receipts.lock().push((seq, now));
            }
            "ok"
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let deliver = match args.mode.as_str() {
        "ingest" => false,
        "deliver" => true,
        other => anyhow::bail!("unknown mode {other} (ingest or deliver)"),
    };
    let db = args.database_url.as_deref().map(fresh_schema);
    let db_url = db.as_ref().map(|(url, _)| url.as_str());
    let store = match db_url {
        Some(_) => format!("PostgreSQL, {} node(s)", args.nodes),
        None => "SQLite".into(),
    };
    let pruning = if args.retention {
        ", retention pruning every second"
    } else {
        ""
    };
    println!("{} on {store}{pruning}", args.mode);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let receipts: Receipts = Arc::default();
    let receiver = rt.block_on(start_receiver(receipts.clone()))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    // The first node creates the schema and the webhook; the others start after, so they load it.
    let template = args.template;
    let mut nodes = vec![start_node(db_url, deliver, args.retention)?];
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = client
            .post(format!("http://{}/api/v1/webhooks/", nodes[0].addr))
            .header("Authorization", ADMIN)
            .json(&{
                let mut w = json!({"name": "bench", "url": format!("http://{receiver}/hook"), "trigger_events": ["incident.triggered"]});
                if template {
                    // The receiver still finds `seq` in what the plugin renders.
                    w["plugins"] = json!([{"name": "template", "config": {"body": "{\"seq\": {{ seq }}, \"text\": {{ message | tojson }}, \"service\": {{ service.id | tojson }}}"}}]);
                }
                w
            })
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "creating the webhook: {}", r.text().await?);
        if deliver {
            // Warm-up, not measured: the first delivery opens connections and, with a plugin,
            // waits for its one-time compile.
            let warm = json!({"event_type": "incident_triggered", "seq": u64::MAX, "message": "warm-up", "service": {"id": "S1"}});
            client.post(format!("http://{}/api/v1/events", nodes[0].addr)).header("Authorization", ADMIN).json(&warm).send().await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while receipts.lock().is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            receipts.lock().clear();
        }
        anyhow::Ok(())
    })?;
    for _ in 1..args.nodes {
        nodes.push(start_node(db_url, deliver, args.retention)?);
    }
    let urls: Arc<Vec<String>> = Arc::new(
        nodes
            .iter()
            .map(|n| format!("http://{}/api/v1/events", n.addr))
            .collect(),
    );
    let drop_after = args
        .database_url
        .clone()
        .zip(db.as_ref().map(|(_, schema)| schema.clone()));

    rt.block_on(async move {
        let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(Vec::new()));
        let post = {
            let (client, urls, sent_at) = (client.clone(), urls.clone(), sent_at.clone());
            move |seq: u64| {
                let (client, urls, sent_at) = (client.clone(), urls.clone(), sent_at.clone());
                async move {
                    let body = json!({"event_type": "incident_triggered", "seq": seq, "message": "load", "service": {"id": "S1"}});
                    let url = &urls[seq as usize % urls.len()];
                    let t0 = Instant::now();
                    let r = client.post(url).header("Authorization", ADMIN).json(&body).send().await;
                    let ok = matches!(&r, Ok(r) if r.status() == 202);
                    let mut s = sent_at.lock();
                    if s.len() <= seq as usize {
                        s.resize(seq as usize + 1, None);
                    }
                    s[seq as usize] = Some(t0);
                    (ok, t0.elapsed())
                }
            }
        };
        let started = Instant::now();
        let mut lat = Vec::new();
        let mut ok = 0usize;
        match args.rate {
            None => {
                // Closed loop: `concurrency` clients, back to back.
                let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let mut tasks = Vec::new();
                for _ in 0..args.concurrency {
                    let (next, post, events) = (next.clone(), post.clone(), args.events as u64);
                    tasks.push(tokio::spawn(async move {
                        let mut out = Vec::new();
                        loop {
                            let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if seq >= events {
                                return out;
                            }
                            out.push(post(seq).await);
                        }
                    }));
                }
                for t in tasks {
                    for (good, l) in t.await? {
                        ok += good as usize;
                        lat.push(l);
                    }
                }
            }
            Some(rate) => {
                // Open loop: a request every 1/rate seconds, whatever the answers.
                let total = rate * args.seconds;
                let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut tasks = Vec::with_capacity(total as usize);
                for seq in 0..total {
                    tick.tick().await;
                    tasks.push(tokio::spawn(post.clone()(seq)));
                }
                for t in tasks {
                    let (good, l) = t.await?;
                    ok += good as usize;
                    lat.push(l);
                }
            }
        }
        let elapsed = started.elapsed();
        report("ingest (202 received)", lat, elapsed, ok);
        if deliver {
            let deadline = Instant::now() + Duration::from_secs(120);
            while receipts.lock().len() < ok && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let done = started.elapsed();
            let rec = receipts.lock().clone();
            let sent = sent_at.lock().clone();
            let e2e: Vec<Duration> = rec
                .iter()
                .filter_map(|(seq, at)| sent.get(*seq as usize).copied().flatten().map(|t0| at.saturating_duration_since(t0)))
                .collect();
            report("delivered (ingest to receipt)", e2e, done, rec.len());
        }
        anyhow::Ok(())
    })?;
    drop(nodes);
    if let Some((url, schema)) = drop_after {
        rt.block_on(gateway::store::suite::drop_schema(&url, &schema))?;
    }
    Ok(())
}
