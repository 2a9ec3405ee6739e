//! The one masking function family: everything that can carry a secret out of the gateway (API
//! answers, the attempt log, `plugin replay`, log lines) goes through these before it is shown.
//!
//! Rules:
//! - a name looks secret when, without case, it contains `secret`, `token`, `password`, `passwd`,
//!   `key`, `auth`, `cookie` or `credential` (so `Authorization`, `Proxy-Authorization`,
//!   `Cookie`, `X-Api-Key`, `api_token` ...), except a few well-known non-secrets
//!   (`Idempotency-Key`); the same rule picks plugin config values, header values and query
//!   parameters;
//! - header values are masked when the name looks secret, the webhook marks the header secret
//!   (`secret_headers`) or sends its API key in it, or the value holds one of the webhook's
//!   secrets;
//! - urls: the password in the userinfo (or a lone user, which is how tokens travel there) and
//!   query values whose name looks secret or which hold one of the webhook's secrets;
//! - Grafana OnCall's `headers` JSON string: each value by the header rule (a template that is not
//!   a JSON object is masked whole).
//!
//! Signature headers stay visible: they are MACs, not secrets, and operators need them to debug
//! verification.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::model::{Auth, KeyLocation, Signing, Webhook};

pub use crate::model::MASK;

/// Name fragments that make a header, query parameter or config key secret.
const SECRET_WORDS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "key",
    "auth",
    "cookie",
    "credential",
];

/// Names matching a secret word that are not secrets.
const NOT_SECRET: &[&str] = &["idempotency-key", "idempotency_key"];

/// Secrets shorter than this are masked only where a value equals them, not where it contains
/// them: a one-letter password must not mask every header holding that letter.
const MIN_SUBSTRING_SECRET: usize = 4;

/// Whether a header, query parameter or config key of this name holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !NOT_SECRET.contains(&lower.as_str()) && SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// What one webhook considers secret: its secret values and the names it sends them under.
#[derive(Debug, Default)]
pub struct SecretSet<'a> {
    values: Vec<String>,
    key_header: Option<&'a str>,
    key_param: Option<&'a str>,
    secret_headers: &'a [String],
}

impl<'a> SecretSet<'a> {
    /// The secrets of `webhook`, in the forms they may appear in a request.
    pub fn of(webhook: &'a Webhook) -> Self {
        let mut values = vec![];
        let (mut key_header, mut key_param) = (None, None);
        match &webhook.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                values.push(password.clone());
                values.push(BASE64.encode(format!("{username}:{password}")));
            }
            Auth::Bearer { token } => values.push(token.clone()),
            Auth::ApiKey {
                name,
                value,
                location,
            } => {
                values.push(value.clone());
                match location {
                    KeyLocation::Header => key_header = Some(name.as_str()),
                    KeyLocation::Query => key_param = Some(name.as_str()),
                }
            }
        }
        values.extend(webhook.password.clone());
        values.extend(webhook.authorization_header.clone());
        if let (Some(user), Some(pass)) = (
            webhook.username.as_deref().filter(|s| !s.is_empty()),
            webhook.password.as_deref().filter(|s| !s.is_empty()),
        ) {
            values.push(BASE64.encode(format!("{user}:{pass}")));
        }
        // Signing secrets should never reach a header, but if a user pastes one into a custom
        // header it must not reach the log either.
        match &webhook.signing {
            Signing::None => {}
            Signing::StandardWebhooks { secret, previous }
            | Signing::HmacSha512 {
                secret, previous, ..
            } => {
                values.push(secret.clone());
                values.extend(previous.iter().map(|p| p.secret.clone()));
            }
        }
        values.extend(webhook.secrets.values().cloned());
        values.extend(
            webhook
                .client_certificate
                .iter()
                .map(|c| c.private_key.clone()),
        );
        for p in webhook.plugins.iter().chain(&webhook.authenticator) {
            let mut c = p.config.clone();
            let _ = super::fields::config::<()>(&mut c, &mut |s| {
                values.push(s.to_string());
                Ok(s.to_string())
            });
        }
        values.retain(|s| !s.is_empty());
        SecretSet {
            values,
            key_header,
            key_param,
            secret_headers: &webhook.secret_headers,
        }
    }

    fn holds_secret(&self, value: &str) -> bool {
        self.values.iter().any(|s| {
            if s.len() >= MIN_SUBSTRING_SECRET {
                value.contains(s.as_str())
            } else {
                value == s
            }
        })
    }

    /// Whether a header of this name and value must be masked.
    pub fn header_is_secret(&self, name: &str, value: &str) -> bool {
        is_secret_name(name)
            || self
                .key_header
                .is_some_and(|k| name.eq_ignore_ascii_case(k))
            || self
                .secret_headers
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            || self.holds_secret(value)
    }

    /// Free text (an error message, a reason) with every secret value of the webhook found in it
    /// replaced by [`MASK`]; values shorter than a few characters only when they are the whole
    /// text, as a short one would mask ordinary words.
    pub fn text(&self, text: &str) -> String {
        let mut values: Vec<&String> = self
            .values
            .iter()
            .filter(|s| s.len() >= MIN_SUBSTRING_SECRET || text == s.as_str())
            .collect();
        // Longest first, so a secret containing another is masked whole.
        values.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in values {
            out = out.replace(s.as_str(), MASK);
        }
        out
    }

    /// `headers` with every secret value replaced by [`MASK`].
    pub fn headers(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                let v = if self.header_is_secret(name, value) {
                    MASK.to_string()
                } else {
                    value.clone()
                };
                (name.clone(), v)
            })
            .collect()
    }

    /// `url` with its userinfo secret and secret query values replaced by [`MASK`]; the rest is
    /// kept byte for byte.
    pub fn url(&self, url: &str) -> String {
        let (base, fragment) = match url.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (url, None),
        };
        let (path, query) = match base.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (base, None),
        };
        let mut out = mask_userinfo(path);
        if let Some(query) = query {
            out.push('?');
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let key = decode(k);
                    if (is_secret_name(&key) && !v.is_empty())
                        || self.key_param.is_some_and(|p| p == key)
                        || self.holds_secret(&decode(v))
                    {
                        format!("{k}={MASK}")
                    } else {
                        pair.to_string()
                    }
                })
                .collect();
            out.push_str(&masked.join("&"));
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    }

    /// Grafana OnCall's `headers` string with each secret value masked; a string that is not a
    /// JSON object (a template) is masked whole, as it may hold anything.
    pub fn headers_json(&self, text: &str) -> String {
        match serde_json::from_str::<serde_json::Map<String, Value>>(text) {
            Ok(m) => {
                let masked: serde_json::Map<String, Value> = m
                    .into_iter()
                    .map(|(k, v)| {
                        let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        if self.header_is_secret(&k, &shown) {
                            (k, Value::String(MASK.into()))
                        } else {
                            (k, v)
                        }
                    })
                    .collect();
                Value::Object(masked).to_string()
            }
            Err(_) => MASK.to_string(),
        }
    }
}

/// Headers as they may be logged (see the module doc).
pub fn mask_headers(headers: &[(String, String)], webhook: &Webhook) -> Vec<(String, String)> {
    SecretSet::of(webhook).headers(headers)
}

/// A url as it may be logged or shown (see the module doc).
pub fn mask_url(url: &str, webhook: &Webhook) -> String {
    SecretSet::of(webhook).url(url)
}

/// A url with no webhook at hand: userinfo and secret-named query values only.
pub fn mask_url_plain(url: &str) -> String {
    SecretSet::default().url(url)
}

/// A plugin config with the values of secret-named keys masked, at any depth.
pub fn mask_config(v: &Value) -> Value {
    let mut v = v.clone();
    let _ = super::fields::config::<()>(&mut v, &mut |_| Ok(MASK.to_string()));
    v
}

/// A value sent back masked (Grafana OnCall's clients PUT the object they GET): the stored url
/// whose masked form it is, else the value as sent.
pub fn restore_url(sent: String, stored: &[String], set: &SecretSet<'_>) -> String {
    if !sent.contains(MASK) {
        return sent;
    }
    stored
        .iter()
        .find(|s| set.url(s) == sent)
        .cloned()
        .unwrap_or(sent)
}

/// OnCall's `headers` sent back masked: a whole [`MASK`] keeps the stored string; a masked value
/// inside the object takes the stored value of that header.
pub fn restore_headers_json(sent: Option<String>, stored: Option<&str>) -> Option<String> {
    let (Some(sent), Some(stored)) = (sent.as_deref(), stored) else {
        return sent;
    };
    if sent == MASK {
        return Some(stored.to_string());
    }
    if !sent.contains(MASK) {
        return Some(sent.to_string());
    }
    let (Ok(mut new), Ok(old)) = (
        serde_json::from_str::<serde_json::Map<String, Value>>(sent),
        serde_json::from_str::<serde_json::Map<String, Value>>(stored),
    ) else {
        return Some(sent.to_string());
    };
    for (k, v) in new.iter_mut() {
        if v == MASK
            && let Some((_, old_v)) = old.iter().find(|(ok, _)| ok.eq_ignore_ascii_case(k))
        {
            *v = old_v.clone();
        }
    }
    Some(Value::Object(new).to_string())
}

/// A plugin config sent back masked: every [`MASK`] under a secret name takes the stored value
/// at the same place.
pub fn restore_config(sent: &mut Value, stored: &Value) {
    if let (Value::Object(new), Value::Object(old)) = (sent, stored) {
        for (k, v) in new.iter_mut() {
            match (v, old.get(k)) {
                (v @ Value::String(_), Some(o)) if *v == MASK && is_secret_name(k) => {
                    *v = o.clone()
                }
                (v, Some(o)) => restore_config(v, o),
                _ => {}
            }
        }
    }
}

/// `scheme://user:password@host/...` -> `scheme://user:****@host/...`; a lone user (a token sent
/// as the user name) is masked too.
fn mask_userinfo(before_query: &str) -> String {
    let Some((scheme, rest)) = before_query.split_once("://") else {
        return before_query.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:{MASK}@{host}{tail}"),
            None => format!("{scheme}://{MASK}@{host}{tail}"),
        },
        None => before_query.to_string(),
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "mask_tests.rs"]
mod tests;
