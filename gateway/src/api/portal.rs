//! `/api/v1/portal/links`: team portal links, Svix's App Portal as incident.io and Squadcast
//! customers know it. An admin (any team), the platform's publisher key (any team) or a team's
//! manager (its own team) mints a short-lived, single-use link for one team or one of its
//! webhooks; opening it (`GET /portal/<token>`, the console) starts a session limited to that
//! team's (or webhook's) pages, with no API key. Only the token's sha256 is stored; the clear
//! token is in this answer's `url` only.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, CallerVia, hash_token, new_token};
use super::error::{ApiError, ApiResult};
use super::{AppState, rfc3339};
use crate::model::{PortalLink, Role, new_id};

/// A link lives this long unless the request says otherwise (Svix's magic links: minutes).
pub const DEFAULT_TTL_SECS: u64 = 15 * 60;
/// And never longer than this.
pub const MAX_TTL_SECS: u64 = 24 * 60 * 60;
/// Where a link opens (followed by its token).
pub const OPEN_PATH: &str = "/portal/";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/portal/links", post(create))
        .route("/api/v1/portal/links/", post(create))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPortalLink {
    /// The team whose webhooks the portal shows.
    pub team_id: String,
    /// Only this webhook of the team; absent or null: every webhook of the team.
    #[serde(default)]
    pub webhook_id: Option<String>,
    /// Seconds until the link expires, 1 to 86400 (24 h); default 900 (15 min).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A link just minted: `url` carries the only copy of its token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortalLinkCreated {
    pub id: String,
    /// Open this (once, before `expires_at`) to start the portal session.
    pub url: String,
    /// `url` without scheme and host, for platforms that serve the gateway under their own host.
    pub path: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub team_id: String,
    #[schema(required)]
    pub webhook_id: Option<String>,
}

/// Whether this caller is itself a portal session (which mints nothing: a link for one webhook
/// must not widen into one for the whole team).
fn is_portal(caller: &Caller) -> bool {
    caller.via == CallerVia::Portal
}

/// Mints a single-use portal link for a team or one of its webhooks.
#[utoipa::path(post, path = "/api/v1/portal/links", operation_id = "create_portal_link", tag = "portal",
    request_body(content = NewPortalLink, content_type = "application/json"),
    responses(
        (status = 201, body = PortalLinkCreated, description = "Minted; the token is only in `url`"),
        (status = 400, description = "A field is missing or invalid (named in `field`), or `webhook_id` is not a webhook of the team"),
        (status = 403, description = "A manager key naming another team, or a portal session"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<NewPortalLink>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<PortalLinkCreated>)> {
    if is_portal(&caller) {
        return Err(ApiError::Forbidden(
            "a portal session cannot mint portal links".into(),
        ));
    }
    let Json(req) = body.map_err(ApiError::from)?;
    let team_id = req.team_id.trim().to_string();
    if team_id.is_empty() || team_id.len() > 255 {
        return Err(ApiError::field("team_id", "must be 1 to 255 characters"));
    }
    if caller.role == Role::Manager && caller.team_id.as_deref() != Some(team_id.as_str()) {
        return Err(ApiError::ForbiddenField {
            field: "team_id".into(),
            message: "a manager key mints portal links for its own team only".into(),
        });
    }
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(ApiError::field(
            "ttl_secs",
            format!("must be 1 to {MAX_TTL_SECS} seconds (24 h)"),
        ));
    }
    let webhook_id = req.webhook_id.filter(|w| !w.is_empty());
    if let Some(id) = &webhook_id {
        let w = st.store.get_webhook(id).await?;
        if w.as_ref().and_then(|w| w.scope.team()) != Some(team_id.as_str()) {
            // The same answer whether the webhook is another team's or does not exist.
            return Err(ApiError::field(
                "webhook_id",
                format!("team {team_id} has no webhook {id}"),
            ));
        }
    }
    let now = st.clock.now_ms();
    let token = format!("gwp_{}", &new_token()[3..]);
    let link = PortalLink {
        id: new_id("portal"),
        token_hash: hash_token(&token),
        team_id,
        webhook_id,
        created_by: caller.key_id.clone(),
        created_at: now,
        expires_at: now + (ttl as i64) * 1000,
        used_at: None,
    };
    st.store.insert_portal_link(&link).await?;
    tracing::info!(link = %link.id, team = %link.team_id, webhook = ?link.webhook_id, by = %caller.key_id, "portal link minted");
    let path = format!("{OPEN_PATH}{token}");
    let url = format!("{}{path}", origin(&st, &headers));
    Ok((
        StatusCode::CREATED,
        Json(PortalLinkCreated {
            id: link.id,
            url,
            path,
            expires_at: rfc3339(link.expires_at),
            team_id: link.team_id,
            webhook_id: link.webhook_id,
        }),
    ))
}

/// `public_url` when set, else the scheme and host the request came to.
fn origin(st: &AppState, headers: &HeaderMap) -> String {
    let public = st.config.public_url.trim_end_matches('/');
    if !public.is_empty() {
        return public.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!("{}://{host}", if tls { "https" } else { "http" })
}
