//! Incoming events: canonical event types, the alias table of the design, and the scope fields
//! (team, service, alert source) read from an event body.
//!
//! Normalisation is a pure function so the API, matching and the dry-run endpoint agree on it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One row of the design's alias table: canonical name and the names other products use.
struct Alias {
    canonical: &'static str,
    aliases: &'static [&'static str],
}

const ALIASES: &[Alias] = &[
    Alias {
        canonical: "incident.triggered",
        aliases: &[
            "incident_triggered",
            "incident.created",
            "alert group created",
            "triggered",
        ],
    },
    Alias {
        canonical: "incident.acknowledged",
        aliases: &["incident_acknowledged", "acknowledge", "acknowledged"],
    },
    Alias {
        canonical: "incident.unacknowledged",
        aliases: &["incident_unacknowledged", "unacknowledge", "unacknowledged"],
    },
    Alias {
        canonical: "incident.reassigned",
        aliases: &["incident_reassigned", "reassigned"],
    },
    Alias {
        canonical: "incident.escalated",
        aliases: &["incident_escalated", "escalation", "escalated"],
    },
    Alias {
        canonical: "incident.resolved",
        aliases: &["incident_resolved", "resolve", "resolved"],
    },
    Alias {
        canonical: "incident.reopened",
        aliases: &["incident_reopened", "unresolve", "reopened"],
    },
    Alias {
        canonical: "incident.silenced",
        aliases: &["incident_silenced", "silence", "silenced"],
    },
    Alias {
        canonical: "incident.unsilenced",
        aliases: &["incident_unsilenced", "unsilence", "unsilenced"],
    },
];

/// Canonical types that count as a status change (Grafana OnCall's `status change` trigger).
pub const STATUS_CHANGE_TYPES: &[&str] = &[
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.silenced",
    "incident.unsilenced",
];

/// The operational event raised when the gateway disables a webhook.
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";

/// Grafana OnCall's name for a canonical type, used to fill `trigger_type` in OnCall-shaped answers.
pub fn grafana_name(canonical: &str) -> Option<&'static str> {
    Some(match canonical {
        "incident.triggered" => "alert group created",
        "incident.acknowledged" => "acknowledge",
        "incident.unacknowledged" => "unacknowledge",
        "incident.escalated" => "escalation",
        "incident.resolved" => "resolve",
        "incident.reopened" => "unresolve",
        "incident.silenced" => "silence",
        "incident.unsilenced" => "unsilence",
        _ => return None,
    })
}

/// Why an event type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error("event type is empty")]
    Empty,
    #[error(
        "event type {0:?} is not a known type or alias, and not a valid custom type (^[A-Za-z0-9_.-]{{1,256}}$)"
    )]
    Invalid(String),
}

/// Maps a posted event type (canonical, alias in any case, or custom) to its canonical name.
pub fn canonical_type(raw: &str) -> Result<String, EventTypeError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(EventTypeError::Empty);
    }
    let lower = trimmed.to_ascii_lowercase();
    for row in ALIASES {
        if row.canonical == lower || row.aliases.contains(&lower.as_str()) {
            return Ok(row.canonical.to_string());
        }
    }
    if is_custom_type(trimmed) {
        return Ok(trimmed.to_string());
    }
    Err(EventTypeError::Invalid(raw.to_string()))
}

fn is_custom_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The scope an event belongs to, read from its body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventScope {
    pub team_id: Option<String>,
    pub service_id: Option<String>,
    /// Alert source ids and short names (any of them can be named in a filter).
    pub alert_sources: Vec<String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

impl EventScope {
    /// Reads team, service and alert source the way the design says: team from `owner` (type team),
    /// `team_id` or `team.id`; service from `service_id` or `service.id`; alert source from
    /// `alert_source.id` / `short_name`, `alert_source_id` or `integration.id`.
    pub fn from_body(body: &Value) -> Self {
        let owner_team = match (
            str_at(body, &["owner", "type"]),
            str_at(body, &["owner", "id"]),
        ) {
            (Some(t), Some(id)) if t.eq_ignore_ascii_case("team") => Some(id),
            _ => None,
        };
        let team_id = owner_team
            .or_else(|| str_at(body, &["team_id"]))
            .or_else(|| str_at(body, &["team", "id"]))
            .or_else(|| str_at(body, &["team"]))
            .map(str::to_string);
        let service_id = str_at(body, &["service_id"])
            .or_else(|| str_at(body, &["service", "id"]))
            .map(str::to_string);
        let mut alert_sources = Vec::new();
        for path in [
            &["alert_source", "id"][..],
            &["alert_source", "short_name"],
            &["alert_source_id"],
            &["integration", "id"],
            &["alert_group", "integration_id"],
        ] {
            if let Some(s) = str_at(body, path)
                && !alert_sources.iter().any(|a| a == s)
            {
                alert_sources.push(s.to_string());
            }
        }
        EventScope {
            team_id,
            service_id,
            alert_sources,
        }
    }
}

/// Reads the posted type: `event_type`, or Grafana OnCall's `event.type`.
pub fn raw_type(body: &Value) -> Option<&str> {
    body.get("event_type")
        .and_then(Value::as_str)
        .or_else(|| str_at(body, &["event", "type"]))
}

/// Whether the event is private (incident.io's rule: deliver only id and type).
pub fn is_private(body: &Value) -> bool {
    body.get("private")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// An event as stored and matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    /// Canonical type.
    pub event_type: String,
    /// The type as posted.
    pub source_type: String,
    pub scope: EventScope,
    pub private: bool,
    pub body: Value,
    /// Unix milliseconds.
    pub received_at: i64,
}

impl Event {
    /// Validates and normalises a posted body. The id is assigned by the caller.
    pub fn from_body(id: String, body: Value, received_at: i64) -> Result<Self, EventError> {
        if !body.is_object() {
            return Err(EventError::NotAnObject);
        }
        let raw = raw_type(&body).ok_or(EventError::MissingType)?.to_string();
        let event_type = canonical_type(&raw).map_err(EventError::Type)?;
        Ok(Event {
            id,
            scope: EventScope::from_body(&body),
            private: is_private(&body),
            source_type: raw,
            event_type,
            body,
            received_at,
        })
    }

    /// The payload a webhook that has not opted in sees for a private event.
    pub fn private_view(&self) -> Value {
        serde_json::json!({ "id": self.id, "event_type": self.event_type, "private": true })
    }
}

/// Why an event body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event body must be a JSON object")]
    NotAnObject,
    #[error("the event has no `event_type` (a string)")]
    MissingType,
    #[error("{0}")]
    Type(EventTypeError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aliases_map_to_canonical() {
        for (raw, canon) in [
            ("incident_triggered", "incident.triggered"),
            ("incident.created", "incident.triggered"),
            ("alert group created", "incident.triggered"),
            ("Acknowledge", "incident.acknowledged"),
            ("incident_reassigned", "incident.reassigned"),
            ("escalation", "incident.escalated"),
            ("resolve", "incident.resolved"),
            ("unresolve", "incident.reopened"),
            ("silence", "incident.silenced"),
            ("unsilence", "incident.unsilenced"),
            ("unacknowledge", "incident.unacknowledged"),
            ("deploy.finished", "deploy.finished"),
        ] {
            assert_eq!(canonical_type(raw).unwrap(), canon, "{raw}");
        }
        assert!(canonical_type("bad type!").is_err());
        assert!(canonical_type("").is_err());
        assert!(canonical_type(&"a".repeat(257)).is_err());
    }

    #[test]
    fn scope_from_squadcast_body() {
        let body = json!({"owner": {"id": "T1", "type": "team"}, "service": {"id": "S1"},
            "alert_source": {"id": "A1", "short_name": "squadcastui"}});
        let s = EventScope::from_body(&body);
        assert_eq!(s.team_id.as_deref(), Some("T1"));
        assert_eq!(s.service_id.as_deref(), Some("S1"));
        assert_eq!(s.alert_sources, vec!["A1", "squadcastui"]);
        let user_owned =
            EventScope::from_body(&json!({"owner": {"id": "U1", "type": "user"}, "team_id": "T2"}));
        assert_eq!(user_owned.team_id.as_deref(), Some("T2"));
    }

    #[test]
    fn grafana_event_type_is_read() {
        let e = Event::from_body("e".into(), json!({"event": {"type": "acknowledge"}}), 0).unwrap();
        assert_eq!(e.event_type, "incident.acknowledged");
        assert_eq!(
            Event::from_body("e".into(), json!([1]), 0),
            Err(EventError::NotAnObject)
        );
    }
}
