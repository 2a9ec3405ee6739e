//! Delivery operations: the attempt log (OnCall's `responses` shape and a fuller, filterable
//! attempts API), test sends, resending one delivery, recovering every failed delivery of a
//! webhook since a time, signing-secret reveal and rotation, and `/metrics`.

use std::collections::HashMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::events::webhook_scope;
use super::openapi::schemas::{
    AttemptPage, AttemptView, DeliveryDetail, EventInput, Requeued, Resent, ResponsePage, Rotated,
    SecretView,
};
use super::paging::PageRequest;
use super::webhooks::PageParams;
use super::{AppState, parse_time, rfc3339};
use crate::model::{
    Attempt, AttemptOutcome, AttemptQuery, Delivery, Scope, Signing, Webhook, new_signing_secret,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks/{id}/responses", get(responses))
        .route("/api/v1/webhooks/{id}/responses/", get(responses))
        .route("/api/v1/webhooks/{id}/attempts", get(attempts))
        .route("/api/v1/webhooks/{id}/test", post(test_send))
        .route("/api/v1/webhooks/{id}/recover", post(recover))
        .route("/api/v1/webhooks/{id}/secret", get(secret))
        .route("/api/v1/webhooks/{id}/secret/rotate", post(rotate_secret))
        .route("/api/v1/deliveries/{id}", get(get_delivery))
        .route("/api/v1/deliveries/{id}/resend", post(resend))
}

async fn webhook_for(st: &AppState, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    super::webhooks::load(st, caller, id).await
}

/// A delivery the caller may read, with its event and its webhook's scope; anything else is 404
/// (another team's delivery is not revealed).
async fn readable_delivery(
    st: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Delivery, Option<Scope>, crate::model::Event)> {
    let not_found = || ApiError::NotFound(format!("delivery {id}"));
    let d = st.store.get_delivery(id).await?.ok_or_else(not_found)?;
    let e = st
        .store
        .get_event(&d.event_id)
        .await?
        .ok_or_else(not_found)?;
    let scope = webhook_scope(st, &d.webhook_id).await?;
    if !caller.sees_webhook(&d.webhook_id) || !caller.may_read_delivery(&e, scope.as_ref()) {
        return Err(not_found());
    }
    Ok((d, scope, e))
}

fn headers_json(headers: &[(String, String)]) -> Value {
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map)
}

/// An attempt in the fuller attempts API.
pub fn attempt_view(a: &Attempt) -> Value {
    json!({
        "id": a.id,
        "delivery_id": a.delivery_id,
        "webhook_id": a.webhook_id,
        "event_id": a.event_id,
        "attempt": a.attempt_no,
        "timestamp": rfc3339(a.started_at),
        "duration_ms": a.duration_ms,
        "method": a.method,
        "url": a.url,
        "request_headers": headers_json(&a.request_headers),
        "request_body": a.request_body,
        "status_code": a.status_code,
        "response_body": a.response_body,
        "error": a.error,
        "outcome": a.outcome,
        "plugin_logs": a.plugin_logs,
    })
}

/// Attempt filters from the query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AttemptParams {
    /// `success`, `retry` or `failed`.
    pub status: Option<String>,
    /// Attempts started at or after this: RFC 3339 or unix milliseconds.
    pub since: Option<String>,
    /// Attempts started before this: RFC 3339 or unix milliseconds.
    pub until: Option<String>,
    /// 1 or more (default 1).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1_000_000)]
    pub page: Option<String>,
    /// Grafana OnCall's page size: 1 to 100 (default 50; an unusable value means 50).
    #[param(value_type = Option<u64>)]
    pub perpage: Option<String>,
    /// 1 to 100 (default 50).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

impl AttemptParams {
    /// The filters; paging comes from [`PageRequest`] and is filled in per page.
    fn query(&self, webhook_id: &str) -> ApiResult<AttemptQuery> {
        let outcome = match self.status.as_deref() {
            None => None,
            Some(s) => Some(
                AttemptOutcome::parse(s)
                    .ok_or_else(|| ApiError::field("status", "must be success, retry or failed"))?,
            ),
        };
        let q = AttemptQuery {
            webhook_id: Some(webhook_id.to_string()),
            delivery_id: None,
            outcome,
            since: self
                .since
                .as_deref()
                .map(|s| parse_time("since", s))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|s| parse_time("until", s))
                .transpose()?,
            ..Default::default()
        };
        Ok(q)
    }
}

/// Grafana OnCall's webhook responses log, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/responses", operation_id = "list_webhook_responses", tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id"), PageParams),
    responses(
        (status = 200, body = ResponsePage, description = "Grafana OnCall's responses log, newest first"),
        (status = 400, description = "A bad `page` or `page_size`"),
        (status = 403, description = "Another team's webhook, or a global one, and a manager key"),
        (status = 404, description = "No such webhook"),
    ),
    security(("api_key" = [])))]
pub async fn responses(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    webhook_for(&st, &caller, &id).await?;
    let paging = PageRequest::parse(raw.as_deref())?;
    let store = &st.store;
    let (page, found) = paging
        .fetch(|offset, limit| {
            let q = AttemptQuery {
                webhook_id: Some(id.clone()),
                offset,
                limit,
                ..Default::default()
            };
            async move { store.list_attempts(&q).await }
        })
        .await?;
    let mut events: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(found.items.len());
    for a in &found.items {
        if !events.contains_key(&a.event_id) {
            let data = match st.store.get_event(&a.event_id).await? {
                Some(e) => e.body.to_string(),
                None => String::new(),
            };
            events.insert(a.event_id.clone(), data);
        }
        let sent = a.status_code.is_some() || !a.request_headers.is_empty();
        results.push(json!({
            "timestamp": rfc3339(a.started_at),
            "url": a.url,
            "request_trigger": "",
            "request_headers": if sent { Value::String(headers_json(&a.request_headers).to_string()) } else { Value::Null },
            "request_data": if sent { a.request_body.clone().unwrap_or_default() } else { a.error.clone().unwrap_or_default() },
            "status_code": a.status_code,
            "content": if a.status_code.is_some() { Value::String(a.response_body.clone().unwrap_or_default()) } else { Value::Null },
            "event_data": events[&a.event_id],
            "plugin_logs": a.plugin_logs,
        }));
    }
    Ok(Json(paging.envelope(
        &st.config.public_url,
        &format!("/api/v1/webhooks/{id}/responses"),
        page,
        found.total,
        results,
    )))
}

/// Every attempt of a webhook's deliveries, filtered and paged.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/attempts", operation_id = "list_webhook_attempts", tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id"), AttemptParams),
    responses(
        (status = 200, body = AttemptPage, description = "Attempts, filtered and paged"),
        (status = 400, description = "A bad filter or paging parameter (named in `field`)"),
        (status = 403, description = "Another team's webhook, or a global one, and a manager key"),
        (status = 404, description = "No such webhook"),
    ),
    security(("api_key" = [])))]
pub async fn attempts(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<AttemptParams>, axum::extract::rejection::QueryRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let Query(p) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    webhook_for(&st, &caller, &id).await?;
    let filters = p.query(&id)?;
    let paging = PageRequest::parse(raw.as_deref())?;
    let store = &st.store;
    let (page, found) = paging
        .fetch(|offset, limit| {
            let q = AttemptQuery {
                offset,
                limit,
                ..filters.clone()
            };
            async move { store.list_attempts(&q).await }
        })
        .await?;
    let results = found.items.iter().map(attempt_view).collect();
    Ok(Json(paging.envelope(
        &st.config.public_url,
        &format!("/api/v1/webhooks/{id}/attempts"),
        page,
        found.total,
        results,
    )))
}

/// Squadcast's sample "incident triggered" event, sent by test sends unless a body is given.
const SAMPLE_EVENT: &str =
    include_str!("../../../tests/fixtures/squadcast/incident_triggered.json");

/// Sends Squadcast's sample event (or the event in the body) to the webhook now.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", operation_id = "test_webhook", tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id")),
    request_body(content = Option<EventInput>, content_type = "application/json", description = "Optional event to send instead of the sample; an empty body (with or without a JSON content type) sends the sample"),
    responses(
        (status = 200, body = AttemptView, description = "The attempt and its outcome"),
        (status = 400, description = "The body is not an event (a JSON object with a valid type)"),
        (status = 403, description = "Another team's webhook, or a global one, and a manager key"),
        (status = 404, description = "No such webhook"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "A body that is not `application/json`"),
    ),
    security(("api_key" = [])))]
pub async fn test_send(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let w = webhook_for(&st, &caller, &id).await?;
    let sample = if body.iter().all(u8::is_ascii_whitespace) {
        // Absent or empty (`Content-Type: application/json` with nothing after it): the sample.
        serde_json::from_str(SAMPLE_EVENT).map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "a test event must be sent with Content-Type: application/json".into(),
            ));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v @ Value::Object(_)) => {
                crate::model::Event::from_body(String::new(), v.clone(), 0)
                    .map_err(super::events::event_problem)?;
                v
            }
            Ok(_) => {
                return Err(ApiError::invalid(
                    "the body must be a JSON object (an event) or empty",
                ));
            }
            Err(e) => {
                return Err(ApiError::invalid(format!(
                    "the body is not valid JSON: {e}"
                )));
            }
        }
    };
    let attempt = st
        .engine
        .test_send(&w, sample)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(attempt_view(&attempt)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RecoverBody {
    /// RFC 3339 time or unix ms: deliveries created since then are retried.
    pub since: String,
}

/// Queues every failed delivery of the webhook since a time again.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/recover", operation_id = "recover_webhook", tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id")),
    request_body(content = RecoverBody, content_type = "application/json"),
    responses(
        (status = 202, body = Requeued, description = "How many failed deliveries were queued again"),
        (status = 400, description = "`since` is missing or not a time"),
        (status = 403, description = "Another team's webhook, or a global one, and a manager key"),
        (status = 404, description = "No such webhook"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn recover(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<RecoverBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    webhook_for(&st, &caller, &id).await?;
    let Json(b) = body.map_err(|e| match e.status() {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            ApiError::field("since", e.body_text())
        }
        _ => e.into(),
    })?;
    let since = parse_time("since", &b.since)?;
    let n = st
        .store
        .requeue_failed_since(&id, since, st.clock.now_ms())
        .await?;
    st.deliveries_ready.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(json!({"requeued": n}))))
}

/// A delivery with its attempt log.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", operation_id = "get_delivery", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery's id (its `webhook-id` header)")),
    responses(
        (status = 200, body = DeliveryDetail, description = "A delivery with its attempts"),
        (status = 403, description = "Another team's webhook's delivery, and a manager key"),
        (status = 404, description = "No such delivery"),
    ),
    security(("api_key" = [])))]
pub async fn get_delivery(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (d, _, _) = readable_delivery(&st, &caller, &id).await?;
    let q = AttemptQuery {
        delivery_id: Some(id.clone()),
        limit: 100,
        ..Default::default()
    };
    let attempts = st.store.list_attempts(&q).await?;
    let mut v = super::events::masked_delivery_view(&st, &d);
    v["event_id"] = json!(d.event_id);
    v["attempt_log"] = Value::Array(attempts.items.iter().map(attempt_view).collect());
    Ok(Json(v))
}

/// Queues one delivery to be sent again now.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/resend", operation_id = "resend_delivery", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 202, body = Resent, description = "Queued to be sent again now"),
        (status = 403, description = "Another team's webhook's delivery, and a manager key"),
        (status = 404, description = "No such delivery"),
        (status = 409, description = "The webhook is disabled"),
    ),
    security(("api_key" = [])))]
pub async fn resend(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (d, scope, e) = readable_delivery(&st, &caller, &id).await?;
    caller.may_resend(&e, scope.as_ref().unwrap_or(&Scope::Global))?;
    let w = webhook_for(&st, &caller, &d.webhook_id).await?;
    if !w.is_webhook_enabled {
        return Err(ApiError::Conflict(
            "the webhook is disabled; enable it first".into(),
        ));
    }
    st.store.requeue_delivery(&id, st.clock.now_ms()).await?;
    st.deliveries_ready.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "pending"})),
    ))
}

/// The webhook's signing secret, in clear (admins).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/secret", operation_id = "get_webhook_secret", tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = SecretView, description = "The signing secret, in clear"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No such webhook"),
    ),
    security(("api_key" = [])))]
pub async fn secret(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let w = webhook_for(&st, &caller, &id).await?;
    Ok(Json(match &w.signing {
        Signing::None => json!({"type": "none", "secret": null}),
        Signing::StandardWebhooks { secret, .. } => {
            json!({"type": "standard_webhooks", "secret": secret})
        }
        Signing::HmacSha512 { secret, header, .. } => {
            json!({"type": "hmac_sha512", "header": header, "secret": secret})
        }
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RotateBody {
    /// How long the old secret keeps signing beside the new one (default 24 h, at most 7 days).
    pub grace_period_secs: Option<u64>,
    /// The new secret; generated when absent.
    pub secret: Option<String>,
}

/// Rotates the signing secret (admins); the old one keeps signing during the grace period.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/secret/rotate", operation_id = "rotate_webhook_secret", tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id")),
    request_body(content = Option<RotateBody>, content_type = "application/json", description = "Optional; defaults to a generated secret and 24 h of grace"),
    responses(
        (status = 200, body = Rotated, description = "Rotated; the new secret is shown once"),
        (status = 400, description = "A bad grace period or secret, or a webhook that does not sign"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No such webhook"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "A body that is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn rotate_secret(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Option<Json<RotateBody>>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let mut w = webhook_for(&st, &caller, &id).await?;
    let body = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let b = body.map(|Json(b)| b).unwrap_or(RotateBody {
        grace_period_secs: None,
        secret: None,
    });
    let grace = b.grace_period_secs.unwrap_or(86_400);
    if grace > 7 * 86_400 {
        return Err(ApiError::field(
            "grace_period_secs",
            "must be at most 604800 (7 days)",
        ));
    }
    if matches!(w.signing, Signing::None) {
        return Err(ApiError::field(
            "signing",
            "this webhook does not sign; set `signing` first",
        ));
    }
    let new_secret = b.secret.unwrap_or_else(new_signing_secret);
    let now = st.clock.now_ms();
    let rotated =
        crate::delivery::signing::rotate(&w.signing, new_secret.clone(), now, grace as i64 * 1000);
    crate::delivery::signing::validate(&rotated)
        .map_err(|e| ApiError::field("secret", e.to_string()))?;
    w.signing = rotated;
    w.updated_at = now;
    st.store.update_webhook(&w).await?;
    st.subs.reload(st.store.as_ref()).await?;
    Ok(Json(
        json!({"secret": new_secret, "old_secret_expires_at": rfc3339(now + grace as i64 * 1000)}),
    ))
}

/// Prometheus text exposition; store-derived gauges are read at scrape time.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "application/openmetrics-text", description = "Prometheus metrics (OpenMetrics text)")))]
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Ok(counts) = st.store.delivery_counts().await {
        // A status with no deliveries left reads 0, not its last count.
        for status in ["pending", "in_flight"] {
            st.metrics
                .queue
                .get_or_create(&crate::metrics::StatusLabel {
                    status: status.to_string(),
                })
                .set(0);
        }
        for (status, n) in counts {
            st.metrics
                .queue
                .get_or_create(&crate::metrics::StatusLabel {
                    status: status.as_str().to_string(),
                })
                .set(n as i64);
        }
    }
    if let Ok(due) = st.store.next_due_at().await {
        let age_ms = due.map_or(0, |t| (st.clock.now_ms() - t).max(0));
        st.metrics.oldest_due_age.set(age_ms / 1000);
    }
    let disabled = st
        .subs
        .get()
        .by_id
        .values()
        .filter(|w| !w.is_webhook_enabled)
        .count();
    st.metrics.webhooks_disabled.set(disabled as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
}
