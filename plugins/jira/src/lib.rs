//! `jira`: a Jira Cloud issue per incident.
//!
//! The webhook's url is the site, `https://<your-domain>.atlassian.net`, with the webhook's
//! basic auth set to the Atlassian account email and an API token.
//! - triggered -> `POST /rest/api/3/issue`: summary, description (Atlassian Document Format),
//!   the label `incident-<id>` and the entity property `webhook-gateway.incident`;
//! - acknowledged / resolved / reopened -> Jira does not let a client choose the issue key, and finding
//!   the issue by label takes a search the one request of a delivery cannot make, so later
//!   events go to a Jira Automation **incoming webhook** (`automation_url`) whose rule finds the
//!   issue with the JQL `labels = "{{webhookData.label}}"` and comments on or transitions it.
//!   Without `automation_url` they are skipped with that reason. The Automation token is a
//!   webhook secret (`automation_token`), sent as `X-Automation-Webhook-Token` and filled in by
//!   the gateway per attempt.
//!
//! Config: `{"project": "OPS" (required), "issue_type": "Task" (default), "labels": ["..."],
//! "automation_url": "https://api-private.atlassian.com/automation/webhooks/jira/a/...",
//! "url": "<override the site>", "incident_url": "https://.../{id}"}`.

use connector_kit::{Incident, Status, Summary, base_url, config_str, require_str, skip_non_incident, truncate};
use gateway_sdk::serde_json::{Value, json};
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer};

pub struct Jira;

/// The webhook secret holding the Jira Automation webhook token.
pub const AUTOMATION_SECRET: &str = "automation_token";

impl Transformer for Jira {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        if let Some(skip) = skip_non_incident("jira", ctx) {
            return Ok(skip);
        }
        let incident = Incident::read(event);
        let s = Summary::new(&incident, ctx, config);
        let label = s.key("incident-")?;
        match s.status {
            Status::Triggered => {
                let url = format!("{}/rest/api/3/issue", base_url(ctx, config)?);
                Ok(Outcome::Send(Request::post(&url).json(&create(&s, &label, config)?)?))
            }
            Status::Acknowledged | Status::Resolved | Status::Reopened => {
                let Some(url) = config_str(config, "automation_url")? else {
                    return Ok(Outcome::skip(format!(
                        "jira: `{}` needs `automation_url` (a Jira Automation incoming webhook) to reach the issue",
                        ctx.event_type
                    )));
                };
                let body = json!({
                    "label": label,
                    "incident_id": s.id,
                    "status": s.status.label().to_lowercase(),
                    "comment": format!("{} in {} ({})", s.status.label(), s.service, s.source),
                });
                let req =
                    Request::post(url).json(&body)?.secret_header("X-Automation-Webhook-Token", AUTOMATION_SECRET, "");
                Ok(Outcome::Send(req))
            }
            other => Ok(Outcome::skip(format!(
                "jira: `{}` ({}) changes nothing on the issue",
                ctx.event_type,
                other.label().to_lowercase()
            ))),
        }
    }
}

gateway_sdk::transformer!(Jira);

fn paragraph(text: &str) -> Value {
    json!({"type": "paragraph", "content": [{"type": "text", "text": text}]})
}

/// The create-issue body.
fn create(s: &Summary, label: &str, config: &Value) -> Result<Value> {
    let project = require_str(config, "project")?;
    let issue_type = config_str(config, "issue_type")?.unwrap_or("Task");
    let mut labels = vec![json!(label)];
    match config.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => labels.extend(items.iter().cloned()),
        Some(_) => return Err(Error::invalid_config("`labels` must be an array of strings")),
    }
    let mut content = Vec::new();
    if let Some(d) = s.description {
        content.push(paragraph(&truncate(d.into(), 30000)));
    }
    content.push(paragraph(&format!(
        "Service: {} · Alert source: {} · Assigned to: {} · Incident {}",
        s.service, s.source, s.assigned, s.id
    )));
    if let Some(link) = &s.link {
        content.push(json!({"type": "paragraph", "content": [{"type": "text", "text": "Open incident",
            "marks": [{"type": "link", "attrs": {"href": link}}]}]}));
    }
    Ok(json!({
        "fields": {
            "project": {"key": project},
            "issuetype": {"name": issue_type},
            "summary": truncate(format!("{} ({})", s.title, s.service).into(), 255),
            "description": {"type": "doc", "version": 1, "content": content},
            "labels": labels,
        },
        "properties": [{"key": "webhook-gateway.incident", "value": {"id": s.id, "service": s.service, "alert_source": s.source}}],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_kit::samples;
    use gateway_sdk::serde_json::{self, json};

    const SITE: &str = "https://acme.atlassian.test";

    fn run(event_type: &str, text: &str, config: &Value) -> Result<Outcome> {
        Jira::transform(&Event::from_json(text).unwrap(), &samples::ctx(event_type, SITE), config)
    }

    #[test]
    fn trigger_creates_an_issue() {
        let Outcome::Send(r) =
            run("incident.triggered", samples::TRIGGERED, &json!({"project": "OPS", "labels": ["oncall"]})).unwrap()
        else {
            panic!("skipped")
        };
        assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://acme.atlassian.test/rest/api/3/issue"));
        assert_eq!(r.headers, vec![("content-type".to_string(), "application/json".to_string())]);
        let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        let f = &b["fields"];
        assert_eq!(f["project"], json!({"key": "OPS"}));
        assert_eq!(f["issuetype"], json!({"name": "Task"}));
        assert_eq!(f["summary"], "Sample incident for testing webhooks (Team 2 Service 1)");
        assert_eq!(f["labels"], json!(["incident-619cba1e749fd801ea1cd439", "oncall"]));
        assert_eq!((f["description"]["type"].as_str(), f["description"]["version"].as_i64()), (Some("doc"), Some(1)));
        assert!(f["description"]["content"][0]["content"][0]["text"].as_str().unwrap().starts_with("This is a sample"));
        assert_eq!(b["properties"][0]["key"], "webhook-gateway.incident");
    }

    #[test]
    fn later_events_go_to_the_automation_webhook_with_the_label() {
        let config = json!({"project": "OPS", "automation_url": "https://automation.test/hook/1"});
        for (event_type, text, status) in [
            ("incident.acknowledged", samples::ACKNOWLEDGED, "acknowledged"),
            ("incident.resolved", samples::RESOLVED, "resolved"),
        ] {
            let Outcome::Send(r) = run(event_type, text, &config).unwrap() else { panic!("skipped") };
            assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://automation.test/hook/1"));
            assert_eq!(r.header_value("x-automation-webhook-token"), Some(r#"{"$secret":"automation_token"}"#));
            let b: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            assert_eq!(b["label"], "incident-619cba1e749fd801ea1cd439");
            assert_eq!(b["status"], status);
        }
        let out = run("incident.resolved", samples::RESOLVED, &json!({"project": "OPS"})).unwrap();
        assert!(matches!(out, Outcome::Skip(why) if why.contains("automation_url")));
        assert!(matches!(run("incident.reassigned", samples::REASSIGNED, &config).unwrap(), Outcome::Skip(_)));
        let missing = run("incident.triggered", samples::TRIGGERED, &Value::Null);
        assert!(matches!(missing, Err(Error::InvalidConfig(m)) if m.contains("`project`")));
    }
}
