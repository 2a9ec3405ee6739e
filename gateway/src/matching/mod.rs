//! Matching: which webhooks an event fires. Pure (no I/O); compiled once per webhook.
//!
//! A webhook fires for an event when, in this order (the order `explain` reports):
//! 1. it is enabled (`is_webhook_enabled`) and its configuration compiles;
//! 2. its scope fits (Callgoose): `global` sees every team's events, `team` only events whose team
//!    ([`EventScope::team_id`](crate::model::EventScope)) is its team, `service` only events of its
//!    service. One event can fire global, team and service webhooks alike;
//! 3. one of its `trigger_events` names the event's canonical type, or is `status_change` (Grafana's
//!    `status change`: every type in [`STATUS_CHANGE_TYPES`](crate::model::event::STATUS_CHANGE_TYPES))
//!    or `*`. Triggers are normalised with [`normalize_trigger`] (every alias of the design's table);
//! 4. its `filter` passes, then its `integration_filter`, then its `trigger_template` (OnCall's
//!    rule: fires when the rendered text, trimmed, is `true` or `1` in any case; a render error
//!    does not fire).
//!
//! A private event (`Event::private`) fires like any other, but the match says
//! [`PayloadView::PrivateStub`] (send only `Event::private_view()`) unless the webhook has
//! `include_private_payloads`.
//!
//! # Filter shapes (the `filter` field)
//! Filters see the event body as posted. One JSON object; its keys are ANDed:
//!
//! - **Mongo-style**, over dotted paths (`service.slug`, `assigned_to.0.type`; a non-numeric segment
//!   meeting an array looks into every element, as in Mongo):
//!   - `{"path": value}` is `$eq`; `{"path": {"$op": arg, ...}}` ANDs the operators;
//!   - `$eq $ne` (any JSON; `1` equals `1.0`), `$in $nin` (an array), `$gt $gte $lt $lte` (a number
//!     or a string; numbers only compare with numbers, strings with strings), `$exists` (bool),
//!     `$regex` (string, `regex` crate syntax, optional sibling `$options` of `i m s x`),
//!     `$not` (an operator object: `{"severity": {"$not": {"$in": ["low"]}}}`);
//!   - a field holding an array matches when any element matches (`$eq` also matches the whole
//!     array); a missing field matches `$ne`, `$nin`, `$not`, `$exists: false` and `{"$eq": null}`;
//!   - top level: `{"$and": [filter, ...]}`, `{"$or": [filter, ...]}`, `{"$not": filter}`.
//! - **Squadcast shortcuts**: `{"services": ["<id, slug or name>", ...]}` (the event's `service_id`,
//!   `service.id`, `service.slug` or `service.name`) and `{"alert_sources": ["<id or short name>",
//!   ...]}` (the event's `alert_source.id`, `alert_source.short_name`, `alert_source_id`,
//!   `integration.id`). An empty list means no restriction, like an untouched drop-down. Both mix
//!   with Mongo keys: `{"services": ["db"], "severity": {"$in": ["high", "critical"]}}`.
//! - **Expression groups** (Squadcast's expressions and groups), wherever a filter object goes:
//!   `{"match": "all" | "any", "rules": [rule | group, ...]}` with `match` defaulting to `all` and
//!   each rule `{"field": F, "op": OP, "value": V}`:
//!   - `F` = `service` or `alert_source` (as the shortcuts): `op` is `is`, `is_not`, `in`, `not_in`,
//!     `V` a string or an array of strings;
//!   - `F` = a dotted path: `op` is `is` / `is_not` / `in` / `not_in` / `gt` / `gte` / `lt` / `lte`
//!     (as `$eq $ne $in $nin $gt $gte $lt $lte`), `exists` / `not_exists` (no value), `matches`
//!     (a regex) or `contains` (a substring); `op` defaults to `is`.
//!
//! `services`, `alert_sources`, `match` and `rules` are therefore reserved at the top of a filter
//! object. Limits: [`MAX_DEPTH`](filter::MAX_DEPTH) levels, [`MAX_CLAUSES`](filter::MAX_CLAUSES)
//! clauses, regexes of at most [`MAX_REGEX_LEN`](filter::MAX_REGEX_LEN) bytes and
//! [`REGEX_SIZE_LIMIT`](filter::REGEX_SIZE_LIMIT) compiled. A refused filter names the position of
//! the problem: `filter.$and[1].severity.$gt: expected a number or string`,
//! `filter.rules[0].rules[2].op: unknown op ...`.
//!
//! Grafana's `integration_filter` (a list of alert source ids) compiles to the same alert-source
//! check as the shortcut; `null` or `[]` means every integration. `explain` reports it separately.
//!
//! # Cost
//! [`Matcher`] indexes webhooks by scope and trigger bucket, so matching reads only the webhooks
//! whose scope and type fit the event; filters are pre-compiled and do not allocate; a template's
//! Jinja context is built at most once per event. See `docs/benchmarks-matching.md`.
//!
//! Files: `trigger` (names), `filter` (filters), `template` (trigger templates), `compiled` (one
//! webhook compiled), `index` (the [`Matcher`]), `explain` (dry-run answers).

mod compiled;
pub mod explain;
pub mod filter;
mod index;
pub mod template;
pub mod trigger;

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

pub use explain::{Decision, Reason, Verdict};
pub use filter::Filter;
pub use index::{InvalidWebhook, Matcher};
pub use template::TriggerTemplate;
pub use trigger::{Triggers, normalize_trigger};

use crate::model::{Event, Webhook};

/// A refused field, named by its position (`filter.$or[0].status`, `trigger_events[2]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What the delivery side may send for a matched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadView {
    /// The whole event.
    Full,
    /// A private event for a webhook without `include_private_payloads`: only
    /// [`Event::private_view`] (id and type) may leave the gateway.
    PrivateStub,
}

impl PayloadView {
    /// incident.io's rule.
    pub fn for_event(event: &Event, webhook: &Webhook) -> PayloadView {
        if event.private && !webhook.include_private_payloads {
            PayloadView::PrivateStub
        } else {
            PayloadView::Full
        }
    }

    /// The body to hand to the plugins / send.
    pub fn body<'e>(self, event: &'e Event) -> Cow<'e, Value> {
        match self {
            PayloadView::Full => Cow::Borrowed(&event.body),
            PayloadView::PrivateStub => Cow::Owned(event.private_view()),
        }
    }
}

/// A webhook an event fires, and what may be sent to it.
#[derive(Debug, Clone)]
pub struct MatchedWebhook {
    pub webhook: Arc<Webhook>,
    pub payload: PayloadView,
}

/// Checks what only the matching engine knows, when a webhook is saved: trigger events, filter,
/// integration filter and trigger template. The error names the field (`filter.$and[1].x.$gt`).
pub fn validate(webhook: &Webhook) -> Result<(), FieldError> {
    compiled::CompiledWebhook::compile(Arc::new(webhook.clone())).map(|_| ())
}

#[cfg(test)]
mod tests;
