//! Cells on PostgreSQL: the COMMIT's answer lost (ingest path, attempt-record path), the
//! database blackholed for 10 s, the database restarted mid-burst, and a node paused (SIGSTOP)
//! past its lease beside a second node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::model::{AttemptOutcome, AttemptQuery, DeliveryStatus};
use gateway::store::Store;
use gateway::store::postgres::PostgresStore;
use gateway::store::suite::PgTestDb;
use gateway::store::suite::throwaway::Throwaway;
use parking_lot::Mutex;

use super::{Accepted, FAST_ENV, burst, create_webhook, fast, verify};
use crate::support::faults::{Proxy, sigcont, sigstop};
use crate::support::{GatewayProcess, Receiver, TestGateway};

/// `url` with its host:port replaced and `search_path` set to `schema`.
fn via(url: &str, host_port: &str, schema: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let (h, p) = host_port.rsplit_once(':').unwrap();
    u.set_host(Some(h)).unwrap();
    u.set_port(Some(p.parse().unwrap())).unwrap();
    u.query_pairs_mut()
        .append_pair("options", &format!("-csearch_path={schema}"));
    u.to_string()
}

fn upstream(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    format!("{}:{}", u.host_str().unwrap(), u.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

/// A schema on the shared server, a PostgreSQL-aware proxy in front of it, a gateway through the
/// proxy, a receiver and its webhook.
struct Setup {
    db: PgTestDb,
    proxy: Proxy,
    gw: TestGateway,
    receiver: Receiver,
    base: Arc<Mutex<String>>,
}

async fn setup(label: &str) -> Option<Setup> {
    let db = PgTestDb::create(label).await?;
    let proxy = Proxy::postgres(upstream(&db.url)).await;
    let url = via(&db.url, &proxy.host_port(), &db.schema);
    let gw = TestGateway::start_with(
        move |c| {
            fast(c);
            c.database_url = url;
        },
        None,
    )
    .await;
    let receiver = Receiver::start().await;
    create_webhook(&gw.client, &gw.url(""), &receiver.url("/hook")).await;
    let base = Arc::new(Mutex::new(gw.url("")));
    Some(Setup {
        db,
        proxy,
        gw,
        receiver,
        base,
    })
}

/// A burst of `n` events with `fault` applied after `after` and lifted by `heal` (both on the
/// proxy); returns what was accepted and when the fault ended.
async fn cell_with_proxy(
    s: &Setup,
    n: u64,
    after: Duration,
    fault: impl FnOnce(&Proxy),
    hold: Duration,
) -> (Accepted, Instant) {
    let acc = Accepted::default();
    let b = tokio::spawn(burst(
        s.base.clone(),
        0,
        n,
        8,
        Duration::from_millis(10),
        acc.clone(),
    ));
    tokio::time::sleep(after).await;
    fault(&s.proxy);
    tokio::time::sleep(hold).await;
    s.proxy.heal();
    let healed = Instant::now();
    b.await.unwrap();
    (acc, healed)
}

async fn finish(s: Setup) {
    s.gw.stop().await;
    drop(s.proxy);
    s.db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_answer_lost_on_the_ingest_path() {
    let Some(s) = setup("faults_ingest_commit").await else {
        return;
    };
    let (acc, healed) = cell_with_proxy(
        &s,
        300,
        Duration::from_millis(300),
        |p| p.cut_commits(Some("INSERT INTO events"), 6),
        Duration::from_secs(2),
    )
    .await;
    assert!(s.proxy.commits_cut() > 0, "no ingest COMMIT was cut");
    verify(
        "commit_lost_ingest",
        &s.receiver,
        &acc,
        healed,
        &s.gw.url(""),
        Duration::from_secs(30),
    )
    .await;
    finish(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_answer_lost_on_the_attempt_record_path() {
    let Some(s) = setup("faults_attempt_commit").await else {
        return;
    };
    let (acc, healed) = cell_with_proxy(
        &s,
        300,
        Duration::from_millis(300),
        |p| p.cut_commits(Some("INSERT INTO attempts"), 6),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        s.proxy.commits_cut() > 0,
        "no attempt-record COMMIT was cut"
    );
    verify(
        "commit_lost_attempts",
        &s.receiver,
        &acc,
        healed,
        &s.gw.url(""),
        Duration::from_secs(30),
    )
    .await;
    // Recorded once each: no delivery counts more attempts than it has rows.
    let ids = succeeded(&s.db.store).await;
    assert!(ids.len() >= acc.len());
    finish(s).await;
}

/// Every delivery in the schema, checked: succeeded, exactly one success attempt logged, and
/// the attempt counter equal to the rows logged.
async fn succeeded(store: &PostgresStore) -> Vec<String> {
    let client = store.pool().get().await.unwrap();
    let rows = client
        .query("SELECT id FROM deliveries", &[])
        .await
        .unwrap();
    let mut ids = Vec::new();
    for r in rows {
        let id: String = r.get(0);
        let d = store.get_delivery(&id).await.unwrap().unwrap();
        assert_eq!(d.status, DeliveryStatus::Succeeded, "delivery {id}");
        let page = store
            .list_attempts(&AttemptQuery {
                delivery_id: Some(id.clone()),
                limit: 100,
                ..AttemptQuery::default()
            })
            .await
            .unwrap();
        let ok = page
            .items
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Success)
            .count();
        assert_eq!(ok, 1, "delivery {id}: one success recorded");
        assert_eq!(
            d.attempts as u64, page.total,
            "delivery {id}: attempt counter matches the log"
        );
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_blackholed_for_ten_seconds() {
    let Some(s) = setup("faults_blackhole").await else {
        return;
    };
    let (acc, healed) = cell_with_proxy(
        &s,
        400,
        Duration::from_millis(300),
        |p| p.blackhole(true),
        Duration::from_secs(10),
    )
    .await;
    verify(
        "db_blackholed_10s",
        &s.receiver,
        &acc,
        healed,
        &s.gw.url(""),
        Duration::from_secs(40),
    )
    .await;
    finish(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restarted_mid_burst() {
    let Some(server) = tokio::task::spawn_blocking(Throwaway::create_or_skip)
        .await
        .unwrap()
    else {
        return;
    };
    let url = server.url();
    let gw = TestGateway::start_with(
        move |c| {
            fast(c);
            c.database_url = url;
        },
        None,
    )
    .await;
    let receiver = Receiver::start().await;
    create_webhook(&gw.client, &gw.url(""), &receiver.url("/hook")).await;
    let base = Arc::new(Mutex::new(gw.url("")));
    let acc = Accepted::default();
    let b = tokio::spawn(burst(
        base,
        0,
        400,
        8,
        Duration::from_millis(10),
        acc.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    tokio::task::block_in_place(|| server.stop("fast")).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| server.start()).unwrap();
    let healed = Instant::now();
    b.await.unwrap();
    verify(
        "db_restarted",
        &receiver,
        &acc,
        healed,
        &gw.url(""),
        Duration::from_secs(40),
    )
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_paused_past_its_lease_beside_another() {
    let Some(db) = PgTestDb::create("faults_sigstop").await else {
        return;
    };
    let url = via(&db.url, &upstream(&db.url).to_string(), &db.schema);
    let mut env: Vec<(&str, &str)> = FAST_ENV.to_vec();
    env.push(("GATEWAY_DATABASE_URL", &url));
    let (da, dbb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = tokio::task::block_in_place(|| GatewayProcess::spawn(da.path(), &env));
    let b = tokio::task::block_in_place(|| GatewayProcess::spawn(dbb.path(), &env));
    let receiver = Receiver::start().await;
    let client = super::client();
    create_webhook(&client, &a.url(""), &receiver.url("/hook")).await;
    // Both nodes take events and deliver; B learns of the webhook within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acc = Accepted::default();
    let base_b = Arc::new(Mutex::new(b.url("")));
    let burst_a = tokio::spawn(burst(
        Arc::new(Mutex::new(a.url(""))),
        0,
        100,
        4,
        Duration::from_millis(5),
        acc.clone(),
    ));
    let burst_b = tokio::spawn(burst(
        base_b.clone(),
        100,
        400,
        6,
        Duration::from_millis(10),
        acc.clone(),
    ));
    burst_a.await.unwrap();
    sigstop(a.child.id());
    tokio::time::sleep(Duration::from_secs(super::LEASE_SECS + 2)).await;
    sigcont(a.child.id());
    let healed = Instant::now();
    burst_b.await.unwrap();
    verify(
        "sigstop_node_past_lease",
        &receiver,
        &acc,
        healed,
        &b.url(""),
        Duration::from_secs(40),
    )
    .await;
    super::drained(
        "sigstop_node_past_lease",
        &a.url(""),
        Duration::from_secs(15),
    )
    .await;
    // The paused node, resumed, did not record over the node that took its deliveries.
    let ids = succeeded(&db.store).await;
    assert!(ids.len() >= acc.len());
    drop((a, b));
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_database_is_blackholed_is_bounded() {
    let Some(s) = setup("faults_stop_blackholed").await else {
        return;
    };
    let acc = Accepted::default();
    let b = tokio::spawn(burst(
        s.base.clone(),
        0,
        200,
        8,
        Duration::from_millis(5),
        acc.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Attempts finish, their records cannot be written, the recorder is retrying.
    s.proxy.blackhole(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    let Setup { db, proxy, gw, .. } = s;
    gw.stop().await;
    let took = t.elapsed();
    // Engine bound (timeout_secs + 2 s, + 1 s slack in `run`) plus in-flight API requests, each
    // bounded by postgres.operation_timeout_secs (2 s).
    let bound = Duration::from_secs(super::TIMEOUT_SECS + 2 + 1 + 2 + 2);
    println!("cell=stop_db_blackholed exit_ms={}", took.as_millis());
    assert!(took < bound, "stopping took {took:?} (bound {bound:?})");
    b.abort();
    proxy.heal();
    drop(proxy);
    db.drop_schema().await;
}
