//! CSRF protection for the console: each session has a random token; every unsafe request made
//! with the session cookie must present it in `X-CSRF-Token` (the console's JS) or a form's hidden
//! `csrf` field. The cookie is also `SameSite=Strict`; the token is the second, explicit guard.

use axum::http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

use crate::api::error::ApiError;

/// The header the console's JS sends the token in.
pub const HEADER: &str = "x-csrf-token";

/// The refusal's text (the contract with the pages and the tests).
pub const REFUSED: &str = "missing or wrong CSRF token";

/// A new token: 32 random bytes, base64url.
pub fn new_token() -> String {
    super::session::random_b64(32)
}

/// Whether a method changes something (and so needs the token).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares as digests: equal length, no early exit on the token's bytes.
pub fn same(given: &str, want: &str) -> bool {
    !want.is_empty() && Sha256::digest(given.as_bytes()) == Sha256::digest(want.as_bytes())
}

/// The header check for an unsafe request.
pub fn check_header(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let given = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    check_value(given, want)
}

/// The check of a token read from a header or a form field.
pub fn check_value(given: &str, want: &str) -> Result<(), ApiError> {
    if same(given, want) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(REFUSED.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        let t = new_token();
        assert!(check_value(&t, &t).is_ok());
        assert!(check_value("", &t).is_err());
        assert!(check_value(&t[1..], &t).is_err());
        assert!(
            check_value("", "").is_err(),
            "an empty stored token never matches"
        );
        let mut h = HeaderMap::new();
        assert!(check_header(&h, &t).is_err());
        h.insert(HEADER, t.parse().unwrap());
        assert!(check_header(&h, &t).is_ok());
    }

    #[test]
    fn safe_methods_need_no_token() {
        assert!(!is_unsafe(&Method::GET));
        assert!(!is_unsafe(&Method::HEAD));
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_unsafe(&m));
        }
    }
}
