//! `slack`: turns a Squadcast-shaped incident event into a Slack incoming-webhook message with
//! blocks (header, fields, description, context).
//!
//! Config (all optional): `{"url": "<override the webhook url>", "channel": "#ops",
//! "username": "gateway", "icon_emoji": ":rotating_light:", "incident_url": "https://.../{id}"}`.
//! `incident_url` may contain `{id}`, replaced with the event id, to add a button.
//! Events that are not incident events (type not starting with `incident`) are skipped.

use std::borrow::Cow;

pub use connector_kit::Incident;
use connector_kit::truncate;
use gateway_sdk::serde_json::Value;
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};
use serde::Serialize;

pub struct Slack;

impl Transformer for Slack {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if !ctx.event_type.starts_with("incident") {
            return Ok(Outcome::skip(format!("slack: `{}` is not an incident event", ctx.event_type)));
        }
        let url = match config.get("url") {
            None | Some(Value::Null) => ctx.url.as_str(),
            Some(Value::String(u)) => u.as_str(),
            Some(_) => return Err(Error::invalid_config("`url` must be a string")),
        };
        let incident = Incident::read(event);
        Ok(Outcome::Send(Request::post(url).json(&message(&incident, ctx, config))?))
    }
}

gateway_sdk::transformer!(Slack);

/// Slack caps a section's text at 3000 characters.
const MAX_SECTION: usize = 3000;

/// A Slack message (the fields of an incoming-webhook payload this plugin uses).
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub text: String,
    pub blocks: Vec<Block<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<&'a str>,
}

/// A Block Kit block.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block<'a> {
    Header {
        text: Text<'a>,
    },
    Section {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<Text<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        fields: Vec<Text<'a>>,
    },
    Actions {
        elements: Vec<Button<'a>>,
    },
    Context {
        elements: Vec<Text<'a>>,
    },
}

/// A Block Kit text object.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Text<'a> {
    PlainText {
        text: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        emoji: Option<bool>,
    },
    Mrkdwn {
        text: Cow<'a, str>,
    },
}

#[derive(Debug, Serialize)]
pub struct Button<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: Text<'a>,
    pub url: String,
}

fn mrkdwn<'a>(text: impl Into<Cow<'a, str>>) -> Text<'a> {
    Text::Mrkdwn { text: text.into() }
}

/// The Slack message for one incident (pure, so it is unit-tested natively).
pub fn message<'a>(incident: &'a Incident<'a>, ctx: &'a Context, config: &'a Value) -> Message<'a> {
    let field = |f: &'a Option<Cow<'a, str>>| f.as_deref();
    let status = field(&incident.status).unwrap_or_else(|| ctx.event_type.trim_start_matches("incident."));
    let (emoji, label) = match status {
        "triggered" => (":red_circle:", "Triggered"),
        "acknowledged" => (":large_yellow_circle:", "Acknowledged"),
        "resolved" => (":large_green_circle:", "Resolved"),
        "reassigned" => (":arrows_counterclockwise:", "Reassigned"),
        _ => (":large_blue_circle:", "Updated"),
    };
    let label = if ctx.event_type.ends_with("reassigned") { "Reassigned" } else { label };
    let title = field(&incident.message).or(field(&incident.title)).unwrap_or("Incident");
    let id = field(&incident.id).unwrap_or("");
    let service = incident.service.as_ref().and_then(|s| field(&s.name)).unwrap_or("unknown service");
    let source =
        incident.alert_source.as_ref().and_then(|a| field(&a.kind).or(field(&a.short_name))).unwrap_or("unknown");
    let mut assigned = String::new();
    for a in incident.assigned_to.iter().flatten() {
        if let (Some(kind), Some(who)) = (field(&a.kind), field(&a.id)) {
            if !assigned.is_empty() {
                assigned.push_str(", ");
            }
            assigned.push_str(&format!("{kind} `{who}`"));
        }
    }
    if assigned.is_empty() {
        assigned.push_str("nobody");
    }

    let mut blocks = vec![
        Block::Header {
            text: Text::PlainText { text: truncate(format!("{label}: {title}").into(), 150), emoji: Some(true) },
        },
        Block::Section {
            text: None,
            fields: vec![
                mrkdwn(format!("*Status:*\n{emoji} {label}")),
                mrkdwn(format!("*Service:*\n{}", escape(service))),
                mrkdwn(format!("*Alert source:*\n{}", escape(source))),
                mrkdwn(format!("*Assigned to:*\n{}", escape(&assigned))),
            ],
        },
    ];
    if let Some(desc) = field(&incident.description).filter(|d| !d.is_empty()) {
        blocks.push(Block::Section { text: Some(mrkdwn(truncate(escape(desc), MAX_SECTION))), fields: Vec::new() });
    }
    if let Some(link) = config.get("incident_url").and_then(Value::as_str) {
        blocks.push(Block::Actions {
            elements: vec![Button {
                kind: "button",
                text: Text::PlainText { text: "Open incident".into(), emoji: None },
                url: link.replace("{id}", id),
            }],
        });
    }
    let mut context = format!("Incident `{id}`");
    if let Some(created) = field(&incident.time_of_creation).filter(|c| !c.is_empty()) {
        context.push_str(&format!(" · created {created}"));
    }
    blocks.push(Block::Context { elements: vec![mrkdwn(context)] });

    let opt = |key: &str| config.get(key).and_then(Value::as_str);
    Message {
        text: format!("{emoji} [{label}] {title} ({service})"),
        blocks,
        channel: opt("channel"),
        username: opt("username"),
        icon_emoji: opt("icon_emoji"),
    }
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::serde_json::{self, json};

    fn sample() -> Event {
        let text = include_str!("../../../tests/fixtures/squadcast/incident_triggered.json");
        Event::from_json(text).unwrap()
    }

    fn ctx(event_type: &str) -> Context {
        Context { event_type: event_type.into(), url: "https://hooks.slack.test/x".into(), ..Default::default() }
    }

    #[test]
    fn triggered_sample_becomes_a_block_message() {
        let out = Slack::transform(&sample(), &ctx("incident.triggered"), &Value::Null).unwrap();
        let Outcome::Send(req) = out else { panic!("skipped") };
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://hooks.slack.test/x");
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["text"], ":red_circle: [Triggered] Sample incident for testing webhooks (Team 2 Service 1)");
        assert_eq!(body["blocks"][0]["text"]["text"], "Triggered: Sample incident for testing webhooks");
        assert_eq!(body["blocks"][1]["fields"][1]["text"], "*Service:*\nTeam 2 Service 1");
        assert_eq!(
            body["blocks"][1]["fields"][3]["text"],
            "*Assigned to:*\nescalationpolicy `617411dcc6991e7406f95ec5`"
        );
        assert!(body["blocks"][2]["text"]["text"].as_str().unwrap().starts_with("This is a sample incident"));
        assert_eq!(body["blocks"].as_array().unwrap().last().unwrap()["type"], "context");
    }

    #[test]
    fn config_adds_channel_and_button_and_overrides_url() {
        let config = json!({"channel": "#ops", "incident_url": "https://app.test/i/{id}", "url": "https://other.test"});
        let Outcome::Send(req) = Slack::transform(&sample(), &ctx("incident.triggered"), &config).unwrap() else {
            panic!("skipped")
        };
        assert_eq!(req.url, "https://other.test");
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["channel"], "#ops");
        assert!(body.to_string().contains("https://app.test/i/619cba1e749fd801ea1cd439"));
    }

    #[test]
    fn non_incident_events_are_skipped() {
        let out = Slack::transform(&sample(), &ctx("deploy.finished"), &Value::Null).unwrap();
        assert!(matches!(out, Outcome::Skip(_)));
    }

    #[test]
    fn mrkdwn_is_escaped_and_long_text_truncated() {
        assert_eq!(escape("<a & b>"), "&lt;a &amp; b&gt;");
        assert_eq!(truncate("abcdef".into(), 4).chars().count(), 4);
        assert_eq!(truncate("abc".into(), 4), "abc");
    }

    fn body(event: &Event) -> Value {
        let Outcome::Send(req) = Slack::transform(event, &ctx("incident.triggered"), &Value::Null).unwrap() else {
            panic!("skipped")
        };
        serde_json::from_str(req.body.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn fields_of_unexpected_types_count_as_absent() {
        // `status` is a number and `service` a string: the typed read fails, the path read is used.
        let mut v: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/squadcast/incident_triggered.json")).unwrap();
        v["status"] = json!(3);
        v["service"] = json!("api");
        let odd = body(&Event::from_value(v));
        assert_eq!(odd["text"], ":red_circle: [Triggered] Sample incident for testing webhooks (unknown service)");
        assert_eq!(
            odd["blocks"][1]["fields"][3]["text"],
            "*Assigned to:*\nescalationpolicy `617411dcc6991e7406f95ec5`"
        );
        // The typed read and the path read agree on a well-formed event.
        let e = sample();
        let (incident, c) = (Incident::from_value(e.value()), ctx("incident.triggered"));
        assert_eq!(serde_json::to_value(message(&incident, &c, &Value::Null)).unwrap(), body(&e));
    }

    #[test]
    fn escaped_strings_and_missing_fields() {
        let e = Event::from_json(r#"{"message": "a \"b\" <c>", "assigned_to": [{"type": "user"}]}"#).unwrap();
        let b = body(&e);
        assert_eq!(b["text"], ":red_circle: [Triggered] a \"b\" <c> (unknown service)");
        assert_eq!(b["blocks"][1]["fields"][2]["text"], "*Alert source:*\nunknown");
        assert_eq!(b["blocks"][1]["fields"][3]["text"], "*Assigned to:*\nnobody");
        assert_eq!(b["blocks"].as_array().unwrap().len(), 3, "no description block: {b}");
    }
}
