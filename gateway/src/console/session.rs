//! Console sessions: a random cookie (`gw_session`, 32 bytes base64url) stored as its sha256 with
//! who it acts as and a CSRF token. `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` when
//! the request came over TLS (a proxy's `X-Forwarded-Proto: https`) or `public_url` is https.
//!
//! A session ends at sign-out (its row is deleted), after `console.session_idle_secs` without a
//! request, `console.session_max_secs` after it began, or when the API key it was opened with is
//! revoked or expires: each request re-checks the key. What a session may do is decided by the
//! same [`Caller`] rules as the API (`api::auth`); this module only says who the caller is.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use rand::RngCore;

use crate::api::AppState;
use crate::api::auth::{Caller, CallerVia, hash_token};
use crate::api::error::ApiError;
use crate::model::{ApiKey, ConsoleSession, Role};

/// The session cookie's name.
pub const COOKIE: &str = "gw_session";

/// `last_seen_at` is written at most this often per session (and at least four times per idle
/// period, so activity always keeps a session alive).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Who a new session acts as.
#[derive(Debug, Clone)]
pub enum SessionSubject {
    /// Signed in with this (active) API key.
    Key(ApiKey),
    /// Opened through a team portal link: a manager of `team_id`, optionally of one webhook.
    Portal {
        link_id: String,
        team_id: String,
        only_webhook: Option<String>,
    },
}

/// A live session: the caller it acts as and its CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    /// Hex sha256 of the cookie (the row's key).
    pub id_hash: String,
    /// Absolute expiry, unix ms.
    pub expires_at: i64,
}

impl Session {
    fn of(row: &ConsoleSession) -> Session {
        Session {
            caller: Caller {
                key_id: row.key_id.clone(),
                role: row.role,
                team_id: row.team_id.clone(),
                only_webhook: row.only_webhook.clone(),
                via: if row.portal {
                    CallerVia::Portal
                } else {
                    CallerVia::Session
                },
            },
            csrf: row.csrf.clone(),
            id_hash: row.id_hash.clone(),
            expires_at: row.expires_at,
        }
    }
}

/// `n` random bytes, base64url without padding.
pub fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether cookies must be `Secure`: the request came over TLS (a proxy says so) or the
/// gateway's `public_url` is https.
pub fn secure_for(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age_secs}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// Starts a session for `subject`: stores it and returns the `Set-Cookie` value with it.
pub async fn start(
    state: &AppState,
    subject: SessionSubject,
    secure: bool,
) -> Result<(String, Session), ApiError> {
    let now = state.clock.now_ms();
    let c = &state.config.console;
    let token = random_b64(32);
    let (key_id, role, team_id, only_webhook, portal) = match subject {
        SessionSubject::Key(k) => {
            if !k.is_active(now) {
                return Err(ApiError::Unauthorized);
            }
            (k.id, k.role, k.team_id, None, false)
        }
        SessionSubject::Portal {
            link_id,
            team_id,
            only_webhook,
        } => (
            format!("portal:{link_id}"),
            Role::Manager,
            Some(team_id),
            only_webhook,
            true,
        ),
    };
    let expires_at = now.saturating_add(c.session_max_secs as i64 * 1000);
    let row = ConsoleSession {
        id_hash: hash_token(&token),
        key_id,
        role,
        team_id,
        only_webhook,
        portal,
        csrf: super::csrf::new_token(),
        created_at: now,
        expires_at,
        last_seen_at: now,
    };
    state.store.insert_console_session(row.clone()).await?;
    let cookie = set_cookie(COOKIE, &token, c.session_max_secs, secure);
    Ok((cookie, Session::of(&row)))
}

/// The live session the request's cookie names, if any. An expired session (idle or absolute)
/// and one whose API key is no longer active is deleted and answers `None`.
pub async fn load(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(token) = cookie(headers, COOKIE) else {
        return Ok(None);
    };
    let id_hash = hash_token(token);
    let Some(row) = state.store.console_session(&id_hash).await? else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    let idle_ms = state.config.console.session_idle_secs as i64 * 1000;
    let mut live = now < row.expires_at && now - row.last_seen_at < idle_ms;
    if live && !row.portal {
        // The key re-checked on every request: a revoked or expired key ends its sessions.
        let keys = state.store.list_api_keys().await?;
        live = keys.iter().any(|k| k.id == row.key_id && k.is_active(now));
    }
    if !live {
        state.store.delete_console_session(&id_hash).await?;
        return Ok(None);
    }
    if now - row.last_seen_at >= TOUCH_EVERY_MS.min(idle_ms / 4) {
        state.store.touch_console_session(&id_hash, now).await?;
    }
    Ok(Some(Session::of(&row)))
}

/// Ends the request's session (sign-out); nothing when there is none.
pub async fn end(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(token) = cookie(headers, COOKIE) {
        state
            .store
            .delete_console_session(&hash_token(token))
            .await?;
    }
    Ok(())
}

/// The [`Caller`] of a request without an API key: its session cookie, with the CSRF token
/// required on unsafe methods. No live session is 401, a missing or wrong token 403.
pub async fn caller_from_cookie(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let s = load(state, &parts.headers)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if super::csrf::is_unsafe(&parts.method) {
        super::csrf::check_header(&parts.headers, &s.csrf)?;
    }
    Ok(s.caller)
}

/// A console page's extractor: the live session, or a redirect to the sign-in page. A team
/// portal session gets only the pages [`Caller::may_reach`] allows (else a 403 page).
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match load(state, &parts.headers).await {
            Ok(Some(s)) => match s.caller.may_reach(&parts.method, parts.uri.path()) {
                Ok(()) => Ok(SignedIn(s)),
                // A team portal's way home (the brand link) is its webhooks.
                Err(_) if parts.uri.path() == "/console/" => {
                    Err(Redirect::to(super::portal::LANDING).into_response())
                }
                Err(e) => Err(super::error_page_for(Some(&s), &e)),
            },
            Ok(None) => Err(Redirect::to("/console/sign-in").into_response()),
            Err(e) => Err(super::error_page(&e)),
        }
    }
}
