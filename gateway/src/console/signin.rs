//! Sign-in with an API key and sign-out. The sign-in form carries a one-off token that must equal
//! a `gw_signin` cookie set with the form (double submit), so another site cannot sign a browser
//! in with the attacker's key (login CSRF). Sign-out is a form post with the session's CSRF token.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use super::session::{self, COOKIE, SessionSubject};
use super::{csrf, error_page, render};
use crate::api::AppState;
use crate::api::auth::hash_token;

/// The sign-in form's double-submit cookie.
const SIGNIN_COOKIE: &str = "gw_signin";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/sign-in", get(form).post(sign_in))
        .route("/console/sign-out", post(sign_out))
}

fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The form, with a fresh double-submit token.
fn page(st: &AppState, headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let token = csrf::new_token();
    let r = render(
        status,
        None,
        "sign-in",
        "sign_in.html",
        context! { title => "Sign in", signin_token => token.clone(), error => error },
    );
    let secure = session::secure_for(st, headers);
    with_cookie(r, &session::set_cookie(SIGNIN_COOKIE, &token, 600, secure))
}

async fn form(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match session::load(&st, &headers).await {
        Ok(Some(_)) => Redirect::to("/console/webhooks").into_response(),
        Ok(None) => page(&st, &headers, StatusCode::OK, None),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    csrf: String,
}

async fn sign_in(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let want = session::cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    if csrf::check_value(&f.csrf, want).is_err() {
        return page(
            &st,
            &headers,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired or came from another site; try again."),
        );
    }
    let token = f.api_key.trim();
    let key = match st.store.api_key_by_hash(&hash_token(token)).await {
        Ok(k) => k.filter(|k| !token.is_empty() && k.is_active(st.clock.now_ms())),
        Err(e) => return error_page(&e.into()),
    };
    let Some(key) = key else {
        return page(
            &st,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("This API key is unknown, revoked or expired."),
        );
    };
    let secure = session::secure_for(&st, &headers);
    match session::start(&st, SessionSubject::Key(key), secure).await {
        Ok((cookie, _)) => {
            let r = with_cookie(Redirect::to("/console/webhooks").into_response(), &cookie);
            with_cookie(r, &session::set_cookie(SIGNIN_COOKIE, "", 0, secure))
        }
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignOut>,
) -> Response {
    let s = match session::load(&st, &headers).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    if let Some(s) = &s {
        if let Err(e) = csrf::check_value(&f.csrf, &s.csrf) {
            return super::error_page_for(Some(s), &e);
        }
        if let Err(e) = session::end(&st, &headers).await {
            return error_page(&e);
        }
    }
    let secure = session::secure_for(&st, &headers);
    with_cookie(
        Redirect::to("/console/sign-in").into_response(),
        &session::set_cookie(COOKIE, "", 0, secure),
    )
}
