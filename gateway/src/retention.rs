//! Retention: old events, attempt logs and sent failure mails are pruned in small batches (each its own short write)
//! by a background task every `retention.interval_secs`, or by hand with
//! `webhook-gateway store prune`. A delivery still owed (pending, in flight) is never pruned, nor
//! its event or attempts. After a pass SQLite gives the freed space back to the file system.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{PruneCutoffs, PruneReport, Store, StoreResult};

const DAY_MS: i64 = 86_400_000;

/// The `[retention]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days events (with their finished deliveries and attempts) are kept; 0 = forever.
    pub events_days: u64,
    /// Days attempt logs are kept; 0 = forever (they still go with their event).
    pub attempts_days: u64,
    /// When above 0, replaces `events_days` with this many seconds.
    pub events_secs: u64,
    /// When above 0, replaces `attempts_days` with this many seconds.
    pub attempts_secs: u64,
    /// Seconds between two pruning passes.
    pub interval_secs: u64,
    /// Events (or attempts) removed per write.
    pub batch_size: usize,
}

/// Most rows one batch may remove (one write holds SQLite's single writer that long).
pub const MAX_BATCH: usize = 10_000;

impl RetentionConfig {
    /// The problem with these settings, as (key, why).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.interval_secs == 0 {
            return Some(("retention.interval_secs", "must be at least 1 second"));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Some(("retention.batch_size", "must be between 1 and 10000"));
        }
        None
    }

    /// How long events are kept, in ms; `None` = forever.
    pub fn events_keep_ms(&self) -> Option<i64> {
        keep_ms(self.events_days, self.events_secs)
    }

    /// How long attempts are kept, in ms; `None` = forever.
    pub fn attempts_keep_ms(&self) -> Option<i64> {
        keep_ms(self.attempts_days, self.attempts_secs)
    }

    /// Whether anything is ever pruned.
    pub fn enabled(&self) -> bool {
        self.events_keep_ms().is_some() || self.attempts_keep_ms().is_some()
    }

    /// What a pass at `now` (unix ms) removes.
    pub fn cutoffs(&self, now: i64) -> PruneCutoffs {
        PruneCutoffs {
            events_before: self.events_keep_ms().map(|k| now.saturating_sub(k)),
            attempts_before: self.attempts_keep_ms().map(|k| now.saturating_sub(k)),
        }
    }
}

fn keep_ms(days: u64, secs: u64) -> Option<i64> {
    match (days, secs) {
        (_, s) if s > 0 => Some((s as i64).saturating_mul(1_000)),
        (0, _) => None,
        (d, _) => Some((d as i64).saturating_mul(DAY_MS)),
    }
}

/// What one pass removed and, where the store is a local file, how many bytes that gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub removed: PruneReport,
    pub freed_bytes: Option<u64>,
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.removed;
        write!(
            f,
            "removed {} events, {} deliveries, {} attempts, {} idempotency keys, {} mails; ",
            r.events, r.deliveries, r.attempts, r.idempotency_keys, r.mails
        )?;
        match self.freed_bytes {
            Some(b) => write!(f, "freed {}", human_bytes(b)),
            None => write!(f, "PostgreSQL's autovacuum reuses the space"),
        }
    }
}

/// `3.2 MiB`, `512 B`.
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// One pass: old events first (their deliveries and attempts go with them), then the remaining
/// old attempts and the old sent or refused failure mails, each in batches of `batch` until a batch comes back short; then the store gives
/// the space back. Each batch counts in `metrics` as it commits (a pass that fails half-way has
/// still removed its earlier batches).
pub async fn prune(
    store: &dyn Store,
    cutoffs: PruneCutoffs,
    batch: usize,
    metrics: Option<&Metrics>,
) -> StoreResult<PassReport> {
    let before = store.disk_usage().await?;
    let mut removed = PruneReport::default();
    let phases = [
        PruneCutoffs {
            events_before: cutoffs.events_before,
            attempts_before: None,
        },
        PruneCutoffs {
            events_before: None,
            attempts_before: cutoffs.attempts_before,
        },
    ];
    for phase in phases {
        if phase == PruneCutoffs::default() {
            continue;
        }
        loop {
            let got = store.prune_batch(phase, batch).await?;
            if let Some(m) = metrics {
                m.pruned(&got);
            }
            removed.add(got);
            let counted = if phase.events_before.is_some() {
                got.events
            } else {
                got.attempts.max(got.mails)
            };
            if counted < batch as u64 {
                break;
            }
        }
    }
    store.reclaim_space().await?;
    let after = store.disk_usage().await?;
    Ok(PassReport {
        removed,
        freed_bytes: before.zip(after).map(|(b, a)| b.saturating_sub(a)),
    })
}

/// Starts the background pruner (when retention is on): a pass every `interval_secs` with the
/// cutoffs at that moment of `clock`, until `stop` turns true. A failed pass is logged and retried
/// at the next tick; stopping mid-pass abandons at most one batch, which is atomic.
pub fn spawn(
    store: Arc<dyn Store>,
    config: RetentionConfig,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !config.enabled() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(config.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let cutoffs = config.cutoffs(clock.now_ms());
            let pass = tokio::select! {
                r = prune(store.as_ref(), cutoffs, config.batch_size, Some(&metrics)) => r,
                _ = stop.changed() => return,
            };
            match pass {
                Ok(report) => {
                    metrics.prune_passes.inc();
                    if report.removed != PruneReport::default() {
                        tracing::info!(%report, "retention pass");
                    } else {
                        tracing::debug!(%report, "retention pass");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention pass failed; retried next time"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(events_days: u64, events_secs: u64) -> RetentionConfig {
        RetentionConfig {
            events_days,
            attempts_days: 0,
            events_secs,
            attempts_secs: 0,
            interval_secs: 300,
            batch_size: 1000,
        }
    }

    #[test]
    fn seconds_override_days_and_zero_keeps() {
        assert_eq!(config(30, 0).events_keep_ms(), Some(30 * DAY_MS));
        assert_eq!(config(30, 5).events_keep_ms(), Some(5_000));
        assert_eq!(config(0, 0).events_keep_ms(), None);
        assert!(!config(0, 0).enabled());
        let c = config(2, 0).cutoffs(10 * DAY_MS);
        assert_eq!(c.events_before, Some(8 * DAY_MS));
        assert_eq!(c.attempts_before, None);
    }

    #[test]
    fn reports_read_as_a_sentence() {
        let r = PassReport {
            removed: PruneReport {
                events: 1234,
                deliveries: 5678,
                attempts: 9012,
                idempotency_keys: 12,
                mails: 3,
            },
            freed_bytes: Some(3_355_443),
        };
        assert_eq!(
            r.to_string(),
            "removed 1234 events, 5678 deliveries, 9012 attempts, 12 idempotency keys, 3 mails; freed 3.2 MiB"
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn bad_settings_name_the_key() {
        let mut c = config(30, 0);
        assert_eq!(c.problem(), None);
        c.batch_size = 0;
        assert_eq!(c.problem().map(|p| p.0), Some("retention.batch_size"));
        c.batch_size = 10;
        c.interval_secs = 0;
        assert_eq!(c.problem().map(|p| p.0), Some("retention.interval_secs"));
    }
}
