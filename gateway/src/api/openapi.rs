//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! schemas in [`schemas`], served at `/api/v1/openapi.json`.
//!
//! The pattern for a route: annotate its handler with `#[utoipa::path]` naming an explicit
//! `operation_id`, its parameters, its request body schema and every status it answers, with
//! the success bodies typed; error statuses need only a description (`(status = 404,
//! description = "...")`): [`ProblemBodies`] gives every 4xx/5xx answer without a body the
//! `application/problem+json` [`Problem`](super::error::Problem) schema, and every operation
//! that needs a key its 401 (and every `/api/` operation its 503). Then list the handler in
//! [`ApiDoc`]'s `paths`. Routes also served with a trailing slash (or without one) appear once,
//! in the form Grafana OnCall uses.

mod records;
pub mod schemas;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};

use super::AppState;

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

/// The media type of every refusal (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "An API key, as `<token>` (Grafana OnCall's form) or `Bearer <token>`",
            ))),
        );
    }
}

/// Gives every refusal its problem body, and every operation the refusals all of them share.
struct ProblemBodies;

fn problem_response(description: &str) -> Response {
    let mut r = Response::new(description);
    r.content.insert(
        PROBLEM_JSON.into(),
        Content::new(Some(Ref::from_schema_name("Problem"))),
    );
    r
}

fn complete(path: &str, op: &mut Operation) {
    let secured = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().any(|r| *r != Default::default()));
    let responses = &mut op.responses.responses;
    if secured {
        responses
            .entry("401".into())
            .or_insert_with(|| problem_response("Missing or unknown API key").into());
    }
    if path.starts_with("/api/") && path != PATH {
        responses.entry("503".into()).or_insert_with(|| {
            problem_response("The store is unavailable; retry later (nothing was changed)").into()
        });
    }
    for (status, resp) in responses.iter_mut() {
        let RefOr::T(resp) = resp else { continue };
        let code: u16 = status.parse().unwrap_or(0);
        if code >= 400 && resp.content.is_empty() {
            resp.content.insert(
                PROBLEM_JSON.into(),
                Content::new(Some(Ref::from_schema_name("Problem"))),
            );
        }
        let header = |description: &str| {
            let mut h = Header::new(Object::with_type(Type::String));
            h.description = Some(description.into());
            h
        };
        if code == 401 {
            resp.headers
                .entry("WWW-Authenticate".into())
                .or_insert_with(|| header("`Bearer`: send a key in `Authorization`"));
        }
        if code == 503 {
            resp.headers
                .entry("Retry-After".into())
                .or_insert_with(|| header("Seconds to wait before retrying"));
        }
    }
}

impl utoipa::Modify for ProblemBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                complete(path, op);
            }
        }
    }
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "The process runs", content_type = "text/plain", body = String)))]
#[allow(dead_code)]
fn healthz() {}

/// Readiness: answers 200 only while the store answers.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers", content_type = "text/plain", body = String),
        (status = 503, description = "The store does not answer", content_type = "text/plain", body = String),
    ))]
#[allow(dead_code)]
fn readyz() {}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
#[allow(dead_code)]
fn openapi() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "webhook-gateway",
        description = "Outgoing webhook gateway API: a superset of Grafana OnCall's webhooks API, \
            events in Squadcast's shapes. Refusals are RFC 9457 problem bodies \
            (`application/problem+json`) naming the field at fault. Routes served both with and \
            without a trailing slash appear once here: `/api/v1/webhooks/` and \
            `/api/v1/webhooks/{id}/` (Grafana OnCall's form; also without the slash), \
            `/api/v1/events`, `/api/v1/keys` and `/api/v1/plugins` (also with a trailing slash), \
            `/api/v1/webhooks/{id}/responses` (also with one), `/api/v1/actions/` and \
            `/api/v1/actions/{id}/` (Grafana OnCall's form; also without the slash)."
    ),
    paths(
        super::webhooks::list, super::webhooks::create, super::webhooks::get_one,
        super::webhooks::update, super::webhooks::patch, super::webhooks::delete,
        super::actions::list, super::actions::create, super::actions::get_one,
        super::actions::update, super::actions::patch, super::actions::delete,
        super::events::ingest, super::events::get_event, super::events::dry_run,
        super::keys::create, super::keys::list, super::keys::revoke,
        super::deliveries::responses, super::deliveries::attempts, super::deliveries::test_send,
        super::deliveries::recover, super::deliveries::get_delivery, super::deliveries::resend,
        super::deliveries::secret, super::deliveries::rotate_secret, super::deliveries::metrics,
        super::plugins::upload, super::plugins::list, super::plugins::get_one,
        super::plugins::delete,
        healthz, readyz, openapi,
    ),
    components(schemas(
        super::error::Problem, super::events::Accepted, super::keys::NewKey,
        super::deliveries::RecoverBody, super::deliveries::RotateBody,
        schemas::WebhookCreate, schemas::WebhookInput,
    )),
    modifiers(&SecurityAddon, &ProblemBodies),
    tags(
        (name = "webhooks", description = "Webhook subscriptions (Grafana OnCall's API and more)"),
        (name = "actions", description = "Grafana OnCall's deprecated custom-actions API over the same webhooks"),
        (name = "events", description = "Event intake and dry runs"),
        (name = "deliveries", description = "Attempt logs, test sends, resends, signing secrets"),
        (name = "keys", description = "API keys (admins)"),
        (name = "plugins", description = "The WebAssembly plugin registry"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(|| async { Json(ApiDoc::openapi()) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    #[test]
    fn every_refusal_is_a_typed_problem_body() {
        let d = doc();
        let mut seen = 0;
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    let code: u16 = status.parse().unwrap();
                    if code >= 400 && path.starts_with("/api/") {
                        seen += 1;
                        assert_eq!(
                            resp["content"][PROBLEM_JSON]["schema"]["$ref"],
                            "#/components/schemas/Problem",
                            "{method} {path} {status}"
                        );
                    }
                }
                if path.starts_with("/api/") && path != PATH {
                    assert!(
                        op["responses"]["401"].is_object(),
                        "{method} {path} has no 401"
                    );
                    assert!(
                        op["responses"]["503"].is_object(),
                        "{method} {path} has no 503"
                    );
                }
                assert!(op["operationId"].is_string(), "{method} {path}");
            }
        }
        assert!(seen > 50, "only {seen} refusals documented");
    }

    #[test]
    fn operation_ids_are_unique_and_patch_is_documented() {
        let d = doc();
        let mut ids = std::collections::HashSet::new();
        for item in d["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "operationId {id} twice");
            }
        }
        let w = &d["paths"]["/api/v1/webhooks/{id}/"];
        for m in ["get", "put", "patch", "delete"] {
            assert!(w[m].is_object(), "{m} missing");
        }
        assert!(
            d["components"]["schemas"]["WebhookCreate"]["allOf"].is_array(),
            "the create body states its required fields"
        );
    }
}
