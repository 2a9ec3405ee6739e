//! `oauth2`: an authenticator that sends `Authorization: Bearer <access token>` with a token the
//! host fetches with the OAuth 2.0 client credentials grant (RFC 6749 section 4.4).
//!
//! Config: `{"token_url": "https://auth.example.com/oauth/token", "scope": "events:write",
//! "audience": "https://api.example.com"}` (`token_url` required; the url must be allow-listed
//! in the gateway's `[plugins] oauth2_token_urls`). Secrets: `client_id` and `client_secret`.
//!
//! The host caches the token until it expires and fetches a new one after the receiver answers
//! 401; the token never enters the plugin.

use gateway_sdk::serde_json::Value;
use gateway_sdk::{Additions, Attempt, Authenticator, Error, Request, Result, config, oauth2, secrets};

pub struct OAuth2;

impl Authenticator for OAuth2 {
    fn authenticate(_request: &Request, _attempt: &Attempt) -> Result<Additions> {
        authorize(&config::get_json())
    }
}

gateway_sdk::authenticator!(OAuth2);

/// Places the bearer token (unit-tested natively with `oauth2::testing`).
pub fn authorize(config: &Value) -> Result<Additions> {
    let opt = |key: &str| -> Result<Option<&str>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::invalid_config(format!("`{key}` must be a string"))),
        }
    };
    let token_url = opt("token_url")?
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| Error::invalid_config("`token_url` (the token endpoint's url) is required"))?;
    let request = oauth2::TokenRequest {
        token_url,
        client_id: secrets::require("client_id")?,
        client_secret: secrets::require("client_secret")?,
        scope: opt("scope")?,
        audience: opt("audience")?,
    };
    let token = oauth2::client_credentials_token(&request)?;
    token.place_in_header("Authorization", "Bearer ")?;
    Ok(Additions::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::serde_json::json;

    #[test]
    fn places_the_host_token_as_bearer() {
        secrets::testing::set(&[("client_id", "id"), ("client_secret", "s")]);
        oauth2::testing::set_token(Ok("t0k"));
        let out = authorize(&json!({"token_url": "https://auth.test/token", "scope": "a b"})).unwrap();
        assert!(out.headers.is_empty());
        assert_eq!(
            secrets::testing::take_placed(),
            vec![(false, "Authorization".to_string(), "Bearer t0k".to_string())]
        );
        assert_eq!(
            oauth2::testing::calls(),
            vec![("https://auth.test/token".to_string(), Some("a b".to_string()), None)]
        );
    }

    #[test]
    fn errors_name_what_is_missing() {
        secrets::testing::set(&[("client_id", "id")]);
        oauth2::testing::set_token(Err("token endpoint answered 500"));
        let err = authorize(&json!({"token_url": "https://auth.test/token"})).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig(m) if m.contains("client_secret")), "{err:?}");
        assert!(matches!(authorize(&json!({})), Err(Error::InvalidConfig(m)) if m.contains("token_url")));
        secrets::testing::set(&[("client_id", "id"), ("client_secret", "s")]);
        let err = authorize(&json!({"token_url": "https://auth.test/token"})).unwrap_err();
        assert!(matches!(&err, Error::Other(m) if m.contains("500")), "{err:?}");
    }
}
