//! Schemas of the API's bodies for the OpenAPI document. Handlers build most answers as JSON
//! values (`json!`), so these structs are descriptions only: they are never serialised. The
//! schema-fuzzing test (`tests/e2e/schema_fuzz.rs`) checks every answer against them, so a
//! handler that drifts from its schema fails the suite. The records (deliveries, events, keys,
//! plugins) are in `records`, re-exported here.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::model::{Auth, AutoDisable, OrderingMode, PluginRef, RetryPolicy, Scope, SendAs};

mod records;
pub use records::*;

/// A webhook's TLS client certificate (mTLS), as shown: the private key is always masked.
#[derive(ToSchema)]
pub struct ClientCertificateView {
    /// The PEM certificate chain, client certificate first.
    pub certificate: String,
    /// Always the mask; send it back unchanged to keep the stored key.
    pub private_key: String,
    /// The client certificate's subject (`CN=...`).
    #[schema(required)]
    pub subject: Option<String>,
    /// When the client certificate expires.
    #[schema(required, format = DateTime)]
    pub not_after: Option<String>,
}

/// `client_certificate` in a create or update body: the chain and its private key, both PEM.
/// The key must belong to the first certificate. A masked or absent `private_key` keeps the
/// stored one; `null` instead of the object removes the certificate.
#[derive(ToSchema)]
pub struct ClientCertificateInput {
    /// PEM `CERTIFICATE` blocks: the client certificate, then any intermediates (at most 64 KiB).
    pub certificate: String,
    /// PEM private key: PKCS#8 `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`. Secret.
    #[schema(nullable = false)]
    pub private_key: Option<String>,
}

/// A webhook's signing, as shown: the secret is always masked.
#[derive(ToSchema)]
pub struct SigningView {
    /// `standard_webhooks`, `hmac_sha512` or `none`.
    #[schema(rename = "type")]
    pub kind: SigningType,
    /// `hmac_sha512` only: the header carrying the signature.
    #[schema(nullable = false)]
    pub header: Option<String>,
    /// Always `****************` (read it with `GET /api/v1/webhooks/{id}/secret`).
    #[schema(nullable = false)]
    pub secret: Option<String>,
    /// How many retired secrets still sign during their grace period.
    #[schema(nullable = false)]
    pub previous_secrets: Option<u32>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SigningType {
    StandardWebhooks,
    HmacSha512,
    None,
}

/// `signing` in a create or update body.
#[derive(ToSchema)]
pub struct SigningInput {
    /// Default `standard_webhooks`.
    #[schema(rename = "type", nullable = false)]
    pub kind: Option<SigningType>,
    /// `standard_webhooks`: `whsec_` + base64 of 24 to 64 bytes; `hmac_sha512`: 16 to 256
    /// characters. Generated when absent; the mask keeps the current one.
    pub secret: Option<String>,
    /// `hmac_sha512` only (default `X-Signature`).
    #[schema(nullable = false)]
    pub header: Option<String>,
}

/// A webhook: Grafana OnCall's object (same names and types), then the gateway's own fields.
/// Secrets are shown as `****************`.
#[derive(ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub name: String,
    pub is_webhook_enabled: bool,
    #[schema(required)]
    pub team: Option<String>,
    #[schema(required)]
    pub data: Option<String>,
    #[schema(required)]
    pub username: Option<String>,
    #[schema(required)]
    pub password: Option<String>,
    #[schema(required)]
    pub authorization_header: Option<String>,
    #[schema(required)]
    pub trigger_template: Option<String>,
    /// A string holding a JSON object (possibly a Jinja template).
    #[schema(required)]
    pub headers: Option<String>,
    /// The first of `urls`.
    #[schema(required)]
    pub url: Option<String>,
    pub forward_all: bool,
    pub http_method: String,
    /// Grafana OnCall's trigger name for the first trigger, or as it was sent.
    #[schema(required)]
    pub trigger_type: Option<String>,
    #[schema(required)]
    pub integration_filter: Option<Vec<String>>,
    #[schema(required)]
    pub description: Option<String>,
    pub urls: Vec<String>,
    pub trigger_events: Vec<String>,
    pub scope: Scope,
    #[schema(required, value_type = Option<Object>)]
    pub filter: Option<Value>,
    pub plugins: Vec<PluginRef>,
    #[schema(required)]
    pub authenticator: Option<PluginRef>,
    pub auth: Auth,
    pub signing: SigningView,
    /// The TLS client certificate deliveries present (mTLS); null when none.
    #[schema(required)]
    pub client_certificate: Option<ClientCertificateView>,
    pub send_as: SendAs,
    pub retry: RetryPolicy,
    pub ordering: OrderingMode,
    pub timeout_secs: u64,
    pub auto_disable: AutoDisable,
    /// Grafana OnCall's preset; null for webhooks made through the API (cannot be set).
    #[schema(required)]
    pub preset: Option<String>,
    /// Header names whose values are masked in answers and logs.
    pub secret_headers: Vec<String>,
    /// The named plugin secrets, values always masked.
    pub secrets: BTreeMap<String, String>,
    #[schema(required)]
    pub failure_email: Option<String>,
    pub include_private_payloads: bool,
    #[schema(required)]
    pub disabled_reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The fields of a webhook create or update body; every field is optional here (`PUT` and
/// `PATCH` change only the fields sent; see `WebhookCreate` for what a create needs). Fields
/// not listed are ignored.
#[derive(ToSchema)]
pub struct WebhookInput {
    /// 1 to 255 characters.
    #[schema(nullable = false)]
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(nullable = false)]
    pub is_webhook_enabled: Option<bool>,
    /// Grafana OnCall's team: a team scope (null: global).
    pub team: Option<String>,
    /// `"global"` or a scope object (wins over `team`).
    #[schema(nullable = false)]
    pub scope: Option<Scope>,
    /// An http(s) URL, or a Jinja template producing one.
    #[schema(nullable = false, pattern = "^https?://", max_length = 2048)]
    pub url: Option<String>,
    /// Up to 10 targets (one delivery per url); wins over `url`.
    #[schema(nullable = false)]
    pub urls: Option<Vec<String>>,
    /// POST, GET, PUT, PATCH, DELETE or OPTIONS (any case).
    #[schema(nullable = false)]
    pub http_method: Option<String>,
    /// Grafana OnCall's trigger: a canonical name, an alias, a custom type or `status change`.
    #[schema(nullable = false)]
    pub trigger_type: Option<String>,
    /// Several triggers: canonical names, aliases, custom types, `status_change`, `*`.
    #[schema(nullable = false)]
    pub trigger_events: Option<Vec<String>>,
    /// A Jinja template shaping the body when `forward_all` is false.
    pub data: Option<String>,
    #[schema(nullable = false)]
    pub forward_all: Option<bool>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub authorization_header: Option<String>,
    /// Must render to `true` or `1` for the webhook to fire.
    pub trigger_template: Option<String>,
    /// At most 20 headers: an object, or a string holding a JSON object (or a Jinja template).
    #[schema(value_type = Value)]
    pub headers: Option<Value>,
    pub integration_filter: Option<Vec<String>>,
    /// A Mongo-style filter expression over the event.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// The transformer chain (at most 8).
    pub plugins: Option<Vec<PluginRef>>,
    pub authenticator: Option<PluginRef>,
    /// Named secrets for plugins (at most 32; names 1-64 of `A-Za-z0-9_.-`, not a built-in
    /// name; values 1-8192 bytes): a transformer asks for one with a `{"$secret": "<name>"}`
    /// placeholder the gateway fills in per attempt, an authenticator opens one as a handle.
    /// Replaces the stored set; a masked value keeps the stored one; null removes them all.
    pub secrets: Option<BTreeMap<String, String>>,
    #[schema(nullable = false)]
    pub auth: Option<Auth>,
    #[schema(nullable = false)]
    pub signing: Option<SigningInput>,
    /// A TLS client certificate for the deliveries (mTLS); null removes it.
    pub client_certificate: Option<ClientCertificateInput>,
    #[schema(nullable = false)]
    pub send_as: Option<SendAs>,
    #[schema(nullable = false)]
    pub retry: Option<RetryPolicy>,
    /// `none` (the default) or `per_webhook`: one delivery in flight per url, in the order the
    /// events were accepted.
    #[schema(nullable = false)]
    pub ordering: Option<OrderingMode>,
    /// Per-attempt timeout in seconds (1 to the lease minus one, at most 120).
    #[schema(nullable = false)]
    pub timeout_secs: Option<u64>,
    #[schema(nullable = false)]
    pub auto_disable: Option<AutoDisable>,
    pub failure_email: Option<String>,
    #[schema(nullable = false)]
    pub include_private_payloads: Option<bool>,
}

/// A create body: `WebhookInput` with `name`, `url` or `urls`, and `trigger_type` or
/// `trigger_events` (Grafana OnCall's body works as it is).
pub struct WebhookCreate;

impl PartialSchema for WebhookCreate {
    fn schema() -> RefOr<Schema> {
        let required = |f: &str| ObjectBuilder::new().required(f).build();
        AllOfBuilder::new()
            .item(Ref::from_schema_name(WebhookInput::name()))
            .item(required("name"))
            .item(
                AnyOfBuilder::new()
                    .item(required("url"))
                    .item(required("urls")),
            )
            .item(
                AnyOfBuilder::new()
                    .item(required("trigger_type"))
                    .item(required("trigger_events")),
            )
            .description(Some(
                "A webhook to create: `name`, `url` or `urls`, `trigger_type` or \
                 `trigger_events`, and any other field of `WebhookInput`.",
            ))
            .into()
    }
}

impl ToSchema for WebhookCreate {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebhookCreate")
    }
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((WebhookInput::name().into(), WebhookInput::schema()));
        <WebhookInput as ToSchema>::schemas(schemas);
    }
}

/// Declares a page of Grafana OnCall's paging envelope around one item schema.
macro_rules! page {
    ($name:ident, $item:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(ToSchema)]
        pub struct $name {
            /// Items in all pages.
            pub count: u64,
            /// The next page's URL, or null on the last page.
            #[schema(required)]
            pub next: Option<String>,
            /// The previous page's URL, or null on the first page.
            #[schema(required)]
            pub previous: Option<String>,
            pub results: Vec<$item>,
            pub page_size: u64,
            pub current_page_number: u64,
            pub total_pages: u64,
        }
    };
}

page!(WebhookPage, WebhookView, "A page of webhooks.");
page!(ActionPage, ActionView, "A page of actions.");

/// A webhook as Grafana OnCall's deprecated custom-actions API shows it.
#[derive(ToSchema)]
pub struct ActionView {
    pub id: String,
    pub name: String,
    pub is_webhook_enabled: bool,
    #[schema(required)]
    pub team_id: Option<String>,
    #[schema(required)]
    pub user: Option<String>,
    #[schema(required)]
    pub data: Option<String>,
    #[schema(required)]
    pub password: Option<String>,
    #[schema(required)]
    pub authorization_header: Option<String>,
    #[schema(required)]
    pub trigger_template: Option<String>,
    #[schema(required)]
    pub headers: Option<String>,
    #[schema(required)]
    pub url: Option<String>,
    pub forward_whole_payload: bool,
    pub http_method: String,
    #[schema(required)]
    pub trigger_type: Option<String>,
    #[schema(required)]
    pub integration_filter: Option<Vec<String>>,
}

/// An action body: Grafana OnCall's action fields (`team_id`, `user`, `forward_whole_payload`
/// stand for the webhook's `team`, `username`, `forward_all`); a create needs `name` and `url`
/// (`trigger_type` defaults to `escalation`, `http_method` to `POST`).
#[derive(ToSchema)]
pub struct ActionInput {
    pub name: Option<String>,
    pub url: Option<String>,
    pub is_webhook_enabled: Option<bool>,
    pub team_id: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub authorization_header: Option<String>,
    pub data: Option<String>,
    pub trigger_template: Option<String>,
    pub headers: Option<String>,
    pub forward_whole_payload: Option<bool>,
    pub http_method: Option<String>,
    pub trigger_type: Option<String>,
    pub integration_filter: Option<Vec<String>>,
}
page!(
    ResponsePage,
    OnCallResponse,
    "A page of Grafana OnCall's webhook responses log."
);
page!(AttemptPage, AttemptView, "A page of delivery attempts.");
