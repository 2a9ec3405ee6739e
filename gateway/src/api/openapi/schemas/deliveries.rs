//! Schemas of the delivery log: attempts, deliveries and Grafana OnCall's responses log.

use std::collections::BTreeMap;

use utoipa::ToSchema;

use crate::model::{AttemptOutcome, DeliveryStatus, PluginLogLine};

page!(
    ResponsePage,
    OnCallResponse,
    "A page of Grafana OnCall's webhook responses log."
);
page!(AttemptPage, AttemptView, "A page of delivery attempts.");

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
    /// The log lines of the attempt's plugins (the gateway's addition to OnCall's object).
    pub plugin_logs: Vec<PluginLogLine>,
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
    /// The log lines of the attempt's plugins: the transformer chain's on the attempt that ran
    /// it, the authenticator's on every attempt (capped by the plugin limits).
    pub plugin_logs: Vec<PluginLogLine>,
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
