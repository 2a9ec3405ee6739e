//! # webhook-gateway
//!
//! A self-hosted gateway for the outgoing webhooks of an incident-management platform: events come
//! in over HTTP, are stored durably, matched to webhook subscriptions, shaped by WebAssembly
//! plugins, signed, delivered, retried and logged.
//!
//! Crate map (one line per module):
//! - [`config`]: layered configuration (embedded defaults, TOML file, `GATEWAY_*` env).
//! - [`model`]: domain types: events and their canonical types, webhooks, deliveries, keys.
//! - [`store`]: the `Store` trait, its SQLite (default) and PostgreSQL implementations, the shared suite.
//! - [`api`]: the HTTP API (axum routers per resource, problem+json errors, OpenAPI).
//! - [`console`]: the web console: sessions, CSRF, security headers, server-rendered pages.
//! - [`intake`]: accepting an event: match, one delivery per (webhook, url), store atomically.
//! - [`subscriptions`]: the in-memory snapshot of webhooks (matcher + lookup), swapped on change.
//! - [`matching`]: which webhooks an event fires (scopes, triggers, filters, templates).
//! - [`delivery`]: workers that turn deliveries into signed, authenticated HTTP requests.
//! - [`metrics`]: Prometheus metrics served at `/metrics`.
//! - [`notify`]: failure emails over SMTP: per-webhook failure digests and disable notices, from a durable outbox.
//! - [`plugin`]: the sandboxed WebAssembly host for transformer and authenticator plugins.
//! - [`retention`]: pruning old events and attempt logs (background task, `store prune`).
//! - [`cli`]: the command line (`serve`, `keys`, `migrate`, `store`, `config`, `plugin`).
//! - [`clock`]: injected time, so schedules are tested without sleeping.
//! - [`server`]: `run()`, which wires everything and serves until shutdown.
//! - [`banner`]: the start-up text (console and API reference urls, data dir, plugins).
//! - [`listen`]: the HTTP listener and its limits (header, idle and body timeouts, connections).
//! - [`telemetry`]: optional OpenTelemetry trace export (OTLP/HTTP), one trace per event.

pub mod api;
pub mod banner;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod delivery;
pub mod intake;
pub mod listen;
pub mod matching;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod plugin;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod store;
pub mod subscriptions;
pub mod telemetry;

/// Paths the test suites need (the hostile guests built from `plugins/testdata`).
#[doc(hidden)]
pub mod testing {
    /// Where the build script put the test guests and first-party components.
    pub const GUESTS_DIR: &str = env!("GATEWAY_TEST_GUESTS_DIR");
}
