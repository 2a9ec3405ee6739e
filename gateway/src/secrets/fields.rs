//! Which stored fields are secrets: one traversal per stored type, used to seal on write, open on
//! read and re-seal on rotation, so the three can never disagree about the list.
//!
//! Webhooks: Grafana OnCall's `password`, `authorization_header` and `headers` (the whole JSON
//! string: it often holds `Authorization: Bearer ...`), every url (userinfo and query strings can
//! hold credentials), the built-in auth's password / token / API-key value, the signing secret and
//! every retired one, the named plugin secrets (`secrets`), the TLS client certificate's private key,
//! and the string values of plugin and authenticator config keys whose names
//! look secret ([`super::mask::is_secret_name`]). Deliveries: the url and, in the stored request,
//! the url, every query value, every header value and the body. Event bodies are customer data and
//! stay as they are; attempt logs are masked before they are written.

use serde_json::Value;

use crate::model::{Auth, Delivery, PreparedRequest, Signing, Webhook};

/// Applies `f` to every secret string of the webhook, stopping at the first error.
pub fn webhook<E>(w: &mut Webhook, f: &mut impl FnMut(&str) -> Result<String, E>) -> Result<(), E> {
    for v in [&mut w.password, &mut w.authorization_header, &mut w.headers]
        .into_iter()
        .flatten()
    {
        *v = f(v)?;
    }
    for u in &mut w.urls {
        *u = f(u)?;
    }
    match &mut w.auth {
        Auth::None => {}
        Auth::Basic { password, .. } => *password = f(password)?,
        Auth::Bearer { token } => *token = f(token)?,
        Auth::ApiKey { value, .. } => *value = f(value)?,
    }
    match &mut w.signing {
        Signing::None => {}
        Signing::StandardWebhooks { secret, previous }
        | Signing::HmacSha512 {
            secret, previous, ..
        } => {
            *secret = f(secret)?;
            for p in previous {
                p.secret = f(&p.secret)?;
            }
        }
    }
    for v in w.secrets.values_mut() {
        *v = f(v)?;
    }
    if let Some(c) = &mut w.client_certificate {
        c.private_key = f(&c.private_key)?;
    }
    for p in w.plugins.iter_mut().chain(w.authenticator.as_mut()) {
        config(&mut p.config, f)?;
    }
    Ok(())
}

/// Applies `f` to the string values of secret-named keys, at any depth.
pub fn config<E>(v: &mut Value, f: &mut impl FnMut(&str) -> Result<String, E>) -> Result<(), E> {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match v {
                    Value::String(s) if super::mask::is_secret_name(k) => *s = f(s)?,
                    other => config(other, f)?,
                }
            }
        }
        Value::Array(items) => {
            for i in items {
                config(i, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Applies `f` to the delivery's url and stored request.
pub fn delivery<E>(
    d: &mut Delivery,
    f: &mut impl FnMut(&str) -> Result<String, E>,
) -> Result<(), E> {
    d.url = f(&d.url)?;
    if let Some(r) = &mut d.request {
        request(r, f)?;
    }
    Ok(())
}

/// Applies `f` to a prepared request's url, query values, header values and body.
pub fn request<E>(
    r: &mut PreparedRequest,
    f: &mut impl FnMut(&str) -> Result<String, E>,
) -> Result<(), E> {
    r.url = f(&r.url)?;
    for (_, v) in r.query.iter_mut().chain(r.headers.iter_mut()) {
        *v = f(v)?;
    }
    if let Some(b) = &mut r.body {
        *b = f(b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PluginRef, RetiredSecret};
    use serde_json::json;

    /// Every secret kind, each a distinct string, and how many there are.
    pub(crate) fn full_webhook() -> (Webhook, Vec<&'static str>) {
        let w = Webhook {
            urls: vec!["https://bob:pw-in-url@example.com/h".into()],
            password: Some("oncall-password".into()),
            authorization_header: Some("Token oncall-authz".into()),
            headers: Some(r#"{"X-Custom": "hdr-secret"}"#.into()),
            auth: Auth::Bearer {
                token: "bearer-token".into(),
            },
            signing: Signing::StandardWebhooks {
                secret: "whsec_current".into(),
                previous: vec![RetiredSecret {
                    secret: "whsec_retired".into(),
                    expires_at: 1,
                }],
            },
            plugins: vec![PluginRef {
                name: "slack".into(),
                version: None,
                config: json!({"api_token": "plugin-token", "channel": "#ops", "nested": {"secret": "deep-secret"}}),
            }],
            client_certificate: Some(crate::model::ClientCertificate {
                certificate: "-----BEGIN CERTIFICATE-----".into(),
                private_key: "client-private-key".into(),
            }),
            ..Webhook::default()
        };
        let secrets = vec![
            "pw-in-url",
            "oncall-password",
            "oncall-authz",
            "hdr-secret",
            "bearer-token",
            "whsec_current",
            "whsec_retired",
            "plugin-token",
            "deep-secret",
            "client-private-key",
        ];
        (w, secrets)
    }

    #[test]
    fn every_secret_of_a_webhook_is_visited_and_nothing_else() {
        let (mut w, secrets) = full_webhook();
        let mut seen = Vec::new();
        webhook::<()>(&mut w, &mut |s| {
            seen.push(s.to_string());
            Ok("SEALED".to_string())
        })
        .unwrap();
        for s in &secrets {
            assert!(seen.iter().any(|v| v.contains(s)), "{s} not visited");
        }
        assert_eq!(w.plugins[0].config["channel"], "#ops");
        assert_eq!(w.plugins[0].config["api_token"], "SEALED");
        assert_eq!(
            seen.len(),
            secrets.len(),
            "only secrets are visited: {seen:?}"
        );
        let doc = serde_json::to_string(&w).unwrap();
        for s in &secrets {
            assert!(!doc.contains(s), "{s} left unchanged");
        }
    }
}
