//! `placeholders`: Callgoose SQIBS payloads. `{{incident.id}}`-style placeholders and
//! `{{{ if(incident.urgency==high) return("high"); return("none"); }}}` conditional blocks.
//!
//! Config: `{"body": "<payload>"}` (send as body) and/or `{"query": {"name": "<value>"}}` (send as
//! query parameters), optional `"headers": {..}` (values may hold placeholders), `"url"`, `"method"`,
//! `"body_limit"` (default 20,000 characters) and `"query_limit"` (default 10,000 characters per
//! parameter): extra characters are discarded, as Callgoose does. `"escape": "json" | "none"`
//! chooses how values are written into the body; the default is `json` (string-escaped) when the
//! body template looks like JSON, so a quote in a title cannot break the payload.
//!
//! Placeholders: `incident.id` (event `id`), `incident.title` (`message` or `title`),
//! `incident.description`, `incident.urgency` (`urgency`, else `severity`), `incident.status`,
//! `incident.url` (`url`, else `incident_url`), `incident.mapped_with`, `webhook.id`,
//! `webhook.event` (Callgoose names: `incident.created` for a triggered incident), `user`
//! (a string, or a user's `name`/`email`/`id`), `timestamp` (`yyyy-MM-ddTHH:mmZ` of the delivery's
//! `now`), and any event field as `event.<dotted.path>`. Unknown placeholders are left as written.
//!
//! Conditions follow Callgoose's rules: `if(placeholder==value) return(result);` in order, then a
//! stand-alone `return(result);` as the else. `result` is written as is (quotes included) after
//! placeholder replacement. `incident_urgency` is read as `incident.urgency`.

use gateway_sdk::serde_json::Value;
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};

pub struct Placeholders;

impl Transformer for Placeholders {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        build(event, ctx, config).map(Outcome::Send)
    }
}

gateway_sdk::transformer!(Placeholders);

pub const DEFAULT_BODY_LIMIT: usize = 20_000;
pub const DEFAULT_QUERY_LIMIT: usize = 10_000;

/// How substituted values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    None,
    /// As the inside of a JSON string.
    Json,
}

/// Builds the request from the config (pure; unit-tested natively).
pub fn build(event: &Event, ctx: &Context, config: &Value) -> Result<Request> {
    let Value::Object(cfg) = config else {
        return Err(Error::invalid_config("placeholders needs a config object with `body` or `query`"));
    };
    let limit = |key: &str, default: usize| -> Result<usize> {
        match cfg.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => {
                v.as_u64().map(|n| n as usize).ok_or_else(|| Error::invalid_config(format!("`{key}` must be a number")))
            }
        }
    };
    let str_of = |key: &str| -> Result<Option<&str>> {
        match cfg.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid_config(format!("`{key}` must be a string"))),
        }
    };
    let (body_limit, query_limit) =
        (limit("body_limit", DEFAULT_BODY_LIMIT)?, limit("query_limit", DEFAULT_QUERY_LIMIT)?);
    if str_of("body")?.is_none() && cfg.get("query").is_none() {
        return Err(Error::invalid_config("set `body` and/or `query`"));
    }
    let vars = Vars { event, ctx };
    let url = match str_of("url")? {
        Some(u) => render(u, &vars, Escape::None),
        None => ctx.url.clone(),
    };
    let method = str_of("method")?.unwrap_or(if ctx.method.is_empty() { "POST" } else { &ctx.method });
    let mut req = Request::new(method, &url);
    if let Some(body) = str_of("body")? {
        let escape = match str_of("escape")? {
            Some("none") => Escape::None,
            Some("json") => Escape::Json,
            Some(other) => {
                return Err(Error::invalid_config(format!("`escape` must be `json` or `none`, not `{other}`")));
            }
            None if body.trim_start().starts_with(['{', '[']) => Escape::Json,
            None => Escape::None,
        };
        let rendered = cap(render(body, &vars, escape), body_limit);
        let kind = if gateway_sdk::serde_json::from_str::<Value>(&rendered).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        req = req.header("content-type", kind).body(rendered);
    }
    if let Some(query) = cfg.get("query") {
        let Value::Object(query) = query else { return Err(Error::invalid_config("`query` must be an object")) };
        for (name, v) in query {
            let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            req = req.query(name.clone(), cap(render(&v, &vars, Escape::None), query_limit));
        }
    }
    if let Some(Value::Object(headers)) = cfg.get("headers") {
        for (name, v) in headers {
            let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            req = req.set_header(name.clone(), render(&v, &vars, Escape::None));
        }
    }
    Ok(req)
}

/// Keeps the first `max` characters.
fn cap(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s,
    }
}

/// Where placeholder values come from.
pub struct Vars<'a> {
    pub event: &'a Event,
    pub ctx: &'a Context,
}

impl Vars<'_> {
    /// The value of a placeholder name (`incident.id`); `None` when the name is unknown.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.trim();
        let name =
            name.strip_prefix("incident_").map(|rest| format!("incident.{rest}")).unwrap_or_else(|| name.to_string());
        let e = self.event;
        let text =
            |paths: &[&str]| -> String { paths.iter().find_map(|p| e.get(p).and_then(scalar)).unwrap_or_default() };
        Some(match name.as_str() {
            "incident.id" => text(&["id", "incident_id"]),
            "incident.title" => text(&["message", "title"]),
            "incident.description" => text(&["description"]),
            "incident.urgency" => text(&["urgency", "severity"]),
            "incident.status" => text(&["status"]),
            "incident.url" => text(&["url", "incident_url"]),
            "incident.mapped_with" => text(&["mapped_with"]),
            "webhook.id" => self.ctx.webhook_id.clone(),
            "webhook.event" => callgoose_event(&self.ctx.event_type).to_string(),
            "user" => text(&["user.name", "user.email", "user.id", "user", "created_by"]),
            "timestamp" => timestamp(self.ctx.now_ms),
            other => {
                let path = other.strip_prefix("event.")?;
                e.get(path).map(|v| scalar(v).unwrap_or_else(|| v.to_string()))?
            }
        })
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Callgoose's event names for the canonical ones.
fn callgoose_event(canonical: &str) -> &str {
    match canonical {
        "incident.triggered" => "incident.created",
        other => other,
    }
}

/// `yyyy-MM-ddTHH:mmZ` (UTC) of unix milliseconds.
pub fn timestamp(ms: i64) -> String {
    let t = gateway_sdk::time::utc(ms);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}Z", t.year, t.month, t.day, t.hour, t.minute)
}

/// Replaces `{{{ ... }}}` blocks and `{{name}}` placeholders in `template`.
pub fn render(template: &str, vars: &Vars, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(inner) = after.strip_prefix("{{{")
            && let Some(end) = inner.find("}}}")
        {
            out.push_str(&condition(&inner[..end], vars, escape));
            rest = &inner[end + 3..];
            continue;
        }
        let inner = &after[2..];
        match inner.find("}}") {
            Some(end) => {
                let name = &inner[..end];
                match vars.get(name) {
                    Some(v) => out.push_str(&escaped(&v, escape)),
                    None => out.push_str(&after[..end + 4]),
                }
                rest = &inner[end + 2..];
            }
            None => {
                out.push_str(after);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn escaped(v: &str, escape: Escape) -> String {
    match escape {
        Escape::None => v.to_string(),
        Escape::Json => {
            let quoted = Value::String(v.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }
    }
}

/// Evaluates `if(a==b) return(x); ...; return(y);`: the first true `if` wins, else the
/// stand-alone `return`, else nothing.
fn condition(block: &str, vars: &Vars, escape: Escape) -> String {
    let mut fallback = None;
    for stmt in split_statements(block) {
        let stmt = stmt.trim();
        if let Some(rest) = stmt.strip_prefix("if")
            && let Some((test, value)) = parse_if(rest)
        {
            if let Some((lhs, rhs)) = test.split_once("==") {
                let actual = vars.get(lhs).unwrap_or_default();
                if actual == rhs.trim() {
                    return render(value, vars, escape);
                }
            }
        } else if let Some(value) = parse_return(stmt) {
            fallback.get_or_insert(value);
        }
    }
    fallback.map(|v| render(v, vars, escape)).unwrap_or_default()
}

/// Splits on `;` outside double quotes and parentheses.
fn split_statements(block: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut quoted, mut start) = (Vec::new(), 0i32, false, 0);
    for (i, c) in block.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ';' if !quoted && depth <= 0 => {
                parts.push(&block[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&block[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// `(test) return(value)` -> (test, value).
fn parse_if(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start().strip_prefix('(')?;
    let close = rest.find(')')?;
    Some((&rest[..close], parse_return(rest[close + 1..].trim())?))
}

/// `return(value)` or `return (value)` -> value.
fn parse_return(stmt: &str) -> Option<&str> {
    let inner = stmt.strip_prefix("return")?.trim_start().strip_prefix('(')?;
    inner.strip_suffix(')')
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::serde_json::json;

    /// The custom payload example of Callgoose's documentation (seed 002), verbatim.
    const SEED_TEMPLATE: &str = r#"{  "id" : "{{incident.id}}",  "title" : "{{incident.title}}",  "urgency" : {{{ if(incident.urgency==high) return("high"); if(incident_urgency==low) return("low"); return ("none"); }}}}"#;
    const SEED_OUTPUT: &str = r#"{  "id" : "INC-123",  "title" : "Its a title",  "urgency" : "high"}"#;

    fn ctx() -> Context {
        Context {
            webhook_id: "wh_1".into(),
            event_type: "incident.triggered".into(),
            url: "https://receiver.test/hook".into(),
            method: "POST".into(),
            now_ms: 1_685_549_253_000,
            ..Default::default()
        }
    }

    fn event(urgency: &str) -> Event {
        Event::from_value(json!({"id": "INC-123", "message": "Its a title", "urgency": urgency, "status": "triggered"}))
    }

    #[test]
    fn seed_002_example_gives_its_documented_output() {
        let req = build(&event("high"), &ctx(), &json!({ "body": SEED_TEMPLATE })).unwrap();
        assert_eq!(req.body.as_deref(), Some(SEED_OUTPUT));
        assert_eq!(req.header_value("content-type"), Some("application/json"));
    }

    #[test]
    fn conditions_fall_through_to_the_standalone_return() {
        let vars_low = event("low");
        let vars_other = event("medium");
        let c = ctx();
        let t = r#"{{{ if(incident.urgency==high) return("high"); if(incident_urgency==low) return("low"); return ("none"); }}}"#;
        assert_eq!(render(t, &Vars { event: &vars_low, ctx: &c }, Escape::None), r#""low""#);
        assert_eq!(render(t, &Vars { event: &vars_other, ctx: &c }, Escape::None), r#""none""#);
    }

    #[test]
    fn webhook_and_timestamp_placeholders() {
        let e = event("high");
        let c = ctx();
        let v = Vars { event: &e, ctx: &c };
        assert_eq!(
            render("{{webhook.id}} {{webhook.event}} {{timestamp}} {{nope}}", &v, Escape::None),
            "wh_1 incident.created 2023-05-31T16:07Z {{nope}}"
        );
        assert_eq!(
            render("{{{ if(webhook.event==incident.created) return(new); return(old); }}}", &v, Escape::None),
            "new"
        );
        assert_eq!(timestamp(0), "1970-01-01T00:00Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00Z");
    }

    #[test]
    fn json_escaping_keeps_the_payload_valid() {
        let e = Event::from_value(json!({"id": "1", "message": "say \"hi\""}));
        let req = build(&e, &ctx(), &json!({"body": "{\"t\": \"{{incident.title}}\"}"})).unwrap();
        assert_eq!(req.body.as_deref(), Some(r#"{"t": "say \"hi\""}"#));
    }

    #[test]
    fn query_mode_caps_values_and_body_cap_is_configurable() {
        let e = Event::from_value(json!({"id": "1", "message": "x".repeat(12_000)}));
        let req =
            build(&e, &ctx(), &json!({"query": {"title": "{{incident.title}}", "id": "{{incident.id}}"}})).unwrap();
        assert_eq!(req.body, None);
        let q = |name: &str| req.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(q("title").len(), DEFAULT_QUERY_LIMIT);
        assert_eq!(q("id"), "1");
        let req = build(&e, &ctx(), &json!({"body": "{{incident.title}}", "body_limit": 5})).unwrap();
        assert_eq!(req.body.as_deref(), Some("xxxxx"));
        let req = build(&e, &ctx(), &json!({"body": "{{incident.title}}"})).unwrap();
        assert_eq!(req.body.unwrap().len(), 12_000);
    }

    #[test]
    fn missing_body_and_query_is_a_config_error() {
        assert!(matches!(build(&event("high"), &ctx(), &json!({})), Err(Error::InvalidConfig(_))));
    }
}
