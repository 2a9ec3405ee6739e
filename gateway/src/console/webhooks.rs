//! The webhook pages: the list (scope, triggers, state, health, search) and the editor (create and
//! edit; its JavaScript builds the API body and calls `/api/v1/webhooks/`), plus the explicit
//! admin action that reveals a signing secret once.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{Session, SignedIn};
use super::{error_page_for, render};
use crate::api::AppState;
use crate::api::auth::{Caller, CallerVia};
use crate::api::error::{ApiError, ApiResult};
use crate::model::{AttemptQuery, METHODS};

/// Most webhooks a search reads through (100 a page).
const SEARCH_PAGES: u32 = 10;
/// Attempts the health column's success rate is computed over.
const HEALTH_WINDOW: u64 = 50;

/// The editor's trigger checkboxes: (canonical name, label with the products' names).
const TRIGGERS: &[(&str, &str)] = &[
    (
        "incident.triggered",
        "triggered (OnCall: alert group created)",
    ),
    ("incident.acknowledged", "acknowledged"),
    ("incident.unacknowledged", "unacknowledged"),
    ("incident.reassigned", "reassigned"),
    ("incident.escalated", "escalated (OnCall: escalation)"),
    ("incident.resolved", "resolved"),
    ("incident.reopened", "reopened (OnCall: unresolve)"),
    ("incident.silenced", "silenced"),
    ("incident.unsilenced", "unsilenced"),
    ("status_change", "any status change (OnCall: status change)"),
    ("*", "every event"),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/webhooks", get(list))
        .route("/console/webhooks/new", get(new))
        .route("/console/webhooks/{id}", get(edit))
        .route("/console/webhooks/{id}/secret", post(reveal_secret))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    page: Option<u32>,
}

fn scope_text(v: &Value) -> String {
    let s = &v["scope"];
    match s["kind"].as_str() {
        Some("team") => format!("team {}", s["team_id"].as_str().unwrap_or("")),
        Some("service") => match s["team_id"].as_str() {
            Some(t) => format!(
                "service {} (team {t})",
                s["service_id"].as_str().unwrap_or("")
            ),
            None => format!("service {}", s["service_id"].as_str().unwrap_or("")),
        },
        _ => "global".into(),
    }
}

fn state_of(v: &Value) -> (&'static str, Option<String>) {
    if v["is_webhook_enabled"].as_bool().unwrap_or(false) {
        ("active", None)
    } else {
        match v["disabled_reason"].as_str() {
            Some(r) => ("auto-disabled", Some(r.to_string())),
            None => ("inactive", None),
        }
    }
}

fn matches_search(v: &Value, q: &str) -> bool {
    if q.is_empty() {
        return true;
    }
    let q = q.to_lowercase();
    let hit = |s: &Value| s.as_str().is_some_and(|s| s.to_lowercase().contains(&q));
    hit(&v["name"])
        || hit(&v["id"])
        || hit(&v["description"])
        || v["urls"].as_array().is_some_and(|u| u.iter().any(hit))
}

/// One row of the list: the (masked) API view plus health from the attempt log.
async fn row(st: &AppState, v: &Value) -> ApiResult<Value> {
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let recent = st
        .store
        .list_attempts(&AttemptQuery {
            webhook_id: Some(id.clone()),
            limit: HEALTH_WINDOW,
            ..Default::default()
        })
        .await?;
    let n = recent.items.len();
    let ok = recent
        .items
        .iter()
        .filter(|a| a.outcome == crate::model::AttemptOutcome::Success)
        .count();
    let last = recent.items.iter().max_by_key(|a| a.started_at).map(|a| {
        json!({
            "time": crate::api::rfc3339(a.started_at),
            "outcome": a.outcome.as_str(),
            "status": a.status_code,
        })
    });
    let (state, reason) = state_of(v);
    let triggers: Vec<&str> = v["trigger_events"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Ok(json!({
        "id": id,
        "name": v["name"],
        "url": v["url"],
        "scope": scope_text(v),
        "triggers": triggers.join(", "),
        "state": state,
        "reason": reason,
        "enabled": v["is_webhook_enabled"],
        "rate": (n > 0).then(|| (ok * 100 + n / 2) / n),
        "attempts": n,
        "last": last,
    }))
}

/// The webhooks the caller may see: one page, or (searching) up to 1,000 read through.
async fn visible(
    st: &AppState,
    caller: &Caller,
    p: &ListParams,
) -> ApiResult<(Vec<Value>, u64, Option<u32>)> {
    let searching = !p.q.trim().is_empty() || !p.state.is_empty();
    let list = |page: u32, size: u32| async move {
        let raw = format!("page={page}&page_size={size}");
        crate::api::webhooks::list_page(
            st,
            caller,
            Some(&raw),
            "/console/webhooks",
            crate::api::webhook_input::view,
        )
        .await
    };
    if !searching {
        let page = p.page.unwrap_or(1).max(1);
        let v = list(page, 50).await?;
        let items = v["results"].as_array().cloned().unwrap_or_default();
        let total = v["count"].as_u64().unwrap_or(items.len() as u64);
        let last = v["total_pages"].as_u64().unwrap_or(1) as u32;
        return Ok((items, total, Some(page.min(last.max(1)))));
    }
    let mut found = Vec::new();
    for page in 1..=SEARCH_PAGES {
        let v = list(page, 100).await?;
        let items = v["results"].as_array().cloned().unwrap_or_default();
        let done = v["next"].is_null() || items.is_empty();
        found.extend(items.into_iter().filter(|w| {
            matches_search(w, p.q.trim()) && (p.state.is_empty() || state_of(w).0 == p.state)
        }));
        if done {
            break;
        }
    }
    let total = found.len() as u64;
    Ok((found, total, None))
}

async fn list(
    State(st): State<AppState>,
    SignedIn(s): SignedIn,
    Query(p): Query<ListParams>,
) -> Response {
    let caller = &s.caller;
    let (rows, total, page, error) = match visible(&st, caller, &p).await {
        Ok((items, total, page)) => {
            let mut rows = Vec::with_capacity(items.len());
            for v in &items {
                match row(&st, v).await {
                    Ok(r) => rows.push(r),
                    Err(e) => return error_page_for(Some(&s), &e),
                }
            }
            (rows, total, page, None)
        }
        Err(e @ ApiError::Forbidden(_)) => (Vec::new(), 0, None, Some(e.to_string())),
        Err(e) => return error_page_for(Some(&s), &e),
    };
    let (prev, next) = match page {
        Some(n) => (
            (n > 1).then(|| format!("/console/webhooks?page={}", n - 1)),
            (u64::from(n) * 50 < total).then(|| format!("/console/webhooks?page={}", n + 1)),
        ),
        None => (None, None),
    };
    let can_create = error.is_none() && caller.only_webhook.is_none();
    render(
        StatusCode::OK,
        Some(&s),
        "webhooks",
        "webhooks.html",
        context! { title => "Webhooks", rows => minijinja::Value::from(minijinja::value::Serde(&rows)), total, q => p.q, state => p.state, prev, next, error, can_create },
    )
}

fn editor(s: &Session, id: Option<String>, title: &str) -> Response {
    let triggers: Vec<(&str, &str)> = TRIGGERS.to_vec();
    render(
        StatusCode::OK,
        Some(s),
        "webhooks",
        "webhook_edit.html",
        context! { title, id, methods => METHODS.to_vec(), triggers },
    )
}

async fn new(SignedIn(s): SignedIn) -> Response {
    if let Err(e) = s.caller.may_use_webhooks() {
        return error_page_for(Some(&s), &e);
    }
    editor(&s, None, "Add webhook")
}

/// The editor of a webhook the caller may manage (the API's lookup and check); the form is
/// filled by its JavaScript from the masked API view.
async fn edit(
    State(st): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> Response {
    match crate::api::webhooks::load(&st, &s.caller, &id).await {
        Ok(w) => editor(&s, Some(w.id), &format!("Edit {}", w.name)),
        Err(e) => error_page_for(Some(&s), &e),
    }
}

/// Reveals the signing secret (admins; a POST with the CSRF token, answered `no-store`).
async fn reveal_secret(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if caller.via == CallerVia::Key {
        // The console's action; API clients use GET /api/v1/webhooks/{id}/secret.
        return Err(ApiError::Forbidden(
            "this is the console's action; API clients use GET /api/v1/webhooks/{id}/secret".into(),
        ));
    }
    crate::api::deliveries::secret(State(st), caller, Path(id)).await
}
