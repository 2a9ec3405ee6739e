//! Server limits (the slowloris test runs alone in the `load` test binary: `slowloris.rs`): the
//! connection cap answers 503 without hurting open connections, late bodies get 408, the
//! gateway's own descriptor exhaustion never disables a webhook, and the keep-alive race costs no
//! retry. (`/metrics`, test sends and problem bodies: `hardening_api.rs`.)

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{ADMIN, Receiver, TestGateway, closed_within};

const WAIT: Duration = Duration::from_secs(15);

/// Reads one HTTP response head and body (Content-Length framed) from a raw connection.
async fn read_response(s: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let status = head[9..12].parse().unwrap();
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            return (status, head, body);
        }
        let n = s.read(&mut chunk).await.expect("read head");
        assert!(
            n > 0,
            "closed before a response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_late_bodies_and_the_connection_cap() {
    let gw = TestGateway::start_with(
        |c| {
            c.server.idle_timeout_secs = 1;
            c.server.body_read_timeout_secs = 1;
            c.server.max_connections = 4;
            c.delivery.enabled = false;
        },
        None,
    )
    .await;
    // A kept-alive connection idle past idle_timeout is closed.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut s).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 2"),
        "{head}"
    );
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    drop(s);

    // A body that stops arriving gets a 408 problem after body_read_timeout.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        format!("POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event_type\":")
            .as_bytes(),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let (status, head, body) = read_response(&mut s).await;
    assert_eq!(status, 408, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("application/problem+json")
    );
    assert!(body.contains("body_read_timeout_secs"), "{body}");
    assert!(t.elapsed() >= Duration::from_millis(800) && t.elapsed() < Duration::from_secs(5));
    drop(s);
    // Let the server notice the closed connections before counting slots.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The cap: four open connections; a fifth is answered 503 and closed; the four still work.
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut s).await.0, 200);
        open.push(s);
    }
    let mut extra = TcpStream::connect(gw.addr).await.unwrap();
    let (status, _, body) = read_response(&mut extra).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_connections"), "{body}");
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await);
    for s in &mut open {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(s).await.0, 200);
    }
    // Closing one frees its slot.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = reqwest::get(gw.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(open);
    gw.stop().await;
}

/// A receiver that answers the first request of each connection with `200` and Content-Length
/// (no `Connection: close`), then closes the connection when the next request arrives on it,
/// without answering: the keep-alive race, made deterministic. Counts answers and drops.
async fn closing_receiver() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (a, d) = (answered.clone(), dropped.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (a, d) = (a.clone(), d.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // One whole request: head, then Content-Length bytes.
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
                a.fetch_add(1, Ordering::SeqCst);
                // The next request on this connection is read and dropped, unanswered.
                if let Ok(n) = s.read(&mut chunk).await
                    && n > 0
                {
                    d.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, answered, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_race_costs_no_retry() {
    let (addr, answered, dropped) = closing_receiver().await;
    let gw = TestGateway::start().await;
    gw.create_webhook(
        json!({"name": "race", "url": format!("http://{addr}/hook"), "trigger_events": ["*"],
        "retry": {"type": "fixed", "count": 3, "interval_secs": 1800}}),
    )
    .await;
    let n = 6;
    for i in 0..n {
        let id = gw
            .post_event(&json!({"event_type": "incident.triggered", "n": i}))
            .await;
        // One at a time, so each delivery finds the previous one's pooled connection.
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, e) = gw
                .admin(Method::GET, &format!("/api/v1/events/{id}"), None)
                .await;
            let d = &e["deliveries"][0];
            if d["status"] == "succeeded" {
                assert_eq!(d["attempts"], 1, "delivery {i} needed a retry: {d}");
                break;
            }
            assert!(
                d["status"] != "pending" || d["attempts"] == 0,
                "delivery {i} was scheduled for a retry: {d}"
            );
            assert!(
                Instant::now() < deadline,
                "delivery {i} never succeeded: {d}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(answered.load(Ordering::SeqCst), n);
    assert!(
        dropped.load(Ordering::SeqCst) >= 1,
        "the race never happened: the test proves nothing"
    );
    gw.stop().await;
}

/// The real binary under `prlimit`, so its open-files limit is small.
struct LimitedGateway {
    child: Child,
    addr: SocketAddr,
}

impl LimitedGateway {
    fn spawn(dir: &std::path::Path, nofile: u64, envs: &[(&str, &str)]) -> Option<Self> {
        if Command::new("prlimit").arg("--version").output().is_err() {
            return None;
        }
        let mut cmd = Command::new("prlimit");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GATEWAY_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_gateway-under-test"))
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
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
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gateway under prlimit");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("E2E_GATEWAY_LOGS").is_some() {
                    eprintln!("[gateway] {line}");
                }
                if let Some(i) = line.find("addr=")
                    && let Some(tx) = tx.take()
                {
                    let a = line[i + 5..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(a);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gateway printed its address")
            .parse()
            .unwrap();
        Some(LimitedGateway { child, addr })
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn url(&self, p: &str) -> String {
        format!("http://{}{p}", self.addr)
    }
}

impl Drop for LimitedGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_descriptors_never_disable_a_healthy_webhook() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let nofile = 256u64;
    let Some(gw) = LimitedGateway::spawn(
        dir.path(),
        nofile,
        &[
            // Explicit, so the flood below can take every descriptor; slow clients stay open.
            ("GATEWAY_SERVER__MAX_CONNECTIONS", "100000"),
            ("GATEWAY_SERVER__HEADER_READ_TIMEOUT_SECS", "60"),
        ],
    ) else {
        println!("skipped: prlimit is not installed");
        return;
    };
    // One kept-alive connection made before the flood, for the API calls during it.
    let api = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let call = |m: Method, p: &str, b: Option<Value>| {
        let mut r = api.request(m, gw.url(p)).header("Authorization", ADMIN);
        if let Some(b) = b {
            r = r.json(&b);
        }
        async move {
            let r = r
                .send()
                .await
                .expect("API call over the kept-alive connection");
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Any failure that counted would disable it at once: no retries, disabled after one failure.
    let (s, w) = call(
        Method::POST,
        "/api/v1/webhooks/",
        Some(
            json!({"name": "healthy", "url": rx.url("/ok"), "trigger_events": ["*"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 1},
            "auto_disable": {"after_failures": 1, "after_days": null}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let wid = w["id"].as_str().unwrap().to_string();

    // Flood: idle connections until the gateway has no descriptor left. The gateway may free a
    // descriptor of its own at any moment (a pooled reader, a background task), letting an
    // attempt through before the flood takes it back; such a round proves nothing and is
    // repeated with the flood topped up (at most three rounds).
    let mut flood = Vec::new();
    let mut delivered_early = 0usize;
    let mut round = 0;
    let (eid, d) = loop {
        round += 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        while gw.open_fds() < nofile as usize && Instant::now() < deadline {
            for _ in 0..32 {
                if let Ok(s) = TcpStream::connect(gw.addr).await {
                    flood.push(s);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            gw.open_fds() >= nofile as usize,
            "could not exhaust the gateway's descriptors ({} of {nofile})",
            gw.open_fds()
        );
        let (s, e) = call(
            Method::POST,
            "/api/v1/events",
            Some(json!({"event_type": "incident.triggered"})),
        )
        .await;
        assert_eq!(s, 202, "{e}");
        let eid = e["id"].as_str().unwrap().to_string();
        // Attempts fail for want of a descriptor, are logged as the gateway's own, and retried
        // soon.
        let deadline = Instant::now() + WAIT;
        let d = loop {
            let (_, e) = call(Method::GET, &format!("/api/v1/events/{eid}"), None).await;
            let d = e["deliveries"][0].clone();
            if d["attempts"].as_u64().unwrap_or(0) >= 2
                || (d["status"] == "succeeded" && d["attempts"] == 1)
            {
                break d;
            }
            assert!(Instant::now() < deadline, "no retried attempt: {d}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if d["status"] == "succeeded" && d["attempts"] == 1 && round < 3 {
            // A descriptor was free when the attempt ran: not the case under test.
            delivered_early += 1;
            continue;
        }
        break (eid, d);
    };
    assert_eq!(d["status"], "pending", "{d}");
    let err = d["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("EMFILE") && err.contains("not the receiver"),
        "{err}"
    );
    let (_, w) = call(Method::GET, &format!("/api/v1/webhooks/{wid}/"), None).await;
    assert_eq!(w["is_webhook_enabled"], true, "{w}");
    assert_eq!(rx.count(), delivered_early);

    // Descriptors free up: the delivery arrives, the webhook was never disabled.
    drop(flood);
    rx.wait_for(delivered_early + 1, Duration::from_secs(20))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, e) = call(Method::GET, &format!("/api/v1/events/{eid}"), None).await;
        if e["deliveries"][0]["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, w) = call(Method::GET, &format!("/api/v1/webhooks/{wid}/"), None).await;
    assert_eq!(w["is_webhook_enabled"], true, "{w}");
}
