//! Accepting an event: match it, make one delivery per (webhook, url), store both atomically.
//! Shared by the events API and by the gateway's own operational events (`webhook.disabled`).

use tracing::{Instrument, Span};

use crate::model::{Delivery, Event, IngestOutcome, NewEvent};
use crate::store::{Store, StoreResult};
use crate::subscriptions::Subscriptions;
use crate::telemetry;

/// Stores `event` with its deliveries; durable when it returns.
pub async fn accept(
    store: &dyn Store,
    subs: &Subscriptions,
    event: Event,
    idempotency_key: Option<String>,
) -> StoreResult<IngestOutcome> {
    let span = match telemetry::enabled() {
        true => tracing::info_span!(target: telemetry::TARGET, "event.accepted",
            event.id = %event.id, event.type = %event.event_type),
        false => Span::none(),
    };
    telemetry::in_event_trace(&span, &event.id);
    async move {
        let now = event.received_at;
        let deliveries = {
            let _matched = match telemetry::enabled() {
                true => tracing::info_span!(target: telemetry::TARGET, "event.matched",
                    deliveries = tracing::field::Empty)
                .entered(),
                false => Span::none().entered(),
            };
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
            Span::current().record("deliveries", deliveries.len());
            deliveries
        };
        store
            .ingest(NewEvent {
                event,
                deliveries,
                idempotency_key,
            })
            .await
    }
    .instrument(span)
    .await
}
