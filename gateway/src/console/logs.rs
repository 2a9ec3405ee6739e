//! A webhook's Logs page (Squadcast's Logs tab): attempts with status and time filters, each
//! expandable to its request headers (masked), the payload sent, the response, the error and
//! the plugins' log lines; resend one; recover every failure since a time. The page's
//! JavaScript reads `/api/v1/webhooks/{id}/attempts` and renders every value as text.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;

use super::session::SignedIn;
use super::{error_page_for, render};
use crate::api::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/webhooks/{id}/logs", get(page))
}

async fn page(
    State(st): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> Response {
    match crate::api::webhooks::load(&st, &s.caller, &id).await {
        Ok(w) => render(
            StatusCode::OK,
            Some(&s),
            "webhooks",
            "logs.html",
            context! { title => format!("Logs of {}", w.name), id => w.id, name => w.name },
        ),
        Err(e) => error_page_for(Some(&s), &e),
    }
}
