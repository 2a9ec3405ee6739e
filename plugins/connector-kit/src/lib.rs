//! What every connector plugin reads from an incident event: the Squadcast-shaped fields
//! ([`Incident`]), the status the event announces ([`Status`], with its label and colours), and the
//! summary a chat card or ticket shows ([`Summary`]: title, service, alert source, assignees,
//! link). Also the config helpers every connector shares (`url` override, `incident_url` link).

use std::borrow::Cow;

use gateway_sdk::serde_json::Value;
use gateway_sdk::{Context, Error, Event, Outcome, Result, event};
use serde::Deserialize;

/// The fields of a Squadcast-shaped incident the connectors show. Strings borrow from the event
/// where they can (typed read straight from the event's JSON text: no generic tree is built).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Incident<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub title: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub time_of_creation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub service: Option<Service<'a>>,
    #[serde(borrow)]
    pub alert_source: Option<AlertSource<'a>>,
    #[serde(borrow)]
    pub assigned_to: Option<Vec<Assignee<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Service<'a> {
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertSource<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub short_name: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Assignee<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
}

impl<'a> Incident<'a> {
    /// Reads the incident fields: typed from the JSON text, or, when a field has an unexpected
    /// type (`"status": 3`, `"service": "x"`), by path from the generic tree, where such fields
    /// simply count as absent.
    pub fn read(event: &'a Event) -> Incident<'a> {
        event.parse().unwrap_or_else(|_| Incident::from_value(event.value()))
    }

    /// The path read (public so connectors can check it agrees with the typed read).
    pub fn from_value(v: &'a Value) -> Incident<'a> {
        let s = |path: &str| event::lookup(v, path).and_then(Value::as_str).map(Cow::Borrowed);
        Incident {
            id: s("id"),
            status: s("status"),
            message: s("message"),
            title: s("title"),
            description: s("description"),
            time_of_creation: s("time_of_creation"),
            service: Some(Service { name: s("service.name") }),
            alert_source: Some(AlertSource { kind: s("alert_source.type"), short_name: s("alert_source.short_name") }),
            assigned_to: v.get("assigned_to").and_then(Value::as_array).map(|items| {
                items
                    .iter()
                    .map(|x| Assignee {
                        kind: x.get("type").and_then(Value::as_str).map(Cow::Borrowed),
                        id: x.get("id").and_then(Value::as_str).map(Cow::Borrowed),
                    })
                    .collect()
            }),
        }
    }
}

/// The state an incident event announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Triggered,
    Acknowledged,
    Resolved,
    Reassigned,
    /// Open again after an acknowledgement or a resolution.
    Reopened,
    /// Anything else (escalated, silenced, a status the connectors do not know).
    Updated,
}

impl Status {
    /// From the canonical event type (`incident.<what>`), which says what just happened; only
    /// when it names nothing specific, from the incident's `status`. Reopened and
    /// unacknowledged incidents are open again ([`Status::Reopened`]); escalations and silences
    /// are [`Status::Updated`].
    pub fn of(incident: &Incident, ctx: &Context) -> Status {
        match ctx.event_type.strip_prefix("incident.") {
            Some("triggered") => Status::Triggered,
            Some("acknowledged") => Status::Acknowledged,
            Some("resolved") => Status::Resolved,
            Some("reassigned") => Status::Reassigned,
            Some("reopened" | "unacknowledged") => Status::Reopened,
            Some("escalated" | "silenced" | "unsilenced") => Status::Updated,
            _ => match incident.status.as_deref() {
                Some("triggered") => Status::Triggered,
                Some("acknowledged") => Status::Acknowledged,
                Some("resolved") => Status::Resolved,
                _ => Status::Updated,
            },
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Triggered => "Triggered",
            Status::Acknowledged => "Acknowledged",
            Status::Resolved => "Resolved",
            Status::Reassigned => "Reassigned",
            Status::Reopened => "Reopened",
            Status::Updated => "Updated",
        }
    }

    /// The status colour as `#rrggbb` (red, amber, green, blue, orange, grey).
    pub fn hex(self) -> &'static str {
        match self {
            Status::Triggered => "#D32F2F",
            Status::Acknowledged => "#F9A825",
            Status::Resolved => "#2E7D32",
            Status::Reassigned => "#1565C0",
            Status::Reopened => "#E65100",
            Status::Updated => "#607D8B",
        }
    }

    /// The colour as an integer (`0xD32F2F`), as Discord embeds take it.
    pub fn rgb(self) -> u32 {
        u32::from_str_radix(&self.hex()[1..], 16).unwrap_or(0)
    }

    /// Adaptive Card container style / text colour for the status.
    pub fn adaptive(self) -> &'static str {
        match self {
            Status::Triggered => "attention",
            Status::Acknowledged => "warning",
            Status::Resolved => "good",
            Status::Reassigned => "accent",
            Status::Reopened => "attention",
            Status::Updated => "default",
        }
    }
}

/// What a card or ticket shows about one incident; absent fields have readable stand-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<'a> {
    pub id: &'a str,
    pub status: Status,
    /// The incident's `message`, else `title`, else `Incident`.
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub service: &'a str,
    pub source: &'a str,
    /// `escalationpolicy 617..., user 5e1...` or `nobody`.
    pub assigned: String,
    pub created: Option<&'a str>,
    /// The config's `incident_url` with `{id}` replaced, when set.
    pub link: Option<String>,
}

impl<'a> Summary<'a> {
    pub fn new(incident: &'a Incident<'a>, ctx: &Context, config: &Value) -> Summary<'a> {
        let field = |f: &'a Option<Cow<'a, str>>| f.as_deref().filter(|s| !s.is_empty());
        let id = field(&incident.id).unwrap_or("");
        let mut assigned = String::new();
        for a in incident.assigned_to.iter().flatten() {
            if let (Some(kind), Some(who)) = (field(&a.kind), field(&a.id)) {
                if !assigned.is_empty() {
                    assigned.push_str(", ");
                }
                assigned.push_str(&format!("{kind} {who}"));
            }
        }
        if assigned.is_empty() {
            assigned.push_str("nobody");
        }
        Summary {
            id,
            status: Status::of(incident, ctx),
            title: field(&incident.message).or(field(&incident.title)).unwrap_or("Incident"),
            description: field(&incident.description),
            service: incident.service.as_ref().and_then(|s| field(&s.name)).unwrap_or("unknown service"),
            source: incident
                .alert_source
                .as_ref()
                .and_then(|a| field(&a.kind).or(field(&a.short_name)))
                .unwrap_or("unknown"),
            assigned,
            created: field(&incident.time_of_creation),
            link: config.get("incident_url").and_then(Value::as_str).map(|l| l.replace("{id}", id)),
        }
    }

    /// `Triggered: <title>`.
    pub fn headline(&self) -> String {
        format!("{}: {}", self.status.label(), self.title)
    }

    /// A stable key for the incident in the vendor's system, `<prefix><id>` (errors when the
    /// event has no id: the connector could not find its alert or ticket again).
    pub fn key(&self, prefix: &str) -> Result<String> {
        if self.id.is_empty() {
            return Err(Error::invalid_event("the incident has no `id`"));
        }
        Ok(format!("{prefix}{}", self.id))
    }
}

/// `Some(skip)` for events that are not incident events.
pub fn skip_non_incident(connector: &str, ctx: &Context) -> Option<Outcome> {
    (!ctx.event_type.starts_with("incident"))
        .then(|| Outcome::skip(format!("{connector}: `{}` is not an incident event", ctx.event_type)))
}

/// A string config key: `None` when absent or null, an error naming the key when not a string.
pub fn config_str<'c>(config: &'c Value, key: &str) -> Result<Option<&'c str>> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(Error::invalid_config(format!("`{key}` must be a string"))),
    }
}

/// A required string config key.
pub fn require_str<'c>(config: &'c Value, key: &str) -> Result<&'c str> {
    config_str(config, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_config(format!("`{key}` is required")))
}

/// The url to send to: the config's `url`, else the webhook's.
pub fn target_url<'c>(ctx: &'c Context, config: &'c Value) -> Result<&'c str> {
    Ok(config_str(config, "url")?.unwrap_or(ctx.url.as_str()))
}

/// The webhook url without a trailing `/`, as a base for vendor API paths.
pub fn base_url<'c>(ctx: &'c Context, config: &'c Value) -> Result<&'c str> {
    Ok(target_url(ctx, config)?.trim_end_matches('/'))
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate(s: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    if s.len() <= max || s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    Cow::Owned(out)
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Squadcast samples in `tests/fixtures/squadcast`, for the connectors' table tests.
pub mod samples {
    pub const TRIGGERED: &str = include_str!("../../../tests/fixtures/squadcast/incident_triggered.json");
    pub const ACKNOWLEDGED: &str = include_str!("../../../tests/fixtures/squadcast/incident_acknowledged.json");
    pub const RESOLVED: &str = include_str!("../../../tests/fixtures/squadcast/incident_resolved.json");
    pub const REASSIGNED: &str = include_str!("../../../tests/fixtures/squadcast/incident_reassigned.json");

    /// Every sample with the canonical event type the gateway gives it.
    pub const ALL: [(&str, &str); 4] = [
        ("incident.triggered", TRIGGERED),
        ("incident.acknowledged", ACKNOWLEDGED),
        ("incident.resolved", RESOLVED),
        ("incident.reassigned", REASSIGNED),
    ];

    /// A context for `event_type` sending to `url`.
    pub fn ctx(event_type: &str, url: &str) -> gateway_sdk::Context {
        gateway_sdk::Context { event_type: event_type.into(), url: url.into(), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::serde_json::json;

    #[test]
    fn status_from_event_and_sample() {
        for (event_type, text, want) in [
            ("incident.triggered", samples::TRIGGERED, Status::Triggered),
            ("incident.acknowledged", samples::ACKNOWLEDGED, Status::Acknowledged),
            ("incident.resolved", samples::RESOLVED, Status::Resolved),
            ("incident.reassigned", samples::REASSIGNED, Status::Reassigned),
        ] {
            let e = Event::from_json(text).unwrap();
            let i = Incident::read(&e);
            assert_eq!(Status::of(&i, &samples::ctx(event_type, "")), want, "{event_type}");
        }
        let none = Incident::default();
        assert_eq!(Status::of(&none, &samples::ctx("incident.reopened", "")), Status::Reopened);
        // The event says what happened even when the incident's status says something else.
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        assert_eq!(Status::of(&Incident::read(&e), &samples::ctx("incident.silenced", "")), Status::Updated);
        assert_eq!(Status::of(&Incident::read(&e), &samples::ctx("custom", "")), Status::Triggered);
        assert_eq!(Status::of(&none, &samples::ctx("incident.escalated", "")), Status::Updated);
        assert_eq!(Status::Triggered.rgb(), 0xD32F2F);
    }

    #[test]
    fn summary_of_the_triggered_sample() {
        let e = Event::from_json(samples::TRIGGERED).unwrap();
        let i = Incident::read(&e);
        let s =
            Summary::new(&i, &samples::ctx("incident.triggered", ""), &json!({"incident_url": "https://a.test/{id}"}));
        assert_eq!(s.headline(), "Triggered: Sample incident for testing webhooks");
        assert_eq!(s.service, "Team 2 Service 1");
        assert_eq!(s.source, "Squadcast UI");
        assert_eq!(s.assigned, "escalationpolicy 617411dcc6991e7406f95ec5");
        assert_eq!(s.link.as_deref(), Some("https://a.test/619cba1e749fd801ea1cd439"));
        assert_eq!(s.key("sq-").unwrap(), "sq-619cba1e749fd801ea1cd439");
        let empty = Incident::default();
        let s = Summary::new(&empty, &samples::ctx("incident.triggered", ""), &Value::Null);
        assert!(matches!(s.key("x"), Err(Error::InvalidEvent(_))));
        assert_eq!((s.title, s.service, s.assigned.as_str()), ("Incident", "unknown service", "nobody"));
    }

    #[test]
    fn config_helpers_name_the_key() {
        let c = json!({"url": 3, "project": "OPS"});
        assert!(
            matches!(target_url(&samples::ctx("incident.triggered", "https://x.test"), &c), Err(Error::InvalidConfig(m)) if m.contains("`url`"))
        );
        assert_eq!(require_str(&c, "project").unwrap(), "OPS");
        assert!(matches!(require_str(&c, "other"), Err(Error::InvalidConfig(m)) if m.contains("`other` is required")));
        assert_eq!(encode("a b/ç"), "a%20b%2F%C3%A7");
        assert_eq!(truncate("abcdef".into(), 4), "abc…");
        assert!(skip_non_incident("x", &samples::ctx("deploy.done", "")).is_some());
        assert!(skip_non_incident("x", &samples::ctx("incident.resolved", "")).is_none());
    }
}
