//! One webhook compiled for matching: normalised triggers, filter, integration filter and trigger
//! template, plus the per-event checks run in order (cheapest first, the template last).

use std::cell::OnceCell;
use std::sync::Arc;

use minijinja::Value as JinjaValue;

use super::FieldError;
use super::filter::Filter;
use super::template::{TemplateMiss, TriggerTemplate};
use super::trigger::Triggers;
use crate::model::{Event, Scope, Webhook};

/// A webhook with everything it needs for matching compiled.
#[derive(Debug)]
pub(crate) struct CompiledWebhook {
    pub webhook: Arc<Webhook>,
    pub triggers: Triggers,
    pub filter: Option<Filter>,
    pub integration: Option<Filter>,
    pub template: Option<TriggerTemplate>,
}

/// Why a webhook in scope and on the right trigger did not fire.
#[derive(Debug)]
pub(crate) enum Miss<'a> {
    Filter(&'a str),
    Integration,
    Template(TemplateMiss),
}

/// An event plus what is derived from it lazily and shared by every webhook checked against it.
pub(crate) struct EventCtx<'e> {
    pub event: &'e Event,
    jinja: OnceCell<JinjaValue>,
}

impl<'e> EventCtx<'e> {
    pub fn new(event: &'e Event) -> Self {
        EventCtx {
            event,
            jinja: OnceCell::new(),
        }
    }

    /// The body as a Jinja value, converted once per event and only if a template needs it.
    fn jinja(&self) -> &JinjaValue {
        self.jinja
            .get_or_init(|| JinjaValue::from(minijinja::value::Serde(&self.event.body)))
    }
}

impl CompiledWebhook {
    /// Compiles every matching-related field; the error names the first bad one.
    pub fn compile(webhook: Arc<Webhook>) -> Result<CompiledWebhook, FieldError> {
        let triggers = Triggers::compile(&webhook.trigger_events)?;
        let filter = match &webhook.filter {
            None | Some(serde_json::Value::Null) => None,
            Some(f) => Some(Filter::compile(f, "filter")?),
        };
        let integration = match &webhook.integration_filter {
            None => None,
            Some(ids) => Filter::integration(ids, "integration_filter")?,
        };
        let template = match webhook.trigger_template.as_deref() {
            Some(src) if !src.trim().is_empty() => {
                Some(TriggerTemplate::compile(src, "trigger_template")?)
            }
            _ => None,
        };
        Ok(CompiledWebhook {
            webhook,
            triggers,
            filter,
            integration,
            template,
        })
    }

    /// Filter, then integration filter, then trigger template (the costly one).
    pub fn check(&self, ctx: &EventCtx<'_>) -> Result<(), Miss<'_>> {
        if let Some(f) = &self.filter {
            f.check(ctx.event).map_err(Miss::Filter)?;
        }
        if let Some(f) = &self.integration
            && !f.matches(ctx.event)
        {
            return Err(Miss::Integration);
        }
        if let Some(t) = &self.template {
            t.check(ctx.jinja()).map_err(Miss::Template)?;
        }
        Ok(())
    }
}

/// Callgoose's scopes: global sees every event, a team webhook its team's, a service webhook its
/// service's.
pub(crate) fn scope_fits(scope: &Scope, event: &Event) -> bool {
    match scope {
        Scope::Global => true,
        Scope::Team { team_id } => event.scope.team_id.as_deref() == Some(team_id.as_str()),
        // A team's service webhook hears only its own team's events of that service: another
        // team (or a team-less event) naming the same service id must not reach it.
        Scope::Service {
            service_id,
            team_id,
        } => {
            event.scope.service_id.as_deref() == Some(service_id.as_str())
                && team_id
                    .as_deref()
                    .is_none_or(|t| event.scope.team_id.as_deref() == Some(t))
        }
    }
}
