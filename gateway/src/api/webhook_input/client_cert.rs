//! `client_certificate`: `{"certificate": "<PEM chain>", "private_key": "<PEM key>"}` or `null`
//! (removes it). The key sent back as the mask (or empty, or left out) keeps the stored one. Refusals name
//! `client_certificate.certificate` or `client_certificate.private_key`.

use serde_json::Value;

use super::Input;
use crate::api::error::ApiError;
use crate::model::webhook::MASK;
use crate::model::{ClientCertificate, Webhook};

const FIELD: &str = "client_certificate";

pub(super) fn apply(w: &mut Webhook, m: &Input) -> Result<(), ApiError> {
    let obj = match m.get(FIELD) {
        None => return Ok(()),
        Some(Value::Null) => {
            w.client_certificate = None;
            return Ok(());
        }
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            return Err(ApiError::field(
                FIELD,
                "must be an object {\"certificate\": \"<PEM>\", \"private_key\": \"<PEM>\"} or null",
            ));
        }
    };
    if let Some(k) = obj.keys().find(|k| {
        !matches!(
            k.as_str(),
            "certificate" | "private_key" | "not_after" | "subject"
        )
    }) {
        return Err(ApiError::field(
            format!("{FIELD}.{k}"),
            "unknown field (certificate, private_key)",
        ));
    }
    let certificate = match obj.get("certificate") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            return Err(ApiError::field(
                format!("{FIELD}.certificate"),
                "is required: the PEM certificate chain, client certificate first",
            ));
        }
    };
    let stored = w.client_certificate.as_ref().map(|c| c.private_key.clone());
    let private_key = match obj.get("private_key") {
        Some(Value::String(s)) if s == MASK || s.trim().is_empty() => stored,
        None | Some(Value::Null) => stored,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::field(
                format!("{FIELD}.private_key"),
                "must be the PEM private key",
            ));
        }
    }
    .ok_or_else(|| {
        ApiError::field(
            format!("{FIELD}.private_key"),
            "is required: the PEM private key of the certificate",
        )
    })?;
    let cert = ClientCertificate {
        certificate,
        private_key,
    };
    cert.validate()
        .map_err(|e| ApiError::field(format!("{FIELD}.{}", e.field), e.message))?;
    w.client_certificate = Some(cert);
    Ok(())
}

/// The answer's view: the certificate, its subject and expiry, the key masked.
pub fn view(c: &ClientCertificate) -> Value {
    let info = c.info().ok();
    serde_json::json!({
        "certificate": c.certificate,
        "private_key": MASK,
        "subject": info.as_ref().map(|i| i.subject.clone()),
        "not_after": info.map(|i| crate::api::rfc3339(i.not_after * 1000)),
    })
}
