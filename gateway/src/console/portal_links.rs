//! The "Portal link" page: mints a team portal link (for a team, or one of its webhooks) through
//! `POST /api/v1/portal/links` from `portal.js`, with the session's caller and CSRF token, so the
//! API's rules decide (admins: any team; managers: their own team and its webhooks). The link is
//! in that one answer only and shown once with its expiry; no page the server renders holds it.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;
use serde_json::{Value, json};

use super::render;
use super::session::SignedIn;
use crate::api::AppState;
use crate::api::auth::Caller;
use crate::api::portal::{DEFAULT_TTL_SECS, MAX_TTL_SECS};

/// Link lifetimes offered: (seconds, label).
const TTLS: &[(u64, &str)] = &[
    (DEFAULT_TTL_SECS, "15 minutes"),
    (60 * 60, "1 hour"),
    (MAX_TTL_SECS, "24 hours"),
];

/// Most webhooks the page offers (100 a page).
const PAGES: u32 = 10;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/portal-links", get(page))
}

/// The team webhooks (team or service scope with a team) this caller manages, by name: the
/// API's own list, so its scope rules decide. A caller without webhooks (a publisher) gets none.
async fn team_webhooks(st: &AppState, caller: &Caller) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1..=PAGES {
        let raw = format!("page={page}&page_size=100");
        let Ok(v) = crate::api::webhooks::list_page(
            st,
            caller,
            Some(&raw),
            "/console/portal-links",
            crate::api::webhook_input::view,
        )
        .await
        else {
            break;
        };
        let items = v["results"].as_array().cloned().unwrap_or_default();
        for w in &items {
            if let Some(team) = w["scope"]["team_id"].as_str() {
                out.push(json!({"id": w["id"], "name": w["name"], "team": team}));
            }
        }
        if v["next"].is_null() || items.is_empty() {
            break;
        }
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

async fn page(State(st): State<AppState>, SignedIn(s): SignedIn) -> Response {
    let webhooks = team_webhooks(&st, &s.caller).await;
    let fixed_team = (!s.caller.is_admin() && s.caller.role == crate::model::Role::Manager)
        .then(|| s.caller.team_id.clone())
        .flatten();
    render(
        StatusCode::OK,
        Some(&s),
        "portal-links",
        "portal_links.html",
        context! {
            title => "Portal link",
            webhooks => minijinja::Value::from(minijinja::value::Serde(&webhooks)),
            fixed_team,
            ttls => TTLS.iter().map(|(secs, label)| context! { secs => *secs, label => *label }).collect::<Vec<_>>(),
        },
    )
}
