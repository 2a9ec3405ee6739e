//! The pure rules of failure mail: which finished attempts count in a webhook's digest, when a
//! mail the SMTP server did not take is tried again, and the ids that make enqueueing
//! idempotent. The window itself is kept by the store (`mail_digests`): the first failure opens
//! it, the notifier closes it once it is due.

use crate::config::Config;
use crate::model::{DeliveryStatus, FailureNote, MailDigest, Webhook};
use crate::secrets::mask::SecretSet;
use crate::store::{AttemptRecord, HealthChange};

/// Failure mail settings, present only while `smtp.url` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailPolicy {
    pub window_ms: i64,
    pub retry_min_ms: i64,
    pub retry_max_ms: i64,
}

impl MailPolicy {
    /// `None` while mail is off: nothing is counted or queued then.
    pub fn from_config(config: &Config) -> Option<Self> {
        let n = &config.notifications;
        config.smtp.enabled().then(|| MailPolicy {
            window_ms: n.digest_window_secs as i64 * 1000,
            retry_min_ms: n.retry_min_secs as i64 * 1000,
            retry_max_ms: n.retry_max_secs as i64 * 1000,
        })
    }

    /// What `record` adds to its webhook's digest: only a delivery that failed for good
    /// (Callgoose's "request failure"), counted against the receiver (not a test send, not the
    /// gateway's own fault), of a webhook with a failure email. The error is masked.
    pub fn failure_note(&self, webhook: &Webhook, record: &AttemptRecord) -> Option<FailureNote> {
        if record.status != DeliveryStatus::Failed || record.health != HealthChange::DeliveryFailed
        {
            return None;
        }
        let recipient = recipient(webhook)?;
        let masks = SecretSet::of(webhook);
        Some(FailureNote {
            recipient: recipient.to_string(),
            window_ms: self.window_ms,
            error: record.attempt.error.as_deref().map(|e| masks.text(e)),
            status: record.attempt.status_code,
        })
    }

    /// When to try a mail again after its `failed_before + 1`-th failed send: `retry_min`,
    /// doubling each time, never more than `retry_max` apart.
    pub fn retry_at(&self, now: i64, failed_before: u32) -> i64 {
        let doubled = self
            .retry_min_ms
            .saturating_mul(1i64.checked_shl(failed_before.min(40)).unwrap_or(i64::MAX));
        now + doubled.clamp(self.retry_min_ms, self.retry_max_ms)
    }
}

/// The webhook's failure email, when it has one.
pub fn recipient(webhook: &Webhook) -> Option<&str> {
    webhook
        .failure_email
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The outbox id of a digest's mail: one per (webhook, window), so closing a digest twice (a
/// retry after an unknown outcome) queues one mail.
pub fn digest_mail_id(d: &MailDigest) -> String {
    format!("mail_digest_{}_{}", d.webhook_id, d.window_start)
}

/// The outbox id of a disable notice: one per (webhook, moment of disabling).
pub fn disabled_mail_id(webhook_id: &str, at: i64) -> String {
    format!("mail_disabled_{webhook_id}_{at}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attempt, AttemptOutcome, Auth};

    fn policy() -> MailPolicy {
        MailPolicy {
            window_ms: 3_600_000,
            retry_min_ms: 10_000,
            retry_max_ms: 600_000,
        }
    }

    fn record(status: DeliveryStatus, health: HealthChange, error: &str) -> AttemptRecord {
        AttemptRecord {
            attempt: Attempt {
                id: "att_1".into(),
                delivery_id: "dlv_1".into(),
                webhook_id: "wh_1".into(),
                event_id: "evt_1".into(),
                attempt_no: 1,
                started_at: 0,
                duration_ms: 0,
                method: "POST".into(),
                url: "https://r.example/".into(),
                request_headers: vec![],
                request_body: Some("{\"payload\": 1}".into()),
                status_code: Some(500),
                response_body: None,
                error: Some(error.into()),
                outcome: AttemptOutcome::Failed,
                plugin_logs: Vec::new(),
            },
            delivery_id: "dlv_1".into(),
            status,
            next_attempt_at: 0,
            request: None,
            health,
            claimed_lease: None,
            failure_note: None,
        }
    }

    fn hook(email: Option<&str>) -> Webhook {
        Webhook {
            id: "wh_1".into(),
            failure_email: email.map(str::to_string),
            auth: Auth::Bearer {
                token: "tok_secret_1".into(),
            },
            ..Webhook::default()
        }
    }

    #[test]
    fn only_a_delivery_failed_for_good_of_a_webhook_with_an_email_counts() {
        let p = policy();
        let failed = record(
            DeliveryStatus::Failed,
            HealthChange::DeliveryFailed,
            "HTTP 500",
        );
        let note = p
            .failure_note(&hook(Some(" ops@example.com ")), &failed)
            .unwrap();
        assert_eq!(note.recipient, "ops@example.com");
        assert_eq!(note.status, Some(500));
        assert_eq!(note.error.as_deref(), Some("HTTP 500"));
        assert_eq!(note.window_ms, 3_600_000);
        // No email, or an empty one: nothing counted.
        assert!(p.failure_note(&hook(None), &failed).is_none());
        assert!(p.failure_note(&hook(Some("  ")), &failed).is_none());
        // A retry to come, a test send, the gateway's own failure: not a failure for good.
        let retry = record(
            DeliveryStatus::Pending,
            HealthChange::AttemptFailed,
            "HTTP 500",
        );
        assert!(p.failure_note(&hook(Some("a@b.c")), &retry).is_none());
        let own = record(DeliveryStatus::Failed, HealthChange::None, "HTTP 500");
        assert!(p.failure_note(&hook(Some("a@b.c")), &own).is_none());
    }

    #[test]
    fn the_noted_error_is_masked() {
        let failed = record(
            DeliveryStatus::Failed,
            HealthChange::DeliveryFailed,
            "receiver echoed tok_secret_1",
        );
        let note = policy()
            .failure_note(&hook(Some("a@b.c")), &failed)
            .unwrap();
        let error = note.error.unwrap();
        assert!(!error.contains("tok_secret_1"), "{error}");
        assert!(error.contains("receiver echoed"), "{error}");
    }

    #[test]
    fn retries_double_from_the_minimum_up_to_the_maximum() {
        let p = policy();
        let delays: Vec<i64> = (0..8).map(|n| p.retry_at(1_000, n) - 1_000).collect();
        assert_eq!(
            delays,
            [
                10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000
            ]
        );
        // Far past any sane count, still capped (no overflow).
        assert_eq!(p.retry_at(0, u32::MAX), 600_000);
    }

    #[test]
    fn mail_ids_repeat_for_the_same_window_only() {
        let d = MailDigest {
            webhook_id: "wh_1".into(),
            recipient: "a@b.c".into(),
            window_start: 5,
            due_at: 10,
            failures: 3,
            last_error: None,
            last_status: None,
            last_failed_at: 7,
        };
        let later = MailDigest {
            window_start: 11,
            ..d.clone()
        };
        assert_eq!(digest_mail_id(&d), digest_mail_id(&d.clone()));
        assert_ne!(digest_mail_id(&d), digest_mail_id(&later));
        assert_ne!(disabled_mail_id("wh_1", 1), disabled_mail_id("wh_1", 2));
    }
}
