//! `signed-header`: an authenticator example. Adds a header holding an HMAC of the body made with
//! a secret the plugin can use but never read.
//!
//! Config (read through the `config` import):
//! `{"secret": "signing_key", "header": "X-Signature", "algorithm": "sha256" | "sha512",
//!   "encoding": "hex" | "base64", "prefix": "sha256=", "timestamp_header": "X-Timestamp",
//!   "bearer_secret": "api_token"}`.
//! Only `secret` is required (default header `X-Signature`, sha256, hex, no prefix). With
//! `timestamp_header` the signed text is `<unix seconds>.<body>` and the timestamp is sent in that
//! header. With `bearer_secret` the host also places `Authorization: Bearer <secret>`.
//!
//! The body signed is the body as the authenticator gets it. When the webhook's transformer asks
//! for secrets in the body (`{"$secret": "<name>"}`), the host fills them in only after this
//! plugin has run (no secret value ever enters a plugin), so the signature covers the placeholder
//! body, not the body sent, and the receiver's check fails: do not combine this authenticator
//! with body placeholders (a secret in a header, `Request::secret_header`, is fine).

use gateway_sdk::serde_json::Value;
use gateway_sdk::{Additions, Attempt, Authenticator, Error, Request, Result, config, encoding, secrets};

pub struct SignedHeader;

impl Authenticator for SignedHeader {
    fn authenticate(request: &Request, attempt: &Attempt) -> Result<Additions> {
        sign(request, attempt, &config::get_json())
    }
}

gateway_sdk::authenticator!(SignedHeader);

/// The additions for one attempt (unit-tested natively with `secrets::testing`).
pub fn sign(request: &Request, attempt: &Attempt, config: &Value) -> Result<Additions> {
    let opt = |key: &str, default: &'static str| -> Result<String> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::invalid_config(format!("`{key}` must be a string"))),
        }
    };
    let secret_name = opt("secret", "")?;
    if secret_name.is_empty() {
        return Err(Error::invalid_config("`secret` (the name of a webhook secret) is required"));
    }
    let secret = secrets::require(&secret_name)?;
    let header = opt("header", "X-Signature")?;
    let prefix = opt("prefix", "")?;
    let body = request.body.as_deref().unwrap_or("");
    let mut additions = Additions::new();

    let message = match config.get("timestamp_header").and_then(Value::as_str) {
        Some(ts_header) => {
            let ts = attempt.now_ms.div_euclid(1000).to_string();
            additions = additions.header(ts_header, ts.clone());
            format!("{ts}.{body}")
        }
        None => body.to_string(),
    };
    let mac = match opt("algorithm", "sha256")?.as_str() {
        "sha256" => secret.hmac_sha256(message.as_bytes())?,
        "sha512" => secret.hmac_sha512(message.as_bytes())?,
        other => return Err(Error::invalid_config(format!("unknown algorithm `{other}`"))),
    };
    let encoded = match opt("encoding", "hex")?.as_str() {
        "hex" => encoding::hex(&mac),
        "base64" => encoding::base64(&mac),
        other => return Err(Error::invalid_config(format!("unknown encoding `{other}`"))),
    };
    if let Some(name) = config.get("bearer_secret").and_then(Value::as_str) {
        secrets::require(name)?.place_in_header("Authorization", "Bearer ")?;
    }
    Ok(additions.header(header, format!("{prefix}{encoded}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::serde_json::json;

    fn request() -> Request {
        Request::post("https://x.test").body(r#"{"email":"test@example.com","username":"test_user"}"#)
    }

    #[test]
    fn hmac_sha256_of_body_in_hex_with_prefix() {
        secrets::testing::set(&[("key", "secret")]);
        let out = sign(&request(), &Attempt::default(), &json!({"secret": "key", "prefix": "sha256="})).unwrap();
        // echo -n '{"email":...}' | openssl dgst -sha256 -hmac secret
        assert_eq!(out.headers.len(), 1);
        assert_eq!(out.headers[0].0, "X-Signature");
        assert_eq!(out.headers[0].1.len(), "sha256=".len() + 64);
        assert!(out.query.is_empty());
    }

    #[test]
    fn known_vector_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        secrets::testing::set(&[("k", "Jefe")]);
        let req = Request::post("https://x.test").body("what do ya want for nothing?");
        let out = sign(&req, &Attempt::default(), &json!({"secret": "k"})).unwrap();
        assert_eq!(out.headers[0].1, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn timestamp_header_and_bearer_placement() {
        secrets::testing::set(&[("k", "Jefe"), ("tok", "t0k")]);
        let attempt = Attempt { now_ms: 1_649_367_553_000, ..Default::default() };
        let config = json!({"secret": "k", "timestamp_header": "X-Ts", "algorithm": "sha512", "encoding": "base64", "bearer_secret": "tok"});
        let out = sign(&request(), &attempt, &config).unwrap();
        assert_eq!(out.headers[0], ("X-Ts".to_string(), "1649367553".to_string()));
        assert_eq!(out.headers[1].1.len(), 88);
        assert_eq!(
            secrets::testing::take_placed(),
            vec![(false, "Authorization".to_string(), "Bearer t0k".to_string())]
        );
    }

    #[test]
    fn missing_secret_is_a_config_error() {
        secrets::testing::set(&[]);
        assert!(matches!(
            sign(&request(), &Attempt::default(), &json!({"secret": "nope"})),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(sign(&request(), &Attempt::default(), &json!({})), Err(Error::InvalidConfig(_))));
    }
}
