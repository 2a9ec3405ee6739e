//! What the gateway says when it starts: where its console, API reference and data are, and
//! which plugins it has, so a first run needs no guessing.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::config::Config;
use crate::model::PluginRecord;

/// The base URL a browser on this machine reaches the gateway at: `public_url` when set, else
/// the bound address (an unspecified address such as 0.0.0.0 shown as 127.0.0.1).
pub fn base_url(config: &Config, bound: SocketAddr) -> String {
    if !config.public_url.is_empty() {
        return config.public_url.trim_end_matches('/').to_string();
    }
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// The start-up text (a few lines for a person reading the terminal).
pub fn text(config: &Config, bound: SocketAddr, plugins: &[PluginRecord]) -> String {
    let base = base_url(config, bound);
    let mut out = String::new();
    let _ = writeln!(out, "webhook-gateway is ready");
    let _ = writeln!(
        out,
        "  console:        {base}/console/  (sign in with an API key{})",
        if config.admin_token.is_empty() {
            "; create one with `webhook-gateway keys create`"
        } else {
            ", e.g. the GATEWAY_ADMIN_TOKEN"
        }
    );
    let _ = writeln!(
        out,
        "  API reference:  {base}/api/docs  (OpenAPI: {base}{})",
        crate::api::openapi::PATH
    );
    let storage = if config.database_url.is_empty() {
        format!("SQLite at {}", config.sqlite_path().display())
    } else {
        "PostgreSQL (database_url)".to_string()
    };
    let _ = writeln!(
        out,
        "  data dir:       {} ({storage})",
        config.data_dir.display()
    );
    let mut names: Vec<String> = plugins
        .iter()
        .map(|p| format!("{}@{} ({})", p.name, p.version, p.kind))
        .collect();
    names.sort();
    let _ = writeln!(
        out,
        "  plugins:        {}",
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    );
    if config.allowed_networks.is_empty() {
        let _ = writeln!(
            out,
            "  deliveries to loopback and private addresses are refused (set GATEWAY_ALLOWED_NETWORKS to allow some)"
        );
    }
    out
}

/// Prints [`text`] to stderr, or with `log_format = "json"` logs the same as one structured line
/// (a JSON log stays one object per line).
pub fn announce(config: &Config, bound: SocketAddr, plugins: &[PluginRecord]) {
    if config.log_format == "json" {
        let base = base_url(config, bound);
        let names: Vec<String> = plugins
            .iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect();
        tracing::info!(
            console = %format!("{base}/console/"),
            api_docs = %format!("{base}/api/docs"),
            data_dir = %config.data_dir.display(),
            plugins = %names.join(","),
            "webhook-gateway is ready"
        );
    } else {
        eprint!("{}", text(config, bound, plugins));
    }
}
