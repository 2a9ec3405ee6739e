//! Save-time check of the secret names in plugin configs. Plugins are opaque, so the gateway
//! reads a convention: in a plugin's (or authenticator's) config object, the key `secret`, any key
//! ending in `_secret`, and `secrets` (a list) hold *names* of the webhook's secrets. A name the
//! webhook does not have is refused when the webhook is saved, listing the names it could use.

use serde_json::Value;

use crate::api::error::ApiError;
use crate::model::{PluginRef, Webhook};

/// Every (field, secret name) a plugin config names by the convention.
fn named(field: &str, config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(m) = config.as_object() else {
        return out;
    };
    for (k, v) in m {
        let holds_names = k == "secret" || k == "secrets" || k.ends_with("_secret");
        if !holds_names {
            continue;
        }
        match v {
            Value::String(s) => out.push((format!("{field}.config.{k}"), s.clone())),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = item.as_str() {
                        out.push((format!("{field}.config.{k}[{i}]"), s.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Refuses a webhook whose plugin or authenticator config names a secret it lacks.
pub fn check(w: &Webhook) -> Result<(), ApiError> {
    let have: Vec<String> = crate::delivery::plugins::secrets_of(w)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let refs = w
        .plugins
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("plugins[{i}]"), p))
        .chain(
            w.authenticator
                .iter()
                .map(|a| ("authenticator".to_string(), a)),
        );
    for (field, p) in refs {
        let PluginRef { config, .. } = p;
        for (at, name) in named(&field, config) {
            if !have.contains(&name) {
                let could = match have.is_empty() {
                    true => "none (add `secrets`, `signing` or `auth` to the webhook)".to_string(),
                    false => have.join(", "),
                };
                return Err(ApiError::field(
                    at,
                    format!(
                        "names the secret `{name}`, which this webhook does not have; it could use: {could}"
                    ),
                ));
            }
        }
    }
    Ok(())
}
