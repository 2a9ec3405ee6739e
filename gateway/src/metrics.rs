//! Prometheus metrics, served at `/metrics`: queue depth, attempts by outcome, delivery latency
//! (ingest to success), disabled webhooks, accepted events.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// Every metric the gateway keeps.
pub struct Metrics {
    registry: Registry,
    pub attempts: Family<OutcomeLabel, Counter>,
    pub delivery_latency: Histogram,
    pub events_accepted: Counter,
    pub queue: Family<StatusLabel, Gauge>,
    pub webhooks_disabled: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        let attempts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts by outcome (success, retry, failed)",
            attempts.clone(),
        );
        let delivery_latency = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0,
        ]);
        registry.register(
            "delivery_latency_seconds",
            "Time from accepting an event to its successful delivery",
            delivery_latency.clone(),
        );
        let events_accepted = Counter::default();
        registry.register(
            "events_accepted",
            "Events accepted by this node",
            events_accepted.clone(),
        );
        let queue = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "deliveries",
            "Deliveries in the store by status (pending + in_flight = queue depth)",
            queue.clone(),
        );
        let webhooks_disabled = Gauge::default();
        registry.register(
            "webhooks_disabled",
            "Webhooks currently disabled",
            webhooks_disabled.clone(),
        );
        Metrics {
            registry,
            attempts,
            delivery_latency,
            events_accepted,
            queue,
            webhooks_disabled,
        }
    }
}

impl Metrics {
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn attempt(&self, outcome: &str) {
        self.attempts
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
