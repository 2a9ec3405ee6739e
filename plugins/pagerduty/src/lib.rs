//! `pagerduty`: PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`, the
//! webhook's url). One incident is one PagerDuty alert: `dedup_key` is the incident id, so a
//! trigger opens the alert and the acknowledge / resolve of the same incident act on it.
//!
//! Event actions: triggered (also reopened, unacknowledged) -> `trigger`; acknowledged ->
//! `acknowledge`; resolved -> `resolve`. Other incident events (reassigned, escalated, ...) have
//! no Events API action and are skipped with that reason.
//!
//! The integration's `routing_key` is a secret of the webhook (`"secrets": {"routing_key":
//! "..."}`): the body carries the placeholder `{"$secret": "routing_key"}` and the gateway puts
//! the key in on each attempt, so neither this plugin nor the stored delivery holds it.
//!
//! Config (all optional): `{"url": "<override>", "severity": "critical"|"error"|"warning"|"info"
//! (default "critical"), "dedup_prefix": "<prepended to the incident id>", "incident_url":
//! "https://.../{id}"}`.

use connector_kit::{Incident, Status, Summary, config_str, skip_non_incident, target_url, truncate};
use gateway_sdk::request::secret;
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};

pub struct PagerDuty;

/// The webhook secret holding the integration key.
pub const ROUTING_SECRET: &str = "routing_key";

const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

impl Transformer for PagerDuty {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("pagerduty", ctx) {
            return Ok(skip);
        }
        let url = target_url(ctx, config)?;
        let severity = config_str(config, "severity")?.unwrap_or("critical");
        if !SEVERITIES.contains(&severity) {
            return Err(Error::invalid_config(format!("`severity` must be one of {}", SEVERITIES.join(", "))));
        }
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        let action = match s.status {
            Status::Triggered | Status::Reopened => "trigger",
            Status::Acknowledged => "acknowledge",
            Status::Resolved => "resolve",
            other => {
                return Ok(Outcome::skip(format!(
                    "pagerduty: `{}` ({}) has no Events API action",
                    ctx.event_type,
                    other.label().to_lowercase()
                )));
            }
        };
        let dedup_key = truncate(s.key(config_str(config, "dedup_prefix")?.unwrap_or(""))?.into(), 255).into_owned();
        let mut body = json!({
            "routing_key": secret(ROUTING_SECRET),
            "event_action": action,
            "dedup_key": dedup_key,
        });
        if action == "trigger" {
            body["payload"] = payload(&s, severity);
            body["client"] = json!("webhook-gateway");
            if let Some(link) = &s.link {
                body["client_url"] = json!(link);
                body["links"] = json!([{"href": link, "text": "Open incident"}]);
            }
        }
        Ok(Outcome::Send(Request::post(url).json(&body)?))
    }
}

gateway_sdk::transformer!(PagerDuty);

/// The trigger's `payload` (summary at most 1024 characters, as the API requires).
fn payload(s: &Summary, severity: &str) -> Value {
    let mut p = json!({
        "summary": truncate(format!("{} ({})", s.title, s.service).into(), 1024),
        "source": s.source,
        "severity": severity,
        "component": s.service,
        "class": s.source,
        "custom_details": {
            "incident_id": s.id,
            "status": s.status.label(),
            "service": s.service,
            "alert_source": s.source,
            "assigned_to": s.assigned,
            "description": s.description,
        }
    });
    if let Some(c) = s.created {
        p["timestamp"] = json!(c);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    const URL: &str = "https://events.pagerduty.com/v2/enqueue";

    fn run(event_type: &str, text: &str, config: &Value) -> Outcome {
        PagerDuty::transform(&Event::from_json(text).unwrap(), &samples::ctx(event_type, URL), config).unwrap()
    }

    fn body(event_type: &str, text: &str, config: &Value) -> Value {
        let Outcome::Send(r) = run(event_type, text, config) else { panic!("skipped") };
        assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", URL));
        assert_eq!(r.headers, vec![("content-type".to_string(), "application/json".to_string())]);
        serde_json::from_str(r.body.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn trigger_is_the_documented_event() {
        let b = body("incident.triggered", samples::TRIGGERED, &json!({"incident_url": "https://app.test/{id}"}));
        assert_eq!(b["routing_key"], json!({"$secret": "routing_key"}));
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["dedup_key"], "619cba1e749fd801ea1cd439");
        let p = &b["payload"];
        assert_eq!(p["summary"], "Sample incident for testing webhooks (Team 2 Service 1)");
        assert_eq!((p["source"].as_str(), p["severity"].as_str()), (Some("Squadcast UI"), Some("critical")));
        assert_eq!(p["timestamp"], "2021-11-23T09:53:34.626Z");
        assert_eq!(p["custom_details"]["assigned_to"], "escalationpolicy 617411dcc6991e7406f95ec5");
        assert_eq!(b["links"], json!([{"href": "https://app.test/619cba1e749fd801ea1cd439", "text": "Open incident"}]));
    }

    #[test]
    fn trigger_acknowledge_resolve_share_one_dedup_key() {
        let keys: Vec<(String, String)> = [
            ("incident.triggered", samples::TRIGGERED),
            ("incident.acknowledged", samples::ACKNOWLEDGED),
            ("incident.resolved", samples::RESOLVED),
        ]
        .into_iter()
        .map(|(t, text)| {
            let b = body(t, text, &json!({"dedup_prefix": "sq-"}));
            (b["event_action"].as_str().unwrap().to_string(), b["dedup_key"].as_str().unwrap().to_string())
        })
        .collect();
        let actions: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
        assert!(keys.iter().all(|k| k.1 == "sq-619cba1e749fd801ea1cd439"), "{keys:?}");
        let resolve = body("incident.resolved", samples::RESOLVED, &Value::Null);
        assert!(resolve.get("payload").is_none(), "resolve carries no payload: {resolve}");
    }

    #[test]
    fn reassignment_is_skipped_and_bad_config_named() {
        let out = run("incident.reassigned", samples::REASSIGNED, &Value::Null);
        assert!(matches!(out, Outcome::Skip(why) if why.contains("no Events API action")));
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        let bad = PagerDuty::transform(&e, &samples::ctx("incident.triggered", URL), &json!({"severity": "high"}));
        assert!(matches!(bad, Err(Error::InvalidConfig(m)) if m.contains("`severity`")));
        let no_id = PagerDuty::transform(
            &Event::from_json(r#"{"status": "triggered"}"#).unwrap(),
            &samples::ctx("incident.triggered", URL),
            &Value::Null,
        );
        assert!(matches!(no_id, Err(Error::InvalidEvent(_))));
    }
}
