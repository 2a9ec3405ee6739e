//! `{{name}}`: an authenticator. Signs the body with a webhook secret it can use but never read
//! and sends the signature in a header.
//!
//! Config: `{"secret": "<secret name>", "header": "<header>"}`, both optional (defaults
//! `signing_secret`, the webhook's signing secret, and `x-signature`).
//!
//! The body signed is the body as the authenticator gets it: if the webhook's transformer puts
//! `{"$secret": ...}` placeholders in the body, the gateway fills them in only after this plugin
//! runs (no secret value enters a plugin), so the signature would cover the placeholder body,
//! not the body sent. Do not combine a body signature with body placeholders.

use gateway_sdk::serde_json::Value;
use gateway_sdk::{Additions, Attempt, Authenticator, Request, Result, config, encoding, secrets};

pub struct Plugin;

impl Authenticator for Plugin {
    fn authenticate(request: &Request, attempt: &Attempt) -> Result<Additions> {
        sign(request, attempt, &config::get_json())
    }
}

gateway_sdk::authenticator!(Plugin);

/// The additions for one attempt (tested natively with `secrets::testing`).
pub fn sign(request: &Request, _attempt: &Attempt, config: &Value) -> Result<Additions> {
    let name = config.get("secret").and_then(Value::as_str).unwrap_or("signing_secret");
    let header = config.get("header").and_then(Value::as_str).unwrap_or("x-signature");
    let mac = secrets::require(name)?.hmac_sha256(request.body.as_deref().unwrap_or("").as_bytes())?;
    Ok(Additions::new().header(header, format!("sha256={}", encoding::hex(&mac))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_body_with_the_signing_secret() {
        secrets::testing::set(&[("signing_secret", "key")]);
        let request = Request::post("https://receiver.example/hook").body("hello");
        let a = sign(&request, &Attempt::default(), &Value::Null).unwrap();
        // HMAC-SHA256("key", "hello")
        let expected = "sha256=9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b";
        assert_eq!(a.headers, vec![("x-signature".to_string(), expected.to_string())]);
    }

    #[test]
    fn a_missing_secret_is_a_config_error() {
        secrets::testing::set(&[]);
        let request = Request::post("https://receiver.example/hook").body("hello");
        assert!(sign(&request, &Attempt::default(), &Value::Null).is_err());
    }
}
