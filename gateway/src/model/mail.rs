//! Failure mails: what a finally failed delivery adds to its webhook's digest, the open digest
//! itself, and a rendered mail waiting in the durable outbox (see `notify`).

use serde::{Deserialize, Serialize};

/// What a finally failed delivery adds to its webhook's failure digest. Written in the same
/// transaction as the attempt that failed, so a retried record counts once. `error` is already
/// masked (no secret of the webhook in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureNote {
    pub recipient: String,
    /// The digest window: a digest opened by this failure is due this long after it.
    pub window_ms: i64,
    pub error: Option<String>,
    pub status: Option<u16>,
}

/// A webhook's open failure digest: the failures counted since the first one of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailDigest {
    pub webhook_id: String,
    pub recipient: String,
    pub window_start: i64,
    /// When the window closes and the digest becomes a mail.
    pub due_at: i64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    pub last_failed_at: i64,
}

/// Why a mail is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// Deliveries failed for good during a window.
    FailureDigest,
    /// The gateway disabled the webhook.
    Disabled,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::FailureDigest => "failure_digest",
            MailKind::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "failure_digest" => Some(MailKind::FailureDigest),
            "disabled" => Some(MailKind::Disabled),
            _ => None,
        }
    }
}

/// A rendered mail in the outbox, pending until the SMTP server accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// Chosen by the producer: enqueueing the same id twice stores one mail.
    pub id: String,
    pub webhook_id: String,
    pub kind: MailKind,
    pub recipient: String,
    pub subject: String,
    /// Plain text; never a payload body, header value or secret.
    pub body: String,
    /// Failed sends so far.
    pub attempts: u32,
    /// When it may be sent (again); while claimed, the end of the claim.
    pub next_attempt_at: i64,
    pub created_at: i64,
}

/// How sending an outbox mail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// The SMTP server accepted it.
    Sent,
    /// A transient failure (server down, 4xx): try again at `at`.
    Retry { at: i64, error: String },
    /// Refused for good (5xx: no such mailbox): kept with the reason, not retried.
    Rejected { error: String },
}
