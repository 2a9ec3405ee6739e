//! `mattermost`: a Mattermost incoming-webhook post with a Slack-compatible message attachment.
//!
//! Config (all optional): `{"url": "<override>", "channel": "town-square", "username": "on-call",
//! "icon_url": "https://...", "incident_url": "https://.../{id}"}`.
//! The attachment: colour bar by status, title (linked to `incident_url`), description, short
//! fields (status, service, alert source, assigned to) and a footer with the incident id.
//! Non-incident events are skipped.

use connector_kit::{Incident, Summary, config_str, skip_non_incident, target_url, truncate};
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Event, Outcome, Request, Result, Transformer};

pub struct Mattermost;

impl Transformer for Mattermost {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("mattermost", ctx) {
            return Ok(skip);
        }
        let url = target_url(ctx, config)?;
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        let mut body = message(&s);
        for key in ["channel", "username", "icon_url"] {
            if let Some(v) = config_str(config, key)? {
                body[key] = json!(v);
            }
        }
        Ok(Outcome::Send(Request::post(url).json(&body)?))
    }
}

gateway_sdk::transformer!(Mattermost);

/// The post: `text` for notifications, one attachment for the details.
pub fn message(s: &Summary) -> Value {
    let field = |title: &str, value: &str| json!({"short": true, "title": title, "value": value});
    let fallback = format!("[{}] {} ({})", s.status.label(), s.title, s.service);
    let mut attachment = json!({
        "fallback": fallback,
        "color": s.status.hex(),
        "title": truncate(s.headline().into(), 250),
        "fields": [
            field("Status", s.status.label()),
            field("Service", s.service),
            field("Alert source", s.source),
            field("Assigned to", &s.assigned),
        ],
        "footer": format!("Incident {}", s.id),
    });
    if let Some(d) = s.description {
        attachment["text"] = json!(truncate(d.into(), 4000));
    }
    if let Some(link) = &s.link {
        attachment["title_link"] = json!(link);
    }
    json!({"text": fallback, "attachments": [attachment]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    fn body(event_type: &str, text: &str, config: &Value) -> (Request, Value) {
        let e = Event::from_json(text).unwrap();
        let Outcome::Send(r) =
            Mattermost::transform(&e, &samples::ctx(event_type, "https://mm.test/hooks/xyz"), config).unwrap()
        else {
            panic!("skipped")
        };
        let b = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        (r, b)
    }

    #[test]
    fn samples_become_attachments() {
        for (event_type, text, colour, label) in [
            ("incident.triggered", samples::TRIGGERED, "#D32F2F", "Triggered"),
            ("incident.acknowledged", samples::ACKNOWLEDGED, "#F9A825", "Acknowledged"),
            ("incident.resolved", samples::RESOLVED, "#2E7D32", "Resolved"),
            ("incident.reassigned", samples::REASSIGNED, "#1565C0", "Reassigned"),
        ] {
            let (r, b) = body(event_type, text, &Value::Null);
            assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://mm.test/hooks/xyz"));
            assert_eq!(r.header_value("content-type"), Some("application/json"));
            assert_eq!(b["text"], format!("[{label}] Sample incident for testing webhooks (Team 2 Service 1)"));
            let a = &b["attachments"][0];
            assert_eq!(a["color"], colour);
            assert_eq!(a["fields"][0], json!({"short": true, "title": "Status", "value": label}));
            assert_eq!(a["fields"][2]["value"], "Squadcast UI");
            assert_eq!(a["footer"], "Incident 619cba1e749fd801ea1cd439");
            assert!(a.get("title_link").is_none());
        }
    }

    #[test]
    fn config_fields_and_skip() {
        let (_, b) = body(
            "incident.resolved",
            samples::RESOLVED,
            &json!({"channel": "ops", "username": "on-call", "incident_url": "https://app.test/{id}"}),
        );
        assert_eq!((b["channel"].as_str(), b["username"].as_str()), (Some("ops"), Some("on-call")));
        assert_eq!(b["attachments"][0]["title_link"], "https://app.test/619cba1e749fd801ea1cd439");
        let e = Event::from_json(samples::RESOLVED).unwrap();
        let out = Mattermost::transform(&e, &samples::ctx("deploy.done", "https://x.test"), &Value::Null).unwrap();
        assert!(
            matches!(&out, Outcome::Skip(why) if why == "mattermost: `deploy.done` is not an incident event"),
            "{out:?}"
        );
    }
}
