//! `/api/v1/actions/`: Grafana OnCall's deprecated custom-actions API, kept "compatible with
//! previous callers" (Terraform configurations still use it). It serves the same webhooks as
//! `/api/v1/webhooks/` under OnCall's action field names (`team_id`, `user`,
//! `forward_whole_payload`), with OnCall's action defaults: `trigger_type` is `escalation` and
//! `http_method` is `POST` when not given. Validation, paging and storage are the webhooks'.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::openapi::schemas::{ActionInput, ActionPage, ActionView};
use super::webhook_input;
use super::webhooks::{
    OnCallError, PageParams, create_from, delete_by_id, list_page, load, object, update_from,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/actions", get(list).post(create))
        .route("/api/v1/actions/", get(list).post(create))
        .route(
            "/api/v1/actions/{id}",
            get(get_one).put(update).patch(update).delete(delete),
        )
        .route(
            "/api/v1/actions/{id}/",
            get(get_one).put(update).patch(update).delete(delete),
        )
}

/// (action field, webhook field).
const RENAMED: &[(&str, &str)] = &[
    ("team_id", "team"),
    ("user", "username"),
    ("forward_whole_payload", "forward_all"),
];

/// An action body as a webhook body: OnCall's action serializer has no `team`, `username`,
/// `forward_all` or `preset` field, so those are ignored, and its three names are renamed.
fn as_webhook_body(mut m: Map<String, Value>) -> Map<String, Value> {
    for (_, webhook_name) in RENAMED {
        m.remove(*webhook_name);
    }
    m.remove("preset");
    for (action_name, webhook_name) in RENAMED {
        if let Some(v) = m.remove(*action_name) {
            m.insert((*webhook_name).to_string(), v);
        }
    }
    m
}

/// A refusal names the action's field, not the webhook's.
fn action_error(e: ApiError) -> OnCallError {
    OnCallError(match e {
        ApiError::Invalid {
            field: Some(f),
            message,
        } => {
            let field = RENAMED
                .iter()
                .find(|(_, w)| f == *w || f.starts_with(&format!("{w}.")))
                .map_or(f.clone(), |(a, w)| f.replacen(w, a, 1));
            ApiError::Invalid {
                field: Some(field),
                message,
            }
        }
        other => other,
    })
}

type ActionResult<T> = Result<T, OnCallError>;

/// Lists the actions (webhooks) the caller may manage, in Grafana OnCall's paging envelope.
#[utoipa::path(get, path = "/api/v1/actions/", operation_id = "list_actions", tag = "actions", params(PageParams),
    responses(
        (status = 200, body = ActionPage, description = "A page of actions"),
        (status = 400, description = "A bad `page_size`"),
        (status = 403, description = "A publisher key"),
    ),
    security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ActionResult<Json<Value>> {
    let page = list_page(
        &st,
        &caller,
        raw.as_deref(),
        "/api/v1/actions/",
        webhook_input::action_view,
    )
    .await?;
    Ok(Json(page))
}

/// One action (webhook), secrets masked.
#[utoipa::path(get, path = "/api/v1/actions/{id}/", operation_id = "get_action", tag = "actions", params(("id" = String, Path, description = "The action's (webhook's) id")),
    responses(
        (status = 200, body = ActionView, description = "The action"),
        (status = 403, description = "Another team's webhook, or a global one, and a manager key"),
        (status = 404, description = "No such action"),
    ),
    security(("api_key" = [])))]
pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ActionResult<Json<Value>> {
    // The webhooks' lookup and scope check: one authorisation path for both APIs.
    let w = load(&st, &caller, &id).await?;
    Ok(Json(webhook_input::action_view(&w)))
}

/// Creates an action (a webhook) from Grafana OnCall's action body.
#[utoipa::path(post, path = "/api/v1/actions/", operation_id = "create_action", tag = "actions",
    request_body(content = ActionInput, content_type = "application/json"),
    responses(
        (status = 201, body = ActionView, description = "Created"),
        (status = 400, description = "A field is missing or invalid (named in `field`, with OnCall's `{\"<field>\": [...]}`)"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ActionResult<(StatusCode, Json<Value>)> {
    let mut m = as_webhook_body(object(body)?);
    // OnCall's model defaults, which the action serializer leaves optional.
    if !m.contains_key("trigger_type") && !m.contains_key("trigger_events") {
        m.insert("trigger_type".into(), Value::String("escalation".into()));
    }
    m.entry("http_method")
        .or_insert_with(|| Value::String("POST".into()));
    let w = create_from(&st, &caller, &m).await.map_err(action_error)?;
    Ok((StatusCode::CREATED, Json(webhook_input::action_view(&w))))
}

/// Updates the fields sent (`PUT` and `PATCH` alike); a refused request changes nothing.
#[utoipa::path(put, path = "/api/v1/actions/{id}/", operation_id = "update_action", tag = "actions", params(("id" = String, Path, description = "The action's (webhook's) id")),
    request_body(content = ActionInput, content_type = "application/json"),
    responses(
        (status = 200, body = ActionView, description = "Updated"),
        (status = 404, description = "No such action"),
        (status = 400, description = "A field is missing or invalid (named in `field`, with OnCall's `{\"<field>\": [...]}`)"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ActionResult<Json<Value>> {
    let m = as_webhook_body(object(body)?);
    let w = update_from(&st, &caller, &id, &m)
        .await
        .map_err(action_error)?;
    Ok(Json(webhook_input::action_view(&w)))
}

/// Deletes an action (the webhook).
#[utoipa::path(delete, path = "/api/v1/actions/{id}/", operation_id = "delete_action", tag = "actions", params(("id" = String, Path, description = "The action's (webhook's) id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 404, description = "No such action"),
    ),
    security(("api_key" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ActionResult<StatusCode> {
    delete_by_id(&st, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH` is routed to [`update`]; this is its entry in the OpenAPI document.
#[utoipa::path(patch, path = "/api/v1/actions/{id}/", operation_id = "patch_action", tag = "actions", params(("id" = String, Path, description = "The action's (webhook's) id")),
    request_body(content = ActionInput, content_type = "application/json"),
    responses(
        (status = 200, body = ActionView, description = "Updated"),
        (status = 404, description = "No such action"),
        (status = 400, description = "A field is missing or invalid (named in `field`, with OnCall's `{\"<field>\": [...]}`)"),
        (status = 403, description = "A manager key and a global webhook or another team's"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The body is JSON of the wrong shape"),
    ),
    security(("api_key" = [])))]
#[allow(dead_code)]
pub(super) fn patch() {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_names_become_webhook_names() {
        let Value::Object(m) = json!({"user": "u", "team_id": "T", "forward_whole_payload": false,
            "username": "ignored", "forward_all": true, "preset": "x", "name": "n"})
        else {
            unreachable!()
        };
        let w = as_webhook_body(m);
        assert_eq!(
            Value::Object(w),
            json!({"username": "u", "team": "T", "forward_all": false, "name": "n"})
        );
        let e = action_error(ApiError::field("forward_all", "must be true or false"));
        assert!(
            matches!(e.0, ApiError::Invalid { field: Some(f), .. } if f == "forward_whole_payload")
        );
    }
}
