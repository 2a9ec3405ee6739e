//! `zendesk`: a Zendesk Support ticket per incident, found again by `external_id` (the incident
//! id).
//!
//! The webhook's url is the account, `https://<subdomain>.zendesk.com`, with the webhook's basic
//! auth set to `<agent email>/token` and an API token.
//! - triggered -> `POST /api/v2/tickets.json`: subject, first comment, `external_id`, priority,
//!   type `incident`, tags;
//! - acknowledged / reopened / resolved / reassigned: Zendesk documents no single request that
//!   updates a *ticket* by `external_id` (its Update Many Tickets takes ticket `ids`; the
//!   `external_ids` parameter is documented for users and organizations only), and the gateway
//!   does not keep the ticket id Zendesk answers. So by default these events are skipped with
//!   that reason. With `"update_by_external_id": true` they are sent as
//!   `PUT /api/v2/tickets/update_many.json?external_ids=<id>` (undocumented for tickets: use it
//!   only after checking it works on your account) with an internal comment, and status `open`
//!   (acknowledged, reopened) or `solved` (resolved);
//! - other incident events are skipped with the reason.
//!
//! Config: `{"priority": "urgent"|"high"|"normal"|"low" (default "high"), "tags": ["..."],
//! "update_by_external_id": false, "url": "<override>", "incident_url": "https://.../{id}"}`.

use connector_kit::{Incident, Status, Summary, base_url, config_str, skip_non_incident, truncate};
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};

pub struct Zendesk;

impl Transformer for Zendesk {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("zendesk", ctx) {
            return Ok(skip);
        }
        let base = base_url(ctx, config)?;
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        let external_id = s.key("")?;
        let note = format!("{} in {} ({}); assigned to {}", s.status.label(), s.service, s.source, s.assigned);
        let update = |status: Option<&str>| {
            let mut ticket = json!({"comment": {"body": note, "public": false}});
            if let Some(st) = status {
                ticket["status"] = json!(st);
            }
            json!({"ticket": ticket})
        };
        if s.status != Status::Triggered && s.status != Status::Updated && !update_by_external_id(config)? {
            return Ok(Outcome::skip(format!(
                "zendesk: `{}` not sent: Zendesk documents no request that updates a ticket by external_id \
                 (set `update_by_external_id: true` to use tickets/update_many.json?external_ids=, \
                 which Zendesk documents for users and organizations only)",
                ctx.event_type
            )));
        }
        let (req, body) = match s.status {
            Status::Triggered => {
                (Request::post(&format!("{base}/api/v2/tickets.json")), create(&s, &external_id, config)?)
            }
            Status::Acknowledged | Status::Reopened => (many(base, &external_id), update(Some("open"))),
            Status::Resolved => (many(base, &external_id), update(Some("solved"))),
            Status::Reassigned => (many(base, &external_id), update(None)),
            Status::Updated => {
                return Ok(Outcome::skip(format!("zendesk: `{}` changes nothing on the ticket", ctx.event_type)));
            }
        };
        Ok(Outcome::Send(req.json(&body)?))
    }
}

gateway_sdk::transformer!(Zendesk);

/// Whether follow-up events use the update_many `external_ids` request (opt-in).
fn update_by_external_id(config: &Value) -> Result<bool> {
    match config.get("update_by_external_id") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::invalid_config("`update_by_external_id` must be true or false")),
    }
}

fn many(base: &str, external_id: &str) -> Request {
    Request::new("PUT", &format!("{base}/api/v2/tickets/update_many.json")).query("external_ids", external_id)
}

fn create(s: &Summary, external_id: &str, config: &Value) -> Result<Value> {
    let priority = config_str(config, "priority")?.unwrap_or("high");
    if !matches!(priority, "urgent" | "high" | "normal" | "low") {
        return Err(Error::invalid_config("`priority` must be one of urgent, high, normal, low"));
    }
    let mut tags = vec![json!("incident")];
    match config.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => tags.extend(items.iter().cloned()),
        Some(_) => return Err(Error::invalid_config("`tags` must be an array of strings")),
    }
    let mut body = String::new();
    if let Some(d) = s.description {
        body.push_str(&truncate(d.into(), 30000));
        body.push_str("\n\n");
    }
    body.push_str(&format!(
        "Service: {}\nAlert source: {}\nAssigned to: {}\nIncident: {}",
        s.service, s.source, s.assigned, s.id
    ));
    if let Some(link) = &s.link {
        body.push_str(&format!("\n{link}"));
    }
    Ok(json!({"ticket": {
        "subject": truncate(s.headline().into(), 250),
        "comment": {"body": body},
        "external_id": external_id,
        "priority": priority,
        "type": "incident",
        "tags": tags,
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    const BASE: &str = "https://acme.zendesk.test";

    fn send(event_type: &str, text: &str, config: &Value) -> (Request, Value) {
        let e = Event::from_json(text).unwrap();
        let Outcome::Send(r) = Zendesk::transform(&e, &samples::ctx(event_type, BASE), config).unwrap() else {
            panic!("skipped")
        };
        let b = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        (r, b)
    }

    #[test]
    fn trigger_creates_a_ticket_with_the_external_id() {
        let (r, b) = send("incident.triggered", samples::TRIGGERED, &json!({"tags": ["oncall"]}));
        assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://acme.zendesk.test/api/v2/tickets.json"));
        assert!(r.query.is_empty());
        assert_eq!(r.header_value("content-type"), Some("application/json"));
        let t = &b["ticket"];
        assert_eq!(t["subject"], "Triggered: Sample incident for testing webhooks");
        assert_eq!(t["external_id"], "619cba1e749fd801ea1cd439");
        assert_eq!((t["priority"].as_str(), t["type"].as_str()), (Some("high"), Some("incident")));
        assert_eq!(t["tags"], json!(["incident", "oncall"]));
        assert!(t["comment"]["body"].as_str().unwrap().contains("Service: Team 2 Service 1\n"));
    }

    #[test]
    fn later_events_are_skipped_by_default_naming_the_reason() {
        for (event_type, text) in [
            ("incident.acknowledged", samples::ACKNOWLEDGED),
            ("incident.resolved", samples::RESOLVED),
            ("incident.reassigned", samples::REASSIGNED),
        ] {
            for config in [Value::Null, json!({"update_by_external_id": false})] {
                let e = Event::from_json(text).unwrap();
                let out = Zendesk::transform(&e, &samples::ctx(event_type, BASE), &config).unwrap();
                let Outcome::Skip(why) = out else { panic!("{event_type} sent with {config}") };
                assert!(why.starts_with(&format!("zendesk: `{event_type}` not sent")), "{why}");
                assert!(why.contains("documents no request that updates a ticket by external_id"), "{why}");
                assert!(why.contains("`update_by_external_id: true`"), "{why}");
            }
        }
        let e = Event::from_json(samples::RESOLVED).unwrap();
        let bad =
            Zendesk::transform(&e, &samples::ctx("incident.resolved", BASE), &json!({"update_by_external_id": "yes"}));
        assert!(matches!(bad, Err(Error::InvalidConfig(m)) if m.contains("`update_by_external_id`")));
    }

    #[test]
    fn later_events_update_by_external_id_when_opted_in() {
        let opt_in = json!({"update_by_external_id": true});
        for (event_type, text, status) in [
            ("incident.acknowledged", samples::ACKNOWLEDGED, Some("open")),
            ("incident.resolved", samples::RESOLVED, Some("solved")),
            ("incident.reassigned", samples::REASSIGNED, None),
        ] {
            let (r, b) = send(event_type, text, &opt_in);
            assert_eq!(
                (r.method.as_str(), r.url.as_str()),
                ("PUT", "https://acme.zendesk.test/api/v2/tickets/update_many.json")
            );
            assert_eq!(r.query, vec![("external_ids".to_string(), "619cba1e749fd801ea1cd439".to_string())]);
            assert_eq!(b["ticket"]["status"].as_str(), status, "{event_type}");
            assert_eq!(r.header_value("content-type"), Some("application/json"));
            assert_eq!(b["ticket"]["comment"]["public"], false);
        }
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        let bad = Zendesk::transform(&e, &samples::ctx("incident.triggered", BASE), &json!({"priority": "P1"}));
        assert!(matches!(bad, Err(Error::InvalidConfig(m)) if m.contains("`priority`")));
        let out = Zendesk::transform(&e, &samples::ctx("incident.escalated", BASE), &opt_in).unwrap();
        assert!(
            matches!(&out, Outcome::Skip(why) if why == "zendesk: `incident.escalated` changes nothing on the ticket"),
            "{out:?}"
        );
        let out = Zendesk::transform(&e, &samples::ctx("schedule.updated", BASE), &opt_in).unwrap();
        assert!(
            matches!(&out, Outcome::Skip(why) if why == "zendesk: `schedule.updated` is not an incident event"),
            "{out:?}"
        );
    }
}
