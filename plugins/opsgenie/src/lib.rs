//! `opsgenie`: the Opsgenie Alert API, one alert per incident by `alias` (the incident id).
//!
//! The webhook's url is the API base: `https://api.opsgenie.com` (or `https://api.eu.opsgenie.com`).
//! - triggered or reopened -> `POST /v2/alerts` creating the alert with `alias` (Opsgenie keeps one
//!   open alert per alias);
//! - acknowledged -> `POST /v2/alerts/{alias}/acknowledge?identifierType=alias`;
//! - resolved -> `POST /v2/alerts/{alias}/close?identifierType=alias`;
//! - other incident events are skipped with the reason.
//!
//! The API key is a secret of the webhook (`"secrets": {"genie_key": "..."}`); the request
//! carries `Authorization: GenieKey <key>` as a placeholder the gateway fills in per attempt.
//!
//! Config (all optional): `{"url": "<override the base>", "priority": "P1".."P5" (default "P3"),
//! "responders": [{"type": "team", "name": "ops"}], "tags": ["..."], "alias_prefix": "...",
//! "incident_url": "https://.../{id}"}`.

use connector_kit::{Incident, Status, Summary, base_url, config_str, encode, skip_non_incident, truncate};
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};

pub struct Opsgenie;

/// The webhook secret holding the API key.
pub const KEY_SECRET: &str = "genie_key";

impl Transformer for Opsgenie {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("opsgenie", ctx) {
            return Ok(skip);
        }
        let base = base_url(ctx, config)?;
        let priority = config_str(config, "priority")?.unwrap_or("P3");
        if !matches!(priority, "P1" | "P2" | "P3" | "P4" | "P5") {
            return Err(Error::invalid_config("`priority` must be one of P1, P2, P3, P4, P5"));
        }
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        let alias = truncate(s.key(config_str(config, "alias_prefix")?.unwrap_or(""))?.into(), 512).into_owned();
        let note = |verb: &str| json!({"source": s.source, "user": "webhook-gateway", "note": format!("{verb} ({})", s.service)});
        let (url, body) = match s.status {
            Status::Triggered | Status::Reopened => {
                (format!("{base}/v2/alerts"), create(&s, &alias, priority, config)?)
            }
            Status::Acknowledged => (format!("{base}/v2/alerts/{}/acknowledge", encode(&alias)), note("Acknowledged")),
            Status::Resolved => (format!("{base}/v2/alerts/{}/close", encode(&alias)), note("Resolved")),
            other => {
                return Ok(Outcome::skip(format!(
                    "opsgenie: `{}` ({}) has no alert action",
                    ctx.event_type,
                    other.label().to_lowercase()
                )));
            }
        };
        let mut req = Request::post(&url).json(&body)?.secret_header("Authorization", KEY_SECRET, "GenieKey ");
        if !matches!(s.status, Status::Triggered | Status::Reopened) {
            req = req.query("identifierType", "alias");
        }
        Ok(Outcome::Send(req))
    }
}

gateway_sdk::transformer!(Opsgenie);

/// The create-alert body (message at most 130 characters, description 15,000).
fn create(s: &Summary, alias: &str, priority: &str, config: &Value) -> Result<Value> {
    let mut body = json!({
        "message": truncate(s.title.into(), 130),
        "alias": alias,
        "source": s.source,
        "entity": s.service,
        "priority": priority,
        "details": {
            "incident_id": s.id,
            "service": s.service,
            "alert_source": s.source,
            "assigned_to": s.assigned,
        },
    });
    if let Some(d) = s.description {
        body["description"] = json!(truncate(d.into(), 15000));
    }
    if let Some(link) = &s.link {
        body["details"]["link"] = json!(link);
    }
    for key in ["responders", "tags"] {
        match config.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Array(_)) => body[key] = v.clone(),
            Some(_) => return Err(Error::invalid_config(format!("`{key}` must be an array"))),
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    const BASE: &str = "https://api.opsgenie.com/";

    fn send(event_type: &str, text: &str, config: &Value) -> Request {
        let e = Event::from_json(text).unwrap();
        match Opsgenie::transform(&e, &samples::ctx(event_type, BASE), config).unwrap() {
            Outcome::Send(r) => r,
            Outcome::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn create_acknowledge_close_by_alias() {
        let key = r#"{"$secret":"genie_key","prefix":"GenieKey "}"#;
        let r = send("incident.triggered", samples::TRIGGERED, &json!({"tags": ["sev1"]}));
        assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://api.opsgenie.com/v2/alerts"));
        assert!(r.query.is_empty());
        assert_eq!(r.header_value("authorization"), Some(key));
        let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(b["message"], "Sample incident for testing webhooks");
        assert_eq!(b["alias"], "619cba1e749fd801ea1cd439");
        assert_eq!((b["entity"].as_str(), b["priority"].as_str()), (Some("Team 2 Service 1"), Some("P3")));
        assert_eq!(b["tags"], json!(["sev1"]));
        for (event_type, text, action) in [
            ("incident.acknowledged", samples::ACKNOWLEDGED, "acknowledge"),
            ("incident.resolved", samples::RESOLVED, "close"),
        ] {
            let r = send(event_type, text, &Value::Null);
            assert_eq!(r.method, "POST");
            assert_eq!(r.url, format!("https://api.opsgenie.com/v2/alerts/619cba1e749fd801ea1cd439/{action}"));
            assert_eq!(r.query, vec![("identifierType".to_string(), "alias".to_string())]);
            assert_eq!(r.header_value("authorization"), Some(key));
            let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            assert_eq!(b["source"], "Squadcast UI");
        }
    }

    #[test]
    fn skips_and_config_errors() {
        let e = Event::from_json(samples::REASSIGNED).unwrap();
        let out = Opsgenie::transform(&e, &samples::ctx("incident.reassigned", BASE), &Value::Null).unwrap();
        assert!(matches!(out, Outcome::Skip(why) if why.contains("reassigned")));
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        for (config, key) in [(json!({"priority": "high"}), "`priority`"), (json!({"tags": "x"}), "`tags`")] {
            let bad = Opsgenie::transform(&e, &samples::ctx("incident.triggered", BASE), &config);
            assert!(matches!(bad, Err(Error::InvalidConfig(m)) if m.contains(key)));
        }
    }
}
