//! The gateway's own fields beyond OnCall's: filter, plugins, authenticator, auth, signing,
//! send_as, retry, ordering, timeouts, auto-disable, failure e-mail, private payloads (and `scope`).

use serde_json::Value;

use super::fields::{bool_field, nullable_str, typed};
use super::{Input, InputContext, MAX_PLUGINS, MAX_TEMPLATE};
use crate::api::error::ApiError;
use crate::model::webhook::{MASK, MAX_HEADERS};
use crate::model::{
    Auth, AutoDisable, OrderingMode, PluginRef, RetryPolicy, Scope, SendAs, Signing, Webhook,
    new_signing_secret,
};
use crate::secrets::mask::restore_config;

pub(super) fn scope_field(v: &Value) -> Result<Scope, ApiError> {
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

/// `filter` through `include_private_payloads`.
pub(super) fn apply(w: &mut Webhook, m: &Input, cx: &InputContext<'_>) -> Result<(), ApiError> {
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
            let mut plugins: Vec<PluginRef> = items
                .iter()
                .enumerate()
                .map(|(i, v)| plugin_ref(&format!("plugins[{i}]"), v))
                .collect::<Result<_, _>>()?;
            // Config secrets sent back masked keep their stored values (same plugin, same place).
            for (i, p) in plugins.iter_mut().enumerate() {
                if let Some(old) = w.plugins.get(i).filter(|o| o.name == p.name) {
                    restore_config(&mut p.config, &old.config);
                }
            }
            w.plugins = plugins;
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
        Some(v) => {
            let mut a = plugin_ref("authenticator", v)?;
            if let Some(old) = w.authenticator.as_ref().filter(|o| o.name == a.name) {
                restore_config(&mut a.config, &old.config);
            }
            w.authenticator = Some(a);
        }
    }
    match m.get("secret_headers") {
        None => {}
        Some(Value::Null) => w.secret_headers = Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_HEADERS => {
            let mut names = Vec::new();
            for (i, v) in items.iter().enumerate() {
                let name = v.as_str().ok_or_else(|| {
                    ApiError::field(format!("secret_headers[{i}]"), "must be a header name")
                })?;
                if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(ApiError::field(
                        format!("secret_headers[{i}]"),
                        "is not a valid header name",
                    ));
                }
                names.push(name.to_string());
            }
            w.secret_headers = names;
        }
        Some(_) => {
            return Err(ApiError::field(
                "secret_headers",
                format!("must be an array of at most {MAX_HEADERS} header names, or null"),
            ));
        }
    }
    if let Some(v) = m.get("secrets") {
        w.secrets = named_secrets(v, &w.secrets)?;
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
    if let Some(o) = typed::<OrderingMode>(m, "ordering")? {
        w.ordering = o;
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
    Ok(())
}

/// At most this many named secrets per webhook, each at most `MAX_SECRET_BYTES`.
pub const MAX_SECRETS: usize = 32;
const MAX_SECRET_BYTES: usize = 8192;

/// `secrets`: `{"<name>": "<value>"}`, replacing the webhook's named secrets (a masked value
/// keeps the stored one; `null` removes them all). Names are 1-64 of `A-Za-z0-9_.-` and may not
/// be a built-in name (`crate::delivery::plugins::BUILTIN_SECRET_NAMES`).
fn named_secrets(
    v: &Value,
    old: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let items = match v {
        Value::Null => return Ok(Default::default()),
        Value::Object(items) if items.len() <= MAX_SECRETS => items,
        _ => {
            return Err(ApiError::field(
                "secrets",
                format!("must be an object of at most {MAX_SECRETS} name: value pairs, or null"),
            ));
        }
    };
    let mut out = std::collections::BTreeMap::new();
    for (name, value) in items {
        let field = format!("secrets.{name}");
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_name {
            return Err(ApiError::field(
                field,
                "a secret name is 1-64 letters, digits, `_`, `.` or `-`",
            ));
        }
        if crate::delivery::plugins::BUILTIN_SECRET_NAMES.contains(&name.as_str()) {
            return Err(ApiError::field(
                field,
                "is a built-in secret name (from the webhook's signing or auth); choose another",
            ));
        }
        let value = match value.as_str() {
            Some(MASK) => old.get(name).cloned().ok_or_else(|| {
                ApiError::field(field.clone(), "is masked but no such secret is stored")
            })?,
            Some(s) if !s.is_empty() && s.len() <= MAX_SECRET_BYTES => s.to_string(),
            _ => {
                return Err(ApiError::field(
                    field,
                    format!("must be a non-empty string of at most {MAX_SECRET_BYTES} bytes"),
                ));
            }
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}
