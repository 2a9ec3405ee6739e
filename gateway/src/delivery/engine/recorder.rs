//! The recorder half of the engine: attempt records written in batches, retried while the store
//! is unavailable (the writes are idempotent, so a retry after an unknown outcome is safe),
//! bounded by the lease and by shutdown, so a store that keeps failing never stops the rest of
//! the pipeline.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Engine, Finished, RECORD_BATCH};
use crate::delivery::retry::should_disable;
use crate::model::{DeliveryStatus, WebhookHealth};
use crate::store::{AttemptRecord, StoreError};

/// Why a batch of attempt records was not written.
enum WriteFailure {
    /// Still unavailable when retrying stopped making sense (lease over, or stopping).
    GaveUp,
    /// Refused for a reason retrying will not fix.
    Refused(StoreError),
}

impl Engine {
    /// Receives finished attempts and records them in batches until every sender is gone, or,
    /// once shutdown is asked for, until [`Engine::stop_bound`] has passed.
    pub(super) async fn record_loop(
        self,
        mut rx: mpsc::Receiver<Finished>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let bound = Self::stop_bound(&self.0.config);
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        loop {
            if deadline.is_none() && *shutdown.borrow() {
                deadline = Some(tokio::time::Instant::now() + bound);
            }
            let got = match deadline {
                Some(d) => {
                    match tokio::time::timeout_at(d, rx.recv_many(&mut batch, RECORD_BATCH)).await {
                        Ok(n) => n,
                        Err(_) => {
                            tracing::warn!(
                                "stopping: attempts still running are not recorded; their deliveries return when their lease ends"
                            );
                            return;
                        }
                    }
                }
                None => tokio::select! {
                    n = rx.recv_many(&mut batch, RECORD_BATCH) => n,
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            deadline = Some(tokio::time::Instant::now() + bound);
                        }
                        continue;
                    }
                },
            };
            if got == 0 {
                return;
            }
            let items = std::mem::take(&mut batch);
            self.record(items, deadline).await;
        }
    }

    /// Writes a batch, retrying while the store is unavailable until `give_up_at`: past the
    /// lease the delivery is claimable again and a late record would be refused anyway.
    async fn write_batch(
        &self,
        records: &[AttemptRecord],
        give_up_at: tokio::time::Instant,
    ) -> Result<Vec<(String, WebhookHealth)>, WriteFailure> {
        let e = &self.0;
        let mut delay = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            match e.store.record_attempts(records.to_vec()).await {
                Ok(h) => {
                    if failures > 0 {
                        tracing::info!(
                            n = records.len(),
                            retries = failures,
                            "attempts recorded after retrying"
                        );
                    }
                    return Ok(h);
                }
                Err(StoreError::Unavailable(err)) => {
                    if failures == 0 {
                        tracing::warn!(error = %err, n = records.len(), "recording attempts failed; retrying");
                    } else {
                        tracing::debug!(error = %err, n = records.len(), "recording attempts failed again");
                    }
                    failures += 1;
                    let next = tokio::time::Instant::now() + delay;
                    if next >= give_up_at {
                        tracing::warn!(
                            error = %err,
                            n = records.len(),
                            "gave up recording attempts; their deliveries return to the queue when their lease ends"
                        );
                        return Err(WriteFailure::GaveUp);
                    }
                    tokio::time::sleep_until(next).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(other) => return Err(WriteFailure::Refused(other)),
            }
        }
    }

    /// Writes finished attempts, then applies auto-disable. A record the store keeps refusing
    /// for a reason other than unavailability (a bad row) costs only itself: it is logged once
    /// with its cause, the rest of the batch is recorded, and its delivery returns after its
    /// lease.
    async fn record(&self, items: Vec<Finished>, deadline: Option<tokio::time::Instant>) {
        let e = &self.0;
        let records: Vec<AttemptRecord> = items.iter().map(|f| f.record.clone()).collect();
        let lease = Duration::from_secs(e.config.delivery.lease_secs);
        let mut give_up_at = tokio::time::Instant::now() + lease;
        if let Some(d) = deadline {
            give_up_at = give_up_at.min(d);
        }
        let refused = |r: &AttemptRecord, err: &StoreError| {
            tracing::error!(
                error = %err,
                delivery = %r.delivery_id,
                attempt = %r.attempt.id,
                "the store refused an attempt record; dropped (the delivery returns when its lease ends)"
            )
        };
        let healths = match self.write_batch(&records, give_up_at).await {
            Ok(h) => h,
            Err(WriteFailure::GaveUp) => Vec::new(),
            Err(WriteFailure::Refused(err)) if records.len() > 1 => {
                tracing::warn!(error = %err, n = records.len(), "a batch of attempt records was refused; recording them one by one");
                let mut all = Vec::new();
                for r in &records {
                    match self.write_batch(std::slice::from_ref(r), give_up_at).await {
                        Ok(h) => all.extend(h),
                        Err(WriteFailure::GaveUp) => {}
                        Err(WriteFailure::Refused(err)) => refused(r, &err),
                    }
                }
                all
            }
            Err(WriteFailure::Refused(err)) => {
                refused(&records[0], &err);
                Vec::new()
            }
        };
        // A finished head makes the next delivery of its ordered stream due now: look again
        // instead of waiting for the idle poll.
        if items.iter().any(|f| {
            f.ordered
                && matches!(
                    f.record.status,
                    DeliveryStatus::Succeeded | DeliveryStatus::Failed
                )
        }) {
            e.ready.notify_waiters();
        }
        let now = e.clock.now_ms();
        for f in &items {
            let outcome = f.record.attempt.outcome.as_str();
            e.metrics.attempt(outcome);
            if f.record.status == DeliveryStatus::Succeeded {
                e.metrics
                    .delivery_latency
                    .observe((now - f.created_at).max(0) as f64 / 1000.0);
            }
            if let Some(reason) = &f.disable {
                self.disable_webhook(&f.record.attempt.webhook_id, reason)
                    .await;
            }
        }
        for (webhook_id, health) in healths {
            let Some(w) = e.subs.webhook(&webhook_id) else {
                continue;
            };
            if w.is_webhook_enabled
                && let Some(reason) = should_disable(&health, &w.auto_disable, now)
            {
                self.disable_webhook(&webhook_id, &reason).await;
            }
        }
    }
}
