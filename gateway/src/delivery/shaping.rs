//! Request shaping without plugins: method, url, custom headers and the payload as a JSON body or
//! as query parameters. This is what a webhook with no transformer plugin sends; with plugins, the
//! plugin output replaces it. The result is stored once per delivery, so every retry sends the
//! same bytes; auth and signing are added per attempt afterwards.
//!
//! Choices:
//! - **Body cap** (`SizeCaps::body_chars`, 20,000 characters as in Callgoose): an oversized body
//!   is **refused** with [`ShapeError::BodyTooLarge`] naming the cap. Callgoose discards the extra
//!   characters, but a cut JSON document is no longer JSON, and a receiver acting on half an
//!   incident is worse than a clear failure in the attempt log.
//! - **Query cap** (`SizeCaps::query_chars`, 10,000): measured on the unencoded `k=v&k=v` text,
//!   the characters the user wrote or the payload held (Callgoose counts after placeholder
//!   replacement); also refused, not cut.
//! - **Methods and send-as body**: POST, PUT, PATCH and DELETE carry the body (Callgoose offers a
//!   body for DELETE, and RFC 9110 allows it). GET and OPTIONS never carry one (many servers and
//!   proxies drop or reject it), so for them the payload travels as query parameters, exactly as
//!   with send-as query.
//! - **Query flattening**: the payload must be a JSON object (or null, for no parameters); each
//!   top-level field becomes one parameter. Strings go as they are, numbers and booleans as their
//!   JSON text, null as an empty value, arrays and objects JSON-encoded.
//! - **Custom headers** (`webhook.headers`, a string holding a JSON object as Grafana OnCall sends
//!   it): at most [`MAX_HEADERS`]. Values are strings as they are, other JSON values as their JSON
//!   text. Values containing Jinja `{{ }}` are sent as they are: rendering them is the template
//!   plugin's job. A headers string that is not JSON but holds template syntax (`{{` or `{%`) can
//!   only be read after rendering, so it is left entirely to the plugin layer and adds no headers
//!   here; a non-JSON string without template syntax is an error.
//! - `Content-Type: application/json` accompanies a body unless a custom header sets its own.
//!   Custom `Content-Length`, `Transfer-Encoding`, `Connection` and `Host` are refused: the HTTP
//!   client owns framing and routing.

use serde_json::Value;

use crate::model::{MAX_HEADERS, METHODS, PreparedRequest, SendAs, Webhook};

/// Size limits on what one request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeCaps {
    /// Most characters in a body (Callgoose: 20,000).
    pub body_chars: usize,
    /// Most characters in the query parameters, unencoded (Callgoose: 10,000).
    pub query_chars: usize,
}

impl Default for SizeCaps {
    fn default() -> Self {
        SizeCaps {
            body_chars: 20_000,
            query_chars: 10_000,
        }
    }
}

/// Why a webhook's request could not be shaped. These are configuration or payload problems, so a
/// retry would fail the same way (the delivery gives up; see `retry::AttemptResult::Invalid`).
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("http_method `{0}` is not supported (one of {methods})", methods = METHODS.join(", "))]
    Method(String),
    #[error("url `{url}` is not valid")]
    Url {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("headers must be a JSON object of header names to values")]
    Headers(#[source] Option<serde_json::Error>),
    #[error("headers has {count} entries; at most {max} custom headers are allowed")]
    TooManyHeaders { count: usize, max: usize },
    #[error("header `{0}` is not a valid header name or has an invalid value")]
    InvalidHeader(String),
    #[error("header `{0}` is set by the HTTP client and cannot be customised")]
    ReservedHeader(String),
    #[error("body is {len} characters, over the cap of {cap} (body_chars); it is refused, not cut")]
    BodyTooLarge { len: usize, cap: usize },
    #[error(
        "query parameters are {len} characters, over the cap of {cap} (query_chars); refused, not cut"
    )]
    QueryTooLarge { len: usize, cap: usize },
    #[error("sending as query parameters needs a JSON object payload, got {0}")]
    QueryNotObject(&'static str),
}

const RESERVED_HEADERS: &[&str] = &["content-length", "transfer-encoding", "connection", "host"];

/// Builds the request a webhook sends to `url` for `payload`, without plugins. See the module doc
/// for the rules.
pub fn shape_request(
    webhook: &Webhook,
    url: &str,
    payload: &Value,
    caps: &SizeCaps,
) -> Result<PreparedRequest, ShapeError> {
    let method = webhook.http_method.trim().to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(ShapeError::Method(webhook.http_method.clone()));
    }
    url::Url::parse(url).map_err(|source| ShapeError::Url {
        url: url.to_string(),
        source,
    })?;

    let mut headers = custom_headers(webhook.headers.as_deref())?;
    let body_allowed = matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
    let (query, body) = match webhook.send_as {
        SendAs::Body if body_allowed => {
            let body = payload.to_string();
            let len = body.chars().count();
            if len > caps.body_chars {
                return Err(ShapeError::BodyTooLarge {
                    len,
                    cap: caps.body_chars,
                });
            }
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".to_string(), "application/json".to_string()));
            }
            (vec![], Some(body))
        }
        SendAs::Body | SendAs::Query => (query_params(payload, caps)?, None),
    };
    Ok(PreparedRequest {
        method,
        url: url.to_string(),
        query,
        headers,
        body,
    })
}

/// Parses `webhook.headers` into name/value pairs (see the module doc).
fn custom_headers(raw: Option<&str>) -> Result<Vec<(String, String)>, ShapeError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(vec![]);
    };
    let object = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => return Ok(vec![]),
        Ok(_) => return Err(ShapeError::Headers(None)),
        Err(_) if raw.contains("{{") || raw.contains("{%") => return Ok(vec![]),
        Err(e) => return Err(ShapeError::Headers(Some(e))),
    };
    if object.len() > MAX_HEADERS {
        return Err(ShapeError::TooManyHeaders {
            count: object.len(),
            max: MAX_HEADERS,
        });
    }
    object
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if RESERVED_HEADERS
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
            {
                return Err(ShapeError::ReservedHeader(name));
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(&value).is_err()
            {
                return Err(ShapeError::InvalidHeader(name));
            }
            Ok((name, value))
        })
        .collect()
}

/// Flattens the payload's top-level fields into query parameters, within the cap.
fn query_params(payload: &Value, caps: &SizeCaps) -> Result<Vec<(String, String)>, ShapeError> {
    let map = match payload {
        Value::Object(map) => map,
        Value::Null => return Ok(vec![]),
        Value::Array(_) => return Err(ShapeError::QueryNotObject("an array")),
        Value::String(_) => return Err(ShapeError::QueryNotObject("a string")),
        Value::Number(_) => return Err(ShapeError::QueryNotObject("a number")),
        Value::Bool(_) => return Err(ShapeError::QueryNotObject("a boolean")),
    };
    let params: Vec<(String, String)> = map
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect();
    // `k=v` per parameter, joined by `&`.
    let len = params
        .iter()
        .map(|(k, v)| k.chars().count() + 1 + v.chars().count())
        .sum::<usize>()
        + params.len().saturating_sub(1);
    if len > caps.query_chars {
        return Err(ShapeError::QueryTooLarge {
            len,
            cap: caps.query_chars,
        });
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::auth::tests::webhook;
    use serde_json::json;

    const URL: &str = "https://example.com/hook";

    fn shape(wh: &Webhook, payload: &Value) -> Result<PreparedRequest, ShapeError> {
        shape_request(wh, URL, payload, &SizeCaps::default())
    }

    #[test]
    fn body_mode_posts_json() {
        let payload = json!({"event_type": "incident.triggered", "incident": {"id": "INC-1"}});
        let req = shape(&webhook(), &payload).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, URL);
        assert!(req.query.is_empty());
        assert_eq!(
            req.headers,
            vec![("Content-Type".to_string(), "application/json".to_string())]
        );
        assert_eq!(
            serde_json::from_str::<Value>(req.body.as_deref().unwrap()).unwrap(),
            payload
        );
    }

    #[test]
    fn query_mode_flattens_top_level_fields() {
        let wh = Webhook {
            send_as: SendAs::Query,
            http_method: "put".into(),
            ..webhook()
        };
        let payload = json!({"id": "INC-1", "n": 3, "ok": true, "none": null, "tags": ["a", "b"], "svc": {"id": "s1"}});
        let req = shape(&wh, &payload).unwrap();
        assert_eq!(req.method, "PUT");
        assert_eq!(req.body, None);
        assert!(req.headers.is_empty(), "no Content-Type without a body");
        let q: std::collections::HashMap<_, _> = req.query.into_iter().collect();
        assert_eq!(q["id"], "INC-1");
        assert_eq!(q["n"], "3");
        assert_eq!(q["ok"], "true");
        assert_eq!(q["none"], "");
        assert_eq!(q["tags"], r#"["a","b"]"#);
        assert_eq!(q["svc"], r#"{"id":"s1"}"#);
        assert!(matches!(
            shape(&wh, &json!([1])),
            Err(ShapeError::QueryNotObject("an array"))
        ));
    }

    #[test]
    fn get_and_options_send_the_payload_as_query_but_delete_keeps_the_body() {
        for m in ["GET", "OPTIONS"] {
            let req = shape(
                &Webhook {
                    http_method: m.into(),
                    ..webhook()
                },
                &json!({"a": 1}),
            )
            .unwrap();
            assert_eq!(
                (req.body, req.query),
                (None, vec![("a".to_string(), "1".to_string())]),
                "{m}"
            );
        }
        let req = shape(
            &Webhook {
                http_method: "DELETE".into(),
                ..webhook()
            },
            &json!({"a": 1}),
        )
        .unwrap();
        assert_eq!(req.body.as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn body_cap_refuses_instead_of_cutting() {
        let caps = SizeCaps {
            body_chars: 20,
            query_chars: 10,
        };
        // {"k":"<n chars>"} is n + 8 characters; multi-byte characters count once.
        let fits = json!({"k": "é".repeat(12)});
        assert!(shape_request(&webhook(), URL, &fits, &caps).is_ok());
        let over = json!({"k": "é".repeat(13)});
        let err = shape_request(&webhook(), URL, &over, &caps).unwrap_err();
        assert!(matches!(err, ShapeError::BodyTooLarge { len: 21, cap: 20 }));
        assert!(err.to_string().contains("20"), "{err}");
        // The default cap is Callgoose's 20,000.
        let big = json!({"k": "x".repeat(20_000)});
        assert!(matches!(
            shape(&webhook(), &big),
            Err(ShapeError::BodyTooLarge { cap: 20_000, .. })
        ));
    }

    #[test]
    fn query_cap_refuses_instead_of_cutting() {
        let wh = Webhook {
            send_as: SendAs::Query,
            ..webhook()
        };
        let caps = SizeCaps {
            body_chars: 20,
            query_chars: 10,
        };
        // "a=12&b=xyz" is 10 characters.
        assert!(shape_request(&wh, URL, &json!({"a": 12, "b": "xyz"}), &caps).is_ok());
        let err = shape_request(&wh, URL, &json!({"a": 12, "b": "xyzw"}), &caps).unwrap_err();
        assert!(matches!(
            err,
            ShapeError::QueryTooLarge { len: 11, cap: 10 }
        ));
        let big = json!({"k": "x".repeat(10_000)});
        assert!(matches!(
            shape(&wh, &big),
            Err(ShapeError::QueryTooLarge { cap: 10_000, .. })
        ));
    }

    #[test]
    fn custom_headers_from_a_json_string() {
        let wh = Webhook {
            headers: Some(r#"{"X-Team": "sre", "X-Count": 2, "content-type": "application/vnd.api+json", "X-Id": "{{ alert_group.id }}"}"#.into()),
            ..webhook()
        };
        let req = shape(&wh, &json!({})).unwrap();
        let h: std::collections::HashMap<_, _> = req.headers.into_iter().collect();
        assert_eq!(h["X-Team"], "sre");
        assert_eq!(h["X-Count"], "2");
        // A custom Content-Type wins over the default, and no second one is added.
        assert_eq!(h["content-type"], "application/vnd.api+json");
        assert!(!h.contains_key("Content-Type"));
        // Templated values go as they are; the template plugin renders them when configured.
        assert_eq!(h["X-Id"], "{{ alert_group.id }}");
    }

    #[test]
    fn header_templates_that_are_not_json_are_left_to_plugins() {
        let wh = Webhook {
            headers: Some(r#"{"X-Id": {{ alert_group.id | tojson }}}"#.into()),
            ..webhook()
        };
        let req = shape(&wh, &json!({})).unwrap();
        assert_eq!(
            req.headers,
            vec![("Content-Type".to_string(), "application/json".to_string())]
        );
        let bad = Webhook {
            headers: Some("X-Id: 1".into()),
            ..webhook()
        };
        assert!(matches!(
            shape(&bad, &json!({})),
            Err(ShapeError::Headers(Some(_)))
        ));
        let not_object = Webhook {
            headers: Some("[1]".into()),
            ..webhook()
        };
        assert!(matches!(
            shape(&not_object, &json!({})),
            Err(ShapeError::Headers(None))
        ));
    }

    #[test]
    fn header_limits_and_validity() {
        let many: serde_json::Map<String, Value> = (0..=MAX_HEADERS)
            .map(|i| (format!("X-{i}"), json!("v")))
            .collect();
        let wh = Webhook {
            headers: Some(Value::Object(many).to_string()),
            ..webhook()
        };
        assert!(matches!(
            shape(&wh, &json!({})),
            Err(ShapeError::TooManyHeaders { count: 21, max: 20 })
        ));
        let twenty: serde_json::Map<String, Value> = (0..MAX_HEADERS)
            .map(|i| (format!("X-{i}"), json!("v")))
            .collect();
        let wh = Webhook {
            headers: Some(Value::Object(twenty).to_string()),
            ..webhook()
        };
        assert_eq!(shape(&wh, &json!({})).unwrap().headers.len(), 21);

        let bad_name = Webhook {
            headers: Some(r#"{"X Bad": "v"}"#.into()),
            ..webhook()
        };
        assert!(matches!(
            shape(&bad_name, &json!({})),
            Err(ShapeError::InvalidHeader(_))
        ));
        let bad_value = Webhook {
            headers: Some(r#"{"X-A": "line\nbreak"}"#.into()),
            ..webhook()
        };
        assert!(matches!(
            shape(&bad_value, &json!({})),
            Err(ShapeError::InvalidHeader(_))
        ));
        let reserved = Webhook {
            headers: Some(r#"{"Content-Length": "5"}"#.into()),
            ..webhook()
        };
        assert!(matches!(
            shape(&reserved, &json!({})),
            Err(ShapeError::ReservedHeader(_))
        ));
    }

    #[test]
    fn method_and_url_are_checked() {
        let wh = Webhook {
            http_method: "TRACE".into(),
            ..webhook()
        };
        assert!(matches!(shape(&wh, &json!({})), Err(ShapeError::Method(_))));
        let err =
            shape_request(&webhook(), "not a url", &json!({}), &SizeCaps::default()).unwrap_err();
        assert!(matches!(err, ShapeError::Url { .. }));
    }
}
