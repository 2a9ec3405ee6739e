//! The [`Matcher`]: every webhook compiled once and indexed by scope and trigger, so matching an
//! event costs the webhooks that could fire it, not all of them.
//!
//! Index shape: scope (global, `team_id ->`, `service_id ->`) then trigger bucket (exact canonical
//! type, `status_change`, `*`). A webhook has one scope, and [`Triggers`](super::trigger::Triggers)
//! puts each event type in exactly one of its buckets, so an event reads at most nine short
//! lists that are already the intersection of scope and type, with no duplicates.

use std::collections::HashMap;
use std::sync::Arc;

use super::compiled::{CompiledWebhook, EventCtx, scope_fits};
use super::explain::{Decision, Reason, Verdict};
use super::{FieldError, MatchedWebhook, PayloadView};
use crate::model::event::STATUS_CHANGE_TYPES;
use crate::model::{Event, Scope, Webhook};

/// A webhook's position in `Matcher::entries`.
type Slot = u32;

#[derive(Debug, Default)]
struct Buckets {
    exact: HashMap<Box<str>, Vec<Slot>>,
    status_change: Vec<Slot>,
    any: Vec<Slot>,
}

impl Buckets {
    fn insert(&mut self, c: &CompiledWebhook, slot: Slot) {
        let t = &c.triggers;
        if t.any {
            self.any.push(slot);
        }
        if t.status_change {
            self.status_change.push(slot);
        }
        for e in &t.exact {
            self.exact.entry(e.as_str().into()).or_default().push(slot);
        }
    }

    fn collect(&self, event_type: &str, status: bool, out: &mut Vec<Slot>) {
        out.extend_from_slice(&self.any);
        if status {
            out.extend_from_slice(&self.status_change);
        }
        if let Some(v) = self.exact.get(event_type) {
            out.extend_from_slice(v);
        }
    }
}

#[derive(Debug)]
enum Entry {
    Ready(Arc<CompiledWebhook>),
    Invalid {
        webhook: Arc<Webhook>,
        error: FieldError,
    },
}

impl Entry {
    fn webhook(&self) -> &Arc<Webhook> {
        match self {
            Entry::Ready(c) => &c.webhook,
            Entry::Invalid { webhook, .. } => webhook,
        }
    }
}

/// A webhook left out of matching because its stored configuration does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidWebhook {
    pub webhook_id: String,
    pub error: FieldError,
}

/// Every webhook, compiled and indexed. Immutable: build a new one (cheaply, with
/// [`Matcher::rebuild`]) when webhooks change and swap the `Arc`.
#[derive(Debug, Default)]
pub struct Matcher {
    entries: Vec<Entry>,
    global: Buckets,
    teams: HashMap<Box<str>, Buckets>,
    services: HashMap<Box<str>, Buckets>,
    invalid: Vec<InvalidWebhook>,
}

impl Matcher {
    /// Compiles and indexes `webhooks`. Those whose configuration fails to compile are skipped and
    /// listed in [`Matcher::invalid`].
    pub fn new(webhooks: impl IntoIterator<Item = Webhook>) -> Matcher {
        Matcher::assemble(webhooks, |w| CompiledWebhook::compile(w).map(Arc::new))
    }

    /// Like [`Matcher::new`], but reuses the compiled form (regexes, templates) of every webhook
    /// that is unchanged since `self` was built.
    pub fn rebuild(&self, webhooks: impl IntoIterator<Item = Webhook>) -> Matcher {
        let old: HashMap<&str, &Arc<CompiledWebhook>> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Ready(c) => Some((c.webhook.id.as_str(), c)),
                Entry::Invalid { .. } => None,
            })
            .collect();
        Matcher::assemble(webhooks, |w| match old.get(w.id.as_str()) {
            Some(c) if *c.webhook == *w => Ok(Arc::clone(c)),
            _ => CompiledWebhook::compile(w).map(Arc::new),
        })
    }

    fn assemble(
        webhooks: impl IntoIterator<Item = Webhook>,
        mut compile: impl FnMut(Arc<Webhook>) -> Result<Arc<CompiledWebhook>, FieldError>,
    ) -> Matcher {
        let mut m = Matcher::default();
        for w in webhooks {
            let w = Arc::new(w);
            let Ok(slot) = Slot::try_from(m.entries.len()) else {
                break;
            };
            match compile(Arc::clone(&w)) {
                Ok(c) => {
                    if w.is_webhook_enabled {
                        m.bucket_for(&w.scope).insert(&c, slot);
                    }
                    m.entries.push(Entry::Ready(c));
                }
                Err(error) => {
                    m.invalid.push(InvalidWebhook {
                        webhook_id: w.id.clone(),
                        error: error.clone(),
                    });
                    m.entries.push(Entry::Invalid { webhook: w, error });
                }
            }
        }
        m
    }

    fn bucket_for(&mut self, scope: &Scope) -> &mut Buckets {
        match scope {
            Scope::Global => &mut self.global,
            Scope::Team { team_id } => self.teams.entry(team_id.as_str().into()).or_default(),
            Scope::Service { service_id, .. } => {
                self.services.entry(service_id.as_str().into()).or_default()
            }
        }
    }

    /// Webhooks skipped because their configuration does not compile.
    pub fn invalid(&self) -> &[InvalidWebhook] {
        &self.invalid
    }

    /// Number of webhooks (enabled or not, valid or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The webhooks `event` fires, in the order they were given, each with the payload view the
    /// delivery side must send.
    pub fn matches(&self, event: &Event) -> Vec<MatchedWebhook> {
        let status = STATUS_CHANGE_TYPES.contains(&event.event_type.as_str());
        let mut slots = Vec::new();
        self.global.collect(&event.event_type, status, &mut slots);
        if let Some(b) = event
            .scope
            .team_id
            .as_deref()
            .and_then(|t| self.teams.get(t))
        {
            b.collect(&event.event_type, status, &mut slots);
        }
        if let Some(b) = event
            .scope
            .service_id
            .as_deref()
            .and_then(|s| self.services.get(s))
        {
            b.collect(&event.event_type, status, &mut slots);
        }
        slots.sort_unstable();
        slots.dedup();
        let ctx = EventCtx::new(event);
        slots
            .into_iter()
            .filter_map(|slot| match &self.entries[slot as usize] {
                // The buckets key services by id alone; scope_fits adds the owning team's rule.
                Entry::Ready(c) if scope_fits(&c.webhook.scope, event) && c.check(&ctx).is_ok() => {
                    Some(MatchedWebhook {
                        webhook: Arc::clone(&c.webhook),
                        payload: PayloadView::for_event(event, &c.webhook),
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// The dry run: for every webhook, in order, whether `event` fires it and why not. Fires
    /// exactly what [`Matcher::matches`] returns.
    pub fn explain(&self, event: &Event) -> Vec<Decision> {
        let ctx = EventCtx::new(event);
        self.entries
            .iter()
            .map(|entry| {
                let w = entry.webhook();
                let verdict = match decide(entry, &ctx) {
                    Ok(()) => Verdict::Fired {
                        payload: PayloadView::for_event(event, w),
                    },
                    Err(reason) => Verdict::Skipped { reason },
                };
                Decision {
                    webhook_id: w.id.clone(),
                    verdict,
                }
            })
            .collect()
    }
}

fn decide(entry: &Entry, ctx: &EventCtx<'_>) -> Result<(), Reason> {
    let c = match entry {
        Entry::Invalid { error, .. } => {
            return Err(Reason::Invalid {
                field: error.field.clone(),
                message: error.message.clone(),
            });
        }
        Entry::Ready(c) => c,
    };
    let (w, event) = (&c.webhook, ctx.event);
    if !w.is_webhook_enabled {
        return Err(Reason::Disabled {
            disabled_reason: w.disabled_reason.clone(),
        });
    }
    if !scope_fits(&w.scope, event) {
        let (wanted, event_value) = match &w.scope {
            Scope::Team { team_id } => (team_id.clone(), event.scope.team_id.clone()),
            Scope::Service {
                service_id,
                team_id: Some(t),
            } if event.scope.service_id.as_deref() == Some(service_id.as_str()) => (
                format!("team {t}"),
                Some(match &event.scope.team_id {
                    Some(other) => format!("team {other}"),
                    None => "no team".to_string(),
                }),
            ),
            Scope::Service { service_id, .. } => {
                (service_id.clone(), event.scope.service_id.clone())
            }
            Scope::Global => (String::new(), None),
        };
        return Err(Reason::Scope {
            scope: w.scope.kind(),
            wanted,
            event_value,
        });
    }
    if !c.triggers.fires(&event.event_type) {
        return Err(Reason::Trigger {
            event_type: event.event_type.clone(),
            trigger_events: w.trigger_events.clone(),
        });
    }
    c.check(ctx)
        .map_err(|miss| Reason::from_miss(miss, &event.scope.alert_sources))
}
