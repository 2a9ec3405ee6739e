//! Suite: failure digests (counted with the attempt record, once) and the mail outbox (claims,
//! leases, retries, idempotent enqueueing).

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{attempt, ingest, record, webhook};
use crate::model::{
    AttemptOutcome, DeliveryStatus, FailureNote, MailKind, MailOutcome, OutboxMail, Scope,
};
use crate::store::{HealthChange, Store, StoreError};

const WINDOW: i64 = 10_000;

fn note(error: &str, status: u16) -> FailureNote {
    FailureNote {
        recipient: "ops@example.com".into(),
        window_ms: WINDOW,
        error: Some(error.into()),
        status: Some(status),
    }
}

fn mail(id: &str, at: i64) -> OutboxMail {
    OutboxMail {
        id: id.into(),
        webhook_id: "wh_mail".into(),
        kind: MailKind::Disabled,
        recipient: "ops@example.com".into(),
        subject: format!("subject {id}"),
        body: format!("body {id}\nline two"),
        attempts: 0,
        next_attempt_at: at,
        created_at: at,
    }
}

/// Records a final failure of a fresh delivery of `webhook` at `at`, noted for the digest.
async fn fail_once(store: &dyn Store, webhook: &str, at: i64, error: &str, status: u16) {
    let (_, ds) = ingest(store, at, &[webhook]).await;
    let mut a = attempt(&ds[0], 1, at, AttemptOutcome::Failed);
    a.error = Some(error.into());
    a.status_code = Some(status);
    let mut r = record(
        a,
        DeliveryStatus::Failed,
        at,
        None,
        HealthChange::DeliveryFailed,
    );
    r.failure_note = Some(note(error, status));
    store.record_attempts(vec![r.clone()]).await.unwrap();
    // A retried batch (the answer was lost) counts nothing more.
    store.record_attempts(vec![r]).await.unwrap();
}

pub async fn failure_digest_counts_a_window_once_and_closes_into_one_mail(store: Arc<dyn Store>) {
    let s = store.as_ref();
    for (i, status) in [500u16, 502, 503].into_iter().enumerate() {
        fail_once(
            s,
            "wh_mail",
            1_000 + i as i64 * 100,
            &format!("HTTP {status}"),
            status,
        )
        .await;
    }
    assert!(
        s.due_mail_digests(1_000 + WINDOW - 1, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before the window closes"
    );
    let due = s.due_mail_digests(1_000 + WINDOW + 50, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    let d = &due[0];
    assert_eq!(d.webhook_id, "wh_mail");
    assert_eq!(d.recipient, "ops@example.com");
    assert_eq!(d.failures, 3, "three failures, each counted once");
    assert_eq!(
        d.window_start, 1_012,
        "the first failure's end opens the window"
    );
    assert_eq!(d.due_at, 1_012 + WINDOW);
    assert_eq!(d.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(d.last_status, Some(503));
    assert_eq!(d.last_failed_at, 1_212);

    let m = OutboxMail {
        kind: MailKind::FailureDigest,
        ..mail("mail_digest_1", 20_000)
    };
    assert!(s.close_mail_digest(d, &m).await.unwrap());
    assert!(
        !s.close_mail_digest(d, &m).await.unwrap(),
        "a closed digest closes once"
    );
    assert!(
        s.due_mail_digests(i64::MAX / 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = s.claim_mail(20_000, 80_000, 10).await.unwrap();
    let leased = OutboxMail {
        next_attempt_at: 80_000,
        ..m
    };
    assert_eq!(
        claimed,
        vec![leased],
        "the digest's mail is in the outbox as given, due again when its lease ends"
    );

    // The next failure opens a new window.
    fail_once(s, "wh_mail", 30_000, "timed out", 0).await;
    let due = s.due_mail_digests(30_012 + WINDOW, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].failures, due[0].window_start), (1, 30_012));
}

pub async fn a_digest_that_grew_since_it_was_read_is_not_closed(store: Arc<dyn Store>) {
    let s = store.as_ref();
    fail_once(s, "wh_grow", 1_000, "HTTP 500", 500).await;
    let read = s.due_mail_digests(1_000 + WINDOW * 2, 10).await.unwrap();
    assert_eq!(read[0].failures, 1);
    fail_once(s, "wh_grow", 2_000, "HTTP 404", 404).await;
    assert!(
        !s.close_mail_digest(&read[0], &mail("mail_stale", 0))
            .await
            .unwrap(),
        "closing with a stale count would drop a failure from the mail"
    );
    assert!(
        s.claim_mail(i64::MAX / 2, i64::MAX / 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s.due_mail_digests(1_000 + WINDOW * 2, 10).await.unwrap();
    assert_eq!((again[0].failures, again[0].last_status), (2, Some(404)));
    assert!(
        s.close_mail_digest(&again[0], &mail("mail_fresh", 0))
            .await
            .unwrap()
    );
}

pub async fn mail_outbox_claims_leases_retries_and_finishes(store: Arc<dyn Store>) {
    let s = store.as_ref();
    s.enqueue_mail(&mail("mail_a", 1_000)).await.unwrap();
    // Enqueueing again (a retried write) keeps one mail, unchanged.
    let mut changed = mail("mail_a", 1_000);
    changed.subject = "other".into();
    s.enqueue_mail(&changed).await.unwrap();
    s.enqueue_mail(&mail("mail_b", 65_000)).await.unwrap();

    assert!(
        s.claim_mail(999, 60_000, 10).await.unwrap().is_empty(),
        "not due yet"
    );
    let got = s.claim_mail(1_000, 61_000, 10).await.unwrap();
    let leased = OutboxMail {
        next_attempt_at: 61_000,
        ..mail("mail_a", 1_000)
    };
    assert_eq!(got, vec![leased], "the first enqueued version, leased");
    assert!(
        s.claim_mail(2_000, 62_000, 10).await.unwrap().is_empty(),
        "a claimed mail is not claimed again while its lease runs"
    );
    // The lease ran out (the sender died): claimable again.
    let again = s.claim_mail(61_000, 121_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, "mail_a");

    s.finish_mail(
        "mail_a",
        &MailOutcome::Retry {
            at: 70_000,
            error: "connection refused".into(),
        },
        61_500,
    )
    .await
    .unwrap();
    let ids = |v: Vec<OutboxMail>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.claim_mail(69_999, 130_000, 10).await.unwrap()),
        ["mail_b"]
    );
    let retried = s.claim_mail(70_000, 130_000, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id.as_str(), retried[0].attempts), ("mail_a", 1));

    s.finish_mail("mail_a", &MailOutcome::Sent, 70_100)
        .await
        .unwrap();
    s.finish_mail(
        "mail_b",
        &MailOutcome::Rejected {
            error: "550 no such user".into(),
        },
        70_100,
    )
    .await
    .unwrap();
    // A late second outcome does not bring a sent mail back.
    s.finish_mail(
        "mail_a",
        &MailOutcome::Retry {
            at: 0,
            error: "late".into(),
        },
        70_200,
    )
    .await
    .unwrap();
    assert!(
        s.claim_mail(i64::MAX / 2, i64::MAX / 2, 10)
            .await
            .unwrap()
            .is_empty(),
        "sent and rejected mails are never claimed again"
    );
}

pub async fn concurrent_mail_claimers_never_share(store: Arc<dyn Store>) {
    let mut all = HashSet::new();
    for i in 0..20 {
        let id = format!("mail_c{i:02}");
        store.enqueue_mail(&mail(&id, 100 + i)).await.unwrap();
        all.insert(id);
    }
    let mut set = JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_mail(1_000, 60_000, 3).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut seen = HashSet::new();
    while let Some(res) = set.join_next().await {
        for id in res.unwrap() {
            assert!(seen.insert(id.clone()), "mail {id} was claimed twice");
        }
    }
    assert_eq!(seen, all, "every due mail was claimed once");
}

/// The ids of the mails waiting to be sent (each is then sent, so the next call sees only new
/// ones).
async fn queued(store: &dyn Store) -> Vec<String> {
    let mut ids = Vec::new();
    for m in store
        .claim_mail(i64::MAX / 2, i64::MAX / 2, 100)
        .await
        .unwrap()
    {
        store
            .finish_mail(&m.id, &MailOutcome::Sent, 1)
            .await
            .unwrap();
        ids.push(m.id);
    }
    ids.sort();
    ids
}

pub async fn disabling_a_webhook_queues_one_notice_per_transition(store: Arc<dyn Store>) {
    let w = webhook(Scope::Global, 1);
    store.insert_webhook(&w).await.unwrap();
    let notice = |i: i64| OutboxMail {
        webhook_id: w.id.clone(),
        ..mail(&format!("notice_{i}"), 1_000 + i)
    };

    // Several nodes give up on the webhook at once: one of them disables it and queues its notice.
    let mut set = JoinSet::new();
    for i in 0..4 {
        let (store, id, m) = (store.clone(), w.id.clone(), notice(i));
        set.spawn(async move {
            let reason = format!("reason {i}");
            let changed = store
                .disable_webhook(&id, &reason, 1_000 + i, Some(&m))
                .await
                .expect("disable");
            (changed, m.id, reason)
        });
    }
    let mut winners = Vec::new();
    while let Some(res) = set.join_next().await {
        let (changed, mail_id, reason) = res.unwrap();
        if changed {
            winners.push((mail_id, reason));
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "one call turns it from enabled to disabled: {winners:?}"
    );
    let (mail_id, reason) = winners.pop().unwrap();
    assert_eq!(
        queued(store.as_ref()).await,
        [mail_id],
        "one notice, the winner's"
    );
    let stored = store.get_webhook(&w.id).await.unwrap().unwrap();
    assert!(!stored.is_webhook_enabled);
    assert_eq!(stored.disabled_reason.as_deref(), Some(reason.as_str()));

    // Already disabled: nothing changes and nothing is queued.
    assert!(
        !store
            .disable_webhook(&w.id, "again", 5_000, Some(&notice(9)))
            .await
            .unwrap()
    );
    assert!(
        queued(store.as_ref()).await.is_empty(),
        "no notice when already disabled"
    );
    let stored = store.get_webhook(&w.id).await.unwrap().unwrap();
    assert_eq!(
        stored.disabled_reason.as_deref(),
        Some(reason.as_str()),
        "the first reason stays"
    );

    // Enabled again, then disabled again: a new transition, a new notice.
    store
        .set_webhook_enabled(&w.id, true, None, 6_000)
        .await
        .unwrap();
    assert!(
        store
            .disable_webhook(&w.id, "410 Gone", 7_000, Some(&notice(7)))
            .await
            .unwrap()
    );
    assert_eq!(queued(store.as_ref()).await, ["notice_7"]);

    // Without a notice (no failure email, or mail off) it still disables.
    store
        .set_webhook_enabled(&w.id, true, None, 8_000)
        .await
        .unwrap();
    assert!(
        store
            .disable_webhook(&w.id, "quiet", 9_000, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .get_webhook(&w.id)
            .await
            .unwrap()
            .unwrap()
            .is_webhook_enabled
    );
    assert!(queued(store.as_ref()).await.is_empty());

    assert!(matches!(
        store
            .disable_webhook("wh_nope", "x", 1, Some(&notice(8)))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        queued(store.as_ref()).await.is_empty(),
        "no notice for a missing webhook"
    );
}
