//! `/api/v1/keys`: admins create keys (the token is returned once) and list them (never tokens).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, create_key};
use super::error::{ApiError, ApiResult};
use super::openapi::schemas::{KeyCreated, KeyList};
use super::{AppState, rfc3339};
use crate::model::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/keys", get(list).post(create))
        .route("/api/v1/keys/", get(list).post(create))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 255 characters.
    pub name: String,
    /// `admin` or `manager`.
    #[schema(value_type = Role)]
    pub role: String,
    /// The team a manager key manages (required for managers).
    pub team_id: Option<String>,
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
    let Json(k) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    if k.name.is_empty() || k.name.len() > 255 {
        return Err(ApiError::field("name", "must be 1 to 255 characters"));
    }
    let role = Role::parse(&k.role)
        .ok_or_else(|| ApiError::field("role", "must be \"admin\" or \"manager\""))?;
    if role == Role::Manager && k.team_id.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::field("team_id", "is required for a manager key"));
    }
    let (key, token) = create_key(st.store.as_ref(), &k.name, role, k.team_id, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": key.id, "name": key.name, "role": key.role, "team_id": key.team_id, "token": token, "created_at": rfc3339(key.created_at)}),
        ),
    ))
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
    let keys = st.store.list_api_keys().await?;
    Ok(Json(
        json!({"results": keys.iter().map(|k| json!({"id": k.id, "name": k.name, "role": k.role, "team_id": k.team_id, "created_at": rfc3339(k.created_at)})).collect::<Vec<_>>()}),
    ))
}
