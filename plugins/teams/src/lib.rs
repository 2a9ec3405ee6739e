//! `teams`: a Microsoft Teams message with an Adaptive Card (1.5), for a Teams Workflows
//! ("Post to a channel when a webhook request is received") webhook url.
//!
//! Config (all optional): `{"url": "<override the webhook url>", "incident_url": "https://.../{id}"}`.
//! The card: a coloured header (red triggered, amber acknowledged, green resolved, blue
//! reassigned), the description, a fact set (status, service, alert source, assigned to, created)
//! and an "Open incident" action when `incident_url` is set. Non-incident events are skipped.

use connector_kit::{Incident, Summary, skip_non_incident, target_url, truncate};
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Event, Outcome, Request, Result, Transformer};

pub struct Teams;

impl Transformer for Teams {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("teams", ctx) {
            return Ok(skip);
        }
        let url = target_url(ctx, config)?;
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        Ok(Outcome::Send(Request::post(url).json(&message(&s))?))
    }
}

gateway_sdk::transformer!(Teams);

/// The Workflows message: one attachment holding the Adaptive Card.
pub fn message(s: &Summary) -> Value {
    let mut body = vec![json!({
        "type": "Container",
        "style": s.status.adaptive(),
        "bleed": true,
        "items": [
            {"type": "TextBlock", "text": truncate(s.headline().into(), 200), "weight": "Bolder", "size": "Medium", "wrap": true},
            {"type": "TextBlock", "text": format!("{} · {}", s.service, s.source), "isSubtle": true, "spacing": "None", "wrap": true}
        ]
    })];
    if let Some(d) = s.description {
        body.push(json!({"type": "TextBlock", "text": truncate(d.into(), 2000), "wrap": true}));
    }
    let mut facts = vec![
        json!({"title": "Status", "value": s.status.label()}),
        json!({"title": "Service", "value": s.service}),
        json!({"title": "Alert source", "value": s.source}),
        json!({"title": "Assigned to", "value": s.assigned}),
        json!({"title": "Incident", "value": s.id}),
    ];
    if let Some(c) = s.created {
        facts.push(json!({"title": "Created", "value": c}));
    }
    body.push(json!({"type": "FactSet", "facts": facts}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.5",
        "msteams": {"width": "Full"},
        "body": body,
    });
    if let Some(link) = &s.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open incident", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    fn send(event_type: &str, text: &str, config: &Value) -> Request {
        let e = Event::from_json(text).unwrap();
        match Teams::transform(&e, &samples::ctx(event_type, "https://prod.workflows.test/x"), config).unwrap() {
            Outcome::Send(r) => r,
            Outcome::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn samples_become_adaptive_cards() {
        for (event_type, text, style, label) in [
            ("incident.triggered", samples::TRIGGERED, "attention", "Triggered"),
            ("incident.acknowledged", samples::ACKNOWLEDGED, "warning", "Acknowledged"),
            ("incident.resolved", samples::RESOLVED, "good", "Resolved"),
            ("incident.reassigned", samples::REASSIGNED, "accent", "Reassigned"),
        ] {
            let r = send(event_type, text, &Value::Null);
            assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://prod.workflows.test/x"));
            assert_eq!(r.headers, vec![("content-type".to_string(), "application/json".to_string())]);
            let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            assert_eq!(b["type"], "message");
            let a = &b["attachments"][0];
            assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
            let card = &a["content"];
            assert_eq!((card["type"].as_str(), card["version"].as_str()), (Some("AdaptiveCard"), Some("1.5")));
            assert_eq!(card["body"][0]["style"], style, "{event_type}");
            assert_eq!(card["body"][0]["items"][0]["text"], format!("{label}: Sample incident for testing webhooks"));
            assert_eq!(card["body"][0]["items"][1]["text"], "Team 2 Service 1 · Squadcast UI");
            let facts = card["body"][2]["facts"].as_array().unwrap();
            assert_eq!(facts[0], json!({"title": "Status", "value": label}));
            assert_eq!(facts[4], json!({"title": "Incident", "value": "619cba1e749fd801ea1cd439"}));
            assert!(card.get("actions").is_none());
        }
    }

    #[test]
    fn link_and_url_from_config_and_other_events_skipped() {
        let r = send(
            "incident.triggered",
            samples::TRIGGERED,
            &json!({"incident_url": "https://app.test/i/{id}", "url": "https://other.test/w"}),
        );
        assert_eq!(r.url, "https://other.test/w");
        let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            b["attachments"][0]["content"]["actions"][0],
            json!({"type": "Action.OpenUrl", "title": "Open incident", "url": "https://app.test/i/619cba1e749fd801ea1cd439"})
        );
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        let out = Teams::transform(&e, &samples::ctx("deploy.finished", "https://x.test"), &Value::Null).unwrap();
        assert!(matches!(out, Outcome::Skip(why) if why.contains("deploy.finished")));
    }
}
