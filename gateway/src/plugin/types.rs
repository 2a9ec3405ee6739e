//! The public inputs and outputs of plugin calls.

use std::time::Duration;

use crate::model::PreparedRequest;

/// The two plugin roles (the two WIT worlds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    Transformer,
    Authenticator,
}

impl PluginKind {
    /// `transformer` or `authenticator` (as stored in `PluginRecord::kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Transformer => "transformer",
            PluginKind::Authenticator => "authenticator",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "transformer" => Some(PluginKind::Transformer),
            "authenticator" => Some(PluginKind::Authenticator),
            _ => None,
        }
    }
}

/// A validated, compiled plugin, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPlugin {
    pub kind: PluginKind,
    /// Hex sha256 of the component bytes: the key for every later call.
    pub sha256: String,
}

/// What the gateway tells a transformer about the delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginContext {
    pub webhook_id: String,
    pub webhook_name: String,
    /// Canonical event type.
    pub event_type: String,
    pub delivery_id: String,
    pub url: String,
    pub method: String,
    /// Unix ms.
    pub now_ms: i64,
    /// 1-based.
    pub attempt: u32,
    /// In a chain, the previous plugin's request (set by [`PluginHost::transform_chain`]).
    pub previous: Option<PreparedRequest>,
}

/// Inputs of one transformer call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransformInput {
    /// The event JSON as stored.
    pub event_json: String,
    pub context: PluginContext,
    /// The plugin's config from the webhook (`PluginRef::config`) as JSON; `null` for none.
    pub config_json: String,
}

/// A transformer's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transformed {
    Request(PreparedRequest),
    /// Send nothing; the reason belongs in the delivery log.
    Skip(String),
}

/// Result of a transformer call (or chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformOutput {
    pub outcome: Transformed,
    /// The plugin's log lines, capped (`[level] message`).
    pub logs: Vec<String>,
    /// Wall time of the call (and of instantiation, when no prepared instance was ready).
    pub elapsed: Duration,
    /// Largest linear memory the instance reached.
    pub memory_peak_bytes: usize,
    /// Fuel the guest used (about one unit per instruction; summed in a chain), when the host
    /// counts it (`PluginHost::counting_fuel`).
    pub fuel: Option<u64>,
}

/// Inputs of one authenticator call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInput {
    /// The final request of this attempt (after transform); the plugin cannot change it.
    pub request: PreparedRequest,
    pub delivery_id: String,
    /// 1-based.
    pub attempt: u32,
    pub now_ms: i64,
    /// The webhook's secrets as (name, value); the plugin gets handles, never values.
    pub secrets: Vec<(String, String)>,
    /// The authenticator's config (`Webhook::authenticator.config`) as JSON; `null` for none.
    pub config_json: String,
}

/// What `oauth2.client-credentials-token` asks for, with the secrets' values.
#[derive(Clone)]
pub struct TokenRequest {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Form fields sent besides `grant_type` (`scope`, `audience`, ...).
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("token_url", &self.token_url)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Fetches (and caches) OAuth 2.0 tokens for authenticators; the delivery stage implements it.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// The access token, and the key of its cache entry (to drop it after a 401). The error
    /// text is shown to users: it never holds a secret.
    async fn client_credentials(&self, req: TokenRequest) -> Result<(String, String), String>;
}

/// A shared [`TokenSource`].
#[derive(Clone)]
pub struct Tokens(pub std::sync::Arc<dyn TokenSource>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

/// What an authenticator adds to the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthOutput {
    /// Headers to add (the plugin's own, then those placed from secrets).
    pub add_headers: Vec<(String, String)>,
    pub add_query: Vec<(String, String)>,
    /// Names of added headers and query parameters whose values hold a secret (mask them in logs).
    pub secret_names: Vec<String>,
    /// Cache keys of the OAuth 2.0 tokens the call used (dropped when the receiver answers 401).
    pub token_keys: Vec<String>,
    pub logs: Vec<String>,
    pub elapsed: Duration,
    pub memory_peak_bytes: usize,
    /// Fuel the guest used, when the host counts it (see [`TransformOutput::fuel`]).
    pub fuel: Option<u64>,
}

/// One step of a transformer chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStep {
    pub sha256: String,
    pub config_json: String,
}
