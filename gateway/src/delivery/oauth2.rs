//! OAuth 2.0 client credentials tokens for authenticators (the `oauth2` import): fetched by the
//! host from allow-listed token urls (`[plugins] oauth2_token_urls`), through the same outbound
//! guard as deliveries, cached until they expire, dropped when a receiver answers 401.
//!
//! The request is RFC 6749's default (section 2.3.1 and 4.4): `POST` with
//! `grant_type=client_credentials` (plus the plugin's params: `scope`, `audience`, ...) as a form, the client id and
//! secret form-urlencoded in HTTP Basic auth. One fetch runs at a time per cache key, so many
//! deliveries starting together make one call. The token and the secrets never appear in errors
//! or logs: the cache key is a SHA-256 over url, client id, secret and params.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::guard::{OutboundGuard, find_refusal};
use crate::clock::SharedClock;
use crate::plugin::{TokenRequest, TokenSource};

/// How long a token fetch may take in all.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Lifetime assumed when the token endpoint sends no `expires_in`.
const DEFAULT_LIFETIME_SECS: i64 = 300;
/// A token is renewed this long before it expires (at most half its lifetime).
const EXPIRY_MARGIN_SECS: i64 = 30;

struct Cached {
    token: String,
    expires_at_ms: i64,
}

/// The gateway's token cache; one per delivery engine.
pub struct TokenCache {
    client: reqwest::Client,
    guard: OutboundGuard,
    clock: SharedClock,
    /// Allowed token urls: exact, or a prefix when the entry ends with `*` (see [`allows`]).
    allowed: Vec<String>,
    cached: parking_lot::Mutex<HashMap<String, Cached>>,
    /// One fetch at a time per key.
    fetching: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenCache {
    pub fn new(
        allowed: Vec<String>,
        guard: OutboundGuard,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(guard.clone()))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("webhook-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TokenCache {
            client,
            guard,
            clock,
            allowed,
            cached: Default::default(),
            fetching: Default::default(),
        })
    }

    /// Whether `url` is allow-listed.
    pub fn is_allowed(&self, url: &str) -> bool {
        self.allowed.iter().any(|a| allows(a, url))
    }

    /// Drops cached tokens (after a 401 from a receiver).
    pub fn forget(&self, keys: &[String]) {
        let mut cached = self.cached.lock();
        for k in keys {
            cached.remove(k);
        }
    }

    fn fresh(&self, key: &str) -> Option<String> {
        let now = self.clock.now_ms();
        self.cached
            .lock()
            .get(key)
            .filter(|c| c.expires_at_ms > now)
            .map(|c| c.token.clone())
    }

    async fn fetch(&self, req: &TokenRequest) -> Result<(String, i64), String> {
        let url = url::Url::parse(&req.token_url)
            .map_err(|e| format!("token url {:?}: {e}", req.token_url))?;
        self.guard
            .check_url(&url)
            .map_err(|e| format!("token url refused: {e}"))?;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(req.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .client
            .post(url)
            .basic_auth(enc(&req.client_id), Some(enc(&req.client_secret)))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let e = e.without_url();
                match find_refusal(&e) {
                    Some(r) => format!("token endpoint refused: {r}"),
                    None if e.is_timeout() => format!(
                        "token endpoint did not answer within {} s",
                        FETCH_TIMEOUT.as_secs()
                    ),
                    None => format!("token endpoint unreachable: {e}"),
                }
            })?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the token response: {}", e.without_url()))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_RESPONSE_BYTES {
                return Err(format!(
                    "token response larger than {MAX_RESPONSE_BYTES} bytes"
                ));
            }
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if !(200..300).contains(&status) {
            // RFC 6749 5.2: `error` (and `error_description`) name the cause; nothing secret.
            let code = json.get("error").and_then(|v| v.as_str()).unwrap_or("");
            return Err(format!("token endpoint answered {status} {code}")
                .trim_end()
                .to_string());
        }
        let token = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or("token response has no access_token")?
            .to_string();
        let lifetime = json
            .get("expires_in")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(DEFAULT_LIFETIME_SECS)
            .max(0);
        let margin = EXPIRY_MARGIN_SECS.min(lifetime / 2);
        Ok((token, self.clock.now_ms() + (lifetime - margin) * 1000))
    }
}

/// Whether the allow-list entry `entry` admits `url`: the same string, or, for an entry ending
/// with `*`, the same scheme, host and port and a path (and query) starting with the entry's.
/// The `*` never reaches into the host: `https://auth.example.com*` admits any path on
/// `auth.example.com` and nothing on `auth.example.com.evil.test`, and an entry without a full
/// host before the `*` admits nothing.
fn allows(entry: &str, url: &str) -> bool {
    let Some(prefix) = entry.strip_suffix('*') else {
        return url == entry;
    };
    let (Ok(base), Ok(url)) = (url::Url::parse(prefix), url::Url::parse(url)) else {
        return false;
    };
    let path_and_query =
        |u: &url::Url| u[url::Position::BeforePath..url::Position::AfterQuery].to_string();
    base.has_host()
        && base.username().is_empty()
        && base.password().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && base.scheme() == url.scheme()
        && base.host() == url.host()
        && base.port_or_known_default() == url.port_or_known_default()
        && path_and_query(&url).starts_with(&path_and_query(&base))
}

/// The cache key: no secret can be read back from it.
fn cache_key(req: &TokenRequest) -> String {
    let mut h = Sha256::new();
    let params = req
        .params
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()]);
    let parts = [req.token_url.as_str(), &req.client_id, &req.client_secret];
    for part in parts.into_iter().chain(params) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

#[async_trait::async_trait]
impl TokenSource for TokenCache {
    async fn client_credentials(&self, req: TokenRequest) -> Result<(String, String), String> {
        if !self.is_allowed(&req.token_url) {
            return Err(format!(
                "token url {} is not allowed: add it to [plugins] oauth2_token_urls (GATEWAY_PLUGINS__OAUTH2_TOKEN_URLS)",
                req.token_url
            ));
        }
        if req.params.iter().any(|(k, _)| k == "grant_type") {
            return Err("grant_type is the host's: leave it out of the params".into());
        }
        let key = cache_key(&req);
        if let Some(token) = self.fresh(&key) {
            return Ok((token, key));
        }
        let lock = self.fetching.lock().entry(key.clone()).or_default().clone();
        let _one = lock.lock().await;
        if let Some(token) = self.fresh(&key) {
            return Ok((token, key));
        }
        let (token, expires_at_ms) = self.fetch(&req).await?;
        self.cached.lock().insert(
            key.clone(),
            Cached {
                token: token.clone(),
                expires_at_ms,
            },
        );
        Ok((token, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(allowed: &[&str]) -> TokenCache {
        TokenCache::new(
            allowed.iter().map(|s| s.to_string()).collect(),
            OutboundGuard::new(vec![]),
            Arc::new(crate::clock::ManualClock::new(0)),
        )
        .unwrap()
    }

    fn req(url: &str, secret: &str) -> TokenRequest {
        TokenRequest {
            token_url: url.into(),
            client_id: "id".into(),
            client_secret: secret.into(),
            params: vec![],
        }
    }

    #[test]
    fn allow_list_is_exact_or_a_star_prefix() {
        let c = cache(&["https://a.test/token", "https://b.test/oauth/*"]);
        assert!(c.is_allowed("https://a.test/token"));
        assert!(!c.is_allowed("https://a.test/token2"));
        assert!(c.is_allowed("https://b.test/oauth/v2/token"));
        assert!(!c.is_allowed("https://b.test/other"));
    }

    /// Regression: `*` was a plain string prefix, so `https://host*` also admitted
    /// `https://host.evil.test/...` and `https://host@evil.test/...`.
    #[test]
    fn a_star_never_reaches_into_the_host() {
        let c = cache(&["https://auth.test*", "https://b.test/oauth*", "https://*"]);
        assert!(c.is_allowed("https://auth.test/token"));
        assert!(c.is_allowed("https://auth.test:443/v2/token?x=1"));
        assert!(!c.is_allowed("https://auth.test.evil.test/token"));
        assert!(!c.is_allowed("https://auth.testevil.test/token"));
        assert!(!c.is_allowed("https://auth.test@evil.test/token"));
        assert!(!c.is_allowed("https://auth.test:8443/token"));
        assert!(!c.is_allowed("http://auth.test/token"));
        assert!(c.is_allowed("https://b.test/oauth/token"));
        assert!(c.is_allowed("https://b.test/oauth2/token"));
        assert!(!c.is_allowed("https://b.test/other"));
        assert!(!c.is_allowed("https://b.test.evil.test/oauth/token"));
        assert!(
            !c.is_allowed("https://evil.test/oauth"),
            "`https://*` admits nothing"
        );
    }

    #[test]
    fn cache_key_depends_on_the_secret_without_holding_it() {
        let a = cache_key(&req("https://a.test/t", "s3cret"));
        assert_ne!(a, cache_key(&req("https://a.test/t", "other")));
        assert_eq!(a, cache_key(&req("https://a.test/t", "s3cret")));
        assert!(!a.contains("s3cret"));
    }

    #[tokio::test]
    async fn a_url_not_allowed_is_refused_naming_the_setting() {
        let err = cache(&[])
            .client_credentials(req("https://a.test/t", "s3cret"))
            .await
            .unwrap_err();
        assert!(err.contains("[plugins] oauth2_token_urls"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
