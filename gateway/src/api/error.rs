//! The API's one error type, mapped to HTTP in exactly one place: an RFC 9457 problem body
//! (`application/problem+json`) naming the field at fault. Internal details are logged, not
//! returned. [`problem_for_refusals`] gives the framework's own refusals (extractor rejections,
//! 405, 413) the same shape, and [`no_route`] answers unknown routes.

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// Refused because of what one field of the request names (e.g. another team's `team_id`).
    #[error("{message}")]
    ForbiddenField { field: String, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the store is unavailable; retry later")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A validation failure of one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }
    /// A validation failure not tied to one field.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: None,
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ForbiddenField { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("resource".into()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Unavailable(_) => ApiError::Unavailable(e),
            StoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// The problem body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, as a dotted path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(e) => tracing::warn!(error = %e, "store unavailable"),
            _ => {}
        }
        let kind = match &self {
            ApiError::Invalid { .. } => "invalid-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) | ApiError::ForbiddenField { .. } => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge { .. } => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        };
        let field = match &self {
            ApiError::Invalid { field, .. } => field.clone(),
            ApiError::ForbiddenField { field, .. } => Some(field.clone()),
            _ => None,
        };
        let detail = match &field {
            Some(f) => format!("{f}: {self}"),
            None => self.to_string(),
        };
        let mut resp = problem_response(status, kind, detail, field);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// A problem body with `status`, `kind` (the last segment of its type URI) and `detail`.
pub fn problem_response(
    status: StatusCode,
    kind: &str,
    detail: String,
    field: Option<String>,
) -> Response {
    let body = Problem {
        kind: format!("https://webhook-gateway.dev/problems/{kind}"),
        title: status.canonical_reason().unwrap_or("error").to_string(),
        status: status.as_u16(),
        detail,
        field,
    };
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// A refused JSON body keeps the status axum gives it (400 syntax, 415 content type, 413 too
/// large, 422 shape) with axum's description as the detail.
impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        match e.status() {
            // axum's default body limit (no route here sets another).
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge { limit: 2 << 20 },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(format!(
                "{}; send the body as JSON with that content type",
                e.body_text()
            )),
            _ => ApiError::invalid(format!("the body is not valid JSON: {}", e.body_text())),
        }
    }
}

/// Most bytes of a framework refusal read to turn it into a problem body.
const REFUSAL_BYTES: usize = 16 * 1024;

/// The last word on every answer: a 4xx the framework produced itself (an extractor rejection, a
/// 405, the body limit's 413) leaves as an RFC 9457 problem body with the framework's text as
/// its detail, other headers (`Allow`...) kept. Answers already in problem+json, and the
/// console's HTML pages, pass untouched.
pub async fn problem_for_refusals(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    // Problem bodies pass untouched, and so do the console's HTML pages (its own error pages).
    let passes = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(b"application/problem+json") || v.starts_with(b"text/html")
    });
    if !status.is_client_error() || passes {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, REFUSAL_BYTES).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let detail = if text.is_empty() {
        match status {
            // The router adds `Allow` after this layer.
            StatusCode::METHOD_NOT_ALLOWED => format!(
                "method {method} is not allowed on {path}; the Allow header lists those that are"
            ),
            _ => status.canonical_reason().unwrap_or("refused").to_string(),
        }
    } else {
        text
    };
    let kind = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid-request",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::REQUEST_TIMEOUT => "request-timeout",
        _ => "refused",
    };
    let problem = problem_response(status, kind, detail, None);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (pparts, pbody) = problem.into_parts();
    parts.headers.extend(pparts.headers);
    Response::from_parts(parts, pbody)
}

/// Unknown routes: a 404 problem naming the method and path.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("route {method} {}", uri.path()))
}

pub type ApiResult<T> = Result<T, ApiError>;
