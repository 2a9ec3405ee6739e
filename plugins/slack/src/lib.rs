//! `slack`: turns a Squadcast-shaped incident event into a Slack incoming-webhook message with
//! blocks (header, fields, description, context).
//!
//! Config (all optional): `{"url": "<override the webhook url>", "channel": "#ops",
//! "username": "gateway", "icon_emoji": ":rotating_light:", "incident_url": "https://.../{id}"}`.
//! `incident_url` may contain `{id}`, replaced with the event id, to add a button.
//! Events that are not incident events (type not starting with `incident`) are skipped.

use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};

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
        let body = message(event, ctx, config);
        Ok(Outcome::Send(Request::post(url).json(&body)?))
    }
}

gateway_sdk::transformer!(Slack);

/// Slack caps a section's text at 3000 characters.
const MAX_SECTION: usize = 3000;

/// The Slack message for one incident event (pure, so it is unit-tested natively).
pub fn message(event: &Event, ctx: &Context, config: &Value) -> Value {
    let status = event.str("status").unwrap_or_else(|| ctx.event_type.trim_start_matches("incident."));
    let (emoji, label) = match status {
        "triggered" => (":red_circle:", "Triggered"),
        "acknowledged" => (":large_yellow_circle:", "Acknowledged"),
        "resolved" => (":large_green_circle:", "Resolved"),
        "reassigned" => (":arrows_counterclockwise:", "Reassigned"),
        _ => (":large_blue_circle:", "Updated"),
    };
    let label = if ctx.event_type.ends_with("reassigned") { "Reassigned" } else { label };
    let title = event.str("message").or_else(|| event.str("title")).unwrap_or("Incident");
    let id = event.str("id").unwrap_or("");
    let service = event.str("service.name").unwrap_or("unknown service");
    let source = event.str("alert_source.type").or_else(|| event.str("alert_source.short_name")).unwrap_or("unknown");
    let assigned = event
        .get("assigned_to")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| Some(format!("{} `{}`", x.get("type")?.as_str()?, x.get("id")?.as_str()?)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "nobody".to_string());
    let created = event.str("time_of_creation").unwrap_or("");

    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("{label}: {title}"), 150), "emoji": true}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Status:*\n{emoji} {label}")},
            {"type": "mrkdwn", "text": format!("*Service:*\n{}", escape(service))},
            {"type": "mrkdwn", "text": format!("*Alert source:*\n{}", escape(source))},
            {"type": "mrkdwn", "text": format!("*Assigned to:*\n{}", escape(&assigned))},
        ]}),
    ];
    if let Some(desc) = event.str("description").filter(|d| !d.is_empty()) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&escape(desc), MAX_SECTION)}}));
    }
    if let Some(link) = config.get("incident_url").and_then(Value::as_str) {
        let link = link.replace("{id}", id);
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open incident"}, "url": link}
        ]}));
    }
    let mut context = format!("Incident `{id}`");
    if !created.is_empty() {
        context.push_str(&format!(" · created {created}"));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));

    let mut msg = json!({
        "text": format!("{emoji} [{label}] {title} ({service})"),
        "blocks": blocks,
    });
    for key in ["channel", "username", "icon_emoji"] {
        if let Some(v) = config.get(key).and_then(Value::as_str) {
            msg[key] = json!(v);
        }
    }
    msg
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(body["blocks"][1]["fields"][3]["text"], "*Assigned to:*\nescalationpolicy `617411dcc6991e7406f95ec5`");
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
        assert_eq!(truncate("abcdef", 4).chars().count(), 4);
    }
}
