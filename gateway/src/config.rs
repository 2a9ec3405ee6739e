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
pub const DEFAULTS: &str = include_str!("config_defaults.toml");

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
    /// PEM files (comma-separated paths) of root certificates trusted besides the built-in ones.
    pub extra_root_certificates: String,
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
    /// Token urls the `oauth2` import may fetch from: exact, or a prefix when ending with `*`.
    pub oauth2_token_urls: Vec<String>,
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
        if let Some(bad_url) = self.plugins.oauth2_token_urls.iter().find(|u| {
            let base = u.strip_suffix('*').unwrap_or(u);
            !(base.starts_with("https://") || base.starts_with("http://"))
        }) {
            return bad(
                "plugins.oauth2_token_urls",
                &format!("{bad_url:?} is not an http(s) url"),
            );
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
