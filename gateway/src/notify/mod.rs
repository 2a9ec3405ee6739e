//! Failure emails (Squadcast's failure notification email, Callgoose's request failure /
//! deactivation email, incident.io's "disabled, we notify you via email"), sent over SMTP to a
//! webhook's `failure_email`:
//! - a digest when deliveries fail for good: the first failure opens a window
//!   (`notifications.digest_window_secs`), the failures of the window are counted with the
//!   delivery's record (`store::AttemptRecord::failure_note`), and when it closes one mail says
//!   how many, the last error and the last status;
//! - a notice at once when the gateway disables a webhook (auto-disable, 410 Gone).
//!
//! Mails wait in a durable outbox (`mail_outbox`) and are sent by [`Notifier`], its own task:
//! a dead SMTP server never slows deliveries, and a mail it did not take is tried again with
//! backoff until it is accepted. Nothing is queued while `smtp.url` is empty.

pub mod digest;
pub mod mail;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use digest::MailPolicy;
use mail::{Mailer, SendError};
use render::Links;

use crate::clock::SharedClock;
use crate::config::{Config, NotificationsConfig, SmtpConfig};
use crate::metrics::Metrics;
use crate::model::{MailKind, MailOutcome, OutboxMail, Webhook};
use crate::store::Store;

/// How often the notifier looks for closed windows and due mails.
const POLL: Duration = Duration::from_millis(500);
/// Most digests closed, and mails claimed, per round.
const BATCH: usize = 32;

/// Checks `[smtp]` and `[notifications]`; the error names the key.
pub fn validate(smtp: &SmtpConfig, n: &NotificationsConfig) -> Result<(), (&'static str, String)> {
    let bad = |key, why: &str| Err((key, why.to_string()));
    if n.digest_window_secs == 0 {
        return bad("notifications.digest_window_secs", "must be at least 1");
    }
    if n.retry_min_secs == 0 {
        return bad("notifications.retry_min_secs", "must be at least 1");
    }
    if n.retry_max_secs < n.retry_min_secs {
        return bad(
            "notifications.retry_max_secs",
            "must be at least retry_min_secs",
        );
    }
    if !smtp.enabled() {
        return Ok(());
    }
    if !(smtp.url.starts_with("smtp://") || smtp.url.starts_with("smtps://")) {
        return bad(
            "smtp.url",
            "must be smtp://host[:port][?tls=required|opportunistic] or smtps://host[:port]",
        );
    }
    if smtp.timeout_secs == 0 {
        return bad("smtp.timeout_secs", "must be at least 1");
    }
    if smtp.from.is_empty() {
        return bad("smtp.from", "is required when smtp.url is set");
    }
    if smtp.username.is_empty() != smtp.password.is_empty() {
        return bad(
            "smtp.username",
            "set both smtp.username and smtp.password, or neither",
        );
    }
    Mailer::check(smtp)
}

/// The notice that `webhook` was disabled at `at`, ready for the outbox; `None` when mail is off
/// or the webhook has no failure email.
pub fn disabled_mail(
    policy: Option<&MailPolicy>,
    webhook: &Webhook,
    reason: &str,
    at: i64,
    config: &Config,
) -> Option<OutboxMail> {
    policy?;
    let recipient = digest::recipient(webhook)?;
    let r = render::disabled(webhook, reason, at, &Links::new(&config.public_url));
    Some(OutboxMail {
        id: digest::disabled_mail_id(&webhook.id, at),
        webhook_id: webhook.id.clone(),
        kind: MailKind::Disabled,
        recipient: recipient.to_string(),
        subject: r.subject,
        body: r.body,
        attempts: 0,
        next_attempt_at: at,
        created_at: at,
    })
}

/// The task that closes due digests into mails and sends the outbox.
pub struct Notifier {
    store: Arc<dyn Store>,
    clock: SharedClock,
    mailer: Mailer,
    policy: MailPolicy,
    links: Links,
    /// How long a claimed mail stays this node's: a whole batch of sends that all time out.
    lease_ms: i64,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// `None` while mail is off.
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Option<Self>> {
        let Some(policy) = MailPolicy::from_config(config) else {
            return Ok(None);
        };
        let mailer = Mailer::new(&config.smtp).map_err(|e| anyhow::anyhow!("smtp: {e}"))?;
        Ok(Some(Notifier {
            store,
            clock,
            mailer,
            policy,
            links: Links::new(&config.public_url),
            lease_ms: (config.smtp.timeout_secs as i64 + 5) * 1000 * BATCH as i64,
            metrics,
        }))
    }

    /// Runs until `shutdown` turns true. A mail being sent then is finished first (bounded by
    /// `smtp.timeout_secs`); what is left stays in the outbox for the next start.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while !*shutdown.borrow() {
                self.close_digests().await;
                self.send_due(&shutdown).await;
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }

    /// Turns every digest whose window closed into an outbox mail.
    async fn close_digests(&self) {
        let now = self.clock.now_ms();
        let due = match self.store.due_mail_digests(now, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "reading failure digests failed; trying again later");
                return;
            }
        };
        for d in due {
            // The webhook as it is now (urls, name); a deleted one is named by its id.
            let webhook = self.store.get_webhook(&d.webhook_id).await.ok().flatten();
            let r = render::digest(webhook.as_ref(), &d, &self.links);
            let mail = OutboxMail {
                id: digest::digest_mail_id(&d),
                webhook_id: d.webhook_id.clone(),
                kind: MailKind::FailureDigest,
                recipient: d.recipient.clone(),
                subject: r.subject,
                body: r.body,
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
            };
            match self.store.close_mail_digest(&d, &mail).await {
                Ok(true) => {
                    tracing::info!(webhook = %d.webhook_id, failures = d.failures, "failure digest queued")
                }
                // A failure came in since, or another node closed it: the next round sees it.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "closing a failure digest failed; trying again later")
                }
            }
        }
    }

    /// Sends the mails that are due, one at a time, recording each outcome.
    async fn send_due(&self, shutdown: &watch::Receiver<bool>) {
        let now = self.clock.now_ms();
        let mails = match self.store.claim_mail(now, now + self.lease_ms, BATCH).await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "claiming mails failed; trying again later");
                return;
            }
        };
        for m in mails {
            if *shutdown.borrow() {
                // Left claimed: it comes back when the claim ends.
                return;
            }
            let outcome = match self.mailer.send(&m).await {
                Ok(()) => {
                    tracing::info!(mail = %m.id, webhook = %m.webhook_id, kind = m.kind.as_str(), "failure mail sent");
                    MailOutcome::Sent
                }
                Err(SendError::Transient(error)) => {
                    let at = self.policy.retry_at(self.clock.now_ms(), m.attempts);
                    tracing::warn!(mail = %m.id, %error, retry_at = %crate::api::rfc3339(at), "the SMTP server did not take a mail; it is tried again");
                    MailOutcome::Retry { at, error }
                }
                Err(SendError::Permanent(error)) => {
                    tracing::error!(mail = %m.id, webhook = %m.webhook_id, %error, "the SMTP server refused a mail for good; not retried");
                    MailOutcome::Rejected { error }
                }
            };
            self.metrics.mail(match &outcome {
                MailOutcome::Sent => "sent",
                MailOutcome::Retry { .. } => "retry",
                MailOutcome::Rejected { .. } => "rejected",
            });
            if let Err(e) = self
                .store
                .finish_mail(&m.id, &outcome, self.clock.now_ms())
                .await
            {
                // The claim runs out and the mail is tried again (sent twice at worst).
                tracing::warn!(mail = %m.id, error = %e, "recording a mail's outcome failed");
            }
        }
    }
}
