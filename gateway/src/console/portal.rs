//! `GET /portal/<token>`: opens a team portal link (minted by `POST /api/v1/portal/links`) once.
//! The link is marked used in the same statement that finds it unused and unexpired; a portal
//! session starts (a manager of the link's team, limited to its webhook when it names one) and
//! the page moves on to the webhooks. A used, expired or unknown link answers a page saying so,
//! and starts nothing.
//!
//! The answer is a page that moves on by itself (`<meta http-equiv="refresh">`) rather than a
//! redirect: a link followed from the platform's own site is a cross-site navigation, and a
//! `SameSite=Strict` cookie set by it is sent only on the next, same-site, navigation. When the
//! console may be framed (`console.frame_ancestors` is not `'none'`) and the gateway is behind
//! TLS, the portal cookie is `SameSite=None; Secure; Partitioned` instead, since browsers send no
//! other cookie into a frame on another site; the CSRF token still guards every change.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;

use super::render;
use super::session::{self, SessionSubject};
use crate::api::AppState;
use crate::api::auth::hash_token;
use crate::model::PortalRedeem;

/// Where an opened portal goes.
pub const LANDING: &str = "/console/webhooks";

pub fn router() -> Router<AppState> {
    Router::new().route("/portal/{token}", get(open))
}

/// A page saying why the link did not open.
fn refused(status: StatusCode, message: &str) -> Response {
    render(
        status,
        None,
        "",
        "portal.html",
        context! { title => "Team portal", opened => false, message => message },
    )
}

/// The cookie attributes for a portal session: framed across sites needs `SameSite=None`.
fn portal_cookie(st: &AppState, cookie: String, secure: bool) -> String {
    let framed = st.config.console.frame_ancestors.trim() != "'none'";
    if framed && secure {
        cookie.replace("SameSite=Strict", "SameSite=None; Partitioned")
    } else {
        cookie
    }
}

async fn open(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let now = st.clock.now_ms();
    let link = match st.store.redeem_portal_link(&hash_token(&token), now).await {
        Ok(PortalRedeem::Opened(l)) => l,
        Ok(PortalRedeem::Used) => {
            return refused(
                StatusCode::GONE,
                "This portal link was already opened. A link opens once: ask for a new one.",
            );
        }
        Ok(PortalRedeem::Expired) => {
            return refused(
                StatusCode::GONE,
                "This portal link has expired: ask for a new one.",
            );
        }
        Ok(PortalRedeem::Unknown) => {
            return refused(StatusCode::NOT_FOUND, "There is no such portal link.");
        }
        Err(e) => return super::error_page(&e.into()),
    };
    let secure = session::secure_for(&st, &headers);
    let subject = SessionSubject::Portal {
        link_id: link.id.clone(),
        team_id: link.team_id.clone(),
        only_webhook: link.webhook_id.clone(),
    };
    let (cookie, s) = match session::start(&st, subject, secure).await {
        Ok(x) => x,
        Err(e) => return super::error_page(&e),
    };
    tracing::info!(link = %link.id, team = %link.team_id, "portal link opened");
    let mut r = render(
        StatusCode::OK,
        Some(&s),
        "webhooks",
        "portal.html",
        context! { title => "Team portal", opened => true, landing => LANDING, team => link.team_id },
    );
    if let Ok(v) = HeaderValue::from_str(&portal_cookie(&st, cookie, secure)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    // The token is in this page's URL: no Referer leaves it anywhere (the console sends
    // same-origin Referers only, and this page links nowhere else).
    r.into_response()
}
