//! Webhook subscriptions: the stored shape (a superset of Grafana OnCall's webhook object) and the
//! rules that validate it. Input parsing and merging live in `api::webhooks`; this module holds the
//! types every other part (matching, delivery, plugins, stores) shares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the API shows instead of a stored secret.
pub const MASK: &str = "****************";

/// HTTP methods a webhook may use (union of the seeds' lists).
pub const METHODS: &[&str] = &["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Most custom headers a webhook may carry (Callgoose).
pub const MAX_HEADERS: usize = 20;
/// Most urls a webhook may send to.
pub const MAX_URLS: usize = 10;

/// Which events a webhook can see (Callgoose's three kinds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Every team's events. Only admins manage these.
    #[default]
    Global,
    /// One team's events.
    Team { team_id: String },
    /// One service's events; `team_id` is the team owning the service (who may manage it).
    Service {
        team_id: Option<String>,
        service_id: String,
    },
}

impl Scope {
    /// The team that owns this webhook, if any (used for role checks).
    pub fn team(&self) -> Option<&str> {
        match self {
            Scope::Global => None,
            Scope::Team { team_id } => Some(team_id),
            Scope::Service { team_id, .. } => team_id.as_deref(),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Team { .. } => "team",
            Scope::Service { .. } => "service",
        }
    }
}

/// How the request authenticates to the receiver (Callgoose's four, plus Grafana's fields which are
/// kept separately on [`Webhook`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    ApiKey {
        name: String,
        value: String,
        #[serde(rename = "in", default)]
        location: KeyLocation,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    #[default]
    Header,
    Query,
}

/// A secret that signed before a rotation and keeps signing until `expires_at` (unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredSecret {
    pub secret: String,
    pub expires_at: i64,
}

/// How each request is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signing {
    None,
    /// Standard Webhooks v1: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64>`.
    StandardWebhooks {
        secret: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        previous: Vec<RetiredSecret>,
    },
    /// Callgoose: `<header>: <timestamp>,<hex hmac-sha512 of "timestamp.body">`.
    HmacSha512 {
        header: String,
        secret: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        previous: Vec<RetiredSecret>,
    },
}

/// How the payload travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendAs {
    #[default]
    Body,
    Query,
}

/// When to try again after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RetryPolicy {
    /// Standard Webhooks / Svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (jittered).
    #[default]
    Default,
    /// `count` retries every `interval_secs` (Callgoose: 0-4 retries, 1-5 minutes apart).
    Fixed { count: u32, interval_secs: u64 },
    /// Explicit delays, in seconds, before each retry.
    Schedule { delays_secs: Vec<u64> },
}

/// Whether a webhook's deliveries keep the order their events were accepted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderingMode {
    /// Deliveries go out as soon as they are due, many at a time (the default).
    #[default]
    None,
    /// Per (webhook, url): one delivery in flight at a time, in the order the events were
    /// accepted; the next waits until the previous one succeeded or failed for good.
    PerWebhook,
}

impl OrderingMode {
    pub fn is_ordered(self) -> bool {
        self == OrderingMode::PerWebhook
    }
}

/// A plugin attached to a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginRef {
    pub name: String,
    /// Exact version; the newest installed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub config: Value,
}

/// When the gateway disables a failing webhook; `None` turns a rule off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AutoDisable {
    /// Consecutive failed deliveries (Callgoose: 6).
    pub after_failures: Option<u32>,
    /// Days failing without a success (incident.io: 5).
    pub after_days: Option<u32>,
}

impl Default for AutoDisable {
    fn default() -> Self {
        AutoDisable {
            after_failures: Some(6),
            after_days: Some(5),
        }
    }
}

/// A webhook subscription. In memory its secrets are clear; the store seals them at rest
/// (`store::sealed`) and every answer masks them (`secrets::mask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub is_webhook_enabled: bool,
    pub scope: Scope,
    /// One or more targets; Grafana's `url` is the first.
    pub urls: Vec<String>,
    pub http_method: String,
    /// Canonical trigger events; `status_change` and `*` (everything) are special names.
    pub trigger_events: Vec<String>,
    /// Grafana's single `trigger_type` as the client sent it (kept for round trips).
    #[serde(default)]
    pub trigger_type: Option<String>,
    /// Grafana: a Jinja template shaping the body when `forward_all` is false.
    #[serde(default)]
    pub data: Option<String>,
    pub forward_all: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub authorization_header: Option<String>,
    #[serde(default)]
    pub trigger_template: Option<String>,
    /// Grafana: a string holding a JSON object (itself possibly a Jinja template).
    #[serde(default)]
    pub headers: Option<String>,
    /// Header names whose values are secrets besides the credential-like ones (masked in every
    /// answer and log; see `secrets::mask`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
    /// Named secrets for plugins: an authenticator opens them as handles, a transformer asks
    /// for them with `{"$secret": "<name>"}` placeholders the delivery fills in per attempt.
    /// Sealed at rest, never shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// TLS client certificate the deliveries present (mTLS); its private key is a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<super::ClientCertificate>,
    #[serde(default)]
    pub integration_filter: Option<Vec<String>>,
    /// Grafana OnCall's preset id (`simple_webhook`, `advanced_webhook`, ...): null for webhooks
    /// made through the API, which cannot set it; only webhooks brought in from OnCall have one.
    #[serde(default)]
    pub preset: Option<String>,
    /// Mongo-style filter over the event.
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    #[serde(default)]
    pub authenticator: Option<PluginRef>,
    #[serde(default)]
    pub auth: Auth,
    pub signing: Signing,
    #[serde(default)]
    pub send_as: SendAs,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Ordered delivery (opt-in); applies to deliveries of events accepted after it is set.
    #[serde(default)]
    pub ordering: OrderingMode,
    /// Per-attempt timeout in seconds.
    pub timeout_secs: u64,
    #[serde(default)]
    pub auto_disable: AutoDisable,
    #[serde(default)]
    pub failure_email: Option<String>,
    /// Deliver full payloads of private events (incident.io's opt-in).
    #[serde(default)]
    pub include_private_payloads: bool,
    /// Why the gateway disabled it, when it did.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Delivery health of a webhook, kept beside it (changes on every delivery outcome).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookHealth {
    pub consecutive_failures: u32,
    /// Unix ms of the first failure since the last success.
    pub failing_since: Option<i64>,
}

impl Default for Webhook {
    /// An enabled global webhook with no url, no trigger and no signing: a base for builders and
    /// tests (`Webhook { id, urls, ..Default::default() }`), not a valid webhook by itself.
    fn default() -> Self {
        Webhook {
            id: String::new(),
            name: String::new(),
            description: None,
            is_webhook_enabled: true,
            scope: Scope::Global,
            urls: Vec::new(),
            http_method: "POST".into(),
            trigger_events: Vec::new(),
            trigger_type: None,
            data: None,
            forward_all: true,
            username: None,
            password: None,
            authorization_header: None,
            trigger_template: None,
            headers: None,
            secret_headers: Vec::new(),
            secrets: BTreeMap::new(),
            client_certificate: None,
            integration_filter: None,
            preset: None,
            filter: None,
            plugins: Vec::new(),
            authenticator: None,
            auth: Auth::None,
            signing: Signing::None,
            send_as: SendAs::Body,
            retry: RetryPolicy::Default,
            ordering: OrderingMode::None,
            timeout_secs: 15,
            auto_disable: AutoDisable::default(),
            failure_email: None,
            include_private_payloads: false,
            disabled_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }
}

impl Webhook {
    /// The Grafana `trigger_type` to show: what the client sent, else the OnCall name of the first
    /// trigger, else the canonical name.
    pub fn grafana_trigger_type(&self) -> Option<String> {
        if let Some(t) = &self.trigger_type {
            return Some(t.clone());
        }
        let first = self.trigger_events.first()?;
        Some(match first.as_str() {
            "status_change" => "status change".to_string(),
            other => super::event::grafana_name(other)
                .map(str::to_string)
                .unwrap_or_else(|| other.to_string()),
        })
    }
}

/// Generates a Standard Webhooks secret: `whsec_` + base64 of 24 random bytes.
pub fn new_signing_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
