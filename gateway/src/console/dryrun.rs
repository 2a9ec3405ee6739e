//! The dry-run page: paste an event (or pick a Squadcast or incident.io sample) and see which
//! webhooks it would fire and why each of the others would not. The form posts to this page,
//! which calls the API's own dry-run handler with the session's caller: the same decisions, the
//! same scope rules (a manager sees only its team's webhooks). Nothing is stored or sent.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Json, Router};
use minijinja::context;
use serde::Deserialize;
use serde_json::Value;

use super::session::{Session, SignedIn};
use super::{csrf, error_page_for, render};
use crate::api::AppState;
use crate::api::error::ApiError;

/// Sample events: (key, label, JSON).
pub const SAMPLES: &[(&str, &str, &str)] = &[
    (
        "squadcast-triggered",
        "Squadcast: incident triggered",
        include_str!("samples/squadcast_incident_triggered.json"),
    ),
    (
        "squadcast-resolved",
        "Squadcast: incident resolved",
        include_str!("samples/squadcast_incident_resolved.json"),
    ),
    (
        "incidentio-created",
        "incident.io: incident created",
        include_str!("samples/incidentio_incident_created.json"),
    ),
    (
        "incidentio-private",
        "incident.io: private incident resolved",
        include_str!("samples/incidentio_private_incident.json"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/console/dry-run", get(form).post(run))
}

#[derive(Debug, Deserialize)]
struct Pick {
    #[serde(default)]
    sample: String,
}

#[derive(Debug, Deserialize)]
struct Run {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    sample: String,
}

fn samples() -> Vec<minijinja::Value> {
    SAMPLES
        .iter()
        .map(|(k, label, _)| context! { key => *k, label => *label })
        .collect()
}

fn page(
    s: &Session,
    status: StatusCode,
    sample: &str,
    event: &str,
    result: Option<Value>,
    error: Option<String>,
) -> Response {
    let decisions = result.as_ref().map(|r| {
        r["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let fired = d["outcome"] == "fired";
                context! {
                    id => d["webhook_id"].as_str().unwrap_or(""),
                    name => d["name"].as_str().unwrap_or(""),
                    fired => fired,
                    why => if fired {
                        format!("fires ({} payload)", d["payload"].as_str().unwrap_or("full").replace('_', " "))
                    } else {
                        d["detail"].as_str().unwrap_or("skipped").to_string()
                    },
                    kind => d["reason"]["kind"].as_str().unwrap_or(""),
                }
            })
            .collect::<Vec<_>>()
    });
    render(
        status,
        Some(s),
        "dry-run",
        "dry_run.html",
        context! {
            title => "Dry-run",
            samples => samples(),
            sample => sample,
            event => event,
            error => error,
            ran => result.is_some(),
            event_type => result.as_ref().and_then(|r| r["event_type"].as_str().map(str::to_string)),
            fired => result.as_ref().and_then(|r| r["fired"].as_u64()),
            decisions => decisions,
        },
    )
}

async fn form(SignedIn(s): SignedIn, Query(p): Query<Pick>) -> Response {
    if let Err(e) = s.caller.may_use_webhooks() {
        return error_page_for(Some(&s), &e);
    }
    let (key, json) = SAMPLES
        .iter()
        .find(|(k, _, _)| *k == p.sample)
        .or(SAMPLES.first())
        .map(|(k, _, j)| (*k, *j))
        .unwrap_or(("", "{}"));
    page(&s, StatusCode::OK, key, json.trim(), None, None)
}

async fn run(State(st): State<AppState>, SignedIn(s): SignedIn, Form(f): Form<Run>) -> Response {
    if let Err(e) = s
        .caller
        .may_use_webhooks()
        .and_then(|()| csrf::check_value(&f.csrf, &s.csrf))
    {
        return error_page_for(Some(&s), &e);
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let out = crate::api::events::dry_run(
        State(st),
        s.caller.clone(),
        headers,
        Body::from(f.event.clone()),
    )
    .await;
    match out {
        Ok(Json(v)) => page(&s, StatusCode::OK, &f.sample, &f.event, Some(v), None),
        Err(e) => {
            let msg = match &e {
                ApiError::Invalid {
                    field: Some(field),
                    message,
                } => format!("{field}: {message}"),
                other => other.to_string(),
            };
            page(&s, e.status(), &f.sample, &f.event, None, Some(msg))
        }
    }
}
