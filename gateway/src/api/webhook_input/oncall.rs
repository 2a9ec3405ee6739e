//! Grafana OnCall's fields (name, url, trigger_type, data, headers, ...), with the gateway's
//! extensions that stand in for one of them (`scope` for `team`, `urls` for `url`,
//! `trigger_events` for `trigger_type`) read in the same pass, in the same order as ever.

use serde_json::{Map, Value};

use super::extensions::scope_field;
use super::fields::{bool_field, nullable_str, required_str, secret_update, string_list};
use super::validate::{normalize_trigger, validate_url};
use super::{Input, MAX_LIST, MAX_TEMPLATE, MAX_TRIGGERS};
use crate::api::error::ApiError;
use crate::model::webhook::{MAX_HEADERS, MAX_URLS, METHODS};
use crate::model::{Scope, Webhook};
use crate::secrets::mask;

/// OnCall's `Webhook.PUBLIC_TRIGGER_TYPES_MAP` values, in its order (the docs list nine; the
/// map also has `personal notification`).
pub const TRIGGER_TYPES: &[&str] = &[
    "escalation",
    "alert group created",
    "acknowledge",
    "resolve",
    "silence",
    "unsilence",
    "unresolve",
    "unacknowledge",
    "status change",
    "personal notification",
];

/// OnCall's `PRESET_VALIDATION_MESSAGE`.
pub const PRESET_MESSAGE: &str = "Preset webhooks must be modified through web UI";
/// The one preset whose webhooks the public API may change (OnCall's advanced preset).
pub const ADVANCED_PRESET: &str = "advanced_webhook";
/// OnCall's `name` column is 100 characters.
pub(super) const MAX_NAME: usize = 100;

/// `preset` cannot be set through the API (sending back the stored value is a no-op), and a
/// webhook made from a preset other than the advanced one cannot be changed through it.
pub(super) fn check_preset(w: &Webhook, m: &Input) -> Result<(), ApiError> {
    if let Some(v) = m.get("preset")
        && v.as_str() != w.preset.as_deref()
    {
        return Err(ApiError::field("preset", PRESET_MESSAGE));
    }
    match w.preset.as_deref() {
        Some(p) if p != ADVANCED_PRESET => Err(ApiError::field("non_field_errors", PRESET_MESSAGE)),
        _ => Ok(()),
    }
}

/// A template field saved as OnCall saves it: checked with Jinja's rules, naming the field.
fn template(field: &str, source: &str) -> Result<(), ApiError> {
    crate::matching::template::validate_jinja(source, field)
        .map_err(|e| ApiError::field(e.field, e.message))
}

/// `data`, `headers`, `trigger_template`: OnCall stores an empty string as null.
fn blank_is_null(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// OnCall's `headers`: a string holding a JSON object (possibly a Jinja template), or an object.
fn headers_field(v: &Value) -> Result<Option<String>, ApiError> {
    let check_object = |obj: &Map<String, Value>| -> Result<(), ApiError> {
        if obj.len() > MAX_HEADERS {
            return Err(ApiError::field(
                "headers",
                format!("at most {MAX_HEADERS} headers are allowed"),
            ));
        }
        for (name, value) in obj {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ApiError::field(
                    format!("headers.{name}"),
                    "is not a valid header name",
                ));
            }
            let ok = match value {
                Value::String(s) => {
                    axum::http::HeaderValue::from_str(s).is_ok() || s.contains("{{")
                }
                Value::Number(_) | Value::Bool(_) => true,
                _ => false,
            };
            if !ok {
                return Err(ApiError::field(
                    format!("headers.{name}"),
                    "must be a valid header value",
                ));
            }
        }
        Ok(())
    };
    match v {
        Value::Null => Ok(None),
        Value::Object(obj) => {
            check_object(obj)?;
            Ok(Some(Value::Object(obj.clone()).to_string()))
        }
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) if s.len() > MAX_TEMPLATE => {
            Err(ApiError::field("headers", "is too large"))
        }
        Value::String(s) => {
            template("headers", s)?;
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(obj)) => {
                    check_object(&obj)?;
                    Ok(Some(s.clone()))
                }
                Ok(_) => Err(ApiError::field("headers", "must hold a JSON object")),
                // A Jinja template producing the object is checked when it renders.
                Err(_) if s.contains("{{") || s.contains("{%") => Ok(Some(s.clone())),
                Err(e) => Err(ApiError::field(
                    "headers",
                    format!("must hold a JSON object: {e}"),
                )),
            }
        }
        _ => Err(ApiError::field(
            "headers",
            "must be a string holding a JSON object, an object, or null",
        )),
    }
}

/// Identity, scope, targets and triggers: `name` through `trigger_type`.
pub(super) fn apply_targets(w: &mut Webhook, m: &Input) -> Result<(), ApiError> {
    if let Some(name) = required_str(m, "name", MAX_NAME)? {
        if name.trim().is_empty() {
            return Err(ApiError::field("name", "This field may not be blank."));
        }
        w.name = name;
    }
    if let Some(d) = nullable_str(m, "description", 4096)? {
        w.description = d;
    }
    if let Some(b) = bool_field(m, "is_webhook_enabled")? {
        if b && !w.is_webhook_enabled {
            w.disabled_reason = None;
        }
        w.is_webhook_enabled = b;
    }
    if let Some(v) = m.get("scope") {
        w.scope = scope_field(v)?;
    } else if let Some(team) = nullable_str(m, "team", 255)? {
        // OnCall: `team: ""` (like null) means no team.
        w.scope = match (team.filter(|t| !t.is_empty()), &w.scope) {
            (None, Scope::Service { service_id, .. }) => Scope::Service {
                team_id: None,
                service_id: service_id.clone(),
            },
            (None, _) => Scope::Global,
            (Some(t), Scope::Service { service_id, .. }) => Scope::Service {
                team_id: Some(t),
                service_id: service_id.clone(),
            },
            (Some(t), _) => Scope::Team { team_id: t },
        };
    }
    if let Some(urls) = string_list(m, "urls", MAX_URLS)? {
        let urls = urls.ok_or_else(|| ApiError::field("urls", "must not be null"))?;
        if urls.is_empty() {
            return Err(ApiError::field("urls", "must list at least one URL"));
        }
        let restored = restore_urls(w, urls);
        w.urls = restored
            .iter()
            .enumerate()
            .map(|(i, u)| validate_url(&format!("urls[{i}]"), u))
            .collect::<Result<_, _>>()?;
    } else if let Some(url) = required_str(m, "url", 2048)? {
        template("url", &url)?;
        let restored = restore_urls(w, vec![url]);
        w.urls = vec![validate_url("url", &restored[0])?];
    }
    if let Some(method) = required_str(m, "http_method", 16)? {
        // OnCall's PUBLIC_WEBHOOK_HTTP_METHODS, exact case.
        if !METHODS.contains(&method.as_str()) {
            return Err(ApiError::field(
                "http_method",
                format!("Must be one of {}", METHODS.join(", ")),
            ));
        }
        w.http_method = method;
    }
    if let Some(events) = string_list(m, "trigger_events", MAX_TRIGGERS)? {
        let events = events.ok_or_else(|| ApiError::field("trigger_events", "must not be null"))?;
        if events.is_empty() {
            return Err(ApiError::field(
                "trigger_events",
                "must list at least one event (use \"*\" for all)",
            ));
        }
        let mut out: Vec<String> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let t = normalize_trigger(&format!("trigger_events[{i}]"), e)?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        w.trigger_events = out;
        w.trigger_type = None;
    }
    if let Some(tt) = required_str(m, "trigger_type", 256)? {
        // Only OnCall's trigger types (custom types go in `trigger_events`).
        if !TRIGGER_TYPES.contains(&tt.as_str()) {
            return Err(ApiError::field(
                "trigger_type",
                format!("must be one of {}", TRIGGER_TYPES.join(", ")),
            ));
        }
        let name = match tt.as_str() {
            "personal notification" => "personal_notification",
            other => other,
        };
        let canonical = normalize_trigger("trigger_type", name)?;
        if m.get("trigger_events").is_none() {
            w.trigger_events = vec![canonical];
        } else if !w.trigger_events.contains(&canonical) {
            w.trigger_events.insert(0, canonical);
        }
        w.trigger_type = Some(tt);
    }
    Ok(())
}

/// Urls sent back as the API showed them (password masked) keep the stored ones.
fn restore_urls(w: &Webhook, sent: Vec<String>) -> Vec<String> {
    let set = mask::SecretSet::of(w);
    sent.into_iter()
        .map(|u| mask::restore_url(u, &w.urls, &set))
        .collect()
}

/// What is sent: `data` through `integration_filter`.
pub(super) fn apply_payload(w: &mut Webhook, m: &Input) -> Result<(), ApiError> {
    if let Some(d) = nullable_str(m, "data", MAX_TEMPLATE)? {
        if let Some(src) = &d {
            template("data", src)?;
        }
        w.data = blank_is_null(d);
    }
    if let Some(b) = bool_field(m, "forward_all")? {
        w.forward_all = b;
    }
    if let Some(u) = nullable_str(m, "username", 1024)? {
        w.username = u;
    }
    secret_update(m, "password", &mut w.password)?;
    secret_update(m, "authorization_header", &mut w.authorization_header)?;
    if let Some(t) = nullable_str(m, "trigger_template", MAX_TEMPLATE)? {
        if let Some(src) = &t {
            template("trigger_template", src)?;
        }
        w.trigger_template = blank_is_null(t);
    }
    if let Some(h) = m.get("headers") {
        w.headers = mask::restore_headers_json(headers_field(h)?, w.headers.as_deref());
    }
    if let Some(f) = string_list(m, "integration_filter", MAX_LIST)? {
        // OnCall: `[]` (like null) means no filter.
        w.integration_filter = f.filter(|l| !l.is_empty());
    }
    Ok(())
}
