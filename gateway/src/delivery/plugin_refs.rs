//! What plugins may use of a webhook: its secrets by name (for authenticator handles and
//! transformer placeholders), and the checks made when a webhook is saved (plugins installed and
//! of the right kind, the secrets a first-party connector or authenticator opens present).

use super::plugins::PluginStage;
use crate::model::{Auth, PluginRecord, PluginRef, Signing, Webhook};
use crate::store::Store;

/// The names of the secrets a webhook's signing and auth give plugins; its named `secrets` may
/// not reuse them.
pub const BUILTIN_SECRET_NAMES: &[&str] = &[
    "signing_secret",
    "password",
    "token",
    "api_key",
    "grafana_password",
    "authorization_header",
];

/// The secrets plugins may use (an authenticator as handles, a transformer through body and
/// header placeholders; never as values), by name: the signing secret, the built-in auth's
/// credentials ([`BUILTIN_SECRET_NAMES`]) and the webhook's named `secrets`.
pub fn secrets_of(w: &Webhook) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match &w.signing {
        Signing::StandardWebhooks { secret, .. } | Signing::HmacSha512 { secret, .. } => {
            out.push(("signing_secret".to_string(), secret.clone()));
        }
        Signing::None => {}
    }
    match &w.auth {
        Auth::Basic { password, .. } => out.push(("password".into(), password.clone())),
        Auth::Bearer { token } => out.push(("token".into(), token.clone())),
        Auth::ApiKey { value, .. } => out.push(("api_key".into(), value.clone())),
        Auth::None => {}
    }
    if let Some(p) = &w.password {
        out.push(("grafana_password".into(), p.clone()));
    }
    if let Some(h) = &w.authorization_header {
        out.push(("authorization_header".into(), h.clone()));
    }
    out.extend(w.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// The webhook secrets a first-party plugin opens with this config (checked when a webhook is
/// saved, so a missing one is refused then rather than failing deliveries): the connectors'
/// placeholders and the authenticators' handles.
pub fn secrets_needed(name: &str, config: &serde_json::Value) -> &'static [&'static str] {
    match name {
        "pagerduty" => &["routing_key"],
        "opsgenie" => &["genie_key"],
        "jira" if config.get("automation_url").is_some_and(|u| u.is_string()) => {
            &["automation_token"]
        }
        "oauth2" => &["client_id", "client_secret"],
        "aws-sigv4" => &["aws_secret_access_key"],
        _ => &[],
    }
}

/// The webhook secrets a first-party plugin opens when present (named in the refusal so the
/// user sees every name the plugin reads).
pub fn secrets_optional(name: &str) -> &'static [&'static str] {
    match name {
        "aws-sigv4" => &["aws_session_token"],
        _ => &[],
    }
}

/// A refusal when the first-party plugin `r` (at `field`) needs a secret `webhook` lacks: the
/// missing name, every name the plugin opens, and the names the webhook has.
fn missing_secret(field: &str, r: &PluginRef, webhook: &Webhook) -> Option<(String, String)> {
    let have: Vec<String> = secrets_of(webhook).into_iter().map(|(n, _)| n).collect();
    let needed = secrets_needed(&r.name, &r.config);
    let missing = needed.iter().find(|n| !have.iter().any(|h| h == **n))?;
    let optional = secrets_optional(&r.name);
    let opens = match optional.is_empty() {
        true => needed.join(", "),
        false => format!("{} (optional: {})", needed.join(", "), optional.join(", ")),
    };
    let named: Vec<&str> = webhook.secrets.keys().map(String::as_str).collect();
    Some((
        "secrets".to_string(),
        format!(
            "{field} ({}) needs the secret {missing:?} (it opens the webhook secrets {opens}); \
             add it to `secrets`; this webhook's named secrets: {}",
            r.name,
            match named.is_empty() {
                true => "none".to_string(),
                false => named.join(", "),
            }
        ),
    ))
}

/// Checks, when a webhook is saved, that its plugins are installed and of the right kind, and
/// that it has the named secrets a first-party connector needs.
pub async fn validate_refs(store: &dyn Store, webhook: &Webhook) -> Result<(), (String, String)> {
    let check = |field: String, rec: Option<PluginRecord>, want: &str, name: &str| match rec {
        None => Err((
            format!("{field}.name"),
            format!("plugin {name:?} is not installed"),
        )),
        Some(p) if p.kind != want => Err((
            format!("{field}.name"),
            format!("plugin {name:?} is a {}, not a {want}", p.kind),
        )),
        Some(_) => Ok(()),
    };
    for (i, r) in webhook.plugins.iter().enumerate() {
        let rec = PluginStage::resolve(store, r)
            .await
            .map_err(|e| ("plugins".to_string(), e.to_string()))?;
        let builtin = rec.as_ref().is_some_and(|p| p.builtin);
        check(format!("plugins[{i}]"), rec, "transformer", &r.name)?;
        let field = format!("plugins[{i}]");
        if let Some(refusal) = builtin
            .then(|| missing_secret(&field, r, webhook))
            .flatten()
        {
            return Err(refusal);
        }
    }
    if let Some(r) = &webhook.authenticator {
        let rec = PluginStage::resolve(store, r)
            .await
            .map_err(|e| ("authenticator".to_string(), e.to_string()))?;
        let builtin = rec.as_ref().is_some_and(|p| p.builtin);
        check("authenticator".to_string(), rec, "authenticator", &r.name)?;
        if let Some(refusal) = builtin
            .then(|| missing_secret("authenticator", r, webhook))
            .flatten()
        {
            return Err(refusal);
        }
    }
    Ok(())
}
