//! The plugins page: every installed plugin with its versions, kind and size, the webhooks (that
//! the caller may see) using each, an upload form (admins) and "try": one run of a version on a
//! sample event with the gateway's plugin limits, showing the request it made and its log lines.
//! The list comes from the API's own handler; upload and try call the API from `plugins.js`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use minijinja::context;
use serde_json::Value;

use super::dryrun::SAMPLES;
use super::session::SignedIn;
use super::{error_page_for, render};
use crate::api::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/plugins", get(page))
}

/// (webhook id, name) of the visible webhooks naming plugin `name` at `version` (or at any
/// version, for references without one).
fn users(
    st: &AppState,
    caller: &crate::api::auth::Caller,
    name: &str,
    version: Option<&str>,
) -> Vec<Value> {
    let snapshot = st.subs.get();
    let mut out: Vec<Value> = snapshot
        .by_id
        .values()
        .filter(|w| caller.may_manage(&w.scope).is_ok())
        .filter(|w| {
            crate::delivery::plugins::PluginStage::steps(w)
                .iter()
                .chain(w.authenticator.as_ref())
                .any(|r| r.name == name && r.version.as_deref() == version)
        })
        .map(|w| serde_json::json!({"id": w.id, "name": w.name}))
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

async fn page(State(st): State<AppState>, SignedIn(s): SignedIn) -> Response {
    let list = match crate::api::plugins::list(State(st.clone()), s.caller.clone()).await {
        Ok(Json(v)) => v,
        Err(e) => return error_page_for(Some(&s), &e),
    };
    let mut by_name: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in list["results"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let mut p = p.clone();
        p["used_by"] = Value::Array(users(&st, &s.caller, &name, p["version"].as_str()));
        by_name.entry(name).or_default().push(p);
    }
    let plugins: Vec<Value> = by_name
        .into_iter()
        .map(|(name, mut versions)| {
            versions.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
            let any = users(&st, &s.caller, &name, None);
            serde_json::json!({
                "name": name, "kind": versions[0]["kind"], "description": versions[0]["description"],
                "builtin": versions[0]["builtin"], "versions": versions, "used_by_newest": any,
            })
        })
        .collect();
    render(
        StatusCode::OK,
        Some(&s),
        "plugins",
        "plugins.html",
        context! {
            title => "Plugins",
            plugins => minijinja::Value::from(minijinja::value::Serde(&plugins)),
            can_upload => s.caller.is_admin(),
            sample => SAMPLES[0].2.trim(),
        },
    )
}
