//! Reading webhook create/update bodies field by field, so each refusal names its field, and
//! `PUT` with a subset of fields changes only those (Grafana OnCall's clients rely on that).
//! Also the OnCall-shaped view of a webhook, with secrets masked.
//!
//! Field readers are in `fields`, URL and trigger checks in `validate`, Grafana OnCall's fields in
//! `oncall`, the gateway's own fields in `extensions`, and the API view in `view`.

mod extensions;
mod fields;
mod oncall;
mod validate;
mod view;

pub use validate::{normalize_trigger, validate_url};
pub use view::view;

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::model::{AutoDisable, Scope, SendAs, Signing, Webhook, new_id, new_signing_secret};
use fields::required_str;

/// Most trigger events, plugins and integration ids a webhook may list.
const MAX_TRIGGERS: usize = 32;
const MAX_PLUGINS: usize = 8;
const MAX_LIST: usize = 100;
/// Most bytes in a template field (data, trigger_template, headers).
const MAX_TEMPLATE: usize = 64 * 1024;

type Input = Map<String, Value>;

/// Context the API passes in: defaults and the caller's team.
pub struct InputContext<'a> {
    pub now: i64,
    pub default_timeout_secs: u64,
    pub max_timeout_secs: u64,
    pub default_auto_disable: AutoDisable,
    /// The caller's team, the default scope for a manager's new webhook.
    pub caller_team: Option<&'a str>,
}

/// A new webhook from a create body.
pub fn create(m: &Input, cx: &InputContext<'_>) -> Result<Webhook, ApiError> {
    if required_str(m, "name", 255)?.is_none() {
        return Err(ApiError::field("name", "is required"));
    }
    if m.get("url").is_none() && m.get("urls").is_none() {
        return Err(ApiError::field("url", "is required (or `urls`)"));
    }
    if m.get("trigger_type").is_none() && m.get("trigger_events").is_none() {
        return Err(ApiError::field(
            "trigger_type",
            "is required (or `trigger_events`)",
        ));
    }
    let mut w = Webhook {
        id: new_id("wh"),
        scope: cx
            .caller_team
            .map(|t| Scope::Team {
                team_id: t.to_string(),
            })
            .unwrap_or_default(),
        signing: Signing::StandardWebhooks {
            secret: new_signing_secret(),
            previous: Vec::new(),
        },
        timeout_secs: cx.default_timeout_secs,
        auto_disable: cx.default_auto_disable.clone(),
        created_at: cx.now,
        updated_at: cx.now,
        ..Webhook::default()
    };
    // OnCall sends the whole event unless a `data` template is given.
    if matches!(m.get("data"), Some(Value::String(_))) && m.get("forward_all").is_none() {
        w.forward_all = false;
    }
    update(&mut w, m, cx)?;
    Ok(w)
}

/// Applies the fields present in `m` to `w`; absent fields stay as they are.
pub fn update(w: &mut Webhook, m: &Input, cx: &InputContext<'_>) -> Result<(), ApiError> {
    oncall::apply_targets(w, m)?;
    oncall::apply_payload(w, m)?;
    extensions::apply(w, m, cx)?;
    if w.signing != Signing::None
        && w.send_as == SendAs::Query
        && matches!(w.signing, Signing::HmacSha512 { .. })
    {
        return Err(ApiError::field(
            "signing",
            "HMAC-SHA512 signing needs send_as \"body\" (Callgoose signs the body)",
        ));
    }
    w.updated_at = cx.now;
    Ok(())
}
