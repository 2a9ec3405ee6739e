//! Cells on SQLite: receiver connections reset mid-response, the gateway SIGKILLed mid-burst
//! and restarted, the disk filled up and freed, and SIGTERM during a burst.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Accepted, FAST_ENV, LEASE_SECS, TIMEOUT_SECS, burst, create_webhook, fast, verify};
use crate::support::faults::{Proxy, TinyDisk};
use crate::support::{GatewayProcess, Receiver, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_connections_reset_mid_response() {
    let receiver = Receiver::start().await;
    let proxy = Proxy::start(receiver.addr).await;
    let gw = TestGateway::start_with(fast, None).await;
    create_webhook(
        &gw.client,
        &gw.url(""),
        &format!("http://{}/hook", proxy.addr),
    )
    .await;
    let acc = Accepted::default();
    let b = tokio::spawn(burst(
        Arc::new(Mutex::new(gw.url(""))),
        0,
        300,
        8,
        Duration::from_millis(5),
        acc.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Responses cut after 12 bytes ("HTTP/1.1 200"), and every open connection reset, twice.
    proxy.cut_after(12, 40);
    proxy.reset_all();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.reset_all();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.heal();
    let healed = Instant::now();
    b.await.unwrap();
    verify(
        "receiver_reset",
        &receiver,
        &acc,
        healed,
        &gw.url(""),
        Duration::from_secs(30),
    )
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigkilled_mid_burst_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let mut node = tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), FAST_ENV));
    create_webhook(&super::client(), &node.url(""), &receiver.url("/hook")).await;
    let base = Arc::new(Mutex::new(node.url("")));
    let acc = Accepted::default();
    let b = tokio::spawn(burst(
        base.clone(),
        0,
        400,
        8,
        Duration::from_millis(10),
        acc.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    node.kill9();
    let node = tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), FAST_ENV));
    *base.lock() = node.url("");
    let healed = Instant::now();
    b.await.unwrap();
    verify(
        "gateway_sigkill_restart",
        &receiver,
        &acc,
        healed,
        &node.url(""),
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_sqlite_answers_503_and_recovers_without_restart() {
    let Some(disk) = TinyDisk::mount_or_skip(24) else {
        return;
    };
    let receiver = Receiver::start().await;
    let holder = tempfile::tempdir().unwrap();
    let mut config = crate::support::test_config(&disk.path().join("data"));
    fast(&mut config);
    let gw = TestGateway::start_in(holder, config, None).await;
    create_webhook(&gw.client, &gw.url(""), &receiver.url("/hook")).await;
    let base = Arc::new(Mutex::new(gw.url("")));
    let before = Accepted::default();
    burst(base.clone(), 0, 50, 4, Duration::ZERO, before.clone()).await;
    assert_eq!(before.len(), 50);
    let filled = disk.fill();
    // Writes fail once SQLite needs a new page; keep posting (bounded) until they do.
    let full = Accepted::default();
    let mut next = 1_000;
    while full.refused().get(&503).copied().unwrap_or(0) == 0 && next < 5_000 {
        burst(
            base.clone(),
            next,
            next + 100,
            4,
            Duration::ZERO,
            full.clone(),
        )
        .await;
        next += 100;
    }
    let refused = full.refused().get(&503).copied().unwrap_or(0);
    assert!(
        refused > 0,
        "a full disk ({filled} bytes filler) never refused an event"
    );
    let ready = gw.client.get(gw.url("/readyz")).send().await.unwrap();
    let (status, why) = (ready.status().as_u16(), ready.text().await.unwrap());
    assert_eq!(status, 503, "readyz while writes fail: {why}");
    let metrics = gw
        .client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("gateway_store_write_failures_total 0"),
        "write failures counted"
    );
    disk.free();
    let healed = Instant::now();
    let after = Accepted::default();
    burst(
        base.clone(),
        10_000,
        10_100,
        4,
        Duration::ZERO,
        after.clone(),
    )
    .await;
    assert_eq!(
        after.len(),
        100,
        "accepting again without a restart: {:?}",
        after.refused()
    );
    let all = Accepted::default();
    for s in [before.seqs(), full.seqs(), after.seqs()] {
        all.0.lock().extend(s);
    }
    verify(
        "disk_full_sqlite",
        &receiver,
        &all,
        healed,
        &gw.url(""),
        Duration::from_secs(30),
    )
    .await;
    gw.stop().await;
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_exits_within_the_bound_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    // A slow path to the receiver keeps attempts in flight when the signal comes.
    let slow = Proxy::start(receiver.addr).await;
    slow.delay(Duration::from_millis(400));
    let mut node = tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), FAST_ENV));
    create_webhook(
        &super::client(),
        &node.url(""),
        &format!("http://{}/hook", slow.addr),
    )
    .await;
    let base = Arc::new(Mutex::new(node.url("")));
    let acc = Accepted::default();
    let b = tokio::spawn(burst(
        base.clone(),
        0,
        300,
        8,
        Duration::from_millis(5),
        acc.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t = Instant::now();
    tokio::task::block_in_place(|| node.terminate());
    let took = t.elapsed();
    // The documented bound: delivery.timeout_secs + 2 s for the workers, plus the HTTP drain.
    let bound = Duration::from_secs(TIMEOUT_SECS + 2 + 3);
    println!(
        "cell=sigterm exit_ms={} arrived_before_exit={}",
        took.as_millis(),
        receiver.count()
    );
    assert!(took < bound, "SIGTERM took {took:?} (bound {bound:?})");
    slow.delay(Duration::ZERO);
    let node = tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), FAST_ENV));
    *base.lock() = node.url("");
    let healed = Instant::now();
    b.await.unwrap();
    verify(
        "sigterm_restart",
        &receiver,
        &acc,
        healed,
        &node.url(""),
        Duration::from_secs(LEASE_SECS * 6),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_deliveries_wait_past_max_due_age_and_recovers() {
    let receiver = Receiver::start().await;
    let proxy = Proxy::start(receiver.addr).await;
    // One worker and a receiver that never answers: the queue stops moving.
    let gw = TestGateway::start_with(
        |c| {
            fast(c);
            c.delivery.workers = 1;
            c.health.max_due_age_secs = 1;
        },
        None,
    )
    .await;
    create_webhook(
        &gw.client,
        &gw.url(""),
        &format!("http://{}/hook", proxy.addr),
    )
    .await;
    proxy.blackhole(true);
    let acc = Accepted::default();
    burst(
        Arc::new(Mutex::new(gw.url(""))),
        0,
        20,
        4,
        Duration::ZERO,
        acc.clone(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let why = loop {
        let r = gw.client.get(gw.url("/readyz")).send().await.unwrap();
        if r.status() == 503 {
            break r.text().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed ready while delivery was stuck"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(why.contains("delivery stuck"), "{why}");
    let metrics = gw
        .client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("gateway_oldest_due_delivery_age_seconds 0\n"),
        "the age gauge shows the wait"
    );
    proxy.heal();
    proxy.reset_all();
    let healed = Instant::now();
    verify(
        "stuck_pipeline_readyz",
        &receiver,
        &acc,
        healed,
        &gw.url(""),
        Duration::from_secs(40),
    )
    .await;
    gw.stop().await;
}
