//! OAuth 2.0 access tokens the host fetches for an authenticator (client credentials grant).
//! The token comes back as a [`Secret`] handle: place it, e.g.
//! `token.place_in_header("Authorization", "Bearer ")`; its value never enters the plugin.
//! On native targets [`testing::set_token`] decides what the next call returns.

use crate::secrets::Secret;
use crate::{Error, Result};

/// What to ask the token endpoint for.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// The token endpoint; it must be allow-listed in the gateway's `[plugins] oauth2_token_urls`.
    pub token_url: &'a str,
    pub client_id: Secret,
    pub client_secret: Secret,
    pub scope: Option<&'a str>,
    pub audience: Option<&'a str>,
}

impl TokenRequest<'_> {
    /// The form fields sent besides `grant_type`.
    pub fn params(&self) -> Vec<(String, String)> {
        let fields = [("scope", self.scope), ("audience", self.audience)];
        fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?.to_string()))).collect()
    }
}

/// An access token from the client credentials grant, cached by the host until it expires and
/// fetched again after the receiver answers 401.
pub fn client_credentials_token(req: &TokenRequest<'_>) -> Result<Secret> {
    imp::token(req).map(Secret::from_handle).map_err(Error::Other)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::__bindings::webhook_gateway::plugin::oauth2 as wit;
    pub fn token(r: &super::TokenRequest<'_>) -> Result<u32, String> {
        wit::client_credentials_token(r.token_url, r.client_id.handle(), r.client_secret.handle(), &r.params())
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;

    thread_local! {
        pub static NEXT: RefCell<Result<String, String>> = RefCell::new(Err("no token set (oauth2::testing::set_token)".into()));
        /// (token url, scope, audience) of the calls made.
        pub static CALLS: RefCell<Vec<(String, Option<String>, Option<String>)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn token(r: &super::TokenRequest<'_>) -> Result<u32, String> {
        CALLS.with(|c| {
            c.borrow_mut().push((r.token_url.to_string(), r.scope.map(str::to_string), r.audience.map(str::to_string)))
        });
        let token = NEXT.with(|n| n.borrow().clone())?;
        Ok(crate::secrets::add_native(token))
    }
}

/// Native stand-ins for unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    /// What the next [`super::client_credentials_token`] calls on this thread return.
    pub fn set_token(result: Result<&str, &str>) {
        super::imp::NEXT.with(|n| *n.borrow_mut() = result.map(str::to_string).map_err(str::to_string));
        super::imp::CALLS.with(|c| c.borrow_mut().clear());
    }
    /// The calls made so far as (token url, scope, audience).
    pub fn calls() -> Vec<(String, Option<String>, Option<String>)> {
        super::imp::CALLS.with(|c| c.borrow().clone())
    }
}
