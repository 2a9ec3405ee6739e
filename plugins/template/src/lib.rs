//! `template`: renders Jinja templates (minijinja 3) against the event, so Grafana OnCall's `data`,
//! `url` and `headers` templates work unchanged.
//!
//! Config: `{"body": "<jinja>", "headers": {"Name": "<jinja>"} | "<jinja of a JSON object>",
//! "url": "<jinja>", "method": "PUT", "query": {"name": "<jinja>"}}`; every key is optional.
//! Without `url`/`method` the webhook's own are used; without `body` no body is sent.
//!
//! The template sees the event's top-level fields (`alert_payload.commonLabels`, `message`, ...),
//! the whole event as `event` (unless the event has an `event` field, as OnCall's do), the
//! delivery as `webhook` (`id`, `name`, `event_type`, `delivery_id`, `url`, `method`, `now_ms`,
//! `attempt`) and, in a chain, the previous plugin's request as `previous` (`method`, `url`,
//! `query` and `headers` as `[name, value]` pairs, `body`).
//!
//! `tojson` works as a filter (`x | tojson`, `x | tojson()`) and as a function (`tojson(x)`), and
//! prints like Jinja2's: sorted keys, `", "` and `": "` separators, `<>&'` escaped. A body that
//! parses as JSON is sent with `content-type: application/json`, anything else as `text/plain`.

use gateway_sdk::serde_json::{self, Map, Value};
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};
use serde::de::IgnoredAny;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Serde, Value as JValue};
use minijinja::{Environment, ErrorKind};

pub struct Template;

impl Transformer for Template {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        render(event, ctx, config).map(Outcome::Send)
    }
}

gateway_sdk::transformer!(Template);

/// Enough for any reasonable template; a runaway loop fails with a clear error before the host's
/// CPU deadline.
const FUEL: u64 = 20_000_000;

/// Renders the request described by `config` (pure; unit-tested natively).
pub fn render(event: &Event, ctx: &Context, config: &Value) -> Result<Request> {
    let config = match config {
        Value::Object(map) => map,
        Value::Null => return Err(Error::invalid_config("template needs a config object with `body`")),
        _ => return Err(Error::invalid_config("config must be a JSON object")),
    };
    let env = environment();
    let vars = JValue::from_object(Variables::new(event, ctx));
    let render_one = |what: &str, source: &str| -> Result<String> {
        env.render_str(source, vars.clone())
            .map_err(|e| Error::invalid_config(format!("{what} template: {}", describe(&e))))
    };
    let text = |key: &str| -> Result<Option<&str>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid_config(format!("`{key}` must be a string"))),
        }
    };

    let url = match text("url")? {
        Some(t) => render_one("url", t)?.trim().to_string(),
        None => ctx.url.clone(),
    };
    let method = text("method")?.map(str::to_string).unwrap_or_else(|| ctx.method.clone());
    let mut req = Request::new(if method.is_empty() { "POST" } else { &method }, &url);

    if let Some(source) = text("body")? {
        let body = render_one("body", source)?;
        let kind = if serde_json::from_str::<IgnoredAny>(&body).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        req = req.header("content-type", kind).body(body);
    }
    match config.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(headers)) => {
            for (name, v) in headers {
                let v = match v {
                    Value::String(s) => render_one("header", s)?,
                    other => other.to_string(),
                };
                req = req.set_header(name.clone(), v);
            }
        }
        // Grafana OnCall sends headers as a string holding a JSON object, itself a template.
        Some(Value::String(source)) => {
            let rendered = render_one("headers", source)?;
            let parsed: Map<String, Value> = serde_json::from_str(&rendered)
                .map_err(|e| Error::invalid_config(format!("headers did not render to a JSON object: {e}")))?;
            for (name, v) in parsed {
                let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                req = req.set_header(name, v);
            }
        }
        Some(_) => return Err(Error::invalid_config("`headers` must be an object or a string")),
    }
    if let Some(Value::Object(query)) = config.get("query") {
        for (name, v) in query {
            let v = match v {
                Value::String(s) => render_one("query", s)?,
                other => other.to_string(),
            };
            req = req.query(name.clone(), v);
        }
    }
    Ok(req)
}

/// The template's variables: the event's own top-level fields, then `event` (the whole event),
/// `webhook` and, in a chain, `previous`, unless the event has fields of those names (Grafana
/// OnCall events have their own `event`). A field becomes a template value only when a template
/// reads it: templates read a few fields of an event, and converting (and copying) the whole
/// event for every call was most of this plugin's work.
#[derive(Debug)]
struct Variables {
    event: Value,
    webhook: Value,
    previous: Option<Value>,
}

impl Variables {
    fn new(event: &Event, ctx: &Context) -> Self {
        // Parsed here into a tree this object owns (the event's own cache is borrowed).
        let event = serde_json::from_str(event.json()).unwrap_or(Value::Null);
        let webhook = serde_json::json!({
            "id": ctx.webhook_id, "name": ctx.webhook_name, "event_type": ctx.event_type,
            "delivery_id": ctx.delivery_id, "url": ctx.url, "method": ctx.method,
            "now_ms": ctx.now_ms, "attempt": ctx.attempt,
        });
        let previous = ctx.previous.as_ref().map(|prev| {
            let pairs = |v: &[(String, String)]| v.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>();
            serde_json::json!({
                "method": prev.method, "url": prev.url, "query": pairs(&prev.query),
                "headers": pairs(&prev.headers), "body": prev.body,
            })
        });
        Variables { event, webhook, previous }
    }

    fn lookup(&self, key: &str) -> Option<&Value> {
        if let Some(v) = self.event.as_object().and_then(|m| m.get(key)) {
            return Some(v);
        }
        match key {
            "event" => Some(&self.event),
            "webhook" => Some(&self.webhook),
            "previous" => self.previous.as_ref(),
            _ => None,
        }
    }
}

impl Object for Variables {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        self.lookup(key.as_str()?).map(|v| JValue::from(Serde(v)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<JValue> =
            self.event.as_object().map(|m| m.keys().map(|k| JValue::from(k.as_str())).collect()).unwrap_or_default();
        for extra in ["event", "webhook", "previous"] {
            let own = self.event.as_object().is_some_and(|m| m.contains_key(extra));
            if !own && (extra != "previous" || self.previous.is_some()) {
                keys.push(JValue::from(extra));
            }
        }
        Enumerator::Values(keys)
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.add_filter("tojson", tojson);
    env.add_function("tojson", tojson);
    env
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// Jinja2's `tojson`: `json.dumps(value, sort_keys=True)` with `<>&'` escaped for HTML safety.
fn tojson(value: JValue, indent: Option<JValue>, kwargs: Kwargs) -> std::result::Result<JValue, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "Object of type Undefined is not JSON serializable",
        ));
    }
    let indent: Option<usize> = match indent {
        Some(v) => Some(usize::try_from(v)?),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("not JSON serializable: {e}")))?;
    let mut out = String::new();
    python_dumps(&json, indent, 0, &mut out);
    let out = out.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('\'', "\\u0027");
    Ok(JValue::from_safe_string(out))
}

/// Python's `json.dumps` layout: sorted keys; `", "`/`": "` inline, or one item per line with
/// `indent` spaces.
fn python_dumps(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                python_dumps(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                python_dumps(&map[k], indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grafana_event() -> Event {
        Event::from_value(json!({
            "event": {"type": "acknowledge"},
            "alert_payload": {"commonLabels": {"job": "node", "severity": "critical", "alertname": "InstanceDown"}},
            "message": "<b>down</b>"
        }))
    }

    fn ctx() -> Context {
        Context {
            url: "https://example.com".into(),
            method: "POST".into(),
            event_type: "incident.acknowledged".into(),
            ..Default::default()
        }
    }

    #[test]
    fn grafana_data_template_with_tojson_call_parens() {
        let config = json!({"body": "{\"labels\" : {{ alert_payload.commonLabels | tojson()}}}"});
        let req = render(&grafana_event(), &ctx(), &config).unwrap();
        assert_eq!(
            req.body.as_deref(),
            Some(r#"{"labels" : {"alertname": "InstanceDown", "job": "node", "severity": "critical"}}"#)
        );
        assert_eq!(req.header_value("content-type"), Some("application/json"));
        assert_eq!((req.method.as_str(), req.url.as_str()), ("POST", "https://example.com"));
    }

    #[test]
    fn tojson_as_function_filter_and_with_indent() {
        let config = json!({"body": "{{ tojson(message) }} {{ message | tojson }} {{ [1, 2] | tojson(indent=2) }}"});
        let req = render(&grafana_event(), &ctx(), &config).unwrap();
        assert_eq!(
            req.body.as_deref(),
            Some("\"\\u003cb\\u003edown\\u003c/b\\u003e\" \"\\u003cb\\u003edown\\u003c/b\\u003e\" [\n  1,\n  2\n]")
        );
    }

    #[test]
    fn undefined_in_tojson_is_an_error_like_oncall() {
        let config = json!({"body": "{{ nothing | tojson }}"});
        let err = render(&grafana_event(), &ctx(), &config).unwrap_err();
        assert!(err.to_string().contains("Undefined is not JSON serializable"), "{err}");
    }

    #[test]
    fn headers_string_url_and_query_are_templates() {
        let config = json!({
            "body": "hi {{ webhook.event_type }}",
            "headers": "{\"X-Type\": \"{{ event.type }}\"}",
            "url": "https://x.test/{{ event.type }}",
            "query": {"sev": "{{ alert_payload.commonLabels.severity }}"}
        });
        let req = render(&grafana_event(), &ctx(), &config).unwrap();
        assert_eq!(req.body.as_deref(), Some("hi incident.acknowledged"));
        assert_eq!(req.header_value("x-type"), Some("acknowledge"));
        assert_eq!(req.header_value("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(req.url, "https://x.test/acknowledge");
        assert_eq!(req.query, vec![("sev".to_string(), "critical".to_string())]);
    }

    #[test]
    fn the_events_own_fields_come_before_event_webhook_and_previous() {
        // A Squadcast-style event without those fields: `event` is the whole event.
        let plain = Event::from_value(json!({"message": "m", "service": {"name": "api"}}));
        let config =
            json!({"body": "{{ event.service.name }} {{ message }} {{ webhook.method }} {{ previous is undefined }}"});
        assert_eq!(render(&plain, &ctx(), &config).unwrap().body.as_deref(), Some("api m POST True"));
        // Fields of those names in the event win, as they did when the variables were one map.
        let own = Event::from_value(json!({"webhook": "mine", "previous": 1, "event": {"type": "t"}}));
        let mut c = ctx();
        c.previous = Some(Request::post("https://a.test").body("inner"));
        let config = json!({"body": "{{ webhook }} {{ previous }} {{ event.type }} {{ nothing is undefined }}"});
        assert_eq!(render(&own, &c, &config).unwrap().body.as_deref(), Some("mine 1 t True"));
    }

    #[test]
    fn chain_sees_the_previous_request() {
        let mut c = ctx();
        c.previous = Some(Request::post("https://a.test").body("inner"));
        let req = render(&grafana_event(), &c, &json!({"body": "wrapped({{ previous.body }})"})).unwrap();
        assert_eq!(req.body.as_deref(), Some("wrapped(inner)"));
    }

    #[test]
    fn syntax_errors_and_runaway_loops_are_config_errors() {
        let bad = render(&grafana_event(), &ctx(), &json!({"body": "{% if %}"})).unwrap_err();
        assert!(matches!(bad, Error::InvalidConfig(_)));
        let looping =
            json!({"body": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"});
        assert!(matches!(render(&grafana_event(), &ctx(), &looping), Err(Error::InvalidConfig(_))));
    }
}
