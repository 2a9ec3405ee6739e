//! The web console, served by the gateway itself at `/` and `/console/...`: server-rendered
//! minijinja pages (autoescaped) plus small vanilla JavaScript files, all embedded in the binary
//! (no Node toolchain, no CDN; it works offline).
//!
//! Pages get their data from the same functions the JSON API handlers use, with the same
//! [`Caller`](crate::api::auth::Caller); the pages' JavaScript calls `/api/v1/...` with the
//! session cookie and the session's CSRF token. So what the console shows and may change follows
//! the one authorisation path of `api::auth`.
//!
//! Files: `session` (cookies, expiry), `csrf`, `headers` (CSP and friends), `signin`, `webhooks`
//! (list and editor), `logs` (attempt log), `overview`, `dryrun`, `plugins`, `keys`, `portal`
//! (opening a team portal link) and `portal_links` (minting one); templates in `templates/`, CSS
//! and JS in `assets/`.

pub mod csrf;
pub mod dryrun;
pub mod headers;
pub mod keys;
pub mod logs;
pub mod overview;
pub mod plugins;
pub mod portal;
pub mod portal_links;
pub mod session;
pub mod signin;
pub mod webhooks;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Environment, Value, context};
use sha2::{Digest, Sha256};

use crate::api::AppState;
use crate::api::auth::CallerVia;
use crate::api::error::ApiError;
use session::Session;

/// Templates by name (the `.html` ones are autoescaped).
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("webhooks.html", include_str!("templates/webhooks.html")),
    (
        "webhook_edit.html",
        include_str!("templates/webhook_edit.html"),
    ),
    ("logs.html", include_str!("templates/logs.html")),
    // templates of B
    ("portal.html", include_str!("templates/portal.html")),
    ("dry_run.html", include_str!("templates/dry_run.html")),
    ("plugins.html", include_str!("templates/plugins.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("keys.html", include_str!("templates/keys.html")),
    (
        "portal_links.html",
        include_str!("templates/portal_links.html"),
    ),
];

/// Static assets: (name, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
    (
        "webhooks.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/webhooks.js"),
    ),
    (
        "editor.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/editor.js"),
    ),
    (
        "logs.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/logs.js"),
    ),
    // assets of B
    (
        "keys.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/keys.js"),
    ),
    (
        "plugins.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/plugins.js"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/portal.js"),
    ),
];

/// The names of the embedded assets (`/console/assets/<name>`), for tests that visit each.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(n, _, _)| *n)
}

/// An asset's version: the first 16 hex digits of its sha256 (the URL's `?v=`).
fn asset_version(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..8])
}

/// `/console/assets/<name>?v=<hash>`, for templates (`{{ asset("app.css") }}`).
fn asset_url(name: &str) -> String {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, _, body)) => format!("/console/assets/{name}?v={}", asset_version(body)),
        None => format!("/console/assets/{name}"),
    }
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .unwrap_or_else(|e| panic!("console template {name}: {e}"));
        }
        env.add_function("asset", |name: String| asset_url(&name));
        env
    })
}

/// What every page's layout needs about the session (nothing when signed out).
fn layout(session: Option<&Session>, nav: &str) -> Value {
    match session {
        None => context! { nav => nav, signed_in => false },
        Some(s) => {
            let c = &s.caller;
            context! {
                nav => nav,
                signed_in => true,
                csrf => s.csrf.clone(),
                role => c.role.as_str(),
                team => c.team_id.clone(),
                is_admin => c.is_admin(),
                portal => c.via == CallerVia::Portal,
            }
        }
    }
}

/// Renders template `name` with the layout's context and `ctx`.
pub fn render(
    status: StatusCode,
    session: Option<&Session>,
    nav: &str,
    name: &str,
    ctx: Value,
) -> Response {
    let page = context! { page => layout(session, nav), ..ctx };
    let html = env().get_template(name).and_then(|t| t.render(page));
    match html {
        Ok(html) => {
            let mut r = (status, html).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => {
            tracing::error!(template = name, error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "console page failed").into_response()
        }
    }
}

/// An error as a page, with the API's status and message.
pub fn error_page(e: &ApiError) -> Response {
    error_page_for(None, e)
}

/// An error as a page inside the signed-in layout.
pub fn error_page_for(session: Option<&Session>, e: &ApiError) -> Response {
    let status = e.status();
    render(
        status,
        session,
        "",
        "error.html",
        context! { title => status.canonical_reason().unwrap_or("Error"), status => status.as_u16(), message => e.to_string() },
    )
}

/// The console's routes (with the security headers on each answer).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/console/assets/{name}", get(asset))
        .merge(signin::router())
        .merge(webhooks::router())
        .merge(logs::router())
        // pages of B
        .merge(portal::router())
        .merge(overview::router())
        .merge(dryrun::router())
        .merge(plugins::router())
        .merge(keys::router())
        .merge(portal_links::router())
        .layer(axum::middleware::from_fn_with_state(
            state,
            headers::secure_headers,
        ))
}

/// `/`: the console's overview, or the sign-in page.
async fn root(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: HeaderMap,
) -> Response {
    match session::load(&st, &headers).await {
        Ok(Some(_)) => Redirect::to("/console/").into_response(),
        Ok(None) => Redirect::to("/console/sign-in").into_response(),
        Err(e) => error_page(&e),
    }
}

/// An embedded asset; versioned URLs are cached for a year (a change changes the URL).
async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, mime, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return error_page(&ApiError::NotFound(format!("asset {name}")));
    };
    let mut r = (*body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", asset_version(body))) {
        h.insert(header::ETAG, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_assets_are_versioned() {
        let e = env();
        for (name, _) in TEMPLATES {
            e.get_template(name).unwrap();
        }
        let u = asset_url("app.css");
        assert!(u.starts_with("/console/assets/app.css?v="), "{u}");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let r = env()
            .get_template("error.html")
            .unwrap()
            .render(context! { page => layout(None, ""), title => "x", status => 404, message => "<script>alert(1)</script>" })
            .unwrap();
        assert!(r.contains("&lt;script&gt;alert(1)"), "{r}");
        assert!(!r.contains("<script>alert(1)"));
    }
}
