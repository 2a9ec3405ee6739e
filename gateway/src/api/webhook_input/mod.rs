//! Reading webhook create/update bodies field by field, so each refusal names its field, and
//! `PUT` with a subset of fields changes only those (Grafana OnCall's clients rely on that).
//! Also the OnCall-shaped view of a webhook, with secrets masked.
//!
//! Field readers are in `fields`, URL and trigger checks in `validate`, Grafana OnCall's fields in
//! `oncall`, the gateway's own fields in `extensions` (and `client_cert`), and the API view in `view`.

mod client_cert;
mod extensions;
mod fields;
mod oncall;
mod plugin_secrets;
mod validate;
mod view;

pub use oncall::{ADVANCED_PRESET, PRESET_MESSAGE, TRIGGER_TYPES};
pub use validate::{normalize_trigger, validate_url};
pub use view::{action_view, view};

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

/// The gateway's own fields: a body using any of them is not a plain Grafana OnCall request, so
/// OnCall's `http_method` requirement does not apply to it (it defaults to POST).
const EXTENSION_FIELDS: &[&str] = &[
    "urls",
    "trigger_events",
    "scope",
    "filter",
    "plugins",
    "authenticator",
    "auth",
    "signing",
    "send_as",
    "retry",
    "ordering",
    "timeout_secs",
    "auto_disable",
    "failure_email",
    "include_private_payloads",
    "description",
    "client_certificate",
];

/// Whether the body uses any of the gateway's own fields.
pub fn uses_extensions(m: &Input) -> bool {
    EXTENSION_FIELDS.iter().any(|k| m.contains_key(*k))
}

/// A new webhook from a create body. Every field is read and checked before anything is
/// stored; the caller stores the result in one write.
pub fn create(m: &Input, cx: &InputContext<'_>) -> Result<Webhook, ApiError> {
    if required_str(m, "name", oncall::MAX_NAME)?.is_none() {
        return Err(ApiError::field("name", "This field is required."));
    }
    if m.get("url").is_none() && m.get("urls").is_none() {
        return Err(ApiError::field("url", "This field is required."));
    }
    if m.get("trigger_type").is_none() && m.get("trigger_events").is_none() {
        return Err(ApiError::field("trigger_type", "This field is required."));
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
    // Grafana OnCall requires `http_method` (checked after the fields, so a bad field is named
    // first); the gateway's own fields imply POST.
    if m.get("http_method").is_none() && !uses_extensions(m) {
        return Err(ApiError::field("http_method", "This field is required."));
    }
    Ok(w)
}

/// Applies the fields present in `m` to `w`; absent fields stay as they are. On an error `w` may
/// be half changed: callers apply it to a copy and store nothing unless it succeeds.
pub fn update(w: &mut Webhook, m: &Input, cx: &InputContext<'_>) -> Result<(), ApiError> {
    oncall::check_preset(w, m)?;
    oncall::apply_targets(w, m)?;
    oncall::apply_payload(w, m)?;
    extensions::apply(w, m, cx)?;
    client_cert::apply(w, m)?;
    if w.signing != Signing::None
        && w.send_as == SendAs::Query
        && matches!(w.signing, Signing::HmacSha512 { .. })
    {
        return Err(ApiError::field(
            "signing",
            "HMAC-SHA512 signing needs send_as \"body\" (Callgoose signs the body)",
        ));
    }
    plugin_secrets::check(w)?;
    w.updated_at = cx.now;
    Ok(())
}
