//! Accepting an event: match it, make one delivery per (webhook, url), store both atomically.
//! Shared by the events API and by the gateway's own operational events (`webhook.disabled`).

use crate::model::{Delivery, Event, IngestOutcome, NewEvent};
use crate::store::{Store, StoreResult};
use crate::subscriptions::Subscriptions;

/// Stores `event` with its deliveries; durable when it returns.
pub async fn accept(
    store: &dyn Store,
    subs: &Subscriptions,
    event: Event,
    idempotency_key: Option<String>,
) -> StoreResult<IngestOutcome> {
    let now = event.received_at;
    let snapshot = subs.get();
    let mut deliveries = Vec::new();
    for m in snapshot.matcher.matches(&event) {
        let ordered = m.webhook.ordering.is_ordered();
        for (i, url) in m.webhook.urls.iter().enumerate() {
            deliveries.push(
                Delivery::new(&event.id, &m.webhook.id, url, now)
                    .in_stream(ordered.then_some(i as u32)),
            );
        }
    }
    store
        .ingest(NewEvent {
            event,
            deliveries,
            idempotency_key,
        })
        .await
}
