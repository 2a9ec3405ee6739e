//! Suite: team portal links (single use, expiry) and the overview's delivery statistics.

use std::sync::Arc;

use super::{attempt, ingest, record, team, webhook};
use crate::model::{AttemptOutcome, DeliveryStatus, PortalLink, PortalRedeem, new_id};
use crate::store::{HealthChange, StatsQuery, Store};

fn link(hash: &str, expires_at: i64) -> PortalLink {
    PortalLink {
        id: new_id("portal"),
        token_hash: hash.into(),
        team_id: "t1".into(),
        webhook_id: Some("wh_1".into()),
        created_by: "key_1".into(),
        created_at: 1_000,
        expires_at,
        used_at: None,
    }
}

pub async fn portal_links_open_once_and_expire(store: Arc<dyn Store>) {
    let l = link("hash-a", 10_000);
    store.insert_portal_link(&l).await.unwrap();
    store
        .insert_portal_link(&link("hash-old", 4_000))
        .await
        .unwrap();
    // The same token hash twice is refused (tokens are unique).
    assert!(
        store
            .insert_portal_link(&link("hash-a", 9_000))
            .await
            .is_err()
    );

    assert_eq!(
        store.redeem_portal_link("hash-a", 5_000).await.unwrap(),
        PortalRedeem::Opened(PortalLink {
            used_at: Some(5_000),
            ..l.clone()
        })
    );
    assert_eq!(
        store.redeem_portal_link("hash-a", 5_001).await.unwrap(),
        PortalRedeem::Used
    );
    assert_eq!(
        store.redeem_portal_link("hash-old", 5_000).await.unwrap(),
        PortalRedeem::Expired
    );
    assert_eq!(
        store.redeem_portal_link("nope", 5_000).await.unwrap(),
        PortalRedeem::Unknown
    );

    // Many opens at once: exactly one gets the session.
    store
        .insert_portal_link(&link("hash-race", 10_000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.redeem_portal_link("hash-race", 6_000).await.unwrap() })
        })
        .collect();
    let mut opened = 0;
    for t in tasks {
        match t.await.unwrap() {
            PortalRedeem::Opened(_) => opened += 1,
            PortalRedeem::Used => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(opened, 1, "a link opens exactly once");
}

pub async fn delivery_stats_by_bucket_outcome_and_team(store: Arc<dyn Store>) {
    let w1 = webhook(team("t1"), 1);
    let w2 = webhook(team("t2"), 1);
    let w3 = webhook(team("t1"), 1);
    for w in [&w1, &w2, &w3] {
        store.insert_webhook(w).await.unwrap();
    }
    store
        .set_webhook_enabled(&w3.id, false, Some("auto-disabled"), 2)
        .await
        .unwrap();
    ingest(store.as_ref(), 1_000, &[&w1.id, &w2.id]).await;
    let claimed = store.claim_due(1_000, 31_000, 10).await.unwrap();
    let of = |w: &str| claimed.iter().find(|d| d.webhook_id == w).unwrap().clone();
    let mut ok = attempt(&of(&w1.id), 1, 1_100, AttemptOutcome::Success);
    ok.duration_ms = 40;
    let bad = attempt(&of(&w2.id), 1, 1_200, AttemptOutcome::Failed);
    store
        .record_attempts(vec![
            record(
                ok,
                DeliveryStatus::Succeeded,
                1_100,
                None,
                HealthChange::None,
            ),
            record(bad, DeliveryStatus::Failed, 1_200, None, HealthChange::None),
        ])
        .await
        .unwrap();
    ingest(store.as_ref(), 70_000, &[&w1.id]).await;
    let claimed = store.claim_due(70_000, 100_000, 10).await.unwrap();
    let mut retry = attempt(&claimed[0], 1, 70_100, AttemptOutcome::Retry);
    retry.duration_ms = 900;
    store
        .record_attempts(vec![record(
            retry,
            DeliveryStatus::Pending,
            200_000,
            None,
            HealthChange::None,
        )])
        .await
        .unwrap();

    let q = |team: Option<&str>| StatsQuery {
        team_id: team.map(str::to_string),
        since: 0,
        until: 120_000,
        bucket_ms: 60_000,
        max_samples: 100,
    };
    let mut t1 = store.delivery_stats(&q(Some("t1"))).await.unwrap();
    t1.durations.sort();
    assert_eq!(
        t1.counts,
        vec![(0, "success".to_string(), 1), (1, "retry".to_string(), 1)]
    );
    assert_eq!(t1.durations, vec![(0, 40), (1, 900)]);
    assert_eq!(t1.queue, vec![(DeliveryStatus::Pending, 1)]);
    assert_eq!((t1.webhooks, t1.disabled_webhooks), (2, 1));

    let mut all = store.delivery_stats(&q(None)).await.unwrap();
    all.counts.sort();
    assert_eq!(
        all.counts,
        vec![
            (0, "failed".to_string(), 1),
            (0, "success".to_string(), 1),
            (1, "retry".to_string(), 1)
        ]
    );
    assert_eq!((all.webhooks, all.disabled_webhooks), (3, 1));

    // The window bounds attempts; the sample cap keeps the most recent durations.
    let late = store
        .delivery_stats(&StatsQuery {
            since: 60_000,
            max_samples: 1,
            ..q(None)
        })
        .await
        .unwrap();
    assert_eq!(late.counts, vec![(0, "retry".to_string(), 1)]);
    assert_eq!(late.durations, vec![(0, 900)]);
    let none = store.delivery_stats(&q(Some("t9"))).await.unwrap();
    assert!(none.counts.is_empty() && none.queue.is_empty());
    assert_eq!((none.webhooks, none.disabled_webhooks), (0, 0));
}
