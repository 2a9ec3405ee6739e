//! The OpenAPI document, generated from the handlers' annotations, at `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use super::AppState;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "An API key, as `<token>` or `Bearer <token>`",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "webhook-gateway", description = "Outgoing webhook gateway API (a superset of Grafana OnCall's webhooks API)"),
    paths(
        super::webhooks::list, super::webhooks::get_one, super::webhooks::create, super::webhooks::update, super::webhooks::delete,
        super::events::ingest, super::events::get_event, super::events::dry_run, super::keys::create, super::keys::list, super::keys::revoke,
        super::deliveries::responses, super::deliveries::attempts, super::deliveries::test_send, super::deliveries::recover,
        super::deliveries::get_delivery, super::deliveries::resend, super::deliveries::secret, super::deliveries::rotate_secret,
        super::plugins::upload, super::plugins::list, super::plugins::get_one, super::plugins::delete,
    ),
    components(schemas(super::error::Problem, super::events::Accepted, super::keys::NewKey, super::deliveries::RecoverBody, super::deliveries::RotateBody)),
    modifiers(&SecurityAddon)
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
