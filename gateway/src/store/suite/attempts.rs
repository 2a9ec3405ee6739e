//! Suite: recording attempts, the attempt log, and operator actions on deliveries.

use std::sync::Arc;

use super::{attempt, ingest, prepared, record, webhook};
use crate::model::{AttemptOutcome, AttemptQuery, DeliveryStatus, Scope, WebhookHealth};
use crate::store::{HealthChange, Store, StoreError};

pub async fn record_attempts_updates_delivery_and_health(store: Arc<dyn Store>) {
    let w = webhook(Scope::Global, 1);
    let other = webhook(Scope::Global, 2);
    store.insert_webhook(&w).await.unwrap();
    store.insert_webhook(&other).await.unwrap();
    let (_, ds) = ingest(store.as_ref(), 1_000, &[&w.id, &other.id]).await;
    let d = ds.iter().find(|d| d.webhook_id == w.id).unwrap().clone();
    let od = ds
        .iter()
        .find(|d| d.webhook_id == other.id)
        .unwrap()
        .clone();
    store.claim_due(1_000, 31_000, 10).await.unwrap();

    // First attempt fails, a retry follows: the request is stored, failing-since starts.
    let a1 = attempt(&d, 1, 1_100, AttemptOutcome::Retry);
    let healths = store
        .record_attempts(vec![record(
            a1.clone(),
            DeliveryStatus::Pending,
            6_100,
            Some(prepared("first")),
            HealthChange::AttemptFailed,
        )])
        .await
        .unwrap();
    assert_eq!(
        healths,
        vec![(
            w.id.clone(),
            WebhookHealth {
                consecutive_failures: 0,
                failing_since: Some(1_100)
            }
        )]
    );
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(got.status, DeliveryStatus::Pending);
    assert_eq!(
        (got.attempts, got.next_attempt_at, got.lease_until),
        (1, 6_100, None)
    );
    assert_eq!(got.request, Some(prepared("first")));
    assert_eq!(
        (got.last_error.as_deref(), got.last_status_code),
        (Some("HTTP 500"), Some(500))
    );
    assert_eq!(got.updated_at, 1_100 + 12, "updated when the attempt ended");

    // Second attempt fails for good, in one batch with a test send (no health change) and the
    // other webhook's success.
    let a2 = attempt(&d, 2, 6_200, AttemptOutcome::Failed);
    let ok = attempt(&od, 1, 6_300, AttemptOutcome::Success);
    let test_send = attempt(&od, 2, 6_400, AttemptOutcome::Success);
    let healths = store
        .record_attempts(vec![
            record(
                a2.clone(),
                DeliveryStatus::Failed,
                6_200,
                Some(prepared("second")),
                HealthChange::DeliveryFailed,
            ),
            record(
                ok.clone(),
                DeliveryStatus::Succeeded,
                6_300,
                Some(prepared("other")),
                HealthChange::Success,
            ),
            record(
                test_send.clone(),
                DeliveryStatus::Succeeded,
                6_400,
                None,
                HealthChange::None,
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        healths,
        vec![(
            w.id.clone(),
            WebhookHealth {
                consecutive_failures: 1,
                failing_since: Some(1_100)
            }
        )],
        "one health per record that counted a failure"
    );
    assert_eq!(
        store.webhook_health(&other.id).await.unwrap(),
        WebhookHealth::default()
    );
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts), (DeliveryStatus::Failed, 2));
    assert_eq!(
        got.request,
        Some(prepared("first")),
        "the request is stored once"
    );
    let got = store.get_delivery(&od.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status,
            got.attempts,
            got.last_status_code,
            got.last_error
        ),
        (DeliveryStatus::Succeeded, 2, Some(200), None)
    );

    // A later success resets the failing webhook.
    let (_, ds2) = ingest(store.as_ref(), 7_000, &[&w.id]).await;
    let a3 = attempt(&ds2[0], 1, 7_100, AttemptOutcome::Success);
    let healths = store
        .record_attempts(vec![record(
            a3.clone(),
            DeliveryStatus::Succeeded,
            7_100,
            None,
            HealthChange::Success,
        )])
        .await
        .unwrap();
    assert!(
        healths.is_empty(),
        "a success never disables, so nothing is read back"
    );
    assert_eq!(
        store.webhook_health(&w.id).await.unwrap(),
        WebhookHealth::default()
    );

    // Consecutive failures add up; failing-since keeps the first.
    for (i, at) in [8_000, 9_000].into_iter().enumerate() {
        let (_, ds) = ingest(store.as_ref(), at, &[&w.id]).await;
        let a = attempt(&ds[0], 1, at + 1, AttemptOutcome::Failed);
        let h = store
            .record_attempts(vec![record(
                a,
                DeliveryStatus::Failed,
                at + 1,
                None,
                HealthChange::DeliveryFailed,
            )])
            .await
            .unwrap();
        assert_eq!(
            h[0].1,
            WebhookHealth {
                consecutive_failures: i as u32 + 1,
                failing_since: Some(8_001)
            }
        );
    }

    // The log holds every attempt, document intact.
    let log = store
        .list_attempts(&AttemptQuery {
            delivery_id: Some(d.id.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.items, vec![a2, a1]);
    assert!(store.record_attempts(Vec::new()).await.unwrap().is_empty());
}

pub async fn list_attempts_filters_and_paging(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a", "wh_b"]).await;
    let (a, b) = if ds[0].webhook_id == "wh_a" {
        (&ds[0], &ds[1])
    } else {
        (&ds[1], &ds[0])
    };
    let mut recs = Vec::new();
    let mut all = Vec::new();
    for i in 0..6u32 {
        let d = if i % 2 == 0 { a } else { b };
        let outcome = if i == 5 {
            AttemptOutcome::Success
        } else {
            AttemptOutcome::Retry
        };
        let at = attempt(d, i / 2 + 1, 2_000 + i as i64 * 100, outcome);
        all.push(at.clone());
        recs.push(record(
            at,
            DeliveryStatus::Pending,
            9_000,
            None,
            HealthChange::None,
        ));
    }
    store.record_attempts(recs).await.unwrap();
    all.reverse(); // newest first
    let q = |f: fn(&mut AttemptQuery)| {
        let mut q = AttemptQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let page = store.list_attempts(&q(|_| {})).await.unwrap();
    assert_eq!((page.items.clone(), page.total), (all.clone(), 6));

    let by_webhook = store
        .list_attempts(&q(|q| q.webhook_id = Some("wh_a".into())))
        .await
        .unwrap();
    assert_eq!(by_webhook.total, 3);
    assert!(by_webhook.items.iter().all(|x| x.webhook_id == "wh_a"));
    let by_delivery = store
        .list_attempts(&AttemptQuery {
            delivery_id: Some(b.id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_delivery
            .items
            .iter()
            .map(|x| x.attempt_no)
            .collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    let ok = store
        .list_attempts(&q(|q| q.outcome = Some(AttemptOutcome::Success)))
        .await
        .unwrap();
    assert_eq!((ok.total, ok.items[0].started_at), (1, 2_500));
    let window = store
        .list_attempts(&q(|q| (q.since, q.until) = (Some(2_100), Some(2_300))))
        .await
        .unwrap();
    assert_eq!(
        window
            .items
            .iter()
            .map(|x| x.started_at)
            .collect::<Vec<_>>(),
        vec![2_300, 2_200, 2_100],
        "bounds inclusive"
    );
    let combined = store
        .list_attempts(&AttemptQuery {
            webhook_id: Some("wh_b".into()),
            outcome: Some(AttemptOutcome::Retry),
            since: Some(2_000),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        combined
            .items
            .iter()
            .map(|x| x.started_at)
            .collect::<Vec<_>>(),
        vec![2_300, 2_100]
    );

    let p2 = store
        .list_attempts(&AttemptQuery {
            offset: 2,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((p2.items, p2.total), (all[2..4].to_vec(), 6));
    let p0 = store
        .list_attempts(&AttemptQuery {
            offset: 0,
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p0.items.len(), 1, "a zero limit means one");
    let none = store
        .list_attempts(&q(|q| q.webhook_id = Some("wh_zzz".into())))
        .await
        .unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
}

pub async fn requeue_delivery_makes_it_due_now(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a"]).await;
    let d = &ds[0];
    store.claim_due(1_000, 31_000, 1).await.unwrap();
    let a = attempt(d, 1, 1_100, AttemptOutcome::Failed);
    store
        .record_attempts(vec![record(
            a,
            DeliveryStatus::Failed,
            1_100,
            Some(prepared("p")),
            HealthChange::None,
        )])
        .await
        .unwrap();

    store.requeue_delivery(&d.id, 50_000).await.unwrap();
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status,
            got.next_attempt_at,
            got.lease_until,
            got.updated_at
        ),
        (DeliveryStatus::Pending, 50_000, None, 50_000)
    );
    assert_eq!(
        (got.attempts, got.request),
        (1, Some(prepared("p"))),
        "history and request kept"
    );
    assert_eq!(store.claim_due(50_000, 80_000, 5).await.unwrap().len(), 1);
    // Whatever its state: an in-flight one is released too.
    store.requeue_delivery(&d.id, 60_000).await.unwrap();
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.lease_until),
        (DeliveryStatus::Pending, None)
    );
    assert!(matches!(
        store.requeue_delivery("msg_nope", 1).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn requeue_failed_since_only_failed_and_recent(store: Arc<dyn Store>) {
    let (_, old) = ingest(store.as_ref(), 1_000, &["wh_a"]).await;
    let (_, new) = ingest(store.as_ref(), 5_000, &["wh_a", "wh_b"]).await;
    let (_, ok) = ingest(store.as_ref(), 6_000, &["wh_a"]).await;
    store.claim_due(10_000, 40_000, 10).await.unwrap();
    let mut recs = Vec::new();
    for d in old.iter().chain(&new) {
        recs.push(record(
            attempt(d, 1, 10_100, AttemptOutcome::Failed),
            DeliveryStatus::Failed,
            10_100,
            None,
            HealthChange::None,
        ));
    }
    recs.push(record(
        attempt(&ok[0], 1, 10_100, AttemptOutcome::Success),
        DeliveryStatus::Succeeded,
        10_100,
        None,
        HealthChange::None,
    ));
    store.record_attempts(recs).await.unwrap();

    assert_eq!(
        store
            .requeue_failed_since("wh_a", 5_000, 20_000)
            .await
            .unwrap(),
        1,
        "created since, failed, this webhook"
    );
    let new_a = new.iter().find(|d| d.webhook_id == "wh_a").unwrap();
    let got = store.get_delivery(&new_a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.next_attempt_at, got.updated_at),
        (DeliveryStatus::Pending, 20_000, 20_000)
    );
    assert_eq!(
        store
            .get_delivery(&old[0].id)
            .await
            .unwrap()
            .unwrap()
            .status,
        DeliveryStatus::Failed
    );
    assert_eq!(
        store.get_delivery(&ok[0].id).await.unwrap().unwrap().status,
        DeliveryStatus::Succeeded
    );
    assert_eq!(
        store.requeue_failed_since("wh_a", 0, 20_000).await.unwrap(),
        1,
        "now the old one"
    );
    assert_eq!(
        store.requeue_failed_since("wh_a", 0, 20_000).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .requeue_failed_since("wh_zzz", 0, 20_000)
            .await
            .unwrap(),
        0
    );
}

pub async fn fail_pending_for_webhook_leaves_others(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a", "wh_b"]).await;
    let (_, later) = ingest(store.as_ref(), 90_000, &["wh_a"]).await;
    let in_flight = store.claim_due(1_000, 31_000, 10).await.unwrap();
    assert_eq!(in_flight.len(), 2);
    let (_, fresh) = ingest(store.as_ref(), 2_000, &["wh_a"]).await;

    // Only pending ones (the in-flight attempt finishes and records its own outcome).
    assert_eq!(
        store
            .fail_pending_for_webhook("wh_a", "webhook disabled", 3_000)
            .await
            .unwrap(),
        2
    );
    for d in [&fresh[0], &later[0]] {
        let got = store.get_delivery(&d.id).await.unwrap().unwrap();
        assert_eq!(
            (got.status, got.last_error.as_deref(), got.updated_at),
            (DeliveryStatus::Failed, Some("webhook disabled"), 3_000)
        );
    }
    for d in &ds {
        assert_eq!(
            store.get_delivery(&d.id).await.unwrap().unwrap().status,
            DeliveryStatus::InFlight
        );
    }
    assert_eq!(
        store
            .fail_pending_for_webhook("wh_b", "x", 3_000)
            .await
            .unwrap(),
        0
    );
}

pub async fn delete_webhook_fails_its_queued_deliveries(store: Arc<dyn Store>) {
    let w = webhook(Scope::Global, 1);
    let keep = webhook(Scope::Global, 2);
    store.insert_webhook(&w).await.unwrap();
    store.insert_webhook(&keep).await.unwrap();
    let (_, first) = ingest(store.as_ref(), 1_000, &[&w.id, &keep.id]).await;
    store.claim_due(1_000, 31_000, 10).await.unwrap();
    let (_, second) = ingest(store.as_ref(), 2_000, &[&w.id]).await;
    store.delete_webhook(&w.id).await.unwrap();
    for d in first.iter().chain(&second).filter(|d| d.webhook_id == w.id) {
        let got = store.get_delivery(&d.id).await.unwrap().unwrap();
        assert_eq!(
            (got.status, got.last_error.as_deref()),
            (DeliveryStatus::Failed, Some("webhook deleted"))
        );
    }
    let kept = first.iter().find(|d| d.webhook_id == keep.id).unwrap();
    assert_eq!(
        store.get_delivery(&kept.id).await.unwrap().unwrap().status,
        DeliveryStatus::InFlight
    );
}

pub async fn delivery_counts_by_status(store: Arc<dyn Store>) {
    assert!(store.delivery_counts().await.unwrap().is_empty());
    ingest(store.as_ref(), 1_000, &["wh_a", "wh_b", "wh_c"]).await;
    ingest(store.as_ref(), 50_000, &["wh_a", "wh_b"]).await;
    let claimed = store.claim_due(1_000, 31_000, 10).await.unwrap();
    let recs = vec![
        record(
            attempt(&claimed[0], 1, 1_100, AttemptOutcome::Success),
            DeliveryStatus::Succeeded,
            1_100,
            None,
            HealthChange::None,
        ),
        record(
            attempt(&claimed[1], 1, 1_100, AttemptOutcome::Failed),
            DeliveryStatus::Failed,
            1_100,
            None,
            HealthChange::None,
        ),
    ];
    store.record_attempts(recs).await.unwrap();
    let mut counts = store.delivery_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        vec![
            (DeliveryStatus::Failed, 1),
            (DeliveryStatus::InFlight, 1),
            (DeliveryStatus::Pending, 2),
            (DeliveryStatus::Succeeded, 1)
        ]
    );
}
