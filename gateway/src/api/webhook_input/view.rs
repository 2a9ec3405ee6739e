//! The OnCall-shaped API view of a webhook, secrets masked (`secrets::mask`: password fields,
//! auth and signing secrets, url userinfo and secret query values, secret header values inside
//! OnCall's `headers` string, secret-named plugin config values).

use serde_json::{Value, json};

use crate::model::webhook::MASK;
use crate::model::{Auth, Signing, Webhook};

/// OnCall masks a secret only when it is set: an empty string is shown as it is.
fn mask(v: &Option<String>) -> Value {
    match v.as_deref() {
        Some("") => Value::String(String::new()),
        Some(_) => Value::String(MASK.into()),
        None => Value::Null,
    }
}

/// Grafana OnCall's deprecated `/api/v1/actions/` view of a webhook (its `ActionCreateSerializer`
/// fields: `team_id`, `user`, `forward_whole_payload` instead of `team`, `username`,
/// `forward_all`; no `preset`), secrets masked the same way.
pub fn action_view(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "name": w.name,
        "is_webhook_enabled": w.is_webhook_enabled,
        "team_id": w.scope.team(),
        "user": w.username,
        "data": w.data,
        "password": mask(&w.password),
        "authorization_header": mask(&w.authorization_header),
        "trigger_template": w.trigger_template,
        "headers": w.headers,
        "url": w.urls.first(),
        "forward_whole_payload": w.forward_all,
        "http_method": w.http_method,
        "trigger_type": w.grafana_trigger_type(),
        "integration_filter": w.integration_filter.as_ref().filter(|l| !l.is_empty()),
    })
}

/// The API view of a webhook: Grafana OnCall's fields first (same names and types), then the
/// gateway's own. Secrets are masked.
pub fn view(w: &Webhook) -> Value {
    let set = crate::secrets::mask::SecretSet::of(w);
    let urls: Vec<String> = w.urls.iter().map(|u| set.url(u)).collect();
    let plugin = |p: &crate::model::PluginRef| {
        let mut p = p.clone();
        p.config = crate::secrets::mask::mask_config(&p.config);
        p
    };
    let plugins: Vec<_> = w.plugins.iter().map(plugin).collect();
    let authenticator = w.authenticator.as_ref().map(plugin);
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
        "headers": w.headers.as_deref().map(|h| set.headers_json(h)),
        "url": urls.first(),
        "forward_all": w.forward_all,
        "http_method": w.http_method,
        "trigger_type": w.grafana_trigger_type(),
        "integration_filter": w.integration_filter.as_ref().filter(|l| !l.is_empty()),
        "preset": w.preset,
        "description": w.description,
        "urls": urls,
        "trigger_events": w.trigger_events,
        "scope": w.scope,
        "filter": w.filter,
        "plugins": plugins,
        "authenticator": authenticator,
        "auth": auth,
        "secret_headers": w.secret_headers,
        "secrets": w.secrets.keys().map(|k| (k.clone(), Value::from(MASK))).collect::<serde_json::Map<_, _>>(),
        "signing": signing,
        "client_certificate": w.client_certificate.as_ref().map(super::client_cert::view),
        "send_as": w.send_as,
        "retry": w.retry,
        "ordering": w.ordering,
        "timeout_secs": w.timeout_secs,
        "auto_disable": w.auto_disable,
        "failure_email": w.failure_email,
        "include_private_payloads": w.include_private_payloads,
        "disabled_reason": w.disabled_reason,
        "created_at": crate::api::rfc3339(w.created_at),
        "updated_at": crate::api::rfc3339(w.updated_at),
    })
}
