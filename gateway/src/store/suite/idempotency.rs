//! Retried writes: every write the gateway retries after an unknown outcome (the connection lost
//! around COMMIT, a timeout) must succeed whether or not the first one landed, and land once.

use std::sync::Arc;

use super::{attempt, ingest, new_event, record};
use crate::model::{AttemptOutcome, AttemptQuery, DeliveryStatus, IngestOutcome};
use crate::store::{HealthChange, Store};

fn attempts_of(delivery_id: &str) -> AttemptQuery {
    AttemptQuery {
        delivery_id: Some(delivery_id.to_string()),
        limit: 50,
        ..AttemptQuery::default()
    }
}

/// The same batch recorded twice (the first commit's answer was lost) records once.
pub async fn record_attempts_retried_records_once(store: Arc<dyn Store>) {
    let (_, _) = ingest(store.as_ref(), 1_000, &["wh_a", "wh_b"]).await;
    let claimed = store.claim_due(1_000, 9_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let batch: Vec<_> = claimed
        .iter()
        .map(|d| {
            let mut r = record(
                attempt(d, 1, 1_100, AttemptOutcome::Retry),
                DeliveryStatus::Pending,
                6_000,
                None,
                HealthChange::AttemptFailed,
            );
            r.claimed_lease = d.lease_until;
            r
        })
        .collect();
    store.record_attempts(batch.clone()).await.expect("first");
    store
        .record_attempts(batch.clone())
        .await
        .expect("a retry of a batch that landed succeeds");
    for d in &claimed {
        let page = store.list_attempts(&attempts_of(&d.id)).await.unwrap();
        assert_eq!(page.total, 1, "one attempt logged for {}", d.id);
        let now = store.get_delivery(&d.id).await.unwrap().unwrap();
        assert_eq!(
            (
                now.status,
                now.attempts,
                now.next_attempt_at,
                now.lease_until
            ),
            (DeliveryStatus::Pending, 1, 6_000, None)
        );
    }
    // Unconditional records (no claimed lease) are idempotent on the attempt id as well.
    let d = &claimed[0];
    let r = record(
        attempt(d, 2, 6_100, AttemptOutcome::Success),
        DeliveryStatus::Succeeded,
        6_100,
        None,
        HealthChange::Success,
    );
    store.record_attempts(vec![r.clone()]).await.unwrap();
    store.record_attempts(vec![r]).await.unwrap();
    let now = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!((now.status, now.attempts), (DeliveryStatus::Succeeded, 2));
    assert_eq!(
        store
            .list_attempts(&attempts_of(&d.id))
            .await
            .unwrap()
            .total,
        2
    );
}

/// A worker that lost its claim (paused past its lease; another took the delivery) does not
/// record over the new owner; the new owner's record applies.
pub async fn record_with_a_stale_lease_is_not_recorded(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a"]).await;
    let first = store.claim_due(1_000, 2_000, 5).await.unwrap();
    assert_eq!(first[0].lease_until, Some(2_000));
    let second = store.claim_due(2_500, 8_000, 5).await.unwrap();
    assert_eq!(second.len(), 1, "the expired lease is claimed again");
    let mut late = record(
        attempt(&first[0], 1, 1_100, AttemptOutcome::Success),
        DeliveryStatus::Succeeded,
        3_000,
        None,
        HealthChange::Success,
    );
    late.claimed_lease = first[0].lease_until;
    store
        .record_attempts(vec![late])
        .await
        .expect("a stale record is skipped, not an error");
    let now = store.get_delivery(&ds[0].id).await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.lease_until, now.attempts),
        (DeliveryStatus::InFlight, Some(8_000), 0),
        "the new owner's claim stands"
    );
    assert_eq!(
        store
            .list_attempts(&attempts_of(&ds[0].id))
            .await
            .unwrap()
            .total,
        0,
        "nothing logged for the stale attempt"
    );
    let mut owner = record(
        attempt(&second[0], 1, 2_600, AttemptOutcome::Success),
        DeliveryStatus::Succeeded,
        2_700,
        None,
        HealthChange::Success,
    );
    owner.claimed_lease = second[0].lease_until;
    store.record_attempts(vec![owner]).await.unwrap();
    let now = store.get_delivery(&ds[0].id).await.unwrap().unwrap();
    assert_eq!((now.status, now.attempts), (DeliveryStatus::Succeeded, 1));
}

/// An ingest retried after its commit landed answers Duplicate with the same id and never makes
/// a second event or second deliveries, with or without an idempotency key.
pub async fn ingest_retried_after_commit_is_a_duplicate(store: Arc<dyn Store>) {
    for key in [None, Some("retried-key")] {
        let new = new_event(1_000, &["wh_a", "wh_b"], key);
        let id = new.event.id.clone();
        assert!(matches!(
            store.ingest(new.clone()).await.unwrap(),
            IngestOutcome::Created { .. }
        ));
        assert_eq!(
            store.ingest(new).await.expect("the retry succeeds"),
            IngestOutcome::Duplicate {
                event_id: id.clone()
            },
            "key {key:?}"
        );
        assert_eq!(store.deliveries_for_event(&id).await.unwrap().len(), 2);
    }
    // Concurrent with other ingests (PostgreSQL folds them into one set-wise batch).
    let news: Vec<_> = (0..20)
        .map(|i| new_event(2_000 + i, &["wh_a"], None))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for n in news.iter().cloned().chain(news.iter().cloned()) {
        let s = store.clone();
        set.spawn(async move { s.ingest(n).await });
    }
    let mut created = 0;
    while let Some(r) = set.join_next().await {
        if let IngestOutcome::Created { .. } = r.unwrap().expect("every ingest answers") {
            created += 1;
        }
    }
    assert_eq!(created, 20, "each event created once");
    for n in &news {
        assert_eq!(
            store.deliveries_for_event(&n.event.id).await.unwrap().len(),
            1
        );
    }
}

/// The write probe `/readyz` uses succeeds on a healthy store.
pub async fn write_probe_succeeds(store: Arc<dyn Store>) {
    store.write_probe().await.expect("write probe");
}
