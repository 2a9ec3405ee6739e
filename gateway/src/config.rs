//! Layered configuration: the commented defaults embedded below, then an optional TOML file
//! (`--config`), then `GATEWAY_*` environment variables (nested keys with `__`, for example
//! `GATEWAY_DELIVERY__WORKERS=8`), then command-line flags. A bad value stops start-up with a
//! message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The defaults, with every key explained. `webhook-gateway config` prints this file.
pub const DEFAULTS: &str = r#"# webhook-gateway configuration. Every key can also be set as GATEWAY_<KEY> in the environment
# (nested keys: GATEWAY_<SECTION>__<KEY>, for example GATEWAY_DELIVERY__WORKERS=8).

# Address the HTTP API listens on.
listen = "127.0.0.1:8080"

# Folder for the SQLite database and the plugin cache; created on first start.
data_dir = "./data"

# PostgreSQL URL (postgres://...) to share one queue between several nodes; empty means the
# embedded SQLite database in data_dir.
database_url = ""

# When set, an admin API key with this token exists from start-up (GATEWAY_ADMIN_TOKEN).
admin_token = ""

# Master key sealing every stored secret (AES-256-GCM): base64 of 32 bytes, as printed by
# `webhook-gateway secrets generate-key` (GATEWAY_SECRETS_KEY). Empty: read secrets_key_file, or
# when that is empty too, <data_dir>/secrets.key, created (mode 0600) on first start. Nodes
# sharing a PostgreSQL database must all use the same key: set this or secrets_key_file there.
secrets_key = ""
# A file holding the master key (base64 of 32 bytes), e.g. a mounted secret shared by every node.
secrets_key_file = ""

# Largest accepted event body, in bytes (larger bodies get 413).
max_event_bytes = 1048576

# Most webhooks in one scope (one team, one service, or global); Callgoose allows 5. 0 = no cap.
max_webhooks_per_scope = 0

# Comma-separated CIDRs that deliveries may reach although they are loopback, private or
# link-local (refused by default), e.g. "127.0.0.0/8" for a local demo.
allowed_networks = ""

# Public base URL of this gateway, e.g. "https://gateway.example.com": every paging link (`next`,
# `previous` of the webhooks, actions, responses and attempts lists) is built from it, never from
# the request's Host header. Empty: the links are relative ("/api/v1/webhooks/?page=2"), which
# Grafana OnCall clients that follow `next` as an absolute URL cannot use, so set it for them.
public_url = ""

# Log filter (tracing's EnvFilter syntax) and format ("text" or "json").
log = "info"
log_format = "text"

# When set, /metrics answers only requests with `Authorization: Bearer <metrics_token>` (401
# problem otherwise).
metrics_token = ""
# When set (e.g. "127.0.0.1:9090"), /metrics is served only on this separate address (the main
# listener then answers 404 for /metrics); metrics_token applies there too.
metrics_listen = ""

[auth]
# Seconds a looked-up API key is trusted from this node's memory before the store is asked again.
# A key revoked through this node is refused at once; through another node (or the CLI), within
# this many seconds. 0 asks the store on every request. At most 300.
key_cache_secs = 5

[console]
# Serve the web console at / and /console/ (sign in with an API key). false: the API only.
enabled = true
# A console session ends after this many seconds without a request (idle expiry).
session_idle_secs = 1800
# ... and this many seconds after sign-in whatever happens (absolute expiry; 12 h).
session_max_secs = 43200
# Who may embed console pages in a frame (the CSP frame-ancestors sources), e.g.
# "https://platform.example.com" for the team portal inside the platform's own pages. The
# default 'none' forbids framing (and X-Frame-Options: DENY is sent too).
frame_ancestors = "'none'"

[server]
# Seconds a client has to send a complete request head: from accepting a new connection, or from
# the first byte of a later request on a kept-alive one. Slower clients are disconnected.
header_read_timeout_secs = 10
# Seconds a kept-alive connection may sit idle between requests before it is closed.
idle_timeout_secs = 75
# Seconds a request body has to arrive completely once the handler starts reading it: a
# whole-body deadline, not a per-chunk one. A late body gets 408 and the connection is closed.
body_read_timeout_secs = 30
# Most open client connections; more are answered 503 and closed at once while the open ones keep
# being served. 0 = three quarters of the open-files limit (which is raised to its hard limit at
# start), leaving the rest for deliveries, the store and plugins.
max_connections = 0

[delivery]
# Run delivery workers on this node (false: an API-only node that only accepts events).
enabled = true
# Concurrent HTTP requests in flight (delivery is latency-bound: 256 kept ~6,500 deliveries/s
# flowing on 2 cores where 64 managed ~4,500).
workers = 256
# How long a claimed delivery stays leased to this node before another may take it, in seconds.
lease_secs = 60
# Default per-attempt timeout in seconds (a webhook may set its own).
timeout_secs = 15
# Body cap in characters (Callgoose: 20,000) and query-string cap (Callgoose: 10,000).
max_body_chars = 20000
max_query_chars = 10000
# Bounds on a receiver's Retry-After, in seconds.
retry_after_min_secs = 1
retry_after_max_secs = 3600
# Response bodies kept in the attempt log, in bytes.
max_response_bytes = 4096
# Auto-disable defaults (a webhook may override): consecutive failed deliveries (Callgoose: 6),
# and days failing without a success (incident.io: 5). 0 turns a rule off.
disable_after_failures = 6
disable_after_days = 5

[postgres]
# Used only when database_url is set. Connections this node keeps open to PostgreSQL (the
# server's max_connections must cover every node's pool plus tools such as `store copy`).
max_connections = 16
# Seconds to wait for a connection (TCP connect, a new pooled connection, or a free one) before the
# request answers 503; keep it short so a dead database is noticed quickly.
connect_timeout_secs = 3
# Deadline of one store operation, queueing included, in seconds.
operation_timeout_secs = 15
# How often this node re-reads the webhooks, in seconds, so a webhook created, changed or deleted
# through another node takes effect here too (the node that made the change applies it at once).
webhooks_refresh_secs = 5

[health]
# /readyz fails while the oldest due delivery has waited longer than this past its due time, in
# seconds (a stuck or overwhelmed delivery pipeline); checked only where delivery.enabled is true.
# 0 turns the check off. /readyz also fails while the store rejects writes (a full disk).
max_due_age_secs = 120
# /readyz fails for this many seconds after a store write failed (a full disk fails some writes
# and not others), in seconds; after that, a probe write decides. 0: only the probe decides.
write_failure_window_secs = 5

[retention]
# Days events are kept, with their finished deliveries and those deliveries' attempts; 0 = forever.
# An event with a delivery still owed (pending or in flight) is kept whatever its age.
events_days = 30
# Days attempt logs are kept (never those of a delivery still owed); 0 = forever.
attempts_days = 30
# For tests and short-lived installations: when above 0, seconds that replace events_days /
# attempts_days.
events_secs = 0
attempts_secs = 0
# Seconds between two pruning passes of this node (each pass deletes in small batches, then
# SQLite gives the freed space back to the file system).
interval_secs = 300
# Events (or attempts) deleted per write, at most 10000: small batches never hold the database
# for long.
batch_size = 1000

[plugins]
# CPU deadline per plugin call, in milliseconds.
cpu_deadline_ms = 100
# Memory a plugin instance may use, in bytes.
memory_bytes = 16777216
# Largest input (event + config) and output, in bytes.
max_input_bytes = 1048576
max_output_bytes = 1048576
# Log lines kept per call, and bytes per line.
max_log_lines = 100
max_log_line_bytes = 1024
# Largest component accepted by upload, in bytes.
max_component_bytes = 20971520
# Plugin instances that may run at once; more calls wait (back-pressure) and retry.
max_concurrency = 64

[otlp]
# OpenTelemetry trace export, off while empty: the OTLP/HTTP collector's base URL (the gateway
# posts JSON to <endpoint>/v1/traces), e.g. "http://127.0.0.1:4318". Each event is one trace:
# event.accepted > event.matched, then delivery.transform and one delivery.attempt per send.
endpoint = ""
# The service.name resource attribute.
service_name = "webhook-gateway"
# Per export request.
timeout_secs = 10
[smtp]
# Failure emails (to each webhook's failure_email) go through this SMTP server; empty turns them
# off (nothing is queued then). Forms: "smtp://host:25" (plain, for a local relay),
# "smtp://host:587?tls=required" (STARTTLS required), "smtps://host:465" (TLS from the start).
url = ""
# SMTP AUTH credentials (both or neither). The password is a secret: never logged or shown; set
# it as GATEWAY_SMTP__PASSWORD rather than in a file.
username = ""
password = ""
# The sender, e.g. "Webhook Gateway <gateway@example.com>"; required when url is set.
from = ""
# Seconds one SMTP conversation (connect, TLS, AUTH, send) may take before it counts as failed.
timeout_secs = 30

[notifications]
# Failure digests: the first delivery of a webhook that fails for good opens a window of this many
# seconds; when it closes, one mail counts the failures of the window with the last error and
# status. So at most one digest per webhook per window.
digest_window_secs = 3600
# A mail the SMTP server did not take is tried again after retry_min_secs, doubling up to
# retry_max_secs, until it is accepted (a server that refuses it for good, 5xx, ends that).
retry_min_secs = 10
retry_max_secs = 600
"#;

/// Every dotted key of the embedded defaults (`listen`, `delivery.workers`, ...).
fn known_keys() -> std::collections::HashSet<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut std::collections::HashSet<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&key, t, out),
                _ => {
                    out.insert(key);
                }
            }
        }
    }
    let table: toml::Table = toml::from_str(DEFAULTS).expect("embedded defaults parse");
    let mut out = std::collections::HashSet::new();
    walk("", &table, &mut out);
    out
}

/// Delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    pub enabled: bool,
    pub workers: usize,
    pub lease_secs: u64,
    pub timeout_secs: u64,
    pub max_body_chars: usize,
    pub max_query_chars: usize,
    pub retry_after_min_secs: u64,
    pub retry_after_max_secs: u64,
    pub max_response_bytes: usize,
    pub disable_after_failures: u32,
    pub disable_after_days: u32,
}

/// Limits of the HTTP server (see [`crate::listen`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub max_connections: usize,
}

/// Plugin sandbox limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    pub cpu_deadline_ms: u64,
    pub memory_bytes: usize,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
    pub max_log_lines: usize,
    pub max_log_line_bytes: usize,
    pub max_component_bytes: usize,
    pub max_concurrency: usize,
}

impl PluginsConfig {
    /// The sandbox limits these settings describe.
    pub fn limits(&self) -> crate::plugin::PluginLimits {
        crate::plugin::PluginLimits {
            cpu_deadline_ms: self.cpu_deadline_ms,
            memory_bytes: self.memory_bytes,
            max_input_bytes: self.max_input_bytes,
            max_output_bytes: self.max_output_bytes,
            max_log_lines: self.max_log_lines,
            max_log_line_bytes: self.max_log_line_bytes,
            max_concurrency: self.max_concurrency,
        }
    }
}

/// The web console (`console`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    pub enabled: bool,
    pub session_idle_secs: u64,
    pub session_max_secs: u64,
    pub frame_ancestors: String,
}

/// API-key settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub key_cache_secs: u64,
}

/// PostgreSQL connection settings (used when `database_url` is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    pub max_connections: usize,
    pub connect_timeout_secs: u64,
    pub operation_timeout_secs: u64,
    pub webhooks_refresh_secs: u64,
}

/// What `/readyz` holds the node to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub max_due_age_secs: u64,
    pub write_failure_window_secs: u64,
}

/// OpenTelemetry trace export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub service_name: String,
    pub timeout_secs: u64,
}

/// The SMTP server failure emails go through (see [`crate::notify`]).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub url: String,
    pub username: String,
    pub password: String,
    pub from: String,
    pub timeout_secs: u64,
}

impl SmtpConfig {
    /// Whether failure emails are on.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

/// Hand-written so the password never reaches a log line.
impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &crate::secrets::mask::mask_url_plain(&self.url))
            .field("username", &self.username)
            .field("password", &crate::model::MASK)
            .field("from", &self.from)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Failure digest window and mail retry schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    pub digest_window_secs: u64,
    pub retry_min_secs: u64,
    pub retry_max_secs: u64,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub admin_token: String,
    pub secrets_key: String,
    pub secrets_key_file: String,
    pub max_event_bytes: usize,
    pub max_webhooks_per_scope: u64,
    pub allowed_networks: String,
    /// Base of paging links (`https://gateway.example.com`); empty = relative links.
    pub public_url: String,
    pub log: String,
    pub log_format: String,
    pub auth: AuthConfig,
    pub console: ConsoleConfig,
    pub metrics_token: String,
    pub metrics_listen: String,
    pub server: ServerConfig,
    pub delivery: DeliveryConfig,
    pub postgres: PostgresConfig,
    pub health: HealthConfig,
    pub retention: crate::retention::RetentionConfig,
    pub plugins: PluginsConfig,
    pub otlp: OtlpConfig,
    pub smtp: SmtpConfig,
    pub notifications: NotificationsConfig,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Flags that override every other layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads defaults, then `file` (when given), then the environment, then `overrides`.
    ///
    /// A file with an unknown key is refused (a typo should not pass silently), but `GATEWAY_*`
    /// environment variables that name no key are ignored: environments carry unrelated variables
    /// with the same prefix (CI flags, a build script's). [`Config::unknown_env`] lists them so
    /// the caller can warn.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let known = known_keys();
        let env = Env::prefixed("GATEWAY_")
            .split("__")
            .filter(move |k| known.contains(&k.as_str().to_ascii_lowercase()));
        Self::load_from(file, overrides, env)
    }

    /// `GATEWAY_*` variables in the environment that name no configuration key.
    pub fn unknown_env() -> Vec<String> {
        let known = known_keys();
        std::env::vars()
            .filter_map(|(k, _)| {
                let key = k
                    .strip_prefix("GATEWAY_")?
                    .to_ascii_lowercase()
                    .replace("__", ".");
                (!known.contains(&key)).then_some(k)
            })
            .collect()
    }

    fn load_from(
        file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        let fig = fig.merge(env).merge(Serialized::defaults(overrides));
        let cfg: Config = fig.extract().map_err(|e| {
            // figment's message already names the key and where the value came from.
            ConfigError(e.to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| {
            Err(ConfigError(format!("invalid value for key `{key}`: {why}")))
        };
        if self.max_event_bytes == 0 {
            return bad("max_event_bytes", "must be greater than 0");
        }
        if self.auth.key_cache_secs > 300 {
            return bad("auth.key_cache_secs", "must be at most 300 seconds");
        }
        if self.console.session_idle_secs == 0 {
            return bad("console.session_idle_secs", "must be at least 1");
        }
        if self.console.session_max_secs < self.console.session_idle_secs {
            return bad(
                "console.session_max_secs",
                "must be at least console.session_idle_secs",
            );
        }
        let fa = self.console.frame_ancestors.trim();
        if fa.is_empty() || fa.contains([';', ',', '\n', '\r']) {
            return bad(
                "console.frame_ancestors",
                "must be CSP sources separated by spaces ('none', 'self', https://host), without ; or ,",
            );
        }
        if self.delivery.workers == 0 {
            return bad("delivery.workers", "must be at least 1");
        }
        if self.delivery.lease_secs < 5 {
            return bad("delivery.lease_secs", "must be at least 5 seconds");
        }
        if self.delivery.timeout_secs == 0 || self.delivery.timeout_secs >= self.delivery.lease_secs
        {
            return bad(
                "delivery.timeout_secs",
                "must be between 1 and lease_secs - 1",
            );
        }
        if self.delivery.retry_after_min_secs > self.delivery.retry_after_max_secs {
            return bad(
                "delivery.retry_after_min_secs",
                "must not exceed retry_after_max_secs",
            );
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad("log_format", "must be \"text\" or \"json\"");
        }
        if !self.secrets_key.is_empty()
            && let Err(e) = crate::secrets::MasterKey::from_base64(&self.secrets_key, "secrets_key")
        {
            return bad("secrets_key", &e.to_string());
        }
        if !self.secrets_key.is_empty() && !self.secrets_key_file.is_empty() {
            return bad(
                "secrets_key_file",
                "set either secrets_key or secrets_key_file, not both",
            );
        }
        if !self.database_url.is_empty() && !self.database_url.starts_with("postgres") {
            return bad("database_url", "must be a postgres:// URL or empty");
        }
        if self.postgres.max_connections < 2 {
            return bad("postgres.max_connections", "must be at least 2");
        }
        if self.postgres.connect_timeout_secs == 0 {
            return bad("postgres.connect_timeout_secs", "must be at least 1");
        }
        if self.postgres.operation_timeout_secs < self.postgres.connect_timeout_secs {
            return bad(
                "postgres.operation_timeout_secs",
                "must be at least connect_timeout_secs",
            );
        }
        if self.postgres.webhooks_refresh_secs == 0 {
            return bad("postgres.webhooks_refresh_secs", "must be at least 1");
        }
        for cidr in self
            .allowed_networks
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if cidr.parse::<ipnet::IpNet>().is_err() && cidr.parse::<std::net::IpAddr>().is_err() {
                return bad(
                    "allowed_networks",
                    &format!("{cidr:?} is not a CIDR or IP address"),
                );
            }
        }
        if !self.public_url.is_empty() {
            let ok = url::Url::parse(&self.public_url).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !ok {
                return bad(
                    "public_url",
                    "must be an http(s) URL without query or fragment, e.g. https://gateway.example.com, or empty",
                );
            }
        }
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<SocketAddr>().is_err() {
            return bad(
                "metrics_listen",
                "must be an address such as 127.0.0.1:9090, or empty",
            );
        }
        for (key, v) in [
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            ),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
            (
                "server.body_read_timeout_secs",
                self.server.body_read_timeout_secs,
            ),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1 second");
            }
        }
        if let Some((key, why)) = self.retention.problem() {
            return bad(key, why);
        }
        if let Err((key, why)) = crate::notify::validate(&self.smtp, &self.notifications) {
            return bad(key, &why);
        }
        if self.plugins.cpu_deadline_ms == 0 || self.plugins.memory_bytes < 1 << 20 {
            return bad(
                "plugins",
                "cpu_deadline_ms must be > 0 and memory_bytes at least 1 MiB",
            );
        }
        Ok(())
    }

    /// The separate metrics address, when `metrics_listen` is set (validated at load).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listen.parse().ok()
    }

    /// The listener limits `[server]` describes; `fd_limit` sizes `max_connections = 0`.
    pub fn server_limits(&self, fd_limit: Option<u64>) -> crate::listen::Limits {
        let s = &self.server;
        crate::listen::Limits {
            header_read: std::time::Duration::from_secs(s.header_read_timeout_secs),
            idle: std::time::Duration::from_secs(s.idle_timeout_secs),
            body_read: std::time::Duration::from_secs(s.body_read_timeout_secs),
            max_connections: crate::listen::effective_max_connections(s.max_connections, fd_limit),
        }
    }

    /// The SQLite database file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("gateway.db")
    }

    /// Defaults only (tests start from this and change what they need).
    pub fn defaults() -> Config {
        Figment::from(Toml::string(DEFAULTS))
            .extract()
            .expect("embedded defaults parse")
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
