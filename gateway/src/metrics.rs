//! Prometheus metrics, served at `/metrics`: queue depth, attempts by outcome, delivery latency
//! (ingest to success), disabled webhooks, accepted events, store write failures and the age of
//! the oldest due delivery, rows removed by retention. [`WriteHealth`] remembers whether the store's last write failed, for
//! `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
pub struct KindLabel {
    pub kind: String,
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
    /// Store writes that failed (unavailable or rejected), by this node.
    pub store_write_failures: Counter,
    /// Failure mails by outcome of the send (sent, retry, rejected).
    pub mails: Family<OutcomeLabel, Counter>,
    /// Seconds the oldest due delivery has been waiting past its due time (0: none overdue).
    pub oldest_due_age: Gauge,
    /// Rows retention removed, by kind (events, deliveries, attempts, idempotency_keys).
    pub pruned: Family<KindLabel, Counter>,
    /// Retention passes this node finished.
    pub prune_passes: Counter,
    pub write_health: WriteHealth,
}

/// Whether the store's most recent write failed, and why (ordered by a sequence number, not a
/// clock, so concurrent writes settle on whichever finished last).
pub struct WriteHealth {
    seq: AtomicU64,
    last_failure: AtomicU64,
    last_success: AtomicU64,
    last_error: parking_lot::Mutex<String>,
    /// When the last failure happened, in ms since `epoch` (0: never).
    failed_at_ms: AtomicU64,
    epoch: std::time::Instant,
}

impl Default for WriteHealth {
    fn default() -> Self {
        WriteHealth {
            seq: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            last_error: parking_lot::Mutex::new(String::new()),
            failed_at_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }
}

impl WriteHealth {
    pub fn failed(&self, error: &str) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        *self.last_error.lock() = error.to_string();
        self.last_failure.store(n, Ordering::Relaxed);
        let at = self.epoch.elapsed().as_millis() as u64 + 1;
        self.failed_at_ms.store(at, Ordering::Relaxed);
    }

    /// The last write's error when a write failed within `window` (a store that fails some
    /// writes and not others, as a nearly full disk does, is rejecting writes).
    pub fn failed_within(&self, window: std::time::Duration) -> Option<String> {
        let at = self.failed_at_ms.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        (at > 0 && now.saturating_sub(at) <= window.as_millis() as u64)
            .then(|| self.last_error.lock().clone())
    }

    pub fn succeeded(&self) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.last_success.store(n, Ordering::Relaxed);
    }

    /// The last write's error, when no write succeeded since.
    pub fn failing(&self) -> Option<String> {
        (self.last_failure.load(Ordering::Relaxed) > self.last_success.load(Ordering::Relaxed))
            .then(|| self.last_error.lock().clone())
    }
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
        let store_write_failures = Counter::default();
        registry.register(
            "store_write_failures",
            "Store writes that failed (database unavailable, disk full, rejected)",
            store_write_failures.clone(),
        );
        let mails = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "failure_mails",
            "Failure mail sends by outcome (sent, retry: the SMTP server did not take it, rejected: refused for good)",
            mails.clone(),
        );
        let oldest_due_age = Gauge::default();
        registry.register(
            "oldest_due_delivery_age_seconds",
            "How long the oldest due delivery has waited past its due time (a stuck pipeline grows it)",
            oldest_due_age.clone(),
        );
        let pruned = Family::<KindLabel, Counter>::default();
        registry.register(
            "retention_pruned_rows",
            "Rows removed by retention, by kind (events, deliveries, attempts, idempotency_keys)",
            pruned.clone(),
        );
        let prune_passes = Counter::default();
        registry.register(
            "retention_passes",
            "Retention passes finished by this node",
            prune_passes.clone(),
        );
        Metrics {
            pruned,
            prune_passes,
            store_write_failures,
            mails,
            oldest_due_age,
            write_health: WriteHealth::default(),
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

    /// A retention batch removed `removed`.
    pub fn pruned(&self, removed: &crate::store::PruneReport) {
        for (kind, n) in [
            ("events", removed.events),
            ("deliveries", removed.deliveries),
            ("attempts", removed.attempts),
            ("idempotency_keys", removed.idempotency_keys),
        ] {
            self.pruned
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(n);
        }
    }

    /// A failure mail send ended with `outcome`.
    pub fn mail(&self, outcome: &str) {
        self.mails
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A store write failed.
    pub fn write_failed(&self, error: &str) {
        self.store_write_failures.inc();
        self.write_health.failed(error);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_health_follows_the_last_write() {
        let m = Metrics::default();
        assert_eq!(m.write_health.failing(), None);
        m.write_failed("disk full");
        assert_eq!(m.write_health.failing().as_deref(), Some("disk full"));
        let window = std::time::Duration::from_secs(60);
        assert!(m.write_health.failed_within(window).is_some());
        m.write_health.succeeded();
        assert_eq!(m.write_health.failing(), None);
        assert!(
            m.write_health.failed_within(window).is_some(),
            "still recent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            m.write_health
                .failed_within(std::time::Duration::from_millis(5))
                .is_none()
        );
        assert!(m.encode().contains("gateway_store_write_failures_total 1"));
        assert!(
            m.encode()
                .contains("gateway_oldest_due_delivery_age_seconds 0")
        );
    }
}
