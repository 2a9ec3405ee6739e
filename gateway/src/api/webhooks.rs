//! `/api/v1/webhooks`: list, get, create, update, delete, with and without the trailing slash,
//! in Grafana OnCall's shapes (seed 003).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::webhook_input::{self, InputContext};
use crate::model::{AutoDisable, Webhook};
use crate::store::WebhookQuery;

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

/// Paging parameters (OnCall: `page`, `page_size` up to 100; default 50).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    pub page: Option<String>,
    pub page_size: Option<String>,
}

impl PageParams {
    /// (page, page_size), validated.
    pub fn resolve(&self) -> ApiResult<(u64, u64)> {
        let page = match &self.page {
            None => 1,
            Some(p) => p
                .parse::<u64>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| ApiError::field("page", "must be a positive integer"))?,
        };
        let size = match &self.page_size {
            None => 50,
            Some(p) => p
                .parse::<u64>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| ApiError::field("page_size", "must be between 1 and 100"))?,
        };
        Ok((page, size))
    }
}

/// The OnCall paging envelope.
pub fn page_envelope(
    headers: &HeaderMap,
    path: &str,
    page: u64,
    size: u64,
    total: u64,
    results: Vec<Value>,
) -> Value {
    let total_pages = total.div_ceil(size).max(1);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let link = |p: u64| Value::String(format!("http://{host}{path}?page={p}&page_size={size}"));
    json!({
        "next": if page < total_pages { link(page + 1) } else { Value::Null },
        "previous": if page > 1 { link(page - 1) } else { Value::Null },
        "results": results,
        "page_size": size,
        "count": total,
        "current_page_number": page,
        "total_pages": total_pages,
    })
}

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

fn object(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Map<String, Value>> {
    match body {
        Ok(Json(Value::Object(m))) => Ok(m),
        Ok(_) => Err(ApiError::invalid("the body must be a JSON object")),
        Err(e) => Err(e.into()),
    }
}

async fn load(st: &AppState, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    let w = st
        .store
        .get_webhook(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id}")))?;
    caller.may_manage(&w.scope)?;
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

#[utoipa::path(get, path = "/api/v1/webhooks/", params(PageParams), responses((status = 200, description = "A page of webhooks (OnCall envelope)")), security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    let (page, size) = p.resolve()?;
    let query = WebhookQuery {
        team_id: if caller.is_admin() {
            None
        } else {
            Some(caller.team_id.clone().unwrap_or_default())
        },
        offset: (page - 1) * size,
        limit: size,
    };
    let found = st.store.list_webhooks(&query).await?;
    let results = found.items.iter().map(webhook_input::view).collect();
    Ok(Json(page_envelope(
        &headers,
        "/api/v1/webhooks/",
        page,
        size,
        found.total,
        results,
    )))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/", responses((status = 200, description = "The webhook"), (status = 404, body = super::error::Problem)), security(("api_key" = [])))]
pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(webhook_input::view(&load(&st, &caller, &id).await?)))
}

#[utoipa::path(post, path = "/api/v1/webhooks/", request_body = Object, responses((status = 201, description = "Created"), (status = 400, body = super::error::Problem)), security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let m = object(body)?;
    let w = webhook_input::create(&m, &input_context(&st, &caller))?;
    caller.may_manage(&w.scope)?;
    check(&st, &w, true).await?;
    st.store.insert_webhook(&w).await?;
    st.subs.reload(st.store.as_ref()).await?;
    st.plugins.preload(&w);
    Ok((StatusCode::CREATED, Json(webhook_input::view(&w))))
}

#[utoipa::path(put, path = "/api/v1/webhooks/{id}/", request_body = Object, responses((status = 200, description = "Updated"), (status = 400, body = super::error::Problem)), security(("api_key" = [])))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let m = object(body)?;
    let mut w = load(&st, &caller, &id).await?;
    let before = w.scope.clone();
    webhook_input::update(&mut w, &m, &input_context(&st, &caller))?;
    caller.may_manage(&w.scope)?;
    check(&st, &w, w.scope != before).await?;
    st.store.update_webhook(&w).await?;
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
    Ok(Json(webhook_input::view(&w)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}/", responses((status = 204, description = "Deleted")), security(("api_key" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&st, &caller, &id).await?;
    st.store.delete_webhook(&id).await?;
    st.subs.reload(st.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
