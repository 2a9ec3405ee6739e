//! Suite: retention. Old events go with their finished deliveries, attempts and idempotency keys;
//! old attempts go; deliveries still owed, their events and attempts stay; a second pass (or a
//! concurrent one, another node's) removes nothing twice. Failure mails go once sent or refused
//! for good, never while they are still to send.

use std::sync::Arc;

use super::{attempt, ingest, new_event, record};
use crate::model::{
    AttemptOutcome, AttemptQuery, Delivery, DeliveryStatus, IngestOutcome, MailKind, MailOutcome,
    OutboxMail,
};
use crate::retention::prune;
use crate::store::{HealthChange, PruneCutoffs, PruneReport, Store};

const OLD: i64 = 1_000;
const RECENT: i64 = 50_000;
const CUTOFFS: PruneCutoffs = PruneCutoffs {
    events_before: Some(10_000),
    attempts_before: Some(10_000),
};
const FAR: i64 = 1_000_000_000_000;

async fn attempt_count(store: &dyn Store, d: &Delivery) -> u64 {
    store
        .list_attempts(&AttemptQuery {
            delivery_id: Some(d.id.clone()),
            limit: 50,
            ..AttemptQuery::default()
        })
        .await
        .unwrap()
        .total
}

/// Records one attempt of `d` started at `at`, leaving it in `status`.
async fn attempt_at(store: &dyn Store, d: &Delivery, no: u32, at: i64, status: DeliveryStatus) {
    let outcome = match status {
        DeliveryStatus::Succeeded => AttemptOutcome::Success,
        DeliveryStatus::Failed => AttemptOutcome::Failed,
        _ => AttemptOutcome::Retry,
    };
    let next = if status == DeliveryStatus::Pending {
        FAR
    } else {
        at
    };
    store
        .record_attempts(vec![record(
            attempt(d, no, at, outcome),
            status,
            next,
            None,
            HealthChange::None,
        )])
        .await
        .unwrap();
}

pub async fn prune_removes_old_rows_and_keeps_owed_and_recent(store: Arc<dyn Store>) {
    let s = store.as_ref();
    // Old and finished: go, with their attempts and idempotency key.
    let keyed = new_event(OLD, &["wh_a"], Some("key-succeeded"));
    let succeeded_id = keyed.event.id.clone();
    s.ingest(keyed).await.unwrap();
    let succeeded = s.deliveries_for_event(&succeeded_id).await.unwrap();
    attempt_at(s, &succeeded[0], 1, OLD + 100, DeliveryStatus::Succeeded).await;
    let (failed_id, failed) = ingest(s, OLD, &["wh_a"]).await;
    attempt_at(s, &failed[0], 1, OLD + 100, DeliveryStatus::Failed).await;
    // Old but owed: a retry pending far ahead (beside a finished sibling), and one in flight.
    let (retrying_id, retrying) = ingest(s, OLD, &["wh_a", "wh_b"]).await;
    attempt_at(s, &retrying[0], 1, OLD + 100, DeliveryStatus::Pending).await;
    attempt_at(s, &retrying[1], 1, OLD + 100, DeliveryStatus::Succeeded).await;
    let (in_flight_id, _) = ingest(s, OLD, &["wh_a"]).await;
    let claimed = s.claim_due(OLD + 500, FAR, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the in-flight one was due");
    assert_eq!(claimed[0].event_id, in_flight_id);
    // Recent: stays, but its old attempt (a clock step back on the sending node) goes.
    let (recent_id, recent) = ingest(s, RECENT, &["wh_a"]).await;
    attempt_at(s, &recent[0], 1, OLD + 200, DeliveryStatus::Pending).await;
    attempt_at(s, &recent[0], 2, RECENT + 100, DeliveryStatus::Succeeded).await;

    let pass = prune(s, CUTOFFS, 2, None).await.expect("prune");
    assert_eq!(
        pass.removed,
        PruneReport {
            events: 2,
            deliveries: 2,
            // Two with their events; two old ones of finished deliveries whose events stay.
            attempts: 4,
            idempotency_keys: 1,
            mails: 0,
        }
    );
    for (id, d) in [(&succeeded_id, &succeeded[0]), (&failed_id, &failed[0])] {
        assert_eq!(s.get_event(id).await.unwrap(), None, "old event {id} stays");
        assert_eq!(s.get_delivery(&d.id).await.unwrap(), None);
        assert_eq!(attempt_count(s, d).await, 0);
    }
    for id in [&retrying_id, &in_flight_id, &recent_id] {
        assert!(s.get_event(id).await.unwrap().is_some(), "{id} was pruned");
    }
    let kept = s.deliveries_for_event(&retrying_id).await.unwrap();
    assert_eq!(kept.len(), 2, "an owed event keeps every delivery");
    assert_eq!(
        attempt_count(s, &retrying[0]).await,
        1,
        "owed delivery's attempt kept"
    );
    assert_eq!(
        attempt_count(s, &retrying[1]).await,
        0,
        "a finished sibling's old attempt goes"
    );
    assert_eq!(
        s.deliveries_for_event(&in_flight_id).await.unwrap()[0].status,
        DeliveryStatus::InFlight
    );
    assert_eq!(attempt_count(s, &recent[0]).await, 1, "old attempt gone");

    // Nothing left to do: a second pass removes nothing.
    let again = prune(s, CUTOFFS, 2, None).await.expect("second prune");
    assert_eq!(again.removed, PruneReport::default());
    // The pruned event's idempotency key is free again.
    let reused = new_event(RECENT, &[], Some("key-succeeded"));
    let id = reused.event.id.clone();
    assert_eq!(
        s.ingest(reused).await.unwrap(),
        IngestOutcome::Created {
            event_id: id,
            deliveries: 0
        }
    );
    // No cutoffs: nothing goes.
    let none = prune(s, PruneCutoffs::default(), 2, None).await.unwrap();
    assert_eq!(none.removed, PruneReport::default());
    assert!(s.get_event(&recent_id).await.unwrap().is_some());
}

/// Batches repeat until nothing old is left, and two pruners at once (two nodes) remove every
/// row exactly once between them.
pub async fn concurrent_prunes_remove_each_row_once(store: Arc<dyn Store>) {
    let n = 60u64;
    for i in 0..n {
        let (_, ds) = ingest(store.as_ref(), OLD + i as i64, &["wh_a"]).await;
        attempt_at(
            store.as_ref(),
            &ds[0],
            1,
            OLD + 100,
            DeliveryStatus::Succeeded,
        )
        .await;
    }
    let (kept, _) = ingest(store.as_ref(), RECENT, &["wh_a"]).await;
    let (a, b) = (store.clone(), store.clone());
    let one = tokio::spawn(async move { prune(a.as_ref(), CUTOFFS, 7, None).await });
    let two = tokio::spawn(async move { prune(b.as_ref(), CUTOFFS, 7, None).await });
    let mut total = PruneReport::default();
    for pass in [one.await.unwrap(), two.await.unwrap()] {
        total.add(pass.expect("a concurrent prune succeeds").removed);
    }
    assert_eq!(
        total,
        PruneReport {
            events: n,
            deliveries: n,
            attempts: n,
            idempotency_keys: 0,
            mails: 0,
        }
    );
    assert!(store.get_event(&kept).await.unwrap().is_some());
    let rest = prune(store.as_ref(), CUTOFFS, 7, None).await.unwrap();
    assert_eq!(rest.removed, PruneReport::default(), "nothing old was left");
}

fn outbox_mail(id: &str, at: i64) -> OutboxMail {
    OutboxMail {
        id: id.into(),
        webhook_id: "wh_a".into(),
        kind: MailKind::FailureDigest,
        recipient: "ops@example.com".into(),
        subject: format!("subject {id}"),
        body: "body".into(),
        attempts: 0,
        next_attempt_at: at,
        created_at: at,
    }
}

/// Queues a mail created at `OLD` and records `outcome` for it at `at` (`None`: left unsent).
async fn mail_at(store: &dyn Store, id: &str, outcome: Option<MailOutcome>, at: i64) {
    store.enqueue_mail(&outbox_mail(id, OLD)).await.unwrap();
    if let Some(o) = outcome {
        store.finish_mail(id, &o, at).await.unwrap();
    }
}

pub async fn prune_removes_finished_mails_and_keeps_unsent(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let refused = || MailOutcome::Rejected {
        error: "550 no such user".into(),
    };
    // Finished before the cutoff: go (more than one batch of them).
    for i in 0..5 {
        mail_at(s, &format!("sent_{i}"), Some(MailOutcome::Sent), OLD + 100).await;
    }
    mail_at(s, "refused", Some(refused()), OLD + 200).await;
    // Still to send, however old: stay.
    mail_at(s, "unsent", None, 0).await;
    let retry = MailOutcome::Retry {
        at: OLD + 300,
        error: "connection refused".into(),
    };
    mail_at(s, "retrying", Some(retry), OLD + 200).await;
    // Old, but sent after the cutoff (the SMTP server was down for long): stays.
    mail_at(s, "sent_late", Some(MailOutcome::Sent), RECENT).await;

    // Mails follow the attempts' retention, not the events'.
    let events_only = PruneCutoffs {
        events_before: CUTOFFS.events_before,
        attempts_before: None,
    };
    let pass = prune(s, events_only, 2, None).await.unwrap();
    assert_eq!(pass.removed.mails, 0);

    let pass = prune(s, CUTOFFS, 2, None).await.expect("prune");
    assert_eq!(
        pass.removed,
        PruneReport {
            mails: 6,
            ..PruneReport::default()
        },
        "five sent and one refused mail, in batches of two"
    );
    let mut left: Vec<String> = s
        .claim_mail(FAR, FAR, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    left.sort();
    assert_eq!(left, ["retrying", "unsent"], "mails still to send are kept");
    let again = prune(s, CUTOFFS, 2, None).await.unwrap();
    assert_eq!(again.removed, PruneReport::default());
    // The late one goes once it is old enough itself.
    let later = PruneCutoffs {
        events_before: None,
        attempts_before: Some(RECENT + 1),
    };
    assert_eq!(prune(s, later, 2, None).await.unwrap().removed.mails, 1);
}
