//! API keys and the one authorisation path of the API (and of any console built on it): who the
//! caller is ([`Caller`], from `Authorization: <token>` — Grafana OnCall's form — or
//! `Authorization: Bearer <token>`) and every decision about what it may do. Handlers only call
//! the `may_*` methods here.
//!
//! Roles:
//! - `admin`: everything, every team.
//! - `manager` of one team: that team's team and service webhooks, that team's events (posting and
//!   reading) and the deliveries of those events to its own webhooks.
//! - `publisher` (the platform's service key): posts and reads the events of every team and their
//!   deliveries; no webhooks, keys or plugins.
//!
//! What a caller may not read answers 404, as if it did not exist; what it may read but not change
//! answers 403.
//!
//! The console uses the same path: [`Caller`]'s extractor accepts either an API key or the
//! console's session cookie (`console::session`), and a session acts exactly as its key (or, for
//! a team portal link, as a manager of that team limited to `only_webhook`). A session's unsafe
//! requests (POST, PUT, PATCH, DELETE) must carry its CSRF token in `X-CSRF-Token`.
//!
//! A team portal session reaches less than a manager: its webhooks, their logs, test and replay
//! ([`Caller::may_reach`], applied by the extractor to every API route and by the console's page
//! extractor to every page). Everything else (events, dry-runs, plugins, keys, statistics,
//! portal links) is 403, and the `may_*` checks below refuse it too for handlers called directly.

pub mod cache;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use rand::Rng;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::model::{ApiKey, Event, Role, Scope, new_id};
use crate::store::{Store, StoreResult};

pub use cache::KeyCache;

/// The name the bootstrap key (`GATEWAY_ADMIN_TOKEN`) is stored under.
pub const BOOTSTRAP_NAME: &str = "bootstrap admin (GATEWAY_ADMIN_TOKEN)";

/// Hex sha256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: `gw_` + 40 alphanumerics (about 238 bits).
pub fn new_token() -> String {
    let mut rng = rand::thread_rng();
    let s: String = (0..40)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    format!("gw_{s}")
}

/// What a new key is.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub name: String,
    pub role: Role,
    pub team_id: Option<String>,
    /// Unix ms; `None`: never expires.
    pub expires_at: Option<i64>,
}

/// Creates and stores a key; returns it with the clear token (shown once).
pub async fn create_key(store: &dyn Store, spec: KeySpec) -> StoreResult<(ApiKey, String)> {
    let token = new_token();
    let key = ApiKey {
        id: new_id("key"),
        name: spec.name,
        role: spec.role,
        team_id: spec.team_id,
        token_hash: hash_token(&token),
        created_at: chrono::Utc::now().timestamp_millis(),
        expires_at: spec.expires_at,
        last_used_at: None,
        revoked_at: None,
        bootstrap: false,
    };
    store.insert_api_key(key.clone()).await?;
    Ok((key, token))
}

/// Makes `token` the bootstrap admin key: every earlier bootstrap key with another token is
/// revoked, and the key is stored unless it exists. A key revoked (or expired) earlier stays so,
/// and then nothing else is revoked either: returns `false` (choose a new token).
pub async fn bootstrap_admin(store: &dyn Store, token: &str, now: i64) -> StoreResult<bool> {
    let hash = hash_token(token);
    let keys = store.list_api_keys().await?;
    match keys.iter().find(|k| k.token_hash == hash) {
        Some(k) if !k.is_active(now) => return Ok(false),
        Some(_) => {}
        None => {
            store
                .insert_api_key(ApiKey {
                    id: new_id("key"),
                    name: BOOTSTRAP_NAME.into(),
                    role: Role::Admin,
                    team_id: None,
                    token_hash: hash.clone(),
                    created_at: now,
                    expires_at: None,
                    last_used_at: None,
                    revoked_at: None,
                    bootstrap: true,
                })
                .await?
        }
    }
    for k in keys {
        if k.bootstrap && k.token_hash != hash && k.revoked_at.is_none() {
            store.revoke_api_key(&k.id, now).await?;
            tracing::info!(key = %k.id, "GATEWAY_ADMIN_TOKEN changed: the previous bootstrap key is revoked");
        }
    }
    Ok(true)
}

/// How the caller came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerVia {
    /// An API key in `Authorization`.
    Key,
    /// The console's session cookie, signed in with an API key.
    Session,
    /// The console's session cookie, opened through a team portal link (no API key).
    Portal,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key's id; `portal:<link id>` for a portal session.
    pub key_id: String,
    pub role: Role,
    pub team_id: Option<String>,
    /// A portal link for one webhook: every other webhook (and its deliveries) is not found.
    pub only_webhook: Option<String>,
    pub via: CallerVia,
}

/// The body field an event's team was read from (the order of `EventScope::from_body`), for
/// refusals that name it; `team_id` when the event names no team.
fn team_field(body: &Value) -> &'static str {
    let at = |path: &[&str]| {
        let mut cur = body;
        for p in path {
            cur = cur.get(p)?;
        }
        cur.as_str().filter(|s| !s.is_empty())
    };
    let owner_is_team = at(&["owner", "type"]).is_some_and(|t| t.eq_ignore_ascii_case("team"));
    if owner_is_team && at(&["owner", "id"]).is_some() {
        "owner"
    } else if at(&["team_id"]).is_some() {
        "team_id"
    } else if at(&["team", "id"]).is_some() {
        "team.id"
    } else if at(&["team"]).is_some() {
        "team"
    } else {
        "team_id"
    }
}

/// The refusal of everything a team portal session does not reach.
const PORTAL_REFUSAL: &str =
    "a team portal session reaches its webhooks, their logs, test and replay only";

/// The one list of what a team portal session reaches, API routes and console pages alike: its
/// webhooks (list, read, edit, de-activate, delete, rotate the signing secret; a link for one
/// webhook adds none), their logs, Test, resend and recover, and signing out. Which webhooks and
/// deliveries are its own is then decided by the scope rules like any manager's.
fn portal_reaches(method: &Method, path: &str, one_webhook: bool) -> bool {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let m = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    match (m, segs.as_slice()) {
        ("GET", ["api", "v1", "webhooks"]) => true,
        ("POST", ["api", "v1", "webhooks"]) => !one_webhook,
        ("GET" | "PUT" | "PATCH" | "DELETE", ["api", "v1", "webhooks", _]) => true,
        ("GET", ["api", "v1", "webhooks", _, "attempts" | "responses"]) => true,
        ("POST", ["api", "v1", "webhooks", _, "test" | "recover"]) => true,
        ("POST", ["api", "v1", "webhooks", _, "secret", "rotate"]) => true,
        ("GET", ["api", "v1", "deliveries", _]) => true,
        ("POST", ["api", "v1", "deliveries", _, "resend"]) => true,
        ("GET", ["console", "webhooks"]) => true,
        ("GET", ["console", "webhooks", "new"]) => !one_webhook,
        ("GET", ["console", "webhooks", _]) => true,
        ("GET", ["console", "webhooks", _, "logs"]) => true,
        ("POST", ["console", "sign-out"]) => true,
        _ => false,
    }
}

impl Caller {
    /// May this caller reach `method path` at all? Keys and signed-in sessions: every route (the
    /// handlers' `may_*` checks decide). A team portal session: only [`portal_reaches`]'s list.
    pub fn may_reach(&self, method: &Method, path: &str) -> Result<(), ApiError> {
        if self.via != CallerVia::Portal
            || portal_reaches(method, path, self.only_webhook.is_some())
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden(PORTAL_REFUSAL.into()))
        }
    }

    /// Refuses a team portal session (for the checks of what it never does).
    fn not_portal(&self) -> Result<(), ApiError> {
        if self.via == CallerVia::Portal {
            Err(ApiError::Forbidden(PORTAL_REFUSAL.into()))
        } else {
            Ok(())
        }
    }

    /// The caller an API key authenticates.
    pub fn of_key(key: &ApiKey) -> Caller {
        Caller {
            key_id: key.id.clone(),
            role: key.role,
            team_id: key.team_id.clone(),
            only_webhook: None,
            via: CallerVia::Key,
        }
    }

    /// Whether webhook `id` exists for this caller at all (a portal session for one webhook sees
    /// no other; everyone else: the scope rules decide).
    pub fn sees_webhook(&self, id: &str) -> bool {
        self.only_webhook.as_deref().is_none_or(|only| only == id)
    }

    /// [`Caller::may_manage`] for one webhook: one that the caller does not see is 404.
    pub fn may_manage_webhook(&self, w: &crate::model::Webhook) -> Result<(), ApiError> {
        if !self.sees_webhook(&w.id) {
            return Err(ApiError::NotFound(format!("webhook {}", w.id)));
        }
        self.may_manage(&w.scope)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an admin key".into()))
        }
    }

    /// Webhook routes at all (lists included): admins and managers; a publisher key has none.
    pub fn may_use_webhooks(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Manager => Ok(()),
            Role::Publisher => Err(ApiError::Forbidden(
                "a publisher key posts and reads events only; webhooks need a manager or admin key"
                    .into(),
            )),
        }
    }

    /// Reading installed plugins: admins and managers (who name them in webhooks); not a portal.
    pub fn may_read_plugins(&self) -> Result<(), ApiError> {
        self.not_portal()?;
        match self.role {
            Role::Admin | Role::Manager => Ok(()),
            Role::Publisher => Err(ApiError::Forbidden(
                "a publisher key posts and reads events only".into(),
            )),
        }
    }

    /// May this caller manage a webhook in `scope`? Admins: all. Managers: their team's team and
    /// service webhooks only (only admins manage global webhooks, Callgoose's rule). Publishers:
    /// none.
    pub fn may_manage(&self, scope: &Scope) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => return Ok(()),
            Role::Publisher => return self.may_use_webhooks(),
            Role::Manager => {}
        }
        match (scope, scope.team(), &self.team_id) {
            (Scope::Global, _, _) => Err(ApiError::Forbidden(
                "only an admin manages global webhooks".into(),
            )),
            (_, Some(t), Some(mine)) if t == mine => Ok(()),
            _ => Err(ApiError::Forbidden(
                "this webhook belongs to another team".into(),
            )),
        }
    }

    /// May this caller post `event`? Admins and publishers: any. Managers: only events of their
    /// own team; another team's or a team-less event is 403 naming the field the team is read from.
    /// A portal session posts none.
    pub fn may_post_event(&self, event: &Event) -> Result<(), ApiError> {
        self.not_portal()?;
        if self.role != Role::Manager {
            return Ok(());
        }
        let field = team_field(&event.body);
        match (&event.scope.team_id, &self.team_id) {
            (Some(t), Some(mine)) if t == mine => Ok(()),
            (Some(_), _) => Err(ApiError::ForbiddenField {
                field: field.into(),
                message: "a manager key posts only events of its own team".into(),
            }),
            (None, _) => Err(ApiError::ForbiddenField {
                field: field.into(),
                message: "a manager key posts only events of its own team; this event names no team (set owner, team_id or team.id)".into(),
            }),
        }
    }

    /// Dry-runs show webhooks: admins any event, managers as for posting (and only their own
    /// webhooks' decisions), publishers none.
    pub fn may_dry_run(&self, event: &Event) -> Result<(), ApiError> {
        match self.role {
            Role::Publisher => Err(ApiError::Forbidden(
                "a dry-run shows webhooks; a publisher key has none".into(),
            )),
            _ => self.may_post_event(event),
        }
    }

    /// Events are readable by the roles that could have posted them.
    pub fn may_read_event(&self, event: &Event) -> bool {
        match self.role {
            Role::Admin | Role::Publisher => true,
            Role::Manager => {
                self.team_id.is_some() && event.scope.team_id.as_deref() == self.team_id.as_deref()
            }
        }
    }

    /// A delivery of `event` to a webhook in `webhook` scope (`None`: the webhook is gone).
    /// Admins and publishers: any. Managers: their team's events, to their own webhooks (global
    /// webhooks' deliveries carry the admin's urls and stay hidden).
    pub fn may_read_delivery(&self, event: &Event, webhook: Option<&Scope>) -> bool {
        match self.role {
            Role::Admin | Role::Publisher => true,
            Role::Manager => {
                self.may_read_event(event) && webhook.is_some_and(|s| self.may_manage(s).is_ok())
            }
        }
    }

    /// Sending a delivery again: whoever manages the webhook and may read the delivery.
    pub fn may_resend(&self, event: &Event, webhook: &Scope) -> Result<(), ApiError> {
        self.may_manage(webhook)?;
        if self.may_read_delivery(event, Some(webhook)) {
            Ok(())
        } else {
            Err(ApiError::NotFound("delivery".into()))
        }
    }

    /// The tenant an `Idempotency-Key` or `event_id` is scoped to, as a JSON array (so no team
    /// id or key can forge another tenant's prefix): managers share their team's
    /// (`["team", T]`); admin and publisher keys have their own, per team of the event
    /// (`["key", K, "team", T]`), so one platform key posting for many teams never merges two
    /// teams' events.
    pub fn idempotency_tenant(&self, event: &Event) -> String {
        let v = match self.role {
            Role::Manager => serde_json::json!(["team", self.team_id]),
            Role::Admin | Role::Publisher => {
                serde_json::json!(["key", self.key_id, "team", event.scope.team_id])
            }
        };
        v.to_string()
    }
}

fn token_from(parts: &Parts) -> Option<&str> {
    let v = parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let token = match v.split_once(' ') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") =>
        {
            rest.trim()
        }
        _ => v,
    };
    (!token.is_empty()).then_some(token)
}

/// Looks the token up (cache, then store); revoked, expired and unknown keys are 401.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let hash = hash_token(token);
    let key = match state.keys.get(&hash) {
        Some(k) => k,
        None => {
            let k = state
                .store
                .api_key_by_hash(&hash)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            state.keys.put(hash, k.clone());
            k
        }
    };
    let now = state.clock.now_ms();
    if !key.is_active(now) {
        return Err(ApiError::Unauthorized);
    }
    state
        .keys
        .touch_later(state.store.clone(), key.id.clone(), now);
    Ok(Caller::of_key(&key))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = token_from(parts) {
            return authenticate(state, token).await;
        }
        // No key: the console's session cookie, its CSRF token checked for unsafe methods; a
        // portal session only on its routes.
        let caller = crate::console::session::caller_from_cookie(parts, state).await?;
        caller.may_reach(&parts.method, parts.uri.path())?;
        Ok(caller)
    }
}

#[cfg(test)]
mod tests;
