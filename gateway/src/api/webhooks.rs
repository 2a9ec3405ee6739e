//! `/api/v1/webhooks`: list, get, create, update, delete, with and without the trailing slash,
//! as Grafana OnCall's public API answers them (its shapes, paging, `?name=`, validation and
//! refusals). The operations are shared with the deprecated `/api/v1/actions/` (`actions.rs`).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, Problem};
use super::openapi::schemas::{WebhookCreate, WebhookInput, WebhookPage, WebhookView};
use super::paging::PageRequest;
use super::webhook_input::{self, InputContext};
use crate::model::{AutoDisable, Webhook};
use crate::store::{StoreError, WEBHOOK_NAME_TAKEN, WebhookQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route("/api/v1/webhooks/", get(list).post(create))
        .route(
            "/api/v1/webhooks/{id}",
            get(get_one).put(update).patch(update).delete(delete),
        )
        .route(
            "/api/v1/webhooks/{id}/",
            get(get_one).put(update).patch(update).delete(delete),
        )
}

/// Paging parameters, for the API docs; [`PageRequest`] reads them from the raw query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Page number (OnCall: an unusable value is 1, past the end is the last page).
    #[param(value_type = Option<i64>)]
    pub page: Option<String>,
    /// Page size (OnCall: default 50, at most 100; an unusable value is 50).
    #[param(value_type = Option<i64>)]
    pub perpage: Option<String>,
    /// The gateway's page size: 1-100, else 400.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
    /// Only the webhook with exactly this name (lists only).
    pub name: Option<String>,
}

/// A refusal in Grafana OnCall's shape on top of the problem body: Django REST framework's
/// `{"<field>": ["<message>"]}` (or `non_field_errors`) beside `type`/`title`/`detail`/`field`,
/// and `detail: "Not found."` for an unknown id. Everything else answers as [`ApiError`] does.
#[derive(Debug)]
pub struct OnCallError(pub ApiError);

impl From<ApiError> for OnCallError {
    fn from(e: ApiError) -> Self {
        OnCallError(e)
    }
}

impl From<crate::store::StoreError> for OnCallError {
    fn from(e: crate::store::StoreError) -> Self {
        OnCallError(ApiError::from(e))
    }
}

impl IntoResponse for OnCallError {
    fn into_response(self) -> Response {
        let (status, kind, detail, field, drf) = match &self.0 {
            ApiError::Invalid { field, message } => {
                let key = field.clone().unwrap_or_else(|| "non_field_errors".into());
                let detail = match field {
                    Some(f) => format!("{f}: {message}"),
                    None => message.clone(),
                };
                (
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    detail,
                    field.clone(),
                    Some((key, message.clone())),
                )
            }
            ApiError::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found.".to_string(),
                None,
                None,
            ),
            _ => return self.0.into_response(),
        };
        let mut body = json!(Problem {
            kind: format!("https://webhook-gateway.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail,
            field,
        });
        if let (Some((key, message)), Some(obj)) = (drf, body.as_object_mut()) {
            obj.entry(key).or_insert_with(|| json!([message]));
        }
        let mut resp = (status, Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

type OnCallResult<T> = Result<T, OnCallError>;

fn input_context<'a>(st: &'a AppState, caller: &'a Caller) -> InputContext<'a> {
    let d = &st.config.delivery;
    InputContext {
        now: st.clock.now_ms(),
        default_timeout_secs: d.timeout_secs,
        max_timeout_secs: d.lease_secs.saturating_sub(1).min(120),
        default_auto_disable: AutoDisable {
            after_failures: (d.disable_after_failures > 0).then_some(d.disable_after_failures),
            after_days: (d.disable_after_days > 0).then_some(d.disable_after_days),
        },
        caller_team: caller.team_id.as_deref(),
    }
}

pub(super) fn object(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Map<String, Value>> {
    match body {
        Ok(Json(Value::Object(m))) => Ok(m),
        Ok(_) => Err(ApiError::invalid("the body must be a JSON object")),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn load(st: &AppState, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    let w = st
        .store
        .get_webhook(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id}")))?;
    caller.may_manage_webhook(&w)?;
    Ok(w)
}

/// Checks what only the matching engine knows (filters, templates) and the per-scope cap.
async fn check(st: &AppState, w: &Webhook, scope_changed: bool) -> ApiResult<()> {
    crate::matching::validate(w).map_err(|e| ApiError::field(e.field, e.message))?;
    crate::delivery::plugins::validate_refs(st.store.as_ref(), w)
        .await
        .map_err(|(f, m)| ApiError::field(f, m))?;
    let cap = st.config.max_webhooks_per_scope;
    if scope_changed && cap > 0 && st.store.count_webhooks_in_scope(&w.scope).await? >= cap {
        return Err(ApiError::field(
            "scope",
            format!(
                "this {} scope already has the maximum of {cap} webhooks",
                w.scope.kind()
            ),
        ));
    }
    Ok(())
}

/// OnCall's unique-name refusal, naming `name`.
fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) if m == WEBHOOK_NAME_TAKEN => ApiError::field(
            "name",
            "The fields name, organization must make a unique set.",
        ),
        other => other.into(),
    }
}

/// A page of the webhooks the caller may see, optionally only the one named `?name=`.
pub(crate) async fn list_page(
    st: &AppState,
    caller: &Caller,
    raw: Option<&str>,
    path: &str,
    view: fn(&Webhook) -> Value,
) -> ApiResult<Value> {
    caller.may_use_webhooks()?;
    let paging = PageRequest::parse(raw)?;
    let name = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "name")
        .map(|(_, v)| v.into_owned())
        .last()
        .filter(|n| !n.is_empty());
    let team_id = if caller.is_admin() {
        None
    } else {
        Some(caller.team_id.clone().unwrap_or_default())
    };
    let store = &st.store;
    // A portal session for one webhook lists that one alone.
    let only = match &caller.only_webhook {
        None => None,
        Some(id) => Some(
            store
                .get_webhook(id)
                .await?
                .filter(|w| caller.may_manage(&w.scope).is_ok())
                .filter(|w| name.as_ref().is_none_or(|n| *n == w.name)),
        ),
    };
    let (page, found) = paging
        .fetch(|offset, limit| {
            let q = WebhookQuery {
                team_id: team_id.clone(),
                name: name.clone(),
                offset,
                limit,
            };
            let only = only.clone();
            async move {
                match only {
                    None => store.list_webhooks(&q).await,
                    Some(one) => Ok(crate::store::Page {
                        total: u64::from(one.is_some()),
                        items: one.into_iter().filter(|_| q.offset == 0).collect(),
                    }),
                }
            }
        })
        .await?;
    let results = found.items.iter().map(view).collect();
    Ok(paging.envelope(&st.config.public_url, path, page, found.total, results))
}

/// Reads, checks and stores a new webhook (one write; nothing is stored when refused).
pub(super) async fn create_from(
    st: &AppState,
    caller: &Caller,
    m: &Map<String, Value>,
) -> ApiResult<Webhook> {
    caller.may_use_webhooks()?;
    if caller.only_webhook.is_some() {
        return Err(ApiError::Forbidden(
            "this portal link is for one webhook; it creates none".into(),
        ));
    }
    let w = webhook_input::create(m, &input_context(st, caller))?;
    caller.may_manage(&w.scope)?;
    check(st, &w, true).await?;
    st.store.insert_webhook(&w).await.map_err(name_taken)?;
    st.subs.reload(st.store.as_ref()).await?;
    st.plugins.preload(&w);
    Ok(w)
}

/// Applies an update to a copy of the stored webhook, checks the whole result, then stores it
/// in one write: a refused request changes nothing.
pub(super) async fn update_from(
    st: &AppState,
    caller: &Caller,
    id: &str,
    m: &Map<String, Value>,
) -> ApiResult<Webhook> {
    let current = load(st, caller, id).await?;
    let mut w = current.clone();
    webhook_input::update(&mut w, m, &input_context(st, caller))?;
    caller.may_manage(&w.scope)?;
    check(st, &w, w.scope != current.scope).await?;
    st.store.update_webhook(&w).await.map_err(name_taken)?;
    if w.is_webhook_enabled {
        // Re-enabling through the API resets the failure counters.
        let health = st.store.webhook_health(&w.id).await?;
        if health.consecutive_failures > 0 || health.failing_since.is_some() {
            st.store
                .set_webhook_enabled(&w.id, true, None, w.updated_at)
                .await?;
        }
    }
    st.subs.reload(st.store.as_ref()).await?;
    st.plugins.preload(&w);
    Ok(w)
}

pub(super) async fn delete_by_id(st: &AppState, caller: &Caller, id: &str) -> ApiResult<()> {
    load(st, caller, id).await?;
    st.store.delete_webhook(id).await?;
    st.subs.reload(st.store.as_ref()).await?;
    Ok(())
}

/// Lists the webhooks the caller may manage (admins: all), in Grafana OnCall's paging envelope.
#[utoipa::path(get, path = "/api/v1/webhooks/", operation_id = "list_webhooks", tag = "webhooks", params(PageParams),
    responses(
        (status = 200, body = WebhookPage, description = "A page of webhooks"),
        (status = 400, description = "A bad `page_size`"),
        (status = 403, description = "A publisher key"),
    ),
    security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> OnCallResult<Json<Value>> {
    let page = list_page(
        &st,
        &caller,
        raw.as_deref(),
        "/api/v1/webhooks/",
        webhook_input::view,
    )
    .await?;
    Ok(Json(page))
}

/// One webhook, secrets masked.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/", operation_id = "get_webhook", tag = "webhooks", params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = WebhookView, description = "The webhook"),
        (status = 403, description = "Another team's webhook, or a global one, and a manager key"),
        (status = 404, description = "No such webhook"),
    ),
    security(("api_key" = [])))]
pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> OnCallResult<Json<Value>> {
    Ok(Json(webhook_input::view(&load(&st, &caller, &id).await?)))
}

/// Creates a webhook (Grafana OnCall's body works as it is).
#[utoipa::path(post, path = "/api/v1/webhooks/", operation_id = "create_webhook", tag = "webhooks",
    request_body(content = WebhookCreate, content_type = "application/json"),
    responses(
        (status = 201, body = WebhookView, description = "Created"),
        (status = 400, description = "A field is missing or invalid (named in `field`), the body is not a JSON object, or its scope is full"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> OnCallResult<(StatusCode, Json<Value>)> {
    let m = object(body)?;
    let w = create_from(&st, &caller, &m).await?;
    Ok((StatusCode::CREATED, Json(webhook_input::view(&w))))
}

/// Updates the fields sent; the others stay as they are. A refused request changes nothing.
#[utoipa::path(put, path = "/api/v1/webhooks/{id}/", operation_id = "update_webhook", tag = "webhooks", params(("id" = String, Path, description = "The webhook's id")),
    request_body(content = WebhookInput, content_type = "application/json"),
    responses(
        (status = 200, body = WebhookView, description = "Updated"),
        (status = 400, description = "A field is invalid (named in `field`), or the body is not a JSON object"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 404, description = "No such webhook"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> OnCallResult<Json<Value>> {
    let m = object(body)?;
    let w = update_from(&st, &caller, &id, &m).await?;
    Ok(Json(webhook_input::view(&w)))
}

/// `PATCH` is routed to [`update`] (same semantics as `PUT`: only the fields sent change); this
/// is its entry in the OpenAPI document.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}/", operation_id = "patch_webhook", tag = "webhooks", params(("id" = String, Path, description = "The webhook's id")),
    request_body(content = WebhookInput, content_type = "application/json"),
    responses(
        (status = 200, body = WebhookView, description = "Updated"),
        (status = 400, description = "A field is invalid (named in `field`), or the body is not a JSON object"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 404, description = "No such webhook"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
#[allow(dead_code)]
pub(super) fn patch() {}

/// Deletes a webhook.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}/", operation_id = "delete_webhook", tag = "webhooks", params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 404, description = "No such webhook"),
    ),
    security(("api_key" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> OnCallResult<StatusCode> {
    delete_by_id(&st, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
