//! URL and trigger-name checks, public as `webhook_input::validate_url` and
//! `webhook_input::normalize_trigger`.

use crate::api::error::ApiError;

/// A url, or a Jinja template producing one (OnCall): the scheme must be http or https.
pub fn validate_url(field: &str, raw: &str) -> Result<String, ApiError> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 2048 {
        return Err(ApiError::field(
            field,
            "must be a URL of 1 to 2048 characters",
        ));
    }
    if s.contains("{{") || s.contains("{%") {
        let lower = s.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(ApiError::field(
                field,
                "a templated URL must start with http:// or https://",
            ));
        }
        return Ok(s.to_string());
    }
    let u = url::Url::parse(s)
        .map_err(|e| ApiError::field(field, format!("is not a valid URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(ApiError::field(
            field,
            format!("scheme {:?} is not allowed (use http or https)", u.scheme()),
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::field(field, "must have a host"));
    }
    Ok(s.to_string())
}

/// A trigger name: canonical, any alias of the design's table, a custom type, `status change`
/// (Grafana), or `*` (every event).
pub fn normalize_trigger(field: &str, raw: &str) -> Result<String, ApiError> {
    crate::matching::normalize_trigger(raw).map_err(|e| ApiError::field(field, e))
}
