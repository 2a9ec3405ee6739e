//! The slowloris test: 200 clients trickling headers a byte a second and 2,000 idle connections
//! while a normal client posts events. It measures a latency (p99 under a second), so it lives in
//! its own test binary (`load`): cargo runs test binaries one after another, so no other test
//! shares the two cores with it while it measures.

#[path = "../support/mod.rs"]
pub mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{ADMIN, TestGateway, closed_within, fd_soft_limit};

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_clients_do_not_starve_normal_clients() {
    let gw = TestGateway::start_with(
        |c| {
            c.server.header_read_timeout_secs = 2;
            c.delivery.enabled = false;
        },
        None,
    )
    .await;
    // Both ends of every connection live in this process.
    let limit = fd_soft_limit();
    let (mut slow_n, mut idle_n) = (200usize, 2000usize);
    if limit < 5000 {
        let scale = (limit.saturating_sub(400) as f64 / 4400.0).clamp(0.05, 1.0);
        slow_n = (slow_n as f64 * scale) as usize;
        idle_n = (idle_n as f64 * scale) as usize;
        println!(
            "open-files limit {limit}: scaled down to {slow_n} slow and {idle_n} idle clients"
        );
    }
    let addr = gw.addr;
    let started = Instant::now();
    let mut idle = Vec::with_capacity(idle_n);
    for _ in 0..idle_n {
        idle.push(TcpStream::connect(addr).await.expect("idle connect"));
    }
    let slow: Vec<_> = (0..slow_n)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("slow connect");
                let t0 = Instant::now();
                let head =
                    b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa";
                for b in head.iter().cycle() {
                    if s.write_all(&[*b]).await.is_err() {
                        return Some(t0.elapsed());
                    }
                    if closed_within(&mut s, Duration::from_secs(1)).await {
                        return Some(t0.elapsed());
                    }
                    if t0.elapsed() > Duration::from_secs(12) {
                        return None;
                    }
                }
                None
            })
        })
        .collect();
    // A normal client meanwhile: 202s quickly, and /healthz.
    let client = reqwest::Client::new();
    let mut lat = Vec::new();
    let normal_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < normal_until {
        let t = Instant::now();
        let r = client
            .post(gw.url("/api/v1/events"))
            .header("Authorization", ADMIN)
            .json(&json!({"event_type": "incident.triggered", "n": lat.len()}))
            .send()
            .await
            .expect("normal client post");
        assert_eq!(r.status(), 202);
        lat.push(t.elapsed());
        let h = client
            .get(gw.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(h.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worst = p99(lat.clone());
    println!(
        "{} posts among {slow_n} slow and {idle_n} idle clients: p99 {worst:?}",
        lat.len()
    );
    assert!(lat.len() >= 20, "only {} posts in 4 s", lat.len());
    let mut slowest = lat.clone();
    slowest.sort();
    assert!(
        worst < Duration::from_secs(1),
        "p99 {worst:?}; slowest: {:?}",
        &slowest[slowest.len().saturating_sub(5)..]
    );
    // Every slow client was cut off after the 2 s header timeout (not refused at once).
    for h in slow {
        let t = h
            .await
            .unwrap()
            .expect("a slow client was never disconnected");
        assert!(
            t >= Duration::from_millis(1500) && t < Duration::from_secs(6),
            "slow client closed after {t:?}"
        );
    }
    // Idle ones too: they sent nothing within the header timeout.
    let left = Duration::from_secs(8).saturating_sub(started.elapsed());
    for s in &mut idle {
        assert!(
            closed_within(s, left.max(Duration::from_secs(1))).await,
            "an idle connection was never closed"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(25));
    gw.stop().await;
}
