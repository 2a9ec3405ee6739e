//! The HTTP API: one router per resource, merged once in [`router`]. Errors are problem+json
//! bodies built in [`error`]; callers authenticate with API keys ([`auth`]).

pub mod actions;
pub mod auth;
pub mod deliveries;
pub mod drain;
pub mod error;
pub mod events;
pub mod keys;
pub mod openapi;
pub mod paging;
pub mod plugin_try;
pub mod plugins;
pub mod portal;
pub mod reference;
pub mod stats;
pub mod webhook_input;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::Store;
use crate::subscriptions::Subscriptions;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub keys: auth::KeyCache,
    pub subs: Subscriptions,
    /// Wakes idle delivery workers when new deliveries are stored.
    pub deliveries_ready: Arc<Notify>,
    pub engine: crate::delivery::Engine,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub plugins: crate::delivery::plugins::PluginStage,
}

/// Formats unix milliseconds as RFC 3339 with microseconds, like OnCall's timestamps.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 time or unix milliseconds from a query parameter.
pub fn parse_time(field: &str, s: &str) -> Result<i64, error::ApiError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| error::ApiError::field(field, "must be an RFC 3339 time or unix milliseconds"))
}

/// The whole API (with `/metrics` unless `metrics_listen` serves it apart).
pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    if state.config.metrics_listen.is_empty() {
        r = r.route("/metrics", get(metrics));
    }
    if state.config.console.enabled {
        r = r.merge(crate::console::router(state.clone()));
    }
    r.route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(webhooks::router())
        .merge(actions::router())
        .merge(events::router())
        .merge(keys::router())
        .merge(deliveries::router())
        .merge(plugins::router())
        .merge(portal::router())
        .merge(stats::router())
        .merge(plugin_try::router())
        .merge(openapi::router())
        .merge(reference::router())
        .fallback(error::no_route)
        .with_state(state)
        .layer(axum::middleware::from_fn(drain::drain_unread_body))
        .layer(axum::middleware::from_fn(error::problem_for_refusals))
}

/// `/metrics` alone, for the separate `metrics_listen` address.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(error::no_route)
        .with_state(state)
        .layer(axum::middleware::from_fn(error::problem_for_refusals))
}

/// `/metrics`, behind `Authorization: Bearer <metrics_token>` when that is set.
async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let want = &st.config.metrics_token;
    if !want.is_empty() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared as digests: equal length, no early exit on the secret's bytes.
        if Sha256::digest(given.as_bytes()) != Sha256::digest(want.as_bytes()) {
            let mut r = error::problem_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid metrics token (Authorization: Bearer <metrics_token>)".into(),
                None,
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    deliveries::metrics(State(st)).await.into_response()
}

/// Ready while the store answers, accepts writes (none failed within
/// `health.write_failure_window_secs`, and a probe write succeeds after a failure), and (on a node that delivers) no due delivery
/// has waited past `health.max_due_age_secs`. Each answer also refreshes the
/// `gateway_oldest_due_delivery_age_seconds` gauge.
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let unready = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    if let Err(e) = st.store.ping().await {
        return unready(format!("store unavailable: {e}"));
    }
    // After a failed write, only a write that succeeds makes the node ready again (a drained
    // node gets no traffic, so it probes by itself).
    if let Some(last) = st.metrics.write_health.failing()
        && let Err(e) = st.store.write_probe().await
    {
        return unready(format!(
            "store rejects writes: {e} (last failed write: {last})"
        ));
    }
    let window = std::time::Duration::from_secs(st.config.health.write_failure_window_secs);
    if let Some(last) = st.metrics.write_health.failed_within(window) {
        return unready(format!(
            "store rejected a write in the last {} s (health.write_failure_window_secs): {last}",
            window.as_secs()
        ));
    }
    let age_ms = match st.store.next_due_at().await {
        Ok(Some(due)) => (st.clock.now_ms() - due).max(0),
        Ok(None) => 0,
        Err(e) => return unready(format!("store unavailable: {e}")),
    };
    st.metrics.oldest_due_age.set(age_ms / 1000);
    let max = st.config.health.max_due_age_secs;
    if st.config.delivery.enabled && max > 0 && age_ms > (max as i64) * 1000 {
        return unready(format!(
            "delivery stuck: the oldest due delivery has waited {} s (health.max_due_age_secs = {max})",
            age_ms / 1000
        ));
    }
    (StatusCode::OK, "ready").into_response()
}
