//! `POST /api/v1/plugins/{name}/{version}/try`: runs one installed plugin once on a sample event,
//! with the gateway's own plugin limits (fuel, memory, time), and answers what it produced and
//! its log lines. Nothing is sent or stored. What `webhook-gateway plugin run` does for a file,
//! for admins and managers (who name plugins in their webhooks) through the API and the console.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::auth::{Caller, CallerVia};
use super::error::{ApiError, ApiResult};
use crate::model::{PluginRef, PreparedRequest};
use crate::plugin::{AuthInput, PluginContext, PluginKind, TransformInput, Transformed};

/// Where a tried request goes (nothing is sent).
const TRY_URL: &str = "https://receiver.example/webhook";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/plugins/{name}/{version}/try", post(try_plugin))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryBody {
    /// The event, as it would be posted to `/api/v1/events`.
    #[schema(value_type = Object)]
    pub event: Value,
    /// The plugin's config, as a webhook would give it; absent: null.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Value,
}

/// The request a plugin produced (or added to, for an authenticator).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriedRequest {
    pub method: String,
    pub url: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    #[schema(required)]
    pub body: Option<String>,
}

/// What one run of the plugin produced.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TryResult {
    /// `transformer` or `authenticator`.
    pub kind: String,
    /// The plugin ran to the end (false: `error` says why: a trap, fuel or memory exhausted, bad output).
    pub ok: bool,
    #[schema(required)]
    pub error: Option<String>,
    /// The request it produced (a transformer) or the sample request with what it added (an authenticator).
    #[schema(required)]
    pub request: Option<TriedRequest>,
    /// A transformer's reason for skipping the delivery.
    #[schema(required)]
    pub skip: Option<String>,
    /// The plugin's log lines (`[level] message`).
    pub logs: Vec<String>,
    pub elapsed_ms: f64,
    pub memory_peak_bytes: u64,
}

fn tried(r: PreparedRequest) -> TriedRequest {
    TriedRequest {
        method: r.method,
        url: r.url,
        query: r.query,
        headers: r.headers,
        body: r.body,
    }
}

fn failed(kind: PluginKind, error: String) -> TryResult {
    TryResult {
        kind: kind.as_str().into(),
        ok: false,
        error: Some(error),
        request: None,
        skip: None,
        logs: Vec::new(),
        elapsed_ms: 0.0,
        memory_peak_bytes: 0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs a plugin version once on a sample event (admins and managers).
#[utoipa::path(post, path = "/api/v1/plugins/{name}/{version}/try", operation_id = "try_plugin", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name"), ("version" = String, Path, description = "Its version")),
    request_body(content = TryBody, content_type = "application/json"),
    responses(
        (status = 200, body = TryResult, description = "The plugin ran (`ok`) or failed (`error`); nothing was sent"),
        (status = 400, description = "The event is not a JSON object"),
        (status = 403, description = "A publisher key or a portal session"),
        (status = 404, description = "No such plugin version"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn try_plugin(
    State(st): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
    body: Result<Json<TryBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<TryResult>> {
    caller.may_read_plugins()?;
    if caller.via == CallerVia::Portal {
        return Err(ApiError::Forbidden(
            "a portal session does not run plugins".into(),
        ));
    }
    let Json(b) = body.map_err(ApiError::from)?;
    if !b.event.is_object() {
        return Err(ApiError::field("event", "must be a JSON object"));
    }
    let rec = st
        .store
        .get_plugin(&name, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("plugin {name}@{version}")))?;
    let kind = if rec.kind == "authenticator" {
        PluginKind::Authenticator
    } else {
        PluginKind::Transformer
    };
    let r = PluginRef {
        name: name.clone(),
        version: Some(version.clone()),
        config: b.config.clone(),
    };
    let sha = match st.plugins.loaded(&r, kind).await {
        Ok(sha) => sha,
        Err(e) => return Ok(Json(failed(kind, e))),
    };
    let event_json = b.event.to_string();
    let now_ms = st.clock.now_ms();
    let config_json = b.config.to_string();
    let host = st.plugins.host();
    let out = match kind {
        PluginKind::Transformer => {
            let raw = crate::model::event::raw_type(&b.event).unwrap_or("custom");
            let event_type =
                crate::model::event::canonical_type(raw).unwrap_or_else(|_| raw.into());
            let input = TransformInput {
                event_json,
                context: PluginContext {
                    webhook_id: "wh_try".into(),
                    webhook_name: "plugin try".into(),
                    event_type,
                    delivery_id: "msg_try".into(),
                    url: TRY_URL.into(),
                    method: "POST".into(),
                    now_ms,
                    attempt: 1,
                    previous: None,
                },
                config_json,
            };
            match host.transform(&sha, input).await {
                Ok(o) => {
                    let (request, skip) = match o.outcome {
                        Transformed::Request(r) => (Some(tried(r)), None),
                        Transformed::Skip(why) => (None, Some(why)),
                    };
                    TryResult {
                        kind: kind.as_str().into(),
                        ok: true,
                        error: None,
                        request,
                        skip,
                        logs: o.logs,
                        elapsed_ms: ms(o.elapsed),
                        memory_peak_bytes: o.memory_peak_bytes as u64,
                    }
                }
                Err(e) => failed(kind, format!("{} ({})", e, e.code())),
            }
        }
        PluginKind::Authenticator => {
            let mut request = PreparedRequest {
                method: "POST".into(),
                url: TRY_URL.into(),
                query: vec![],
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(event_json),
            };
            let input = AuthInput {
                request: request.clone(),
                delivery_id: "msg_try".into(),
                attempt: 1,
                now_ms,
                secrets: Vec::new(),
                config_json,
            };
            match host.authenticate(&sha, input).await {
                Ok(o) => {
                    request.headers.extend(o.add_headers);
                    request.query.extend(o.add_query);
                    TryResult {
                        kind: kind.as_str().into(),
                        ok: true,
                        error: None,
                        request: Some(tried(request)),
                        skip: None,
                        logs: o.logs,
                        elapsed_ms: ms(o.elapsed),
                        memory_peak_bytes: o.memory_peak_bytes as u64,
                    }
                }
                Err(e) => failed(kind, format!("{} ({})", e, e.code())),
            }
        }
    };
    Ok(Json(out))
}
