//! Deliveries (one per event, webhook and url), their attempts, and API keys.

use serde::{Deserialize, Serialize};

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// Claimed by a worker until `lease_until`; an expired lease makes it due again.
    InFlight,
    Succeeded,
    /// Retries exhausted, a permanent error, or the webhook was disabled.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::InFlight => "in_flight",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "in_flight" => DeliveryStatus::InFlight,
            "succeeded" => DeliveryStatus::Succeeded,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

/// The request a transform produced, stored once per delivery so every retry sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedRequest {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub query: Vec<(String, String)>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<String>,
}

/// One (event, webhook, url) to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Also the `webhook-id` every attempt carries.
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub url: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix ms.
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    /// Set once, by the first attempt's transform; `None` until then.
    pub request: Option<PreparedRequest>,
    pub last_error: Option<String>,
    pub last_status_code: Option<u16>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The ordered stream it belongs to, when its webhook's `ordering` was `per_webhook` as the
    /// event was accepted: the url's position in the webhook's `urls` (urls are sealed at rest,
    /// so the stored url cannot name the stream). Claimed only when no earlier delivery of the
    /// same (webhook, stream) is owed. `None`: unordered.
    #[serde(default)]
    pub stream: Option<u32>,
}

impl Delivery {
    /// A new pending delivery, due now.
    pub fn new(event_id: &str, webhook_id: &str, url: &str, now: i64) -> Self {
        Delivery {
            id: super::new_id("msg"),
            event_id: event_id.to_string(),
            webhook_id: webhook_id.to_string(),
            url: url.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            lease_until: None,
            request: None,
            last_error: None,
            last_status_code: None,
            created_at: now,
            updated_at: now,
            stream: None,
        }
    }

    /// The same delivery, in ordered stream `stream` of its webhook (or unordered).
    pub fn in_stream(mut self, stream: Option<u32>) -> Self {
        self.stream = stream;
        self
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Success,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed and no attempt follows.
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "success" => AttemptOutcome::Success,
            "retry" => AttemptOutcome::Retry,
            "failed" => AttemptOutcome::Failed,
            _ => return None,
        })
    }
}

/// The log of one attempt, secrets already masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: String,
    pub delivery_id: String,
    pub webhook_id: String,
    pub event_id: String,
    /// 1-based.
    pub attempt_no: u32,
    /// Unix ms.
    pub started_at: i64,
    pub duration_ms: u64,
    pub method: String,
    pub url: String,
    /// Header name/value pairs, secrets masked.
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub status_code: Option<u16>,
    /// Response body, capped.
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    /// The log lines the attempt's plugins wrote (capped by the plugin limits): the transformer
    /// chain's on the attempt that ran it (the first), the authenticator's on every attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_logs: Vec<PluginLogLine>,
}

/// One line a plugin logged during an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginLogLine {
    /// The plugin as `name@version` (`name` when the webhook names no version).
    pub plugin: String,
    /// `transformer` or `authenticator`.
    pub role: String,
    /// `debug`, `info`, `warn`, `error`, or `host` for the host's own note (lines dropped).
    pub level: String,
    pub message: String,
}

impl PluginLogLine {
    /// Reads one of the host's capped lines (`[level] message`, or `#N [level] message` from
    /// step N of a chain); `plugins` names the chain's steps in order.
    pub fn parse(line: &str, role: &str, plugins: &[String]) -> Self {
        let (step, rest) = match line.strip_prefix('#').and_then(|l| l.split_once(' ')) {
            Some((n, rest)) if n.parse::<usize>().is_ok() => (n.parse::<usize>().ok(), rest),
            _ => (None, line),
        };
        let plugin = match step {
            Some(n) if n >= 1 => plugins.get(n - 1),
            _ => plugins.first(),
        }
        .cloned()
        .unwrap_or_default();
        let (level, message) = match rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            Some((level, message)) => (level.to_string(), message.to_string()),
            None => ("info".to_string(), rest.to_string()),
        };
        PluginLogLine {
            plugin,
            role: role.to_string(),
            level,
            message,
        }
    }
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, every team.
    Admin,
    /// Webhooks of one team (and its services); that team's events and deliveries.
    Manager,
    /// The platform's service key: posts and reads events (and their deliveries) of every team,
    /// nothing else.
    Publisher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Publisher => "publisher",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "publisher" => Some(Role::Publisher),
            _ => None,
        }
    }
}

/// A stored API key: only the sha256 of the token is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub team_id: Option<String>,
    /// Hex sha256 of the token.
    pub token_hash: String,
    pub created_at: i64,
    /// Unix ms after which the key is refused; `None`: never.
    pub expires_at: Option<i64>,
    /// Unix ms of a recent use (written at most once a minute per key and node).
    pub last_used_at: Option<i64>,
    /// Unix ms when the key was revoked; the row stays for the audit.
    pub revoked_at: Option<i64>,
    /// The key `GATEWAY_ADMIN_TOKEN` bootstraps (replaced when the token changes).
    pub bootstrap: bool,
}

impl ApiKey {
    /// Whether the key is accepted at `now` (not revoked, not expired).
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

/// A stored plugin component (the bytes live in the store; precompiled artifacts on disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: String,
    pub version: String,
    /// `transformer` or `authenticator`.
    pub kind: String,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    pub size: u64,
    pub description: Option<String>,
    /// Installed by the gateway itself at start-up.
    pub builtin: bool,
    pub created_at: i64,
}

/// An event about to be stored with its deliveries.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: super::Event,
    pub deliveries: Vec<Delivery>,
    /// Header `Idempotency-Key` or a key derived from the body.
    pub idempotency_key: Option<String>,
}

/// The answer to storing an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Created {
        event_id: String,
        deliveries: usize,
    },
    /// The idempotency key was seen: the first event's id.
    Duplicate {
        event_id: String,
    },
}

/// Filters for listing attempts.
#[derive(Debug, Clone, Default)]
pub struct AttemptQuery {
    pub webhook_id: Option<String>,
    pub delivery_id: Option<String>,
    pub outcome: Option<AttemptOutcome>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub offset: u64,
    pub limit: u64,
}
