//! What the PostgreSQL store does when its database dies and comes back. The test runs its own
//! throwaway server (initdb + pg_ctl in a temp dir, on a free port), never the shared one: it
//! stops it with `pg_ctl stop -m immediate` (a crash, as far as clients can tell) in the middle of
//! a burst of ingests, and checks that
//! - every ingest answered while the server is gone is `StoreError::Unavailable`, within seconds;
//! - no event is half stored: after the restart each event is there with all its deliveries, or
//!   not at all, and every acknowledged one is there;
//! - the same store (no rebuild) works again once the server is back.
//!
//! Skipped, with the reason printed, when the PostgreSQL server binaries are missing, unless
//! `GATEWAY_TEST_REQUIRE_POSTGRES=1`. As root, the server runs as the `postgres` user (initdb
//! refuses root).

use std::time::{Duration, Instant};

use gateway::model::IngestOutcome;
use gateway::store::postgres::PostgresStore;
use gateway::store::suite::new_event;
use gateway::store::suite::throwaway::Throwaway;
use gateway::store::{Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_database_answers_unavailable_and_the_store_recovers() {
    let Some(server) = tokio::task::spawn_blocking(Throwaway::create_or_skip)
        .await
        .unwrap()
    else {
        return;
    };
    let store = PostgresStore::connect(&server.url())
        .await
        .expect("connect to the throwaway server");
    store.ping().await.unwrap();
    let first = new_event(1, &["wh_a", "wh_b"], Some("before"));
    let first_id = first.event.id.clone();
    assert!(matches!(
        store.ingest(first).await.unwrap(),
        IngestOutcome::Created { .. }
    ));

    // A burst of ingests, with the server killed in the middle of it.
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..400 {
        let store = store.clone();
        burst.spawn(async move {
            tokio::time::sleep(Duration::from_millis(i / 4)).await;
            let new = new_event(
                10 + i as i64,
                &["wh_a", "wh_b", "wh_c"],
                Some(&format!("burst-{i}")),
            );
            let id = new.event.id.clone();
            (id, store.ingest(new).await)
        });
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| server.stop("immediate")).unwrap();

    // With the server gone: a clear "unavailable", quickly.
    let started = Instant::now();
    let down = new_event(5_000, &["wh_a"], Some("while-down"));
    let down_id = down.event.id.clone();
    match store.ingest(down).await {
        Err(StoreError::Unavailable(why)) => println!(
            "ingest while down: unavailable after {:?}: {why}",
            started.elapsed()
        ),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.claim_due(0, 1, 10).await,
        Err(StoreError::Unavailable(_))
    ));

    let mut answered = Vec::new();
    while let Some(res) = burst.join_next().await {
        answered.push(res.unwrap());
    }
    let acked = answered.iter().filter(|(_, r)| r.is_ok()).count();
    println!(
        "burst: {acked} acknowledged, {} refused; burst settled {:?} after the kill",
        answered.len() - acked,
        killed_at.elapsed()
    );
    for (_, r) in &answered {
        if let Err(e) = r {
            assert!(
                matches!(e, StoreError::Unavailable(_)),
                "a dead server is 'unavailable', not {e:?}"
            );
        }
    }

    // Back up: the same store works again, without being rebuilt.
    tokio::task::block_in_place(|| server.start()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                println!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
    println!(
        "recovered {:?} after the kill (restart included)",
        killed_at.elapsed()
    );

    // Nothing half stored: acknowledged events are whole, others whole or absent.
    assert_eq!(
        store.deliveries_for_event(&first_id).await.unwrap().len(),
        2
    );
    assert_eq!(store.get_event(&down_id).await.unwrap(), None);
    assert!(
        store
            .deliveries_for_event(&down_id)
            .await
            .unwrap()
            .is_empty()
    );
    for (id, res) in &answered {
        let event = store.get_event(id).await.unwrap();
        let deliveries = store.deliveries_for_event(id).await.unwrap().len();
        match res {
            Ok(_) => assert!(
                event.is_some() && deliveries == 3,
                "acknowledged {id} lost ({deliveries} deliveries)"
            ),
            Err(_) => assert!(
                (event.is_some() && deliveries == 3) || (event.is_none() && deliveries == 0),
                "{id} half stored: event {} with {deliveries} deliveries",
                event.is_some()
            ),
        }
    }

    // The refused ingest's key was not kept: retrying it now creates the event.
    let retry = new_event(6_000, &["wh_a"], Some("while-down"));
    let retry_id = retry.event.id.clone();
    assert_eq!(
        store.ingest(retry).await.unwrap(),
        IngestOutcome::Created {
            event_id: retry_id,
            deliveries: 1
        }
    );
    assert_eq!(
        store
            .claim_due(i64::MAX / 2, i64::MAX / 2 + 1, 1_000)
            .await
            .unwrap()
            .len(),
        2 + 3 * acked_or_whole(&answered, &store).await + 1
    );
}

/// Events of the burst that are stored (acknowledged, or committed before the reply was lost).
async fn acked_or_whole(
    answered: &[(String, Result<IngestOutcome, StoreError>)],
    store: &PostgresStore,
) -> usize {
    let mut n = 0;
    for (id, _) in answered {
        if store.get_event(id).await.unwrap().is_some() {
            n += 1;
        }
    }
    n
}
