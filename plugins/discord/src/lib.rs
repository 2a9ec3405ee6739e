//! `discord`: a Discord webhook message with one embed per incident event.
//!
//! Config (all optional): `{"url": "<override>", "username": "On-call", "avatar_url": "https://...",
//! "content": "<text above the embed>", "incident_url": "https://.../{id}"}`.
//! The embed: title (linked to `incident_url`), description, colour by status, inline fields
//! (status, service, alert source, assigned to), footer with the incident id and the creation
//! time as `timestamp`. Mentions are disabled (`allowed_mentions`), so incident text cannot ping.
//! Non-incident events are skipped.

use connector_kit::{Incident, Summary, config_str, skip_non_incident, target_url, truncate};
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Event, Outcome, Request, Result, Transformer};

pub struct Discord;

impl Transformer for Discord {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("discord", ctx) {
            return Ok(skip);
        }
        let url = target_url(ctx, config)?;
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        let mut body = message(&s);
        for key in ["username", "avatar_url", "content"] {
            if let Some(v) = config_str(config, key)? {
                body[key] = json!(v);
            }
        }
        Ok(Outcome::Send(Request::post(url).json(&body)?))
    }
}

gateway_sdk::transformer!(Discord);

/// The message (Discord's limits: title 256, description 4096, field value 1024 characters).
pub fn message(s: &Summary) -> Value {
    let field = |name: &str, value: &str| json!({"name": name, "value": truncate(value.into(), 1024), "inline": true});
    let mut embed = json!({
        "title": truncate(s.headline().into(), 256),
        "color": s.status.rgb(),
        "fields": [
            field("Status", s.status.label()),
            field("Service", s.service),
            field("Alert source", s.source),
            field("Assigned to", &s.assigned),
        ],
        "footer": {"text": format!("Incident {}", s.id)},
    });
    if let Some(d) = s.description {
        embed["description"] = json!(truncate(d.into(), 4096));
    }
    if let Some(link) = &s.link {
        embed["url"] = json!(link);
    }
    if let Some(c) = s.created {
        embed["timestamp"] = json!(c);
    }
    json!({"embeds": [embed], "allowed_mentions": {"parse": []}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    fn body(event_type: &str, text: &str, config: &Value) -> (Request, Value) {
        let e = Event::from_json(text).unwrap();
        let Outcome::Send(r) =
            Discord::transform(&e, &samples::ctx(event_type, "https://discord.test/api/webhooks/1/t"), config).unwrap()
        else {
            panic!("skipped")
        };
        let b = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        (r, b)
    }

    #[test]
    fn samples_become_embeds() {
        for (event_type, text, color) in [
            ("incident.triggered", samples::TRIGGERED, 0xD32F2F),
            ("incident.acknowledged", samples::ACKNOWLEDGED, 0xF9A825),
            ("incident.resolved", samples::RESOLVED, 0x2E7D32),
            ("incident.reassigned", samples::REASSIGNED, 0x1565C0),
        ] {
            let (r, b) = body(event_type, text, &Value::Null);
            assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://discord.test/api/webhooks/1/t"));
            assert_eq!(r.header_value("content-type"), Some("application/json"));
            let e = &b["embeds"][0];
            assert_eq!(e["color"], color, "{event_type}");
            assert!(e["title"].as_str().unwrap().ends_with(": Sample incident for testing webhooks"));
            assert_eq!(e["fields"][1], json!({"name": "Service", "value": "Team 2 Service 1", "inline": true}));
            assert_eq!(e["fields"][2]["value"], "Squadcast UI");
            assert_eq!(e["timestamp"], "2021-11-23T09:53:34.626Z");
            assert_eq!(e["footer"]["text"], "Incident 619cba1e749fd801ea1cd439");
            assert!(e["description"].as_str().unwrap().starts_with("This is a sample incident"));
            assert_eq!(b["allowed_mentions"], json!({"parse": []}));
        }
    }

    #[test]
    fn config_sets_username_link_and_bad_types_are_named() {
        let (_, b) = body(
            "incident.triggered",
            samples::TRIGGERED,
            &json!({"username": "On-call", "incident_url": "https://app.test/{id}"}),
        );
        assert_eq!(b["username"], "On-call");
        assert_eq!(b["embeds"][0]["url"], "https://app.test/619cba1e749fd801ea1cd439");
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        let err =
            Discord::transform(&e, &samples::ctx("incident.triggered", "https://x.test"), &json!({"username": 1}));
        assert!(matches!(err, Err(gateway_sdk::Error::InvalidConfig(m)) if m.contains("`username`")));
        let long = json!({"message": "x".repeat(300), "description": "d".repeat(5000)});
        let (_, b) = body("incident.triggered", &long.to_string(), &Value::Null);
        assert_eq!(b["embeds"][0]["title"].as_str().unwrap().chars().count(), 256);
        assert_eq!(b["embeds"][0]["description"].as_str().unwrap().chars().count(), 4096);
        assert!(b["embeds"][0].get("timestamp").is_none());
    }

    #[test]
    fn non_incident_events_are_skipped_naming_the_event() {
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        for event_type in ["schedule.updated", "deploy.done"] {
            let out = Discord::transform(
                &e,
                &samples::ctx(event_type, "https://discord.test/api/webhooks/1/t"),
                &Value::Null,
            )
            .unwrap();
            let want = format!("discord: `{event_type}` is not an incident event");
            assert!(matches!(&out, Outcome::Skip(why) if *why == want), "{out:?}");
        }
    }
}
