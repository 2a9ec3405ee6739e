//! Suite: ordered delivery. A delivery of an ordered (webhook, url) stream is claimable only at
//! the head of its stream (no earlier one still owed); unordered deliveries are not held by it.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{attempt, new_event, record};
use crate::model::{AttemptOutcome, Delivery, DeliveryStatus};
use crate::store::{HealthChange, Store};

/// Ingests one event at `at` with one delivery to each webhook (ordered or not) and returns them
/// as stored, in the order of `webhooks`.
async fn accept(store: &dyn Store, at: i64, webhooks: &[(&str, bool)]) -> Vec<Delivery> {
    let ids: Vec<&str> = webhooks.iter().map(|w| w.0).collect();
    let mut new = new_event(at, &ids, None);
    for (d, (_, ordered)) in new.deliveries.iter_mut().zip(webhooks) {
        d.stream = ordered.then_some(0);
    }
    let wanted: Vec<String> = new.deliveries.iter().map(|d| d.id.clone()).collect();
    let id = new.event.id.clone();
    store.ingest(new).await.expect("ingest");
    let stored = store.deliveries_for_event(&id).await.unwrap();
    wanted
        .iter()
        .map(|w| stored.iter().find(|d| &d.id == w).expect("stored").clone())
        .collect()
}

/// Records the end of `d`'s attempt at `at`: succeeded, failed for good, or a retry at `next`.
async fn finish(store: &dyn Store, d: &Delivery, at: i64, status: DeliveryStatus, next: i64) {
    let outcome = match status {
        DeliveryStatus::Succeeded => AttemptOutcome::Success,
        DeliveryStatus::Failed => AttemptOutcome::Failed,
        _ => AttemptOutcome::Retry,
    };
    let rec = record(
        attempt(d, d.attempts + 1, at, outcome),
        status,
        next,
        None,
        HealthChange::None,
    );
    store.record_attempts(vec![rec]).await.expect("record");
}

fn ids(ds: &[Delivery]) -> Vec<&str> {
    let mut v: Vec<&str> = ds.iter().map(|d| d.id.as_str()).collect();
    v.sort_unstable();
    v
}

pub async fn ordered_head_blocks_the_next(store: Arc<dyn Store>) {
    let first = accept(store.as_ref(), 1_000, &[("wh_o", true)]).await;
    let second = accept(store.as_ref(), 1_001, &[("wh_o", true)]).await;
    assert_eq!(
        (first[0].stream, second[0].stream),
        (Some(0), Some(0)),
        "the stream is stored"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(1_000));

    let got = store.claim_due(5_000, 35_000, 10).await.unwrap();
    assert_eq!(ids(&got), ids(&first), "only the head is claimed");
    assert_eq!(
        store.next_due_at().await.unwrap(),
        Some(35_000),
        "the one waiting behind the head is not due: only the head's lease end is"
    );
    assert!(
        store.claim_due(6_000, 36_000, 10).await.unwrap().is_empty(),
        "the next waits while the head is in flight"
    );

    // The head fails and waits for its retry: the stream stays held.
    finish(
        store.as_ref(),
        &got[0],
        6_000,
        DeliveryStatus::Pending,
        9_000,
    )
    .await;
    assert!(
        store.claim_due(7_000, 37_000, 10).await.unwrap().is_empty(),
        "the next waits while the head waits for its retry"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(9_000));

    // A crashed sender: the head's lease expires and the head (never the next) is taken again.
    let retried = store.claim_due(9_000, 10_000, 10).await.unwrap();
    assert_eq!(ids(&retried), ids(&first));
    let again = store.claim_due(10_000, 40_000, 10).await.unwrap();
    assert_eq!(ids(&again), ids(&first), "after the lease, the head again");
}

pub async fn ordered_next_claimable_after_success(store: Arc<dyn Store>) {
    let mut stream = Vec::new();
    for i in 0..3 {
        stream.extend(accept(store.as_ref(), 1_000 + i, &[("wh_o", true)]).await);
    }
    for (i, expected) in stream.iter().enumerate() {
        let now = 2_000 + i as i64 * 10;
        let got = store.claim_due(now, now + 30_000, 10).await.unwrap();
        assert_eq!(
            ids(&got),
            vec![expected.id.as_str()],
            "delivery {i} in order"
        );
        finish(store.as_ref(), &got[0], now, DeliveryStatus::Succeeded, now).await;
    }
    assert!(store.claim_due(9_000, 39_000, 10).await.unwrap().is_empty());
    assert_eq!(store.next_due_at().await.unwrap(), None);
}

pub async fn ordered_next_claimable_after_give_up(store: Arc<dyn Store>) {
    let first = accept(store.as_ref(), 1_000, &[("wh_o", true)]).await;
    let second = accept(store.as_ref(), 1_001, &[("wh_o", true)]).await;
    let got = store.claim_due(2_000, 32_000, 10).await.unwrap();
    assert_eq!(ids(&got), ids(&first));
    finish(
        store.as_ref(),
        &got[0],
        2_000,
        DeliveryStatus::Failed,
        2_000,
    )
    .await;
    let next = store.claim_due(2_001, 32_001, 10).await.unwrap();
    assert_eq!(
        ids(&next),
        ids(&second),
        "a head that gave up lets the next go"
    );
}

pub async fn ordered_streams_are_per_webhook_and_url(store: Arc<dyn Store>) {
    // Two ordered webhooks, and an unordered one beside them: three events each.
    let mut all = Vec::new();
    for i in 0..3 {
        all.push(
            accept(
                store.as_ref(),
                1_000 + i,
                &[("wh_a", true), ("wh_b", true), ("wh_u", false)],
            )
            .await,
        );
    }
    let got = store.claim_due(2_000, 32_000, 50).await.unwrap();
    let mut expected = vec![all[0][0].clone(), all[0][1].clone()];
    expected.extend(all.iter().map(|ds| ds[2].clone()));
    assert_eq!(
        ids(&got),
        ids(&expected),
        "each ordered stream's head, and every unordered delivery at once"
    );

    // The same webhook with two urls: two streams.
    let mut new = new_event(3_000, &["wh_c", "wh_c"], None);
    new.deliveries[1].url = "https://receiver.example/other".into();
    for (i, d) in new.deliveries.iter_mut().enumerate() {
        d.stream = Some(i as u32);
    }
    let two: Vec<String> = new.deliveries.iter().map(|d| d.id.clone()).collect();
    store.ingest(new).await.unwrap();
    let got = store.claim_due(3_000, 33_000, 50).await.unwrap();
    let got: HashSet<String> = got.into_iter().map(|d| d.id).collect();
    assert_eq!(got, two.into_iter().collect(), "one head per url");
}

pub async fn ordered_requeue_goes_to_the_back(store: Arc<dyn Store>) {
    let first = accept(store.as_ref(), 1_000, &[("wh_o", true)]).await;
    let got = store.claim_due(2_000, 32_000, 10).await.unwrap();
    finish(
        store.as_ref(),
        &got[0],
        2_000,
        DeliveryStatus::Failed,
        2_000,
    )
    .await;
    let second = accept(store.as_ref(), 2_500, &[("wh_o", true)]).await;
    // Resent after a later one was accepted: it waits behind it.
    store.requeue_delivery(&first[0].id, 3_000).await.unwrap();
    let got = store.claim_due(3_000, 33_000, 10).await.unwrap();
    assert_eq!(ids(&got), ids(&second), "the later one was there first");
    finish(
        store.as_ref(),
        &got[0],
        3_000,
        DeliveryStatus::Succeeded,
        3_000,
    )
    .await;
    let got = store.claim_due(3_001, 33_001, 10).await.unwrap();
    assert_eq!(ids(&got), ids(&first), "then the resent one");

    // Recovering failed ones keeps their order among themselves.
    finish(
        store.as_ref(),
        &got[0],
        3_001,
        DeliveryStatus::Failed,
        3_001,
    )
    .await;
    let third = accept(store.as_ref(), 4_000, &[("wh_o", true)]).await;
    let head = store.claim_due(4_000, 34_000, 10).await.unwrap();
    assert_eq!(ids(&head), ids(&third));
    finish(
        store.as_ref(),
        &head[0],
        4_000,
        DeliveryStatus::Failed,
        4_000,
    )
    .await;
    assert_eq!(
        store.requeue_failed_since("wh_o", 0, 5_000).await.unwrap(),
        2
    );
    for expected in [&first, &third] {
        let got = store.claim_due(5_000, 35_000, 10).await.unwrap();
        assert_eq!(ids(&got), ids(expected));
        finish(
            store.as_ref(),
            &got[0],
            5_000,
            DeliveryStatus::Succeeded,
            5_000,
        )
        .await;
    }
}

pub async fn concurrent_claimers_keep_one_in_flight_per_stream(store: Arc<dyn Store>) {
    // Four claimers drain two ordered streams of 15: at every moment at most one delivery of a
    // stream is held, and each stream is sent in its order.
    let mut order: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for i in 0..15 {
        let ds = accept(store.as_ref(), 100 + i, &[("wh_a", true), ("wh_b", true)]).await;
        for (k, d) in ds.into_iter().enumerate() {
            order[k].push(d.id);
        }
    }
    let held = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let sent = Arc::new(std::sync::Mutex::new(Vec::<Delivery>::new()));
    let mut set = JoinSet::new();
    for _ in 0..4 {
        let (store, held, sent) = (store.clone(), held.clone(), sent.clone());
        set.spawn(async move {
            let mut idle = 0;
            while idle < 50 {
                let got = store.claim_due(1_000, 60_000, 3).await.expect("claim");
                if got.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                for d in &got {
                    assert!(
                        held.lock().unwrap().insert(d.webhook_id.clone()),
                        "two deliveries of {} held at once",
                        d.webhook_id
                    );
                }
                tokio::task::yield_now().await;
                for d in got {
                    sent.lock().unwrap().push(d.clone());
                    held.lock().unwrap().remove(&d.webhook_id);
                    finish(store.as_ref(), &d, 1_000, DeliveryStatus::Succeeded, 1_000).await;
                }
            }
        });
    }
    while let Some(res) = set.join_next().await {
        res.unwrap();
    }
    let sent = sent.lock().unwrap();
    for (k, w) in ["wh_a", "wh_b"].iter().enumerate() {
        let mine: Vec<&String> = sent
            .iter()
            .filter(|d| &d.webhook_id == w)
            .map(|d| &d.id)
            .collect();
        assert_eq!(
            mine,
            order[k].iter().collect::<Vec<_>>(),
            "{w} sent in order"
        );
    }
}
