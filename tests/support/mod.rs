#![allow(dead_code)]
//! Shared helpers for the end-to-end tests: a gateway on port 0 (in-process through `run()`, or
//! the real binary as a child process), and a receiver on 127.0.0.1 that records what it got.

pub mod browser;
pub mod faults;
pub mod smtp;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gateway::clock::SharedClock;
use gateway::config::Config;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::oneshot;

/// The admin token every test gateway bootstraps.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// The master key that gateway processes sharing a PostgreSQL database seal their secrets with
/// (each data dir would otherwise make its own key file, and the second node would rightly refuse
/// to start). Gateways on SQLite use the key file in their data dir, as a fresh install does.
pub const TEST_SECRETS_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// Where the seed fixtures live.
pub fn fixture(rel: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .expect("fixture is JSON")
}

/// A config for tests: temp data dir, admin token, loopback deliveries allowed.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::defaults();
    c.data_dir = dir.to_path_buf();
    c.admin_token = ADMIN.into();
    c.allowed_networks = "127.0.0.0/8".into();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c
}

/// A gateway running in this process through `run()`.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with(|_| {}, None).await
    }

    /// Starts with a changed config and, optionally, an injected clock.
    pub async fn start_with(change: impl FnOnce(&mut Config), clock: Option<SharedClock>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        change(&mut config);
        Self::start_in(dir, config, clock).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        config: Config,
        clock: Option<SharedClock>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let mut parts = gateway::server::Parts::new(config).await.expect("parts");
        if let Some(c) = clock {
            parts.clock = c;
        }
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(gateway::server::run(parts, listener, async move {
            let _ = rx.await;
        }));
        let gw = TestGateway {
            addr,
            client: reqwest::Client::new(),
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        gw.wait_ready().await;
        gw
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gateway did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request with a token (or none) and returns status and JSON body (Null if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        call(&self.client, method, &self.url(path), token, body).await
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN), body).await
    }

    /// Creates a webhook as admin, asserting success; returns its view.
    pub async fn create_webhook(&self, body: Value) -> Value {
        let (s, v) = self
            .admin(Method::POST, "/api/v1/webhooks/", Some(&body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "create webhook: {v}");
        v
    }

    /// Posts an event as admin, asserting 202; returns its id.
    pub async fn post_event(&self, body: &Value) -> String {
        let (s, v) = self.admin(Method::POST, "/api/v1/events", Some(body)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "post event: {v}");
        v["id"].as_str().expect("event id").to_string()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), h).await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Responder = Box<dyn FnMut(&Received) -> Response + Send>;

/// A real HTTP receiver on 127.0.0.1:0 that records requests and answers as scripted (default
/// 200). Answers queued with [`Receiver::respond`] are used first, in order.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    queued: Arc<Mutex<VecDeque<Response>>>,
    fallback: Arc<Mutex<Responder>>,
    notify: Arc<tokio::sync::Notify>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            addr,
            got: Arc::default(),
            queued: Arc::default(),
            fallback: Arc::new(Mutex::new(Box::new(|_| StatusCode::OK.into_response()))),
            notify: Arc::default(),
        };
        let rc = r.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let rc = rc.clone();
                async move {
                    let rec = Received {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: uri.query().map(str::to_string),
                        headers,
                        body,
                        at: Instant::now(),
                    };
                    let queued = rc.queued.lock().pop_front();
                    let resp = match queued {
                        Some(r) => r,
                        None => (rc.fallback.lock())(&rec),
                    };
                    rc.got.lock().push(rec);
                    rc.notify.notify_waiters();
                    resp
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Queues one scripted answer.
    pub fn respond(&self, resp: impl IntoResponse) {
        self.queued.lock().push_back(resp.into_response());
    }

    /// Sets the answer used when nothing is queued.
    pub fn set_fallback(&self, f: impl FnMut(&Received) -> Response + Send + 'static) {
        *self.fallback.lock() = Box::new(f);
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().clone()
    }

    pub fn count(&self) -> usize {
        self.got.lock().len()
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.count() >= n {
                return self.received();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("receiver got {} requests, wanted {n}", self.count());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

/// The real gateway binary as a child process.
pub struct GatewayProcess {
    pub child: Child,
    /// Every line the gateway logged.
    pub logs: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl GatewayProcess {
    /// Starts `webhook-gateway serve` on a free port with `data_dir` and extra env.
    pub fn spawn(data_dir: &Path, envs: &[(&str, &str)]) -> Self {
        let exe = env!("CARGO_BIN_EXE_gateway-under-test");
        let mut cmd = Command::new(exe);
        // Only the configuration set here: inherited GATEWAY_* variables (CI's
        // GATEWAY_TEST_REQUIRE_POSTGRES, a developer's GATEWAY_LISTEN) would change or break it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GATEWAY_") {
                cmd.env_remove(k);
            }
        }
        cmd.args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("GATEWAY_ADMIN_TOKEN", ADMIN)
        .env("GATEWAY_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("GATEWAY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let shared_db = envs.iter().any(|(k, _)| *k == "GATEWAY_DATABASE_URL");
        if shared_db && !envs.iter().any(|(k, _)| *k == "GATEWAY_SECRETS_KEY") {
            cmd.env("GATEWAY_SECRETS_KEY", TEST_SECRETS_KEY);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gateway binary");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(i) = line.find("addr=") {
                    let rest = &line[i + 5..];
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                    sent = true;
                }
                if std::env::var_os("E2E_GATEWAY_LOGS").is_some() {
                    eprintln!("[gateway] {line}");
                }
                sink.lock().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gateway printed its address")
            .parse()
            .expect("address parses");
        GatewayProcess {
            child,
            logs,
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// The soft open-files limit of this process (an in-process gateway raises it at start).
pub fn fd_soft_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024)
}

/// Reads until the peer closes (Ok(0) or an error) or `limit` passes; true when it closed.
pub async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(s, &mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}
