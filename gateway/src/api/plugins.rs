//! `/api/v1/plugins`: the plugin registry. Uploads are validated against the two WIT worlds and
//! precompiled before they are stored; versions are immutable; a plugin in use cannot be deleted.

use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::openapi::schemas::{PluginList, PluginView, WasmComponent};
use super::{AppState, rfc3339};
use crate::model::PluginRecord;
use crate::plugin::{PluginError, sha256_hex};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/plugins", get(list).post(upload))
        .route("/api/v1/plugins/", get(list).post(upload))
        .route(
            "/api/v1/plugins/{name}/{version}",
            get(get_one).delete(delete),
        )
}

fn view(p: &PluginRecord) -> Value {
    json!({
        "name": p.name, "version": p.version, "kind": p.kind, "sha256": p.sha256, "size": p.size,
        "description": p.description, "builtin": p.builtin, "created_at": rfc3339(p.created_at),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UploadParams {
    /// `[a-z0-9_-]{1,64}`.
    pub name: Option<String>,
    /// A semantic version, e.g. `1.2.0` (at most 64 characters).
    pub version: Option<String>,
    pub description: Option<String>,
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
}

/// A semantic version (`1.2.0`, `2.0.0-rc.1`) of at most 64 characters: webhooks that name no
/// version use the newest in semver order.
fn valid_version(s: &str) -> bool {
    s.len() <= 64 && semver::Version::parse(s).is_ok()
}

/// Uploads a plugin (admins): validated against the two worlds, precompiled, then stored.
#[utoipa::path(post, path = "/api/v1/plugins", operation_id = "upload_plugin", tag = "plugins", params(UploadParams),
    request_body(content((WasmComponent = "application/wasm"), (WasmComponent = "application/octet-stream")), description = "A WebAssembly component of the transformer or authenticator world"),
    responses(
        (status = 200, body = PluginView, description = "This version was already stored with the same content"),
        (status = 201, body = PluginView, description = "Validated, precompiled and stored"),
        (status = 400, description = "A bad or missing `name` or `version`, an empty body, or not a component of either world"),
        (status = 403, description = "Not an admin key"),
        (status = 409, description = "This version exists with other content"),
        (status = 413, description = "The component is larger than `plugins.max_component_bytes`"),
    ),
    security(("api_key" = [])))]
pub async fn upload(
    State(st): State<AppState>,
    caller: Caller,
    query: Result<Query<UploadParams>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Query(p) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    caller.require_admin()?;
    let name = p
        .name
        .ok_or_else(|| ApiError::field("name", "is required (query parameter)"))?;
    if !valid_name(&name) {
        return Err(ApiError::field(
            "name",
            "must be 1 to 64 of a-z, 0-9, _ and -",
        ));
    }
    let version = p
        .version
        .ok_or_else(|| ApiError::field("version", "is required (query parameter)"))?;
    if !valid_version(&version) {
        return Err(ApiError::field(
            "version",
            "must be a semantic version of at most 64 characters, MAJOR.MINOR.PATCH with an optional -pre-release, e.g. 1.2.0 or 2.0.0-rc.1 (semver.org); a webhook naming no version uses the newest in that order",
        ));
    }
    let limit = st.config.plugins.max_component_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?;
    if bytes.is_empty() {
        return Err(ApiError::field(
            "body",
            "is empty; send the component's bytes",
        ));
    }
    let sha256 = sha256_hex(&bytes);
    if let Some(existing) = st.store.get_plugin(&name, &version).await? {
        if existing.sha256 == sha256 {
            return Ok((StatusCode::OK, Json(view(&existing))));
        }
        return Err(ApiError::Conflict(format!(
            "{name}@{version} exists with other content; versions are immutable"
        )));
    }
    let host = st.plugins.host().clone();
    let data = bytes.to_vec();
    let prepared = tokio::task::spawn_blocking(move || host.prepare(&data))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            PluginError::Invalid(m) => ApiError::field("body", m),
            other => ApiError::field("body", other.to_string()),
        })?;
    let record = PluginRecord {
        name,
        version,
        kind: prepared.kind.as_str().to_string(),
        sha256,
        size: bytes.len() as u64,
        description: p.description,
        builtin: false,
        created_at: st.clock.now_ms(),
    };
    st.store.put_plugin(&record, &bytes).await?;
    st.plugins.forget_resolved();
    Ok((StatusCode::CREATED, Json(view(&record))))
}

/// The installed plugins.
#[utoipa::path(get, path = "/api/v1/plugins", operation_id = "list_plugins", tag = "plugins",
    responses((status = 200, body = PluginList, description = "Installed plugins")),
    security(("api_key" = [])))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.may_read_plugins()?;
    let all = st.store.list_plugins().await?;
    Ok(Json(
        json!({"results": all.iter().map(view).collect::<Vec<_>>()}),
    ))
}

/// One installed plugin version.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/{version}", operation_id = "get_plugin", tag = "plugins",
    params(("name" = String, Path), ("version" = String, Path)),
    responses(
        (status = 200, body = PluginView, description = "One plugin"),
        (status = 404, description = "No such plugin version"),
    ),
    security(("api_key" = [])))]
pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.may_read_plugins()?;
    let p = st
        .store
        .get_plugin(&name, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("plugin {name}@{version}")))?;
    Ok(Json(view(&p)))
}

/// Deletes a plugin version (admins) no webhook uses: none names it, and, if it is the newest,
/// none naming no version relies on it (unless the next newest is of the same kind).
#[utoipa::path(delete, path = "/api/v1/plugins/{name}/{version}", operation_id = "delete_plugin", tag = "plugins",
    params(("name" = String, Path), ("version" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No such plugin version"),
        (status = 409, description = "Built in, or in use: a webhook names this version, or names no version while this is the newest and the next newest is missing or of another kind"),
    ),
    security(("api_key" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let p = st
        .store
        .get_plugin(&name, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("plugin {name}@{version}")))?;
    if p.builtin {
        return Err(ApiError::Conflict(format!(
            "{name}@{version} is built in; it is reinstalled at every start"
        )));
    }
    // A webhook naming this version blocks it. A webhook naming no version uses the newest: it
    // blocks only the newest version, and only when no other version of the same kind would
    // take its place (the webhook then moves to that one).
    let versions: Vec<PluginRecord> = st
        .store
        .list_plugins()
        .await?
        .into_iter()
        .filter(|r| r.name == name)
        .collect();
    let is_newest = crate::delivery::plugins::newest(versions.iter().cloned())
        .is_some_and(|n| n.version == version);
    let successor =
        crate::delivery::plugins::newest(versions.into_iter().filter(|r| r.version != version));
    let unpinned_blocked = is_newest && successor.as_ref().is_none_or(|s| s.kind != p.kind);
    let (mut pinned, mut unpinned) = (Vec::new(), Vec::new());
    for w in st.subs.get().by_id.values() {
        let refs = || {
            w.plugins
                .iter()
                .chain(w.authenticator.as_ref())
                .filter(|r| r.name == name)
        };
        if refs().any(|r| r.version.as_deref() == Some(version.as_str())) {
            pinned.push(w.id.clone());
        } else if unpinned_blocked && refs().any(|r| r.version.is_none()) {
            unpinned.push(w.id.clone());
        }
    }
    if !pinned.is_empty() || !unpinned.is_empty() {
        let mut why = Vec::new();
        if !pinned.is_empty() {
            pinned.sort();
            why.push(format!("webhooks {} name this version", pinned.join(", ")));
        }
        if !unpinned.is_empty() {
            unpinned.sort();
            let instead = match successor {
                None => "no other version is installed".to_string(),
                Some(s) => {
                    let a = |kind: &str| match kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        true => format!("an {kind}"),
                        false => format!("a {kind}"),
                    };
                    format!(
                        "the next newest, {name}@{}, is {}, not {}",
                        s.version,
                        a(&s.kind),
                        a(&p.kind)
                    )
                }
            };
            why.push(format!(
                "webhooks {} name no version and use the newest, this one ({instead})",
                unpinned.join(", ")
            ));
        }
        return Err(ApiError::Conflict(format!(
            "{name}@{version} is in use: {}",
            why.join("; ")
        )));
    }
    st.store.delete_plugin(&name, &version).await?;
    st.plugins.forget_resolved();
    st.plugins.host().unload(&p.sha256);
    Ok(StatusCode::NO_CONTENT)
}
