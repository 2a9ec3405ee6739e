//! The delivery engine: a dispatcher that claims due deliveries with a lease (a crashed node's
//! claims come back when the lease ends), a bounded set of concurrent attempts over one pooled
//! HTTP client, and a recorder that writes attempt logs in batches (one commit for many
//! attempts). Auto-disable and the `webhook.disabled` operational event happen after recording.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tracing::Instrument;

use super::attempt::{self, Sent};
use super::guard::{OutboundGuard, parse_allowed};
use super::plugins::{PluginStage, TransformResult};
use super::retry::{AttemptResult, Decision, RetryBounds};
use super::shaping::SizeCaps;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::event::WEBHOOK_DISABLED;
use crate::model::{Attempt, Delivery, DeliveryStatus, Event, NewEvent, Webhook, new_id};
use crate::store::{AttemptRecord, Store, StoreError};
use crate::subscriptions::Subscriptions;

mod authed;
mod operations;
mod recorder;

/// Most deliveries claimed in one query.
const CLAIM_BATCH: usize = 256;
/// Most attempt records written in one transaction.
const RECORD_BATCH: usize = 512;
/// How often an idle dispatcher looks for work other nodes (or retries) made due.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// An attempt ready to be recorded.
struct Finished {
    record: AttemptRecord,
    /// Disable the webhook now (410 Gone).
    disable: Option<String>,
    /// When the delivery was created (for the latency histogram on success).
    created_at: i64,
    /// Part of an ordered stream: when it ends, the next in its stream is due at once.
    ordered: bool,
}

impl Finished {
    /// Puts the attempt's plugin log lines on its record.
    fn with_plugin_logs(mut self, logs: Vec<crate::model::PluginLogLine>) -> Self {
        self.record.attempt.plugin_logs = logs;
        self
    }
}

/// Shared by the dispatcher, attempt tasks, the recorder and the API (test sends).
pub struct EngineInner {
    store: Arc<dyn Store>,
    clock: SharedClock,
    config: Arc<Config>,
    subs: Subscriptions,
    client: super::clients::ClientSet,
    guard: OutboundGuard,
    ready: Arc<Notify>,
    metrics: Arc<Metrics>,
    caps: SizeCaps,
    bounds: RetryBounds,
    plugins: PluginStage,
    /// Failure mail, while `smtp.url` is set.
    mail: Option<crate::notify::MailPolicy>,
}

/// A cheap handle to the engine.
#[derive(Clone)]
pub struct Engine(Arc<EngineInner>);

/// Why a test send could not run.
#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        config: Arc<Config>,
        subs: Subscriptions,
        ready: Arc<Notify>,
        metrics: Arc<Metrics>,
        plugins: PluginStage,
    ) -> anyhow::Result<Self> {
        let allowed = parse_allowed(&config.allowed_networks)
            .map_err(|e| anyhow::anyhow!("allowed_networks: {e}"))?;
        let guard = OutboundGuard::new(allowed);
        let roots = super::clients::load_roots(&config.delivery.extra_root_certificates)?;
        let client = super::clients::ClientSet::new(guard.clone(), roots, config.delivery.workers)?;
        let d = &config.delivery;
        let caps = SizeCaps {
            body_chars: d.max_body_chars,
            query_chars: d.max_query_chars,
        };
        let bounds = RetryBounds {
            retry_after_min_ms: d.retry_after_min_secs as i64 * 1000,
            retry_after_max_ms: d.retry_after_max_secs as i64 * 1000,
            ..RetryBounds::default()
        };
        let mail = crate::notify::MailPolicy::from_config(&config);
        let tokens = super::oauth2::TokenCache::new(
            config.plugins.oauth2_token_urls.clone(),
            guard.clone(),
            clock.clone(),
        )?;
        let plugins = plugins.with_tokens(Arc::new(tokens));
        Ok(Engine(Arc::new(EngineInner {
            store,
            clock,
            config,
            subs,
            client,
            guard,
            ready,
            metrics,
            caps,
            bounds,
            plugins,
            mail,
        })))
    }

    /// How long stopping may take once shutdown is asked for: in-flight attempts get the attempt
    /// timeout (`delivery.timeout_secs`) plus 1 s to finish, and recording what finished gets
    /// until this bound; whatever is still unrecorded then is left to its lease (delivered again,
    /// never lost).
    pub fn stop_bound(config: &Config) -> Duration {
        Duration::from_secs(config.delivery.timeout_secs + 2)
    }

    /// Starts the dispatcher and recorder; they stop (after finishing in-flight attempts, within
    /// [`Engine::stop_bound`]) when `shutdown` turns true.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::channel::<Finished>(RECORD_BATCH * 4);
        let recorder = tokio::spawn(self.clone().record_loop(rx, shutdown.clone()));
        let me = self.clone();
        tokio::spawn(async move {
            me.dispatch_loop(tx, shutdown).await;
            let _ = recorder.await;
        })
    }

    async fn dispatch_loop(self, tx: mpsc::Sender<Finished>, mut shutdown: watch::Receiver<bool>) {
        let e = &self.0;
        let workers = e.config.delivery.workers;
        let slots = Arc::new(Semaphore::new(workers));
        let lease_ms = e.config.delivery.lease_secs as i64 * 1000;
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Register interest before looking, so a notification between the claim and the wait
            // is not lost.
            let notified = e.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let free = slots.available_permits();
            if free == 0 {
                let _ = slots.clone().acquire_owned().await.map(drop);
                continue;
            }
            let now = e.clock.now_ms();
            match e
                .store
                .claim_due(now, now + lease_ms, free.min(CLAIM_BATCH))
                .await
            {
                Ok(batch) if !batch.is_empty() => {
                    backoff = Duration::from_millis(100);
                    // One read for the events of every first attempt in the batch.
                    let mut wanted: Vec<String> = batch
                        .iter()
                        .filter(|d| d.request.is_none())
                        .map(|d| d.event_id.clone())
                        .collect();
                    wanted.sort_unstable();
                    wanted.dedup();
                    let events: HashMap<String, Arc<Event>> = if wanted.is_empty() {
                        HashMap::new()
                    } else {
                        e.store
                            .get_events(&wanted)
                            .await
                            .unwrap_or_default()
                            .into_iter()
                            .map(|ev| (ev.id.clone(), Arc::new(ev)))
                            .collect()
                    };
                    for d in batch {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let (me, tx) = (self.clone(), tx.clone());
                        let event = events.get(&d.event_id).cloned();
                        tokio::spawn(async move {
                            // Claimed before a pause (SIGSTOP, a stalled VM) that outlasted the
                            // lease: another node may own it now, so do not send it again here.
                            if d.lease_until.is_some_and(|l| me.0.clock.now_ms() >= l) {
                                tracing::info!(delivery = %d.id, "lease ran out before sending; left to the next claim");
                                drop(permit);
                                return;
                            }
                            let f = me.attempt(d, event, false).await;
                            let _ = tx.send(f).await;
                            drop(permit);
                        });
                    }
                }
                Ok(_) => {
                    let wait = match e.store.next_due_at().await {
                        Ok(Some(t)) => Duration::from_millis(
                            (t - e.clock.now_ms()).clamp(0, IDLE_POLL.as_millis() as i64) as u64,
                        ),
                        _ => IDLE_POLL,
                    };
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(err) => {
                    // The store is down: back off, then resume by ourselves.
                    tracing::warn!(error = %err, "claiming deliveries failed; backing off");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Let in-flight attempts finish (bounded by the per-attempt timeout).
        let _ = tokio::time::timeout(
            Duration::from_secs(e.config.delivery.timeout_secs + 1),
            slots.acquire_many(workers as u32),
        )
        .await;
    }

    /// One attempt of `d`, in its trace span when traces are exported.
    async fn attempt(&self, d: Delivery, event: Option<Arc<Event>>, test: bool) -> Finished {
        let span = crate::telemetry::attempt_span(&d);
        let f = self
            .send_once(d, event, test)
            .instrument(span.clone())
            .await;
        crate::telemetry::record_attempt(&span, &f.record.attempt);
        f
    }

    /// One attempt of `d`: prepare (once), finalize (auth, signature), send, conclude. `event`
    /// is the delivery's event when the caller already has it.
    async fn send_once(&self, d: Delivery, event: Option<Arc<Event>>, test: bool) -> Finished {
        let e = &self.0;
        let now = e.clock.now_ms();
        let mut jitter = || rand::thread_rng().r#gen::<f64>();
        let webhook = match e.subs.webhook(&d.webhook_id) {
            Some(w) => w,
            None => match e.store.get_webhook(&d.webhook_id).await {
                Ok(Some(w)) => Arc::new(w),
                _ => return self.give_up(&d, "the webhook no longer exists", now),
            },
        };
        if !webhook.is_webhook_enabled && !test {
            return self.give_up(&d, "the webhook is disabled", now);
        }
        let mut newly_prepared = None;
        // The transformer chain's lines (on the attempt that ran it), then the authenticator's.
        let mut logs = Vec::new();
        let prepared = match &d.request {
            Some(r) => r.clone(),
            None => {
                let event = match event {
                    Some(ev) => Ok(Some(ev)),
                    None => e
                        .store
                        .get_event(&d.event_id)
                        .await
                        .map(|o| o.map(Arc::new)),
                };
                let event = match event {
                    Ok(Some(ev)) => ev,
                    Ok(None) => return self.give_up(&d, "the event no longer exists", now),
                    Err(err) => return self.retry_later(&d, &err.to_string(), now),
                };
                let shaped = attempt::prepare(&webhook, &event, &d.url, &e.caps);
                let transformed = match shaped {
                    Ok(base) => {
                        let (result, lines) = e
                            .plugins
                            .transform(&webhook, &event, &d, base, now)
                            .instrument(crate::telemetry::transform_span())
                            .await;
                        logs = lines;
                        result
                    }
                    Err(result) => Err(result),
                };
                match transformed {
                    Ok(TransformResult::Send(r)) => {
                        newly_prepared = Some(r.clone());
                        r
                    }
                    Ok(TransformResult::Skip(reason)) => {
                        return self
                            .skipped(&webhook, &d, &reason, now)
                            .with_plugin_logs(logs);
                    }
                    Err(result) => {
                        let sent = attempt::not_sent(&webhook, &d.url, result, now);
                        return self
                            .conclude(&webhook, &d, sent, None, now, test, &mut jitter, &[])
                            .with_plugin_logs(logs);
                    }
                }
            }
        };
        // Per attempt: authenticate, fill, sign and send (engine/authed.rs).
        let authed = match self.send_authed(&webhook, &d, &prepared, now).await {
            Ok(a) => a,
            Err((result, lines)) => {
                logs.extend(lines);
                let sent = attempt::not_sent(&webhook, &d.url, result, now);
                return self
                    .conclude(
                        &webhook,
                        &d,
                        sent,
                        newly_prepared,
                        now,
                        test,
                        &mut jitter,
                        &[],
                    )
                    .with_plugin_logs(logs);
            }
        };
        logs.extend(authed.logs);
        let done = e.clock.now_ms();
        self.conclude(
            &webhook,
            &d,
            authed.sent,
            newly_prepared,
            done,
            test,
            &mut jitter,
            &authed.secret_names,
        )
        .with_plugin_logs(logs)
    }

    #[allow(clippy::too_many_arguments)]
    fn conclude(
        &self,
        webhook: &Webhook,
        d: &Delivery,
        sent: Sent,
        newly_prepared: Option<crate::model::PreparedRequest>,
        now: i64,
        test: bool,
        jitter: &mut impl FnMut() -> f64,
        secret_names: &[String],
    ) -> Finished {
        let error_kind = super::outcome_log::error_kind(&sent.result);
        let (mut record, decision) = attempt::conclude(
            webhook,
            d,
            sent,
            newly_prepared,
            now,
            &self.0.bounds,
            jitter,
            test,
        );
        // Values an authenticator placed from secret handles are masked like built-in secrets.
        for (name, value) in &mut record.attempt.request_headers {
            if secret_names.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                *value = crate::model::MASK.to_string();
            }
        }
        if !test && let Some(policy) = &self.0.mail {
            record.failure_note = policy.failure_note(webhook, &record);
        }
        super::outcome_log::log_attempt(&record.attempt, error_kind);
        let disable = match decision {
            Decision::GiveUp {
                disable_webhook: true,
                reason,
            } if !test => Some(reason),
            _ => None,
        };
        Finished {
            record,
            disable,
            created_at: d.created_at,
            ordered: d.stream.is_some(),
        }
    }

    /// A transformer chose not to send: the delivery ends (succeeded, nothing sent), logged with
    /// the plugin's reason.
    fn skipped(&self, webhook: &Webhook, d: &Delivery, reason: &str, now: i64) -> Finished {
        let sent = attempt::not_sent(
            webhook,
            &d.url,
            AttemptResult::Response {
                status: 204,
                retry_after: None,
            },
            now,
        );
        let (mut record, _) = attempt::conclude(
            webhook,
            d,
            sent,
            None,
            now,
            &self.0.bounds,
            &mut || 0.5,
            true,
        );
        record.attempt.status_code = None;
        record.attempt.error = Some(format!("skipped by plugin: {reason}"));
        record.health = crate::store::HealthChange::None;
        super::outcome_log::log_attempt(&record.attempt, Some("skipped"));
        Finished {
            record,
            disable: None,
            created_at: d.created_at,
            ordered: d.stream.is_some(),
        }
    }

    /// Fails a delivery without sending (its webhook or event is gone, or it is disabled).
    fn give_up(&self, d: &Delivery, reason: &str, now: i64) -> Finished {
        let w = self.0.subs.webhook(&d.webhook_id);
        let placeholder;
        let webhook = match &w {
            Some(w) => w.as_ref(),
            None => {
                placeholder = placeholder_webhook(&d.webhook_id);
                &placeholder
            }
        };
        let sent = attempt::not_sent(
            webhook,
            &d.url,
            AttemptResult::Invalid {
                message: reason.to_string(),
            },
            now,
        );
        let (mut record, _) = attempt::conclude(
            webhook,
            d,
            sent,
            None,
            now,
            &self.0.bounds,
            &mut || 0.5,
            true,
        );
        record.attempt.error = Some(reason.to_string());
        super::outcome_log::log_attempt(&record.attempt, Some("gave_up"));
        Finished {
            record,
            disable: None,
            created_at: d.created_at,
            ordered: d.stream.is_some(),
        }
    }

    /// Puts a delivery back for a little later after a transient store error while preparing.
    fn retry_later(&self, d: &Delivery, reason: &str, now: i64) -> Finished {
        let mut f = self.give_up(d, reason, now);
        f.record.status = DeliveryStatus::Pending;
        f.record.next_attempt_at = now + 5_000;
        f.record.attempt.outcome = crate::model::AttemptOutcome::Retry;
        f
    }
}

/// Stands in for a deleted webhook when logging why its delivery failed.
fn placeholder_webhook(id: &str) -> Webhook {
    Webhook {
        id: id.to_string(),
        is_webhook_enabled: false,
        ..Webhook::default()
    }
}
