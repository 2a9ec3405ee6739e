//! `/api/v1/events`: durable intake. A 202 means the event and its delivery rows are committed.

use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::openapi::schemas::{DryRunResult, EventInput, EventView};
use super::{AppState, rfc3339};
use crate::model::event::EventError;
use crate::model::{Delivery, Event, IngestOutcome, new_id};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", post(ingest))
        .route("/api/v1/events/", post(ingest))
        .route("/api/v1/events/dry-run", post(dry_run))
        .route("/api/v1/events/{id}", get(get_event))
        .route("/api/v1/events/{id}/", get(get_event))
}

/// The answer to an accepted event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The event's id.
    pub id: String,
    /// Present (`true`) when this answers a repeat: the `Idempotency-Key`, the body's `event_id`,
    /// or the same bytes were seen before, so nothing new was stored or delivered (the
    /// `Idempotent-Replayed: true` header says the same). Send a new `Idempotency-Key` to post
    /// the same body as a new event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub replayed: bool,
}

/// Reads an event body: at most `max_event_bytes` (413 above, refused early when the declared
/// length says so), and valid JSON (400).
async fn read_json(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(axum::body::Bytes, Value)> {
    let limit = st.config.max_event_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let raw = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?;
    let value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))?;
    Ok((raw, value))
}

/// A refused event body as a problem naming the field.
pub fn event_problem(e: EventError) -> ApiError {
    match e {
        EventError::NotAnObject => ApiError::invalid(e.to_string()),
        EventError::MissingType | EventError::Type(_) => {
            ApiError::field("event_type", e.to_string())
        }
    }
}

/// Most characters in an `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The key that makes a repeat post return the first answer: the `Idempotency-Key` header, else
/// the body's `event_id`, else (when the body carries an `id`) the body's own hash, so a client
/// retrying the same bytes is recognised while a later status of the same incident is not.
fn idempotency_key(headers: &HeaderMap, body: &Value, raw: &[u8]) -> ApiResult<Option<String>> {
    if let Some(v) = headers.get("idempotency-key") {
        let s = v
            .to_str()
            .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?
            .trim();
        if s.is_empty() || s.len() > MAX_IDEMPOTENCY_KEY {
            return Err(ApiError::field(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
            ));
        }
        return Ok(Some(format!("key:{s}")));
    }
    if let Some(id) = body
        .get("event_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return Ok(Some(format!("event_id:{id}")));
    }
    if body.get("id").is_some() {
        return Ok(Some(format!("body:{}", hex::encode(Sha256::digest(raw)))));
    }
    Ok(None)
}

/// Accepts an event: the answer comes once it and all its deliveries are committed.
#[utoipa::path(
    post, path = "/api/v1/events", operation_id = "post_event", tag = "events",
    request_body(content = EventInput, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; repeat posts with the same key return the first answer")),
    responses(
        (status = 202, body = Accepted, description = "Stored durably with its deliveries",
            headers(("Idempotent-Replayed" = String, description = "`true` when this answers a repeat"))),
        (status = 400, description = "Not JSON, not an object, a missing or invalid type, or a bad `Idempotency-Key`"),
        (status = 403, description = "A manager key posting another team's or a team-less event (`field` names where the team was read from)"),
        (status = 413, description = "The body is larger than `max_event_bytes`"),
        (status = 503, description = "The store is unavailable; nothing was stored"),
    ),
    security(("api_key" = []))
)]
pub async fn ingest(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (raw, value) = read_json(&st, &headers, body).await?;
    let now = st.clock.now_ms();
    let key = idempotency_key(&headers, &value, &raw)?;
    let event = Event::from_body(new_id("evt"), value, now).map_err(event_problem)?;
    caller.may_post_event(&event)?;
    // Scoped to the caller's tenant: another team's key never replays (or swallows) this event.
    let key = key.map(|k| format!("{}{k}", caller.idempotency_tenant(&event)));
    let outcome = crate::intake::accept(st.store.as_ref(), &st.subs, event, key).await?;
    let (id, replayed) = match outcome {
        IngestOutcome::Created {
            event_id,
            deliveries,
        } => {
            st.metrics.events_accepted.inc();
            if deliveries > 0 {
                st.deliveries_ready.notify_waiters();
            }
            (event_id, false)
        }
        IngestOutcome::Duplicate { event_id } => (event_id, true),
    };
    let mut resp = (StatusCode::ACCEPTED, Json(Accepted { id, replayed })).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// A delivery as shown with its event.
pub fn delivery_view(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "webhook_id": d.webhook_id,
        "url": crate::secrets::mask::mask_url_plain(&d.url),
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": matches!(d.status, crate::model::DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
    })
}

/// [`delivery_view`] with the url masked by its webhook's own secrets too (an API-key query
/// parameter of any name).
pub(super) fn masked_delivery_view(st: &AppState, d: &Delivery) -> Value {
    let mut v = delivery_view(d);
    if let Some(w) = st.subs.get().by_id.get(&d.webhook_id) {
        v["url"] = Value::String(crate::secrets::mask::mask_url(&d.url, w));
    }
    v
}

/// A stored event with its canonical type, scope and deliveries.
#[utoipa::path(get, path = "/api/v1/events/{id}", operation_id = "get_event", tag = "events", params(("id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, body = EventView, description = "The stored event with its canonical type and deliveries"),
        (status = 404, description = "No such event"),
    ),
    security(("api_key" = [])))]
pub async fn get_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    // Another team's event is "not found", not "forbidden": its existence is not revealed.
    let e = st
        .store
        .get_event(&id)
        .await?
        .filter(|e| caller.may_read_event(e))
        .ok_or_else(|| ApiError::NotFound(format!("event {id}")))?;
    let mut deliveries = Vec::new();
    for d in st.store.deliveries_for_event(&id).await? {
        let scope = webhook_scope(&st, &d.webhook_id).await?;
        if caller.sees_webhook(&d.webhook_id) && caller.may_read_delivery(&e, scope.as_ref()) {
            deliveries.push(masked_delivery_view(&st, &d));
        }
    }
    Ok(Json(json!({
        "id": e.id,
        "event_type": e.event_type,
        "source_type": e.source_type,
        "received_at": rfc3339(e.received_at),
        "private": e.private,
        "scope": e.scope,
        "payload": e.body,
        "deliveries": deliveries,
    })))
}

/// The scope of webhook `id` (the in-memory set first, then the store), `None` when it is gone.
pub async fn webhook_scope(st: &AppState, id: &str) -> ApiResult<Option<crate::model::Scope>> {
    if let Some(w) = st.subs.get().by_id.get(id) {
        return Ok(Some(w.scope.clone()));
    }
    Ok(st.store.get_webhook(id).await?.map(|w| w.scope))
}

/// Which webhooks an event would fire, and why the others would not; nothing is stored.
#[utoipa::path(
    post, path = "/api/v1/events/dry-run", operation_id = "dry_run_event", tag = "events",
    request_body(content = EventInput, content_type = "application/json"),
    responses(
        (status = 200, body = DryRunResult, description = "Which webhooks would fire for this event, and why the others would not"),
        (status = 400, description = "Not JSON, not an object, or a missing or invalid type"),
        (status = 413, description = "The body is larger than `max_event_bytes`"),
    ),
    security(("api_key" = []))
)]
pub async fn dry_run(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (_, value) = read_json(&st, &headers, body).await?;
    let event =
        Event::from_body("evt_dry_run".into(), value, st.clock.now_ms()).map_err(event_problem)?;
    caller.may_dry_run(&event)?;
    let snapshot = st.subs.get();
    // Managers see only their team's webhooks.
    let visible = |id: &str| {
        caller.sees_webhook(id)
            && (caller.is_admin()
                || snapshot
                    .by_id
                    .get(id)
                    .is_some_and(|w| caller.may_manage(&w.scope).is_ok()))
    };
    let decisions: Vec<Value> = snapshot
        .matcher
        .explain(&event)
        .into_iter()
        .filter(|d| visible(&d.webhook_id))
        .map(|d| {
            let mut v = serde_json::to_value(&d).unwrap_or_default();
            if let crate::matching::Verdict::Skipped { reason } = &d.verdict {
                v["detail"] = Value::String(reason.to_string());
            }
            if let Some(w) = snapshot.by_id.get(&d.webhook_id) {
                v["name"] = Value::String(w.name.clone());
            }
            v
        })
        .collect();
    let fired = decisions.iter().filter(|d| d["outcome"] == "fired").count();
    Ok(Json(json!({
        "event_type": event.event_type,
        "scope": event.scope,
        "private": event.private,
        "fired": fired,
        "decisions": decisions,
    })))
}
