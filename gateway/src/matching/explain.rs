//! The dry-run answer: for every webhook, fired (and with which payload view) or why not.
//!
//! `Matcher::explain` walks every webhook through the same checks `Matcher::matches` runs on its
//! indexed candidates, so the two always agree on what fires (a test holds them to it).

use serde::Serialize;

use super::PayloadView;
use super::compiled::Miss;
use super::template::TemplateMiss;

/// What matching decided for one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub webhook_id: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Decision {
    pub fn fired(&self) -> bool {
        matches!(self.verdict, Verdict::Fired { .. })
    }
}

/// Fired with a payload view, or skipped for a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    Fired { payload: PayloadView },
    Skipped { reason: Reason },
}

/// Why a webhook did not fire, in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Its stored configuration does not compile (it is skipped until fixed).
    #[error("invalid configuration: {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the webhook is disabled")]
    Disabled { disabled_reason: Option<String> },
    /// A team or service webhook and an event of another (or no) team / service.
    #[error("{scope} webhook for {wanted:?}; the event's {scope} is {event_value:?}")]
    Scope {
        scope: &'static str,
        wanted: String,
        event_value: Option<String>,
    },
    #[error("event type {event_type:?} is not among the triggers {trigger_events:?}")]
    Trigger {
        event_type: String,
        trigger_events: Vec<String>,
    },
    /// `clause` is the position of the failing clause, e.g. `filter.$and[1].severity.$gt`.
    #[error("the filter clause {clause} did not match")]
    Filter { clause: String },
    #[error("the event's alert sources {alert_sources:?} are not in integration_filter")]
    IntegrationFilter { alert_sources: Vec<String> },
    /// The template rendered to something other than `true` / `1`.
    #[error("trigger_template rendered {rendered:?}, not true or 1")]
    TriggerTemplateFalse { rendered: String },
    #[error("trigger_template failed: {error}")]
    TriggerTemplateError { error: String },
}

impl Reason {
    pub(crate) fn from_miss(miss: Miss<'_>, alert_sources: &[String]) -> Reason {
        match miss {
            Miss::Filter(clause) => Reason::Filter {
                clause: clause.to_string(),
            },
            Miss::Integration => Reason::IntegrationFilter {
                alert_sources: alert_sources.to_vec(),
            },
            Miss::Template(TemplateMiss::Rendered(rendered)) => {
                Reason::TriggerTemplateFalse { rendered }
            }
            Miss::Template(TemplateMiss::Error(error)) => Reason::TriggerTemplateError { error },
        }
    }
}
