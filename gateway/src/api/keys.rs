//! `/api/v1/keys`: admins create keys (the token is returned once) and list them (never tokens).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, create_key};
use super::error::{ApiError, ApiResult};
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
    pub name: String,
    /// `admin` or `manager`.
    pub role: String,
    /// The team a manager key manages (required for managers).
    pub team_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/keys", request_body = NewKey, responses((status = 201, description = "Created; `token` is shown only now")), security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    body: Result<Json<NewKey>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let Json(k) = body.map_err(ApiError::from)?;
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

#[utoipa::path(get, path = "/api/v1/keys", responses((status = 200, description = "Keys, without tokens")), security(("api_key" = [])))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let keys = st.store.list_api_keys().await?;
    Ok(Json(
        json!({"results": keys.iter().map(|k| json!({"id": k.id, "name": k.name, "role": k.role, "team_id": k.team_id, "created_at": rfc3339(k.created_at)})).collect::<Vec<_>>()}),
    ))
}
