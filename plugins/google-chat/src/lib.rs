//! `google-chat`: a Google Chat incoming-webhook message with a card (`cardsV2`), one thread per
//! incident.
//!
//! Config (all optional): `{"url": "<override>", "incident_url": "https://.../{id}", "thread": true}`.
//! The card: header (status and title, service as subtitle), a section of decorated texts
//! (status in its colour, service, alert source, assigned to), the description, and an "Open
//! incident" button when `incident_url` is set. With `thread` (default true) the request carries
//! `threadKey=<incident id>` and `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`, so
//! every event of one incident lands in the same thread. Non-incident events are skipped.

use connector_kit::{Incident, Summary, skip_non_incident, target_url, truncate};
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};

pub struct GoogleChat;

impl Transformer for GoogleChat {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("google-chat", ctx) {
            return Ok(skip);
        }
        let url = target_url(ctx, config)?;
        let thread = match config.get("thread") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::invalid_config("`thread` must be true or false")),
        };
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        let mut req = Request::post(url).json(&message(&s))?;
        if thread && !s.id.is_empty() {
            req = req
                .query("threadKey", s.key("incident-")?)
                .query("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
        }
        Ok(Outcome::Send(req))
    }
}

gateway_sdk::transformer!(GoogleChat);

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The message: a plain-text fallback and one card.
pub fn message(s: &Summary) -> Value {
    let text = |label: &str, value: &str| json!({"decoratedText": {"topLabel": label, "text": escape(value)}});
    let mut widgets = vec![
        json!({"decoratedText": {"topLabel": "Status", "text": format!("<font color=\"{}\"><b>{}</b></font>", s.status.hex(), s.status.label())}}),
        text("Service", s.service),
        text("Alert source", s.source),
        text("Assigned to", &s.assigned),
    ];
    if let Some(d) = s.description {
        widgets.push(json!({"textParagraph": {"text": escape(&truncate(d.into(), 4000))}}));
    }
    if let Some(link) = &s.link {
        widgets.push(
            json!({"buttonList": {"buttons": [{"text": "Open incident", "onClick": {"openLink": {"url": link}}}]}}),
        );
    }
    json!({
        "text": format!("[{}] {} ({})", s.status.label(), s.title, s.service),
        "cardsV2": [{
            "cardId": format!("incident-{}", s.id),
            "card": {
                "header": {"title": truncate(s.headline().into(), 200), "subtitle": format!("{} · incident {}", s.service, s.id)},
                "sections": [{"widgets": widgets}]
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    const URL: &str = "https://chat.googleapis.test/v1/spaces/AAA/messages?key=k&token=t";

    fn send(event_type: &str, text: &str, config: &Value) -> Request {
        let e = Event::from_json(text).unwrap();
        match GoogleChat::transform(&e, &samples::ctx(event_type, URL), config).unwrap() {
            Outcome::Send(r) => r,
            Outcome::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn samples_become_cards_in_one_thread() {
        for (event_type, text, colour) in [
            ("incident.triggered", samples::TRIGGERED, "#D32F2F"),
            ("incident.acknowledged", samples::ACKNOWLEDGED, "#F9A825"),
            ("incident.resolved", samples::RESOLVED, "#2E7D32"),
            ("incident.reassigned", samples::REASSIGNED, "#1565C0"),
        ] {
            let r = send(event_type, text, &Value::Null);
            assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", URL));
            // Google Chat's incoming webhooks take a JSON body (`application/json`); nothing else
            // is sent: the key and token stay in the url the user pasted.
            assert_eq!(r.headers, vec![("content-type".to_string(), "application/json".to_string())]);
            assert_eq!(
                r.query,
                vec![
                    ("threadKey".to_string(), "incident-619cba1e749fd801ea1cd439".to_string()),
                    ("messageReplyOption".to_string(), "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD".to_string()),
                ]
            );
            let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            let card = &b["cardsV2"][0];
            assert_eq!(card["cardId"], "incident-619cba1e749fd801ea1cd439");
            let widgets = &card["card"]["sections"][0]["widgets"];
            assert!(widgets[0]["decoratedText"]["text"].as_str().unwrap().contains(colour), "{event_type}");
            assert_eq!(widgets[1], json!({"decoratedText": {"topLabel": "Service", "text": "Team 2 Service 1"}}));
            assert_eq!(card["card"]["header"]["subtitle"], "Team 2 Service 1 · incident 619cba1e749fd801ea1cd439");
            assert!(b["text"].as_str().unwrap().ends_with("Sample incident for testing webhooks (Team 2 Service 1)"));
        }
    }

    #[test]
    fn button_escaping_and_no_thread() {
        let e = json!({"id": "i1", "message": "<b>x</b>", "status": "triggered"}).to_string();
        let r = send("incident.triggered", &e, &json!({"thread": false, "incident_url": "https://app.test/{id}"}));
        assert!(r.query.is_empty());
        let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        let widgets = b["cardsV2"][0]["card"]["sections"][0]["widgets"].as_array().unwrap();
        assert_eq!(
            widgets.last().unwrap()["buttonList"]["buttons"][0]["onClick"]["openLink"]["url"],
            "https://app.test/i1"
        );
        let ev = Event::from_json(&e).unwrap();
        let bad = GoogleChat::transform(&ev, &samples::ctx("incident.triggered", URL), &json!({"thread": "yes"}));
        assert!(matches!(bad, Err(Error::InvalidConfig(m)) if m.contains("`thread`")));
    }

    #[test]
    fn non_incident_events_are_skipped_naming_the_event() {
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        for event_type in ["schedule.updated", "deploy.done"] {
            let out = GoogleChat::transform(&e, &samples::ctx(event_type, URL), &Value::Null).unwrap();
            let want = format!("google-chat: `{event_type}` is not an incident event");
            assert!(matches!(&out, Outcome::Skip(why) if *why == want), "{out:?}");
        }
    }
}
