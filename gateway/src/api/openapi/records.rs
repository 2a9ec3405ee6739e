//! Schemas of the API's records for the OpenAPI document: the delivery log (attempts,
//! deliveries, Grafana OnCall's responses), events, dry runs, API keys and plugins. Like
//! `schemas`, descriptions only, never serialised.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::schemas::SigningType;
use crate::model::{AttemptOutcome, DeliveryStatus, EventScope, Role};

/// One entry of Grafana OnCall's responses log.
#[derive(ToSchema)]
pub struct OnCallResponse {
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub url: String,
    pub request_trigger: String,
    /// The request's headers as a JSON string; null when nothing was sent.
    #[schema(required)]
    pub request_headers: Option<String>,
    /// The body sent, or why nothing was sent.
    pub request_data: String,
    #[schema(required)]
    pub status_code: Option<u16>,
    /// The receiver's answer; null when there was none.
    #[schema(required)]
    pub content: Option<String>,
    /// The event, as JSON text.
    pub event_data: String,
}

/// One delivery attempt (headers masked, response capped).
#[derive(ToSchema)]
pub struct AttemptView {
    pub id: String,
    pub delivery_id: String,
    pub webhook_id: String,
    pub event_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub duration_ms: u64,
    pub method: String,
    pub url: String,
    pub request_headers: BTreeMap<String, String>,
    #[schema(required)]
    pub request_body: Option<String>,
    #[schema(required)]
    pub status_code: Option<u16>,
    #[schema(required)]
    pub response_body: Option<String>,
    #[schema(required)]
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

/// One delivery (an event to one url of one webhook).
#[derive(ToSchema)]
pub struct DeliveryView {
    /// Also the `webhook-id` header of every attempt.
    pub id: String,
    pub webhook_id: String,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When the next attempt is due; null unless pending.
    #[schema(required, format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(required)]
    pub last_status_code: Option<u16>,
    #[schema(required)]
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A delivery with its event and its attempt log.
#[derive(ToSchema)]
pub struct DeliveryDetail {
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    #[schema(required, format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(required)]
    pub last_status_code: Option<u16>,
    #[schema(required)]
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Up to 100 attempts, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

/// A stored event.
#[derive(ToSchema)]
pub struct EventView {
    pub id: String,
    /// The canonical type (e.g. `incident.triggered`) or the custom type.
    pub event_type: String,
    /// The type as the body named it.
    pub source_type: String,
    #[schema(format = DateTime)]
    pub received_at: String,
    pub private: bool,
    pub scope: EventScope,
    /// The body as it was posted.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub deliveries: Vec<DeliveryView>,
}

/// An event body: Squadcast's payloads as they are, or any JSON object with `event_type` (or
/// Grafana OnCall's `event.type` instead). Other fields are kept as they are. At most
/// `max_event_bytes`.
#[derive(ToSchema)]
pub struct EventInput {
    /// The event's type: a canonical name, an alias of Squadcast, Callgoose or Grafana OnCall,
    /// or a custom type matching `^[A-Za-z0-9_.-]{1,256}$`.
    #[schema(min_length = 1, max_length = 256)]
    pub event_type: String,
    /// Deduplicates posts without an `Idempotency-Key`.
    #[schema(nullable = false)]
    pub event_id: Option<String>,
    /// Delivered as `{id, event_type, private}` only, unless a webhook includes private payloads.
    #[schema(nullable = false)]
    pub private: Option<bool>,
}

/// What matching decided for one webhook.
#[derive(ToSchema)]
pub struct DryRunDecision {
    pub webhook_id: String,
    pub outcome: DryRunOutcome,
    #[schema(nullable = false)]
    pub name: Option<String>,
    /// Fired: what the webhook would get (`full`, or `private_stub` for a private event).
    #[schema(nullable = false)]
    pub payload: Option<PayloadViewDoc>,
    /// Skipped: why, with `kind` (`disabled`, `scope`, `trigger`, `filter`, ...).
    #[schema(value_type = Object, required = false, nullable = false)]
    pub reason: Option<Value>,
    /// Skipped: the reason in words.
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case", title = "PayloadView")]
pub enum PayloadViewDoc {
    Full,
    PrivateStub,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DryRunOutcome {
    Fired,
    Skipped,
}

/// The dry-run answer: which webhooks would fire for this event, and why the others would not.
#[derive(ToSchema)]
pub struct DryRunResult {
    pub event_type: String,
    pub scope: EventScope,
    pub private: bool,
    /// How many would fire.
    pub fired: u64,
    pub decisions: Vec<DryRunDecision>,
}

/// An API key (never its token).
#[derive(ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[schema(required)]
    pub team_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the key stops working; null: never.
    #[schema(required, format = DateTime)]
    pub expires_at: Option<String>,
    /// Last use, accurate to about a minute; null: never used.
    #[schema(required, format = DateTime)]
    pub last_used_at: Option<String>,
    /// When it was revoked; null: not revoked.
    #[schema(required, format = DateTime)]
    pub revoked_at: Option<String>,
    pub revoked: bool,
    /// Neither revoked nor expired.
    pub active: bool,
    /// The key `GATEWAY_ADMIN_TOKEN` made.
    pub bootstrap: bool,
}

/// A key just created: the token is shown only now.
#[derive(ToSchema)]
pub struct KeyCreated {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[schema(required)]
    pub team_id: Option<String>,
    pub token: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the key stops working; null: never.
    #[schema(required, format = DateTime)]
    pub expires_at: Option<String>,
    /// Last use, accurate to about a minute; null: never used.
    #[schema(required, format = DateTime)]
    pub last_used_at: Option<String>,
    /// When it was revoked; null: not revoked.
    #[schema(required, format = DateTime)]
    pub revoked_at: Option<String>,
    pub revoked: bool,
    /// Neither revoked nor expired.
    pub active: bool,
    /// The key `GATEWAY_ADMIN_TOKEN` made.
    pub bootstrap: bool,
}

#[derive(ToSchema)]
pub struct KeyList {
    pub results: Vec<KeyView>,
}

/// An installed plugin.
#[derive(ToSchema)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    /// `transformer` or `authenticator`.
    pub kind: String,
    /// Hex sha256 of the component.
    pub sha256: String,
    pub size: u64,
    #[schema(required)]
    pub description: Option<String>,
    /// First-party, reinstalled at every start.
    pub builtin: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct PluginList {
    pub results: Vec<PluginView>,
}

/// How many failed deliveries were queued again.
#[derive(ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

/// A delivery queued to be sent again now.
#[derive(ToSchema)]
pub struct Resent {
    pub id: String,
    /// Always `pending`.
    pub status: DeliveryStatus,
}

/// A webhook's signing secret, in clear.
#[derive(ToSchema)]
pub struct SecretView {
    #[schema(rename = "type")]
    pub kind: SigningType,
    /// Null when the webhook does not sign.
    #[schema(required)]
    pub secret: Option<String>,
    /// `hmac_sha512` only.
    #[schema(nullable = false)]
    pub header: Option<String>,
}

/// A rotated secret, shown once.
#[derive(ToSchema)]
pub struct Rotated {
    pub secret: String,
    /// Until then the old secret signs beside the new one.
    #[schema(format = DateTime)]
    pub old_secret_expires_at: String,
}

/// A WebAssembly component's bytes.
pub struct WasmComponent;

impl PartialSchema for WasmComponent {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl ToSchema for WasmComponent {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WasmComponent")
    }
}
