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
pub mod plugins;
pub mod webhook_input;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
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

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(webhooks::router())
        .merge(actions::router())
        .merge(events::router())
        .merge(keys::router())
        .merge(deliveries::router())
        .merge(plugins::router())
        .merge(openapi::router())
        .with_state(state)
        .layer(axum::middleware::from_fn(drain::drain_unread_body))
}

/// Ready when the store answers.
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    match st.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}"),
        )
            .into_response(),
    }
}
