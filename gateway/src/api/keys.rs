//! `/api/v1/keys`: admins create keys (the token is returned once, only its sha256 is stored),
//! list them (never a token or hash) and revoke them. A revoked key stays listed, with its
//! `revoked_at`, for the audit.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, KeySpec, create_key};
use super::error::{ApiError, ApiResult};
use super::openapi::schemas::{KeyCreated, KeyList};
use super::{AppState, rfc3339};
use crate::model::{ApiKey, Role};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/keys", get(list).post(create))
        .route("/api/v1/keys/", get(list).post(create))
        .route("/api/v1/keys/{id}", delete(revoke))
        .route("/api/v1/keys/{id}/", delete(revoke))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 255 characters.
    pub name: String,
    /// `admin`, `manager` or `publisher`.
    #[schema(value_type = Role)]
    pub role: String,
    /// The team a manager key manages (required for managers, refused for the others).
    pub team_id: Option<String>,
    /// RFC 3339 time in the future after which the key is refused; absent: never expires.
    pub expires_at: Option<String>,
}

/// A key as listed: never its token or hash.
pub fn key_view(k: &ApiKey, now: i64) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "team_id": k.team_id,
        "created_at": rfc3339(k.created_at),
        "expires_at": k.expires_at.map(rfc3339),
        "last_used_at": k.last_used_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
        "revoked": k.revoked_at.is_some(),
        "active": k.is_active(now),
        "bootstrap": k.bootstrap,
    })
}

/// Checks a new key's role, team and expiry (the API and the CLI share it).
pub fn key_spec(
    name: &str,
    role: &str,
    team_id: Option<String>,
    expires_at: Option<&str>,
    now: i64,
) -> ApiResult<KeySpec> {
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::field("name", "must be 1 to 255 characters"));
    }
    let role = Role::parse(role).ok_or_else(|| {
        ApiError::field("role", "must be \"admin\", \"manager\" or \"publisher\"")
    })?;
    let team_id = team_id.filter(|t| !t.is_empty());
    match (role, &team_id) {
        (Role::Manager, None) => {
            return Err(ApiError::field("team_id", "is required for a manager key"));
        }
        (Role::Admin | Role::Publisher, Some(_)) => {
            return Err(ApiError::field(
                "team_id",
                "only a manager key has a team; admin and publisher keys act for every team",
            ));
        }
        _ => {}
    }
    let expires_at = match expires_at {
        None => None,
        Some(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ApiError::field("expires_at", "must be an RFC 3339 time"))?
                .timestamp_millis();
            if t <= now {
                return Err(ApiError::field("expires_at", "must be in the future"));
            }
            Some(t)
        }
    };
    Ok(KeySpec {
        name: name.to_string(),
        role,
        team_id,
        expires_at,
    })
}

/// Creates a key (admins); its token is shown only in this answer.
#[utoipa::path(post, path = "/api/v1/keys", operation_id = "create_key", tag = "keys",
    request_body(content = NewKey, content_type = "application/json"),
    responses(
        (status = 201, body = KeyCreated, description = "Created; `token` is shown only now"),
        (status = 400, description = "A field is missing or invalid (named in `field`)"),
        (status = 403, description = "Not an admin key"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    body: Result<Json<NewKey>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let Json(k) = body.map_err(ApiError::from)?;
    let now = st.clock.now_ms();
    let spec = key_spec(&k.name, &k.role, k.team_id, k.expires_at.as_deref(), now)?;
    let (key, token) = create_key(st.store.as_ref(), spec).await?;
    let mut v = key_view(&key, now);
    v["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(v)))
}

/// Lists the keys (admins), without their tokens.
#[utoipa::path(get, path = "/api/v1/keys", operation_id = "list_keys", tag = "keys",
    responses(
        (status = 200, body = KeyList, description = "Keys, without tokens"),
        (status = 403, description = "Not an admin key"),
    ),
    security(("api_key" = [])))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let now = st.clock.now_ms();
    let keys = st.store.list_api_keys().await?;
    Ok(Json(
        json!({"results": keys.iter().map(|k| key_view(k, now)).collect::<Vec<_>>()}),
    ))
}

/// Revokes a key: refused on this node at once, on every other node within
/// `auth.key_cache_secs`. Revoking a revoked key again is 204 (a retried request succeeds); an
/// unknown id is 404; a key cannot revoke itself (409: use another admin key or the CLI).
#[utoipa::path(delete, path = "/api/v1/keys/{id}", operation_id = "revoke_key", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked (again 204 for a key already revoked)"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No such key"),
        (status = 409, description = "A key revoking itself"),
    ),
    security(("api_key" = [])))]
pub async fn revoke(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if id == caller.key_id {
        return Err(ApiError::Conflict(
            "a key cannot revoke itself; use another admin key or `webhook-gateway keys revoke`"
                .into(),
        ));
    }
    st.store
        .revoke_api_key(&id, st.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("key {id}")))?;
    st.keys.evict(&id);
    Ok(StatusCode::NO_CONTENT)
}
