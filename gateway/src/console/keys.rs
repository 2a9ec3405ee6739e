//! The keys page (admins): the list of API keys (never a token), a form that creates one and
//! shows its token once, and revocation. The list comes from the API's own handler; the form and
//! the revoke buttons call `/api/v1/keys` (its JavaScript, `keys.js`), so a token exists only in
//! the one answer that created it, never in a page the server renders.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use minijinja::context;

use super::session::SignedIn;
use super::{error_page_for, render};
use crate::api::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/keys", get(page))
}

async fn page(State(st): State<AppState>, SignedIn(s): SignedIn) -> Response {
    match crate::api::keys::list(State(st), s.caller.clone()).await {
        Ok(Json(v)) => render(
            StatusCode::OK,
            Some(&s),
            "keys",
            "keys.html",
            context! { title => "API keys", keys => minijinja::Value::from(minijinja::value::Serde(&v["results"])), me => s.caller.key_id.clone() },
        ),
        Err(e) => error_page_for(Some(&s), &e),
    }
}
