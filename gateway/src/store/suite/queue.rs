//! Suite: ingest, idempotency and the delivery queue (claims and leases).

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{ingest, new_event};
use crate::model::{DeliveryStatus, IngestOutcome};
use crate::store::Store;

pub async fn ingest_and_read_back(store: Arc<dyn Store>) {
    let new = new_event(1_000, &["wh_a", "wh_b"], None);
    let event = new.event.clone();
    let mut expected = new.deliveries.clone();
    assert_eq!(
        store.ingest(new).await.unwrap(),
        IngestOutcome::Created {
            event_id: event.id.clone(),
            deliveries: 2
        }
    );
    assert_eq!(
        store.get_event(&event.id).await.unwrap(),
        Some(event.clone())
    );
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        store.deliveries_for_event(&event.id).await.unwrap(),
        expected,
        "ordered by id, every field kept"
    );
    assert_eq!(
        store.get_delivery(&expected[1].id).await.unwrap(),
        Some(expected[1].clone())
    );
    assert_eq!(store.get_delivery("msg_nope").await.unwrap(), None);
    assert_eq!(store.get_event("evt_nope").await.unwrap(), None);
    assert!(
        store
            .deliveries_for_event("evt_nope")
            .await
            .unwrap()
            .is_empty()
    );

    // An event nobody subscribes to is still stored.
    let lonely = new_event(2_000, &[], None);
    let id = lonely.event.id.clone();
    assert_eq!(
        store.ingest(lonely).await.unwrap(),
        IngestOutcome::Created {
            event_id: id.clone(),
            deliveries: 0
        }
    );
    assert!(store.get_event(&id).await.unwrap().is_some());

    // A failing ingest stores nothing of itself (here: a delivery id already taken; an event id
    // already taken is a retried ingest and answers Duplicate, see the idempotency suite).
    let mut clash = new_event(3_000, &["wh_c", "wh_d"], Some("clash-key"));
    let clash_event = clash.event.id.clone();
    clash.deliveries[1].id = expected[0].id.clone();
    let clash_delivery = clash.deliveries[0].id.clone();
    assert!(store.ingest(clash).await.is_err());
    assert_eq!(store.get_delivery(&clash_delivery).await.unwrap(), None);
    assert_eq!(store.get_event(&clash_event).await.unwrap(), None);
    assert_eq!(
        store.deliveries_for_event(&event.id).await.unwrap().len(),
        2
    );
    // ...and its idempotency key was not kept either.
    let retry = new_event(3_001, &["wh_c"], Some("clash-key"));
    assert!(matches!(
        store.ingest(retry).await.unwrap(),
        IngestOutcome::Created { .. }
    ));
}

pub async fn ingest_idempotency(store: Arc<dyn Store>) {
    let first = new_event(1_000, &["wh_a"], Some("key-1"));
    let first_id = first.event.id.clone();
    assert!(matches!(
        store.ingest(first).await.unwrap(),
        IngestOutcome::Created { .. }
    ));
    let again = new_event(2_000, &["wh_a"], Some("key-1"));
    let again_id = again.event.id.clone();
    assert_eq!(
        store.ingest(again).await.unwrap(),
        IngestOutcome::Duplicate {
            event_id: first_id.clone()
        }
    );
    assert_eq!(
        store.get_event(&again_id).await.unwrap(),
        None,
        "the duplicate is not stored"
    );
    assert!(
        store
            .deliveries_for_event(&again_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.deliveries_for_event(&first_id).await.unwrap().len(),
        1
    );
    // Another key, or none, is a new event.
    assert!(matches!(
        store
            .ingest(new_event(3_000, &["wh_a"], Some("key-2")))
            .await
            .unwrap(),
        IngestOutcome::Created { .. }
    ));
    assert!(matches!(
        store
            .ingest(new_event(3_000, &["wh_a"], None))
            .await
            .unwrap(),
        IngestOutcome::Created { .. }
    ));
    assert!(matches!(
        store
            .ingest(new_event(3_000, &["wh_a"], None))
            .await
            .unwrap(),
        IngestOutcome::Created { .. }
    ));
}

pub async fn concurrent_duplicate_keys_make_one_event(store: Arc<dyn Store>) {
    let mut set = JoinSet::new();
    for i in 0..24 {
        let store = store.clone();
        set.spawn(async move {
            let new = new_event(1_000 + i, &["wh_a", "wh_b"], Some("same-key"));
            let id = new.event.id.clone();
            (id, store.ingest(new).await.expect("ingest"))
        });
    }
    let mut created = Vec::new();
    let mut duplicates = Vec::new();
    let mut losers = Vec::new();
    while let Some(res) = set.join_next().await {
        let (own, out) = res.unwrap();
        match out {
            IngestOutcome::Created {
                event_id,
                deliveries,
            } => {
                assert_eq!((event_id.as_str(), deliveries), (own.as_str(), 2));
                created.push(event_id);
            }
            IngestOutcome::Duplicate { event_id } => {
                duplicates.push(event_id);
                losers.push(own);
            }
        }
    }
    assert_eq!(created.len(), 1, "exactly one event is created");
    assert_eq!(duplicates.len(), 23);
    assert!(
        duplicates.iter().all(|d| d == &created[0]),
        "every duplicate names the winner"
    );
    for l in losers {
        assert_eq!(store.get_event(&l).await.unwrap(), None);
    }
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![(DeliveryStatus::Pending, 2)],
        "only the winner's deliveries exist"
    );
}

pub async fn concurrent_ingests_all_land(store: Arc<dyn Store>) {
    // A burst mixing keyed, unkeyed and one failing ingest: each caller gets its own answer.
    let (_, taken) = ingest(store.as_ref(), 1, &["wh_z"]).await;
    let taken_id = taken[0].id.clone();
    let mut set = JoinSet::new();
    for i in 0..120i64 {
        let store = store.clone();
        let taken = taken_id.clone();
        set.spawn(async move {
            let key = (i % 3 == 0).then(|| format!("k{}", i % 30));
            let mut new = new_event(10 + i, &["wh_a"], key.as_deref());
            if i == 77 {
                // A delivery id already taken: this ingest fails, alone.
                new.deliveries[0].id = taken;
            }
            (i, store.ingest(new).await)
        });
    }
    let (mut created, mut dup) = (0, 0);
    while let Some(res) = set.join_next().await {
        match res.unwrap() {
            (77, out) => assert!(out.is_err(), "the clashing event fails alone"),
            (_, Ok(IngestOutcome::Created { .. })) => created += 1,
            (_, Ok(IngestOutcome::Duplicate { .. })) => dup += 1,
            (i, Err(e)) => panic!("ingest {i} failed: {e}"),
        }
    }
    // 40 keyed ingests over 10 distinct keys (i % 30 for multiples of 3), 79 unkeyed ones.
    assert_eq!((created, dup), (79 + 10, 30));
    assert_eq!(
        store.delivery_counts().await.unwrap(),
        vec![(DeliveryStatus::Pending, 90)]
    );
}

pub async fn claim_due_takes_only_due(store: Arc<dyn Store>) {
    let (_, early) = ingest(store.as_ref(), 1_000, &["wh_a", "wh_b"]).await;
    let (_, late) = ingest(store.as_ref(), 5_000, &["wh_a"]).await;
    assert_eq!(store.next_due_at().await.unwrap(), Some(1_000));
    assert!(
        store.claim_due(999, 2_000, 10).await.unwrap().is_empty(),
        "nothing due before its time"
    );

    let mut claimed = store.claim_due(1_000, 31_000, 10).await.unwrap();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        claimed.iter().map(|d| &d.id).collect::<Vec<_>>(),
        early.iter().map(|d| &d.id).collect::<Vec<_>>()
    );
    for d in &claimed {
        assert_eq!(d.status, DeliveryStatus::InFlight);
        assert_eq!(d.lease_until, Some(31_000));
        assert_eq!(
            d.next_attempt_at, 31_000,
            "an in-flight row is due again at its lease end"
        );
        assert_eq!(d.updated_at, 1_000);
        assert_eq!(d.attempts, 0);
    }
    assert_eq!(
        store
            .get_delivery(&early[0].id)
            .await
            .unwrap()
            .unwrap()
            .status,
        DeliveryStatus::InFlight
    );
    assert!(
        store.claim_due(1_000, 31_000, 10).await.unwrap().is_empty(),
        "claimed rows are not claimed twice"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(5_000));

    // The limit is honoured, earliest first.
    let (_, more) = ingest(store.as_ref(), 4_000, &["wh_c", "wh_d", "wh_e"]).await;
    let got = store.claim_due(6_000, 36_000, 2).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|d| more.iter().any(|m| m.id == d.id)),
        "earliest due first"
    );
    let rest = store.claim_due(6_000, 36_000, 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().any(|d| d.id == late[0].id));
    assert_eq!(store.claim_due(6_000, 36_000, 0).await.unwrap().len(), 0);
}

pub async fn lease_expiry_makes_claimable_again(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a"]).await;
    assert_eq!(store.claim_due(1_000, 2_000, 5).await.unwrap().len(), 1);
    assert!(
        store.claim_due(1_999, 3_000, 5).await.unwrap().is_empty(),
        "lease still held"
    );
    assert_eq!(
        store.next_due_at().await.unwrap(),
        Some(2_000),
        "an in-flight lease end counts as due"
    );
    // The worker vanished: once the lease ends another claims it, attempts untouched.
    let again = store.claim_due(2_000, 9_000, 5).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, ds[0].id);
    assert_eq!(
        (
            again[0].lease_until,
            again[0].next_attempt_at,
            again[0].attempts
        ),
        (Some(9_000), 9_000, 0)
    );
}

pub async fn concurrent_claimers_never_share(store: Arc<dyn Store>) {
    let mut all = HashSet::new();
    for i in 0..10 {
        let (_, ds) = ingest(
            store.as_ref(),
            100 + i,
            &["wh_a", "wh_b", "wh_c", "wh_d", "wh_e"],
        )
        .await;
        all.extend(ds.into_iter().map(|d| d.id));
    }
    let mut set = JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(1_000, 60_000, 3).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|d| d.id));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    while let Some(res) = set.join_next().await {
        for id in res.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "delivery {id} was claimed twice");
        }
    }
    assert_eq!(total, 50);
    assert_eq!(seen, all, "every due delivery was claimed");
}
