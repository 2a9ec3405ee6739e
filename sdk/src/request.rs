//! Requests and the other values crossing the plugin boundary, with builders.

use serde::Serialize;

/// Name/value pairs; order is kept and names may repeat.
pub type Fields = Vec<(String, String)>;

/// An HTTP request: what a transformer produces and what an authenticator sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Upper-case method, e.g. `POST`.
    pub method: String,
    /// Absolute url; `query` is appended to it by the host.
    pub url: String,
    pub query: Fields,
    pub headers: Fields,
    pub body: Option<String>,
}

impl Request {
    /// A request with this method (upper-cased) and url.
    pub fn new(method: &str, url: &str) -> Self {
        Request { method: method.to_ascii_uppercase(), url: url.to_string(), ..Default::default() }
    }
    pub fn post(url: &str) -> Self {
        Request::new("POST", url)
    }
    pub fn get(url: &str) -> Self {
        Request::new("GET", url)
    }
    /// Adds a header (names may repeat).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Sets a header, replacing any with the same name (case-insensitive).
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }
    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
    /// Sets the body as is.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }
    /// Serializes `value` as the body and sets `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> crate::Result<Self> {
        let body = serde_json::to_string(value)?;
        Ok(self.set_header("content-type", "application/json").body(body))
    }
    /// The first header with this name (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A placeholder the host replaces with the webhook's secret `name` on every attempt, after the
/// stored transform and before signing (see `types.wit`, "Secrets in requests"). In a JSON body
/// put it where the value goes: `json!({"routing_key": gateway_sdk::request::secret("routing_key")})`
/// sends `{"routing_key": "<the secret>"}`; the plugin, the stored delivery and the attempt log
/// only ever hold the placeholder.
pub fn secret(name: &str) -> serde_json::Value {
    serde_json::json!({ "$secret": name })
}

/// Like [`secret`], sent as `<prefix><secret>` (e.g. `GenieKey <key>`).
pub fn secret_with_prefix(name: &str, prefix: &str) -> serde_json::Value {
    serde_json::json!({ "$secret": name, "prefix": prefix })
}

impl Request {
    /// Adds the header `name: <prefix><secret>`, filled in by the host on every attempt; the
    /// header's value in the plugin's output is the placeholder JSON text.
    pub fn secret_header(self, name: impl Into<String>, secret_name: &str, prefix: &str) -> Self {
        let placeholder = if prefix.is_empty() { secret(secret_name) } else { secret_with_prefix(secret_name, prefix) };
        self.header(name, placeholder.to_string())
    }
}

/// What a transformer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this request.
    Send(Request),
    /// Send nothing for this event; the reason is recorded on the delivery.
    Skip(String),
}

impl Outcome {
    pub fn skip(reason: impl Into<String>) -> Self {
        Outcome::Skip(reason.into())
    }
}

/// What the gateway knows about the delivery being shaped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    pub webhook_id: String,
    pub webhook_name: String,
    /// Canonical event type, e.g. `incident.triggered`.
    pub event_type: String,
    /// Also the `webhook-id` header of every attempt.
    pub delivery_id: String,
    /// The webhook url of this delivery.
    pub url: String,
    /// The webhook's configured method.
    pub method: String,
    /// Unix ms, fixed by the host.
    pub now_ms: i64,
    /// 1-based.
    pub attempt: u32,
    /// In a chain: the previous plugin's request; `None` for the first plugin.
    pub previous: Option<Request>,
}

/// The attempt an authenticator is working on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attempt {
    pub delivery_id: String,
    /// 1-based.
    pub attempt: u32,
    /// Unix ms of this attempt.
    pub now_ms: i64,
}

/// Headers and query parameters an authenticator adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Additions {
    pub headers: Fields,
    pub query: Fields,
}

impl Additions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_sets_body_and_one_content_type() {
        let r = Request::post("https://x.test")
            .header("Content-Type", "text/plain")
            .json(&serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(r.body.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(r.headers, vec![("content-type".to_string(), "application/json".to_string())]);
        assert_eq!(r.header_value("CONTENT-TYPE"), Some("application/json"));
    }

    #[test]
    fn secret_placeholders() {
        assert_eq!(secret("k").to_string(), r#"{"$secret":"k"}"#);
        let r = Request::post("https://x.test").secret_header("Authorization", "genie", "GenieKey ");
        assert_eq!(r.header_value("authorization"), Some(r#"{"$secret":"genie","prefix":"GenieKey "}"#));
    }
}
