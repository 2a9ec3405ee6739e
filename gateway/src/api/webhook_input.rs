//! Reading webhook create/update bodies field by field, so each refusal names its field, and
//! `PUT` with a subset of fields changes only those (Grafana OnCall's clients rely on that).
//! Also the OnCall-shaped view of a webhook, with secrets masked.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::model::webhook::{MASK, MAX_HEADERS, MAX_URLS, METHODS};
use crate::model::{
    Auth, AutoDisable, PluginRef, RetryPolicy, Scope, SendAs, Signing, Webhook, new_id,
    new_signing_secret,
};

/// Most trigger events, plugins and integration ids a webhook may list.
const MAX_TRIGGERS: usize = 32;
const MAX_PLUGINS: usize = 8;
const MAX_LIST: usize = 100;
/// Most bytes in a template field (data, trigger_template, headers).
const MAX_TEMPLATE: usize = 64 * 1024;

type Input = Map<String, Value>;

/// `None`: absent. `Some(None)`: explicitly null.
fn nullable_str(m: &Input, k: &str, max: usize) -> Result<Option<Option<String>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.len() > max => {
            Err(ApiError::field(k, format!("must be at most {max} bytes")))
        }
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::field(k, "must be a string or null")),
    }
}

fn required_str(m: &Input, k: &str, max: usize) -> Result<Option<String>, ApiError> {
    match nullable_str(m, k, max)? {
        None => Ok(None),
        Some(None) => Err(ApiError::field(k, "must not be null")),
        Some(Some(s)) => Ok(Some(s)),
    }
}

fn bool_field(m: &Input, k: &str) -> Result<Option<bool>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::field(k, "must be true or false")),
    }
}

/// Parses a typed field with serde, naming the field on failure.
fn typed<T: serde::de::DeserializeOwned>(m: &Input, k: &str) -> Result<Option<T>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| ApiError::field(k, e.to_string())),
    }
}

fn string_list(m: &Input, k: &str, max: usize) -> Result<Option<Option<Vec<String>>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Array(items)) => {
            if items.len() > max {
                return Err(ApiError::field(k, format!("must list at most {max} items")));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                match it.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 1024 => out.push(s.to_string()),
                    _ => {
                        return Err(ApiError::field(
                            format!("{k}[{i}]"),
                            "must be a non-empty string",
                        ));
                    }
                }
            }
            Ok(Some(Some(out)))
        }
        Some(_) => Err(ApiError::field(k, "must be an array of strings or null")),
    }
}

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
        Value::String(s) => match serde_json::from_str::<Value>(s) {
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
        },
        _ => Err(ApiError::field(
            "headers",
            "must be a string holding a JSON object, an object, or null",
        )),
    }
}

fn scope_field(v: &Value) -> Result<Scope, ApiError> {
    let scope = match v {
        Value::String(s) if s == "global" => Scope::Global,
        Value::Object(_) => serde_json::from_value::<Scope>(v.clone())
            .map_err(|e| ApiError::field("scope", e.to_string()))?,
        _ => {
            return Err(ApiError::field(
                "scope",
                "must be \"global\" or an object {\"kind\": \"global\"|\"team\"|\"service\", ...}",
            ));
        }
    };
    match &scope {
        Scope::Team { team_id } if team_id.is_empty() => {
            Err(ApiError::field("scope.team_id", "must not be empty"))
        }
        Scope::Service { service_id, .. } if service_id.is_empty() => {
            Err(ApiError::field("scope.service_id", "must not be empty"))
        }
        _ => Ok(scope),
    }
}

fn signing_field(v: &Value, current: Option<&Signing>) -> Result<Signing, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::field("signing", "must be an object with a `type`"))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("standard_webhooks");
    let given_secret = match obj.get("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == MASK => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::field("signing.secret", "must be a string")),
    };
    let keep = |want_standard: bool| match current {
        Some(Signing::StandardWebhooks { secret, .. }) if want_standard => Some(secret.clone()),
        Some(Signing::HmacSha512 { secret, .. }) if !want_standard => Some(secret.clone()),
        _ => None,
    };
    match kind {
        "none" => Ok(Signing::None),
        "standard_webhooks" => {
            let secret = match given_secret {
                Some(s) => {
                    let raw = s.strip_prefix("whsec_").ok_or_else(|| {
                        ApiError::field("signing.secret", "must start with whsec_")
                    })?;
                    use base64::Engine;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .map_err(|_| {
                            ApiError::field("signing.secret", "must be whsec_ followed by base64")
                        })?;
                    if !(24..=64).contains(&bytes.len()) {
                        return Err(ApiError::field(
                            "signing.secret",
                            "must encode 24 to 64 bytes",
                        ));
                    }
                    s
                }
                None => keep(true).unwrap_or_else(new_signing_secret),
            };
            Ok(Signing::StandardWebhooks {
                secret,
                previous: Vec::new(),
            })
        }
        "hmac_sha512" => {
            let header = obj
                .get("header")
                .and_then(Value::as_str)
                .unwrap_or("X-Signature")
                .to_string();
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(ApiError::field(
                    "signing.header",
                    "is not a valid header name",
                ));
            }
            let secret = match given_secret {
                Some(s) if s.len() < 16 || s.len() > 256 => {
                    return Err(ApiError::field(
                        "signing.secret",
                        "must be 16 to 256 characters",
                    ));
                }
                Some(s) => s,
                None => keep(false).unwrap_or_else(new_signing_secret),
            };
            Ok(Signing::HmacSha512 {
                header,
                secret,
                previous: Vec::new(),
            })
        }
        other => Err(ApiError::field(
            "signing.type",
            format!("unknown signing type {other:?} (standard_webhooks, hmac_sha512, none)"),
        )),
    }
}

fn validate_retry(r: &RetryPolicy) -> Result<(), ApiError> {
    match r {
        RetryPolicy::Default => Ok(()),
        RetryPolicy::Fixed {
            count,
            interval_secs,
        } => {
            if *count > 20 {
                return Err(ApiError::field("retry.count", "must be between 0 and 20"));
            }
            if !(1..=86_400).contains(interval_secs) {
                return Err(ApiError::field(
                    "retry.interval_secs",
                    "must be between 1 and 86400",
                ));
            }
            Ok(())
        }
        RetryPolicy::Schedule { delays_secs } => {
            if delays_secs.len() > 20 {
                return Err(ApiError::field(
                    "retry.delays_secs",
                    "must list at most 20 delays",
                ));
            }
            if let Some(i) = delays_secs.iter().position(|d| *d > 7 * 86_400) {
                return Err(ApiError::field(
                    format!("retry.delays_secs[{i}]"),
                    "must be at most 604800 (7 days)",
                ));
            }
            Ok(())
        }
    }
}

fn plugin_ref(field: &str, v: &Value) -> Result<PluginRef, ApiError> {
    let p: PluginRef =
        serde_json::from_value(v.clone()).map_err(|e| ApiError::field(field, e.to_string()))?;
    if p.name.is_empty() || p.name.len() > 128 {
        return Err(ApiError::field(
            format!("{field}.name"),
            "must be 1 to 128 characters",
        ));
    }
    if p.config.to_string().len() > MAX_TEMPLATE {
        return Err(ApiError::field(format!("{field}.config"), "is too large"));
    }
    Ok(p)
}

/// Keeps the stored secret when a client sends back the mask it was shown.
fn secret_update(m: &Input, k: &str, current: &mut Option<String>) -> Result<(), ApiError> {
    if let Some(v) = nullable_str(m, k, 1024)?
        && v.as_deref() != Some(MASK)
    {
        *current = v;
    }
    Ok(())
}

/// Context the API passes in: defaults and the caller's team.
pub struct InputContext<'a> {
    pub now: i64,
    pub default_timeout_secs: u64,
    pub max_timeout_secs: u64,
    pub default_auto_disable: AutoDisable,
    /// The caller's team, the default scope for a manager's new webhook.
    pub caller_team: Option<&'a str>,
}

/// A new webhook from a create body.
pub fn create(m: &Input, cx: &InputContext<'_>) -> Result<Webhook, ApiError> {
    if required_str(m, "name", 255)?.is_none() {
        return Err(ApiError::field("name", "is required"));
    }
    if m.get("url").is_none() && m.get("urls").is_none() {
        return Err(ApiError::field("url", "is required (or `urls`)"));
    }
    if m.get("trigger_type").is_none() && m.get("trigger_events").is_none() {
        return Err(ApiError::field(
            "trigger_type",
            "is required (or `trigger_events`)",
        ));
    }
    let mut w = Webhook {
        id: new_id("wh"),
        scope: cx
            .caller_team
            .map(|t| Scope::Team {
                team_id: t.to_string(),
            })
            .unwrap_or_default(),
        signing: Signing::StandardWebhooks {
            secret: new_signing_secret(),
            previous: Vec::new(),
        },
        timeout_secs: cx.default_timeout_secs,
        auto_disable: cx.default_auto_disable.clone(),
        created_at: cx.now,
        updated_at: cx.now,
        ..Webhook::default()
    };
    // OnCall sends the whole event unless a `data` template is given.
    if matches!(m.get("data"), Some(Value::String(_))) && m.get("forward_all").is_none() {
        w.forward_all = false;
    }
    update(&mut w, m, cx)?;
    Ok(w)
}

/// Applies the fields present in `m` to `w`; absent fields stay as they are.
pub fn update(w: &mut Webhook, m: &Input, cx: &InputContext<'_>) -> Result<(), ApiError> {
    if let Some(name) = required_str(m, "name", 255)? {
        if name.trim().is_empty() {
            return Err(ApiError::field("name", "must not be empty"));
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
        w.scope = match (team, &w.scope) {
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
        w.urls = urls
            .iter()
            .enumerate()
            .map(|(i, u)| validate_url(&format!("urls[{i}]"), u))
            .collect::<Result<_, _>>()?;
    } else if let Some(url) = required_str(m, "url", 2048)? {
        w.urls = vec![validate_url("url", &url)?];
    }
    if let Some(method) = required_str(m, "http_method", 16)? {
        let up = method.to_ascii_uppercase();
        if !METHODS.contains(&up.as_str()) {
            return Err(ApiError::field(
                "http_method",
                format!("must be one of {}", METHODS.join(", ")),
            ));
        }
        w.http_method = up;
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
        let canonical = normalize_trigger("trigger_type", &tt)?;
        if m.get("trigger_events").is_none() {
            w.trigger_events = vec![canonical];
        } else if !w.trigger_events.contains(&canonical) {
            w.trigger_events.insert(0, canonical);
        }
        w.trigger_type = Some(tt);
    }
    if let Some(d) = nullable_str(m, "data", MAX_TEMPLATE)? {
        w.data = d;
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
        w.trigger_template = t.filter(|s| !s.trim().is_empty());
    }
    if let Some(h) = m.get("headers") {
        w.headers = headers_field(h)?;
    }
    if let Some(f) = string_list(m, "integration_filter", MAX_LIST)? {
        w.integration_filter = f;
    }
    match m.get("filter") {
        None => {}
        Some(Value::Null) => w.filter = None,
        Some(v @ Value::Object(_)) => w.filter = Some(v.clone()),
        Some(_) => return Err(ApiError::field("filter", "must be an object or null")),
    }
    match m.get("plugins") {
        None => {}
        Some(Value::Null) => w.plugins = Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_PLUGINS => {
            w.plugins = items
                .iter()
                .enumerate()
                .map(|(i, v)| plugin_ref(&format!("plugins[{i}]"), v))
                .collect::<Result<_, _>>()?;
        }
        Some(_) => {
            return Err(ApiError::field(
                "plugins",
                format!("must be an array of at most {MAX_PLUGINS} plugins"),
            ));
        }
    }
    match m.get("authenticator") {
        None => {}
        Some(Value::Null) => w.authenticator = None,
        Some(v) => w.authenticator = Some(plugin_ref("authenticator", v)?),
    }
    if let Some(mut auth) = typed::<Auth>(m, "auth")? {
        // A masked secret sent back means "unchanged".
        match (&mut auth, &w.auth) {
            (Auth::Basic { password, .. }, Auth::Basic { password: old, .. })
                if password == MASK =>
            {
                *password = old.clone()
            }
            (Auth::Bearer { token }, Auth::Bearer { token: old }) if token == MASK => {
                *token = old.clone()
            }
            (Auth::ApiKey { value, .. }, Auth::ApiKey { value: old, .. }) if value == MASK => {
                *value = old.clone()
            }
            _ => {}
        }
        match &auth {
            Auth::ApiKey { name, .. } if name.is_empty() => {
                return Err(ApiError::field("auth.name", "must not be empty"));
            }
            Auth::Bearer { token } if token.is_empty() => {
                return Err(ApiError::field("auth.token", "must not be empty"));
            }
            _ => {}
        }
        w.auth = auth;
    }
    if let Some(v) = m.get("signing") {
        w.signing = signing_field(v, Some(&w.signing))?;
    }
    if let Some(s) = typed::<SendAs>(m, "send_as")? {
        w.send_as = s;
    }
    if let Some(r) = typed::<RetryPolicy>(m, "retry")? {
        validate_retry(&r)?;
        w.retry = r;
    }
    if let Some(t) = typed::<u64>(m, "timeout_secs")? {
        if t == 0 || t > cx.max_timeout_secs {
            return Err(ApiError::field(
                "timeout_secs",
                format!("must be between 1 and {}", cx.max_timeout_secs),
            ));
        }
        w.timeout_secs = t;
    }
    if let Some(a) = typed::<AutoDisable>(m, "auto_disable")? {
        w.auto_disable = a;
    }
    if let Some(e) = nullable_str(m, "failure_email", 254)? {
        if let Some(addr) = &e
            && (!addr.contains('@')
                || addr.starts_with('@')
                || addr.ends_with('@')
                || addr.contains(char::is_whitespace))
        {
            return Err(ApiError::field("failure_email", "must be an email address"));
        }
        w.failure_email = e;
    }
    if let Some(b) = bool_field(m, "include_private_payloads")? {
        w.include_private_payloads = b;
    }
    if w.signing != Signing::None
        && w.send_as == SendAs::Query
        && matches!(w.signing, Signing::HmacSha512 { .. })
    {
        return Err(ApiError::field(
            "signing",
            "HMAC-SHA512 signing needs send_as \"body\" (Callgoose signs the body)",
        ));
    }
    w.updated_at = cx.now;
    Ok(())
}

fn mask(v: &Option<String>) -> Value {
    match v {
        Some(_) => Value::String(MASK.into()),
        None => Value::Null,
    }
}

/// The API view of a webhook: Grafana OnCall's fields first (same names and types), then the
/// gateway's own. Secrets are masked.
pub fn view(w: &Webhook) -> Value {
    let auth = match &w.auth {
        Auth::None => json!({"type": "none"}),
        Auth::Basic { username, .. } => {
            json!({"type": "basic", "username": username, "password": MASK})
        }
        Auth::Bearer { .. } => json!({"type": "bearer", "token": MASK}),
        Auth::ApiKey { name, location, .. } => {
            json!({"type": "api_key", "name": name, "value": MASK, "in": location})
        }
    };
    let signing = match &w.signing {
        Signing::None => json!({"type": "none"}),
        Signing::StandardWebhooks { previous, .. } => {
            json!({"type": "standard_webhooks", "secret": MASK, "previous_secrets": previous.len()})
        }
        Signing::HmacSha512 {
            header, previous, ..
        } => {
            json!({"type": "hmac_sha512", "header": header, "secret": MASK, "previous_secrets": previous.len()})
        }
    };
    json!({
        "id": w.id,
        "name": w.name,
        "is_webhook_enabled": w.is_webhook_enabled,
        "team": w.scope.team(),
        "data": w.data,
        "username": w.username,
        "password": mask(&w.password),
        "authorization_header": mask(&w.authorization_header),
        "trigger_template": w.trigger_template,
        "headers": w.headers,
        "url": w.urls.first(),
        "forward_all": w.forward_all,
        "http_method": w.http_method,
        "trigger_type": w.grafana_trigger_type(),
        "integration_filter": w.integration_filter,
        "description": w.description,
        "urls": w.urls,
        "trigger_events": w.trigger_events,
        "scope": w.scope,
        "filter": w.filter,
        "plugins": w.plugins,
        "authenticator": w.authenticator,
        "auth": auth,
        "signing": signing,
        "send_as": w.send_as,
        "retry": w.retry,
        "timeout_secs": w.timeout_secs,
        "auto_disable": w.auto_disable,
        "failure_email": w.failure_email,
        "include_private_payloads": w.include_private_payloads,
        "disabled_reason": w.disabled_reason,
        "created_at": crate::api::rfc3339(w.created_at),
        "updated_at": crate::api::rfc3339(w.updated_at),
    })
}
