//! Delivery operations: the attempt log (OnCall's `responses` shape and a fuller, filterable
//! attempts API), test sends, resending one delivery, recovering every failed delivery of a
//! webhook since a time, signing-secret reveal and rotation, and `/metrics`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::events::delivery_view;
use super::webhooks::{PageParams, page_envelope};
use super::{AppState, parse_time, rfc3339};
use crate::model::{Attempt, AttemptOutcome, AttemptQuery, Signing, Webhook, new_signing_secret};

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
        .route("/metrics", get(metrics))
}

async fn webhook_for(st: &AppState, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    let w = st
        .store
        .get_webhook(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id}")))?;
    caller.may_manage(&w.scope)?;
    Ok(w)
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
    })
}

/// Attempt filters from the query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AttemptParams {
    /// `success`, `retry` or `failed`.
    pub status: Option<String>,
    /// RFC 3339 or unix ms.
    pub since: Option<String>,
    pub until: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

impl AttemptParams {
    fn query(&self, webhook_id: &str) -> ApiResult<(AttemptQuery, u64, u64)> {
        let (page, size) = PageParams {
            page: self.page.clone(),
            page_size: self.page_size.clone(),
        }
        .resolve()?;
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
            offset: (page - 1) * size,
            limit: size,
        };
        Ok((q, page, size))
    }
}

/// Grafana OnCall's webhook responses log (seed 003), newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/responses", params(PageParams), responses((status = 200, description = "OnCall-shaped responses log")), security(("api_key" = [])))]
pub async fn responses(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    webhook_for(&st, &caller, &id).await?;
    let (page, size) = p.resolve()?;
    let q = AttemptQuery {
        webhook_id: Some(id.clone()),
        offset: (page - 1) * size,
        limit: size,
        ..Default::default()
    };
    let found = st.store.list_attempts(&q).await?;
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
        }));
    }
    Ok(Json(page_envelope(
        &headers,
        &format!("/api/v1/webhooks/{id}/responses"),
        page,
        size,
        found.total,
        results,
    )))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/attempts", params(AttemptParams), responses((status = 200, description = "Attempts, filtered and paged")), security(("api_key" = [])))]
pub async fn attempts(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<AttemptParams>,
) -> ApiResult<Json<Value>> {
    webhook_for(&st, &caller, &id).await?;
    let (q, page, size) = p.query(&id)?;
    let found = st.store.list_attempts(&q).await?;
    let results = found.items.iter().map(attempt_view).collect();
    Ok(Json(page_envelope(
        &headers,
        &format!("/api/v1/webhooks/{id}/attempts"),
        page,
        size,
        found.total,
        results,
    )))
}

/// Squadcast's sample "incident triggered" event, sent by test sends unless a body is given.
const SAMPLE_EVENT: &str =
    include_str!("../../../tests/fixtures/squadcast/incident_triggered.json");

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", request_body(content = Object, description = "Optional event to send instead of the sample"), responses((status = 200, description = "The attempt's outcome")), security(("api_key" = [])))]
pub async fn test_send(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<Json<Value>> {
    let w = webhook_for(&st, &caller, &id).await?;
    let sample = match body {
        Some(Json(v @ Value::Object(_))) => {
            crate::model::Event::from_body(String::new(), v.clone(), 0)
                .map_err(super::events::event_problem)?;
            v
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "the body must be a JSON object (an event) or empty",
            ));
        }
        None => {
            serde_json::from_str(SAMPLE_EVENT).map_err(|e| ApiError::Internal(e.to_string()))?
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

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/recover", request_body = RecoverBody, responses((status = 202, description = "How many failed deliveries were queued again")), security(("api_key" = [])))]
pub async fn recover(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<RecoverBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    webhook_for(&st, &caller, &id).await?;
    let Json(b) = body.map_err(|e| ApiError::field("since", e.body_text()))?;
    let since = parse_time("since", &b.since)?;
    let n = st
        .store
        .requeue_failed_since(&id, since, st.clock.now_ms())
        .await?;
    st.deliveries_ready.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(json!({"requeued": n}))))
}

#[utoipa::path(get, path = "/api/v1/deliveries/{id}", responses((status = 200, description = "A delivery with its attempts")), security(("api_key" = [])))]
pub async fn get_delivery(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = st
        .store
        .get_delivery(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery {id}")))?;
    let w = webhook_for(&st, &caller, &d.webhook_id).await?;
    let q = AttemptQuery {
        delivery_id: Some(id.clone()),
        limit: 100,
        ..Default::default()
    };
    let attempts = st.store.list_attempts(&q).await?;
    let mut v = delivery_view(&d);
    v["url"] = json!(crate::secrets::mask::mask_url(&d.url, &w));
    v["event_id"] = json!(d.event_id);
    v["attempt_log"] = Value::Array(attempts.items.iter().map(attempt_view).collect());
    Ok(Json(v))
}

#[utoipa::path(post, path = "/api/v1/deliveries/{id}/resend", responses((status = 202, description = "Queued to be sent again now")), security(("api_key" = [])))]
pub async fn resend(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let d = st
        .store
        .get_delivery(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery {id}")))?;
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

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/secret", responses((status = 200, description = "The signing secret, in clear (admins only)")), security(("api_key" = [])))]
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

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/secret/rotate", request_body = RotateBody, responses((status = 200, description = "Rotated; the new secret is returned once")), security(("api_key" = [])))]
pub async fn rotate_secret(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<RotateBody>>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let mut w = webhook_for(&st, &caller, &id).await?;
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
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Ok(counts) = st.store.delivery_counts().await {
        for (status, n) in counts {
            st.metrics
                .queue
                .get_or_create(&crate::metrics::StatusLabel {
                    status: status.as_str().to_string(),
                })
                .set(n as i64);
        }
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
