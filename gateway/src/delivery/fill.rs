//! Secrets a transformer asks for in its output, filled in by the host on every attempt.
//!
//! A transformer has no secrets, yet some APIs want one in the body (PagerDuty's `routing_key`)
//! or in a header the webhook's built-in auth cannot shape (Opsgenie's `GenieKey <key>`). The
//! transformer writes a placeholder instead (`types.wit`, "Secrets in requests"):
//!
//! - in a JSON body, an object `{"$secret": "<name>"}` (optionally with `"prefix": "<text>"`)
//!   anywhere a value goes; it becomes the JSON string `<prefix><secret>`;
//! - as a header value, the same object as JSON text; the header becomes `<prefix><secret>`.
//!
//! Only the webhook's named `secrets` can be placed (never its signing or auth credentials), and
//! only in requests a transformer produced: a webhook without plugins forwards the event as it
//! is, and a placeholder inside forwarded event data fills nothing. (A chain that embeds event
//! JSON objects, like a `template` with `tojson`, could pass one on: it can only ever send a
//! named secret to the webhook's own destination, the one it is meant for.)
//!
//! The stored delivery keeps the placeholders (the plugin's output as it was), so the stored
//! request and the plugin never hold the value. On each attempt, after the authenticator (which
//! also sees placeholders) and before the signature, [`fill`] puts the webhook's secrets in;
//! the signature covers the filled body, the one sent. The attempt log records the placeholder
//! body and masks filled headers. A body holding placeholders is sent re-serialised (compact
//! JSON, object keys in sorted order).

use serde_json::{Map, Value};

use super::retry::AttemptResult;
use crate::model::{PreparedRequest, Webhook};

/// The secrets placeholders may name: the webhook's named `secrets`.
pub fn fillable(webhook: &Webhook) -> Vec<(String, String)> {
    webhook
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The key that makes a JSON object a placeholder.
pub const SECRET_KEY: &str = "$secret";

/// The fill-in step of one attempt: nothing for a webhook without a transformer; else the
/// names of the filled headers and, when the body changed, the body as stored (placeholders),
/// for the attempt log. A missing secret is a permanent failure.
pub fn for_attempt(
    webhook: &Webhook,
    req: &mut PreparedRequest,
) -> Result<(Vec<String>, Option<Option<String>>), AttemptResult> {
    if super::plugins::PluginStage::steps(webhook).is_empty() {
        return Ok((Vec::new(), None));
    }
    let stored = req.body.clone();
    let filled =
        fill(req, &fillable(webhook)).map_err(|message| AttemptResult::Invalid { message })?;
    Ok((filled.headers, filled.body.then_some(stored)))
}

/// What [`fill`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filled {
    /// Names of the headers that now hold a secret (to mask in the attempt log).
    pub headers: Vec<String>,
    /// Whether the body changed.
    pub body: bool,
}

/// Replaces every placeholder in `req` with the named secret from `secrets` (name, value).
/// Errors name the missing secret and list the names the webhook has (never a value).
pub fn fill(req: &mut PreparedRequest, secrets: &[(String, String)]) -> Result<Filled, String> {
    let mut filled = Filled::default();
    for (name, value) in &mut req.headers {
        if !value.contains(SECRET_KEY) {
            continue;
        }
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(value) else {
            continue;
        };
        if let Some(secret) = placeholder(&obj, &format!("header {name}"), secrets)? {
            *value = secret;
            filled.headers.push(name.clone());
        }
    }
    if let Some(body) = req.body.as_mut().filter(|b| b.contains(SECRET_KEY))
        && let Ok(mut v) = serde_json::from_str::<Value>(body)
        && walk(&mut v, "", secrets)?
    {
        *body = v.to_string();
        filled.body = true;
    }
    Ok(filled)
}

/// Fills placeholders below `v` (`at` is its JSON pointer); whether any was found.
fn walk(v: &mut Value, at: &str, secrets: &[(String, String)]) -> Result<bool, String> {
    match v {
        Value::Object(obj) => {
            if let Some(secret) = placeholder(obj, &format!("body at {}", pointer(at)), secrets)? {
                *v = Value::String(secret);
                return Ok(true);
            }
            let mut any = false;
            for (k, child) in obj.iter_mut() {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                any |= walk(child, &format!("{at}/{escaped}"), secrets)?;
            }
            Ok(any)
        }
        Value::Array(items) => {
            let mut any = false;
            for (i, child) in items.iter_mut().enumerate() {
                any |= walk(child, &format!("{at}/{i}"), secrets)?;
            }
            Ok(any)
        }
        _ => Ok(false),
    }
}

fn pointer(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

/// The filled value of a placeholder object; `None` when `obj` is not one.
fn placeholder(
    obj: &Map<String, Value>,
    place: &str,
    secrets: &[(String, String)],
) -> Result<Option<String>, String> {
    let Some(name) = obj.get(SECRET_KEY) else {
        return Ok(None);
    };
    let prefix = obj.get("prefix");
    let well_formed =
        obj.len() == 1 + usize::from(prefix.is_some()) && prefix.is_none_or(Value::is_string);
    let (Some(name), true) = (name.as_str(), well_formed) else {
        return Err(format!(
            "{place}: a secret placeholder is {{\"$secret\": \"<name>\"}} with an optional string \"prefix\""
        ));
    };
    let Some((_, value)) = secrets.iter().find(|(n, _)| n == name) else {
        let mut names: Vec<&str> = secrets.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        let has = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(format!(
            "{place} asks for the secret {name:?}, which this webhook does not have (its named secrets: {has})"
        ));
    };
    let prefix = prefix.and_then(Value::as_str).unwrap_or("");
    Ok(Some(format!("{prefix}{value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str, headers: &[(&str, &str)]) -> PreparedRequest {
        PreparedRequest {
            method: "POST".into(),
            url: "https://x.test".into(),
            query: vec![],
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Some(body.into()),
        }
    }

    fn secrets() -> Vec<(String, String)> {
        vec![
            ("routing_key".into(), "R0UT1NG".into()),
            ("genie_key".into(), "g-123".into()),
        ]
    }

    #[test]
    fn body_and_header_placeholders_are_filled() {
        let mut r = req(
            r#"{"routing_key":{"$secret":"routing_key"},"list":[{"$secret":"genie_key","prefix":"k="}],"n":1}"#,
            &[
                (
                    "Authorization",
                    r#"{"$secret":"genie_key","prefix":"GenieKey "}"#,
                ),
                ("X-Other", "plain"),
            ],
        );
        let f = fill(&mut r, &secrets()).unwrap();
        assert_eq!(
            f,
            Filled {
                headers: vec!["Authorization".into()],
                body: true
            }
        );
        assert_eq!(
            r.body.as_deref(),
            Some(r#"{"list":["k=g-123"],"n":1,"routing_key":"R0UT1NG"}"#)
        );
        assert_eq!(r.headers[0].1, "GenieKey g-123");
        assert_eq!(r.headers[1].1, "plain");
    }

    #[test]
    fn bodies_without_placeholders_are_left_byte_for_byte() {
        for body in [
            r#"{ "b": 1,  "a": "$secret" }"#,
            "text mentioning $secret",
            r#"{"x": {"$secretive": 1}}"#,
        ] {
            let mut r = req(body, &[("X", r#"{"$secret" is not json"#)]);
            assert_eq!(fill(&mut r, &secrets()).unwrap(), Filled::default());
            assert_eq!(r.body.as_deref(), Some(body));
        }
    }

    #[test]
    fn a_missing_name_or_bad_shape_is_named() {
        let mut r = req(r#"{"a":[{"$secret":"nope"}]}"#, &[]);
        let e = fill(&mut r, &secrets()).unwrap_err();
        assert!(e.contains("body at /a/0"), "{e}");
        assert!(e.contains("\"nope\""), "{e}");
        assert!(
            e.contains("its named secrets: genie_key, routing_key"),
            "{e}"
        );
        assert!(!e.contains("R0UT1NG"), "{e}");
        let mut r = req(r#"{"$secret":"routing_key","extra":1}"#, &[]);
        assert!(
            fill(&mut r, &secrets())
                .unwrap_err()
                .contains("optional string")
        );
        let mut r = req("{}", &[("Authorization", r#"{"$secret":"x"}"#)]);
        let e = fill(&mut r, &[]).unwrap_err();
        assert!(
            e.contains("header Authorization") && e.contains("its named secrets: none"),
            "{e}"
        );
    }
}
