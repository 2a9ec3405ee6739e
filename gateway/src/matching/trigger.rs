//! Trigger events: canonical names, every alias of the design's table, custom types, Grafana's
//! `status change` (every type in [`STATUS_CHANGE_TYPES`]) and `*` (every event).

use crate::model::event::{STATUS_CHANGE_TYPES, canonical_type};

/// The stored name of Grafana's `status change` trigger.
pub const STATUS_CHANGE: &str = "status_change";
/// The trigger that fires on every event.
pub const ANY: &str = "*";

/// Maps a trigger as a client sent it to the stored name: `*`, `status_change` (also
/// `status change` / `status-change`, any case), or the canonical event type (aliases and custom
/// types via [`canonical_type`]).
pub fn normalize_trigger(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t == ANY {
        return Ok(ANY.to_string());
    }
    if ["status change", "status_change", "status-change"]
        .iter()
        .any(|s| t.eq_ignore_ascii_case(s))
    {
        return Ok(STATUS_CHANGE.to_string());
    }
    canonical_type(t).map_err(|e| e.to_string())
}

/// A webhook's triggers, normalised so that each event type falls into exactly one bucket:
/// `any`, else `status_change` (for status types), else `exact`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Triggers {
    pub any: bool,
    pub status_change: bool,
    /// Canonical types not already covered by `any` / `status_change`, deduplicated.
    pub exact: Vec<String>,
}

impl Triggers {
    /// Normalises `raw`; an error names the position (`trigger_events[2]`).
    pub fn compile(raw: &[String]) -> Result<Triggers, super::FieldError> {
        if raw.is_empty() {
            return Err(super::FieldError::new(
                "trigger_events",
                "must list at least one event (use \"*\" for all)",
            ));
        }
        let mut t = Triggers::default();
        for (i, r) in raw.iter().enumerate() {
            match normalize_trigger(r)
                .map_err(|m| super::FieldError::new(format!("trigger_events[{i}]"), m))?
                .as_str()
            {
                ANY => t.any = true,
                STATUS_CHANGE => t.status_change = true,
                other => {
                    if !t.exact.iter().any(|e| e == other) {
                        t.exact.push(other.to_string());
                    }
                }
            }
        }
        if t.any {
            t.status_change = false;
            t.exact.clear();
        } else if t.status_change {
            t.exact
                .retain(|e| !STATUS_CHANGE_TYPES.contains(&e.as_str()));
        }
        Ok(t)
    }

    /// Whether a (canonical) event type fires these triggers.
    pub fn fires(&self, event_type: &str) -> bool {
        self.any
            || (self.status_change && STATUS_CHANGE_TYPES.contains(&event_type))
            || self.exact.iter().any(|e| e == event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_of_the_design_table_normalises() {
        let table: &[(&str, &[&str])] = &[
            (
                "incident.triggered",
                &[
                    "incident_triggered",
                    "incident.created",
                    "alert group created",
                    "Alert Group Created",
                ],
            ),
            (
                "incident.acknowledged",
                &[
                    "incident_acknowledged",
                    "incident.acknowledged",
                    "acknowledge",
                ],
            ),
            (
                "incident.unacknowledged",
                &["incident.unacknowledged", "unacknowledge"],
            ),
            ("incident.reassigned", &["incident_reassigned"]),
            ("incident.escalated", &["escalation"]),
            (
                "incident.resolved",
                &[
                    "incident_resolved",
                    "incident.resolved",
                    "resolve",
                    "RESOLVE",
                ],
            ),
            ("incident.reopened", &["unresolve"]),
            ("incident.silenced", &["silence"]),
            ("incident.unsilenced", &["unsilence"]),
        ];
        for (canonical, aliases) in table {
            assert_eq!(normalize_trigger(canonical).as_deref(), Ok(*canonical));
            for a in *aliases {
                assert_eq!(normalize_trigger(a).as_deref(), Ok(*canonical), "{a}");
            }
        }
        for s in [
            "status change",
            "Status Change",
            "status_change",
            " status-change ",
        ] {
            assert_eq!(normalize_trigger(s).as_deref(), Ok(STATUS_CHANGE), "{s}");
        }
        assert_eq!(normalize_trigger(" * ").as_deref(), Ok(ANY));
        assert_eq!(
            normalize_trigger("deploy.finished").as_deref(),
            Ok("deploy.finished")
        );
        assert!(normalize_trigger("not a type!").is_err());
        assert!(normalize_trigger("").is_err());
        assert!(normalize_trigger("**").is_err());
    }

    #[test]
    fn status_change_fires_on_exactly_the_status_types() {
        let t = Triggers::compile(&["status change".into()]).unwrap();
        for ty in STATUS_CHANGE_TYPES {
            assert!(t.fires(ty), "{ty}");
        }
        for ty in [
            "incident.triggered",
            "incident.reassigned",
            "incident.escalated",
            "deploy.finished",
        ] {
            assert!(!t.fires(ty), "{ty}");
        }
    }

    #[test]
    fn star_fires_on_everything_and_absorbs_the_rest() {
        let t = Triggers::compile(&["resolve".into(), "*".into(), "status change".into()]).unwrap();
        assert_eq!(
            t,
            Triggers {
                any: true,
                status_change: false,
                exact: vec![]
            }
        );
        assert!(t.fires("incident.triggered") && t.fires("anything.custom"));
    }

    #[test]
    fn exact_types_are_deduplicated_and_status_types_absorbed() {
        let t = Triggers::compile(&[
            "acknowledge".into(),
            "incident_triggered".into(),
            "incident.created".into(),
            "status_change".into(),
        ])
        .unwrap();
        assert_eq!(t.exact, vec!["incident.triggered".to_string()]);
        assert!(
            t.status_change && t.fires("incident.acknowledged") && t.fires("incident.triggered")
        );
        assert!(!t.fires("incident.escalated"));
    }

    #[test]
    fn bad_trigger_is_refused_with_its_position() {
        let e = Triggers::compile(&["resolve".into(), "bad type!".into()]).unwrap_err();
        assert_eq!(e.field, "trigger_events[1]");
        assert_eq!(Triggers::compile(&[]).unwrap_err().field, "trigger_events");
    }
}
