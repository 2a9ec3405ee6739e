//! `{{name}}`: a transformer. Turns an event into a chat message (Slack/Discord-like
//! `{"text": ...}`) posted to the webhook's url.

use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Event, Outcome, Request, Result, Transformer};

pub struct Plugin;

impl Transformer for Plugin {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        shape(event, ctx, config).map(Outcome::Send)
    }
}

gateway_sdk::transformer!(Plugin);

/// The request for one event (pure: tested natively by `cargo test`).
pub fn shape(event: &Event, ctx: &Context, config: &Value) -> Result<Request> {
    let title = event
        .str("message")
        .or_else(|| event.str("title"))
        .or_else(|| event.str("event_type"))
        .unwrap_or("event");
    let status = event.str("status").unwrap_or(&ctx.event_type).to_uppercase();
    let prefix = match config.get("prefix").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => format!("[{status}]"),
    };
    let service = event.str("service.name").map(|s| format!(" ({s})")).unwrap_or_default();
    Request::post(&ctx.url).json(&json!({ "text": format!("{prefix} {title}{service}") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event::from_json(include_str!("../fixtures/incident_triggered.json")).unwrap()
    }

    fn ctx() -> Context {
        Context {
            url: "https://receiver.example/hook".into(),
            event_type: "incident.triggered".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_sample_incident_becomes_a_chat_message() {
        let r = shape(&sample(), &ctx(), &Value::Null).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://receiver.example/hook");
        let body: Value = gateway_sdk::serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"text": "[TRIGGERED] Sample incident for testing webhooks (Team 2 Service 1)"}));
    }

    #[test]
    fn a_configured_prefix_replaces_the_status() {
        let r = shape(&sample(), &ctx(), &json!({"prefix": "ALERT"})).unwrap();
        assert!(r.body.as_deref().unwrap().contains("ALERT Sample incident"));
    }
}
