//! Built-in authentication (Callgoose's none / basic / bearer / API key, and Grafana OnCall's
//! `authorization_header` and `username` + `password`) applied to a prepared request. The masking
//! that keeps those secrets out of the attempt log is [`crate::secrets::mask`].
//!
//! Order of application, last writer wins for a header of the same name (names compare without
//! case, and an applied header replaces any custom header of that name):
//! 1. custom headers (already in the request from shaping or plugins);
//! 2. Grafana `authorization_header`, sent verbatim as `Authorization` (OnCall sets it over the
//!    custom headers);
//! 3. Grafana `username` + `password` as Basic, only when both are non-empty (OnCall's rule; its
//!    HTTP library lets basic auth override an `Authorization` header);
//! 4. the built-in [`Auth`], the gateway's own typed setting and so the most specific.
//!
//! Auth is applied per attempt, after the stored request is loaded, so secrets are never stored
//! with the request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::model::{Auth, KeyLocation, PreparedRequest, Webhook};

/// Adds the webhook's built-in auth to `req`. See the module doc for the order.
pub fn apply_auth(webhook: &Webhook, req: &mut PreparedRequest) {
    if let Some(h) = webhook
        .authorization_header
        .as_deref()
        .filter(|h| !h.is_empty())
    {
        set_header(&mut req.headers, "Authorization", h.to_string());
    }
    if let (Some(user), Some(pass)) = (non_empty(&webhook.username), non_empty(&webhook.password)) {
        set_header(&mut req.headers, "Authorization", basic(user, pass));
    }
    match &webhook.auth {
        Auth::None => {}
        Auth::Basic { username, password } => {
            set_header(&mut req.headers, "Authorization", basic(username, password))
        }
        Auth::Bearer { token } => {
            set_header(&mut req.headers, "Authorization", format!("Bearer {token}"))
        }
        Auth::ApiKey {
            name,
            value,
            location: KeyLocation::Header,
        } => {
            set_header(&mut req.headers, name, value.clone());
        }
        Auth::ApiKey {
            name,
            value,
            location: KeyLocation::Query,
        } => {
            req.query.retain(|(k, _)| k != name);
            req.query.push((name.clone(), value.clone()));
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{pass}")))
}

/// Replaces every header named `name` (any case) with one `name: value`.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_string(), value));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::MASK;
    use crate::secrets::mask::{mask_headers, mask_url};

    /// A minimal webhook for delivery tests.
    pub(crate) fn webhook() -> Webhook {
        // Built from JSON so every optional field takes its serde default.
        serde_json::from_value(serde_json::json!({
            "id": "wh_1",
            "name": "test",
            "is_webhook_enabled": true,
            "scope": {"kind": "global"},
            "urls": ["https://example.com/hook"],
            "http_method": "POST",
            "trigger_events": ["*"],
            "forward_all": true,
            "signing": {"type": "none"},
            "timeout_secs": 15,
            "created_at": 0,
            "updated_at": 0
        }))
        .expect("a valid minimal webhook")
    }

    fn request() -> PreparedRequest {
        PreparedRequest {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            query: vec![("a".into(), "1".into())],
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some("{}".into()),
        }
    }

    fn header<'a>(req: &'a PreparedRequest, name: &str) -> Option<&'a str> {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn applied(wh: &Webhook) -> PreparedRequest {
        let mut req = request();
        apply_auth(wh, &mut req);
        req
    }

    #[test]
    fn none_changes_nothing() {
        assert_eq!(applied(&webhook()), request());
    }

    #[test]
    fn basic_is_base64_of_user_colon_pass() {
        let wh = Webhook {
            auth: Auth::Basic {
                username: "Aladdin".into(),
                password: "open sesame".into(),
            },
            ..webhook()
        };
        let req = applied(&wh);
        assert_eq!(
            header(&req, "authorization"),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        let masked = mask_headers(&req.headers, &wh);
        assert!(masked.contains(&("Authorization".into(), MASK.into())));
        assert!(masked.contains(&("Content-Type".into(), "application/json".into())));
    }

    #[test]
    fn bearer_token() {
        let wh = Webhook {
            auth: Auth::Bearer {
                token: "tok_123456".into(),
            },
            ..webhook()
        };
        let req = applied(&wh);
        assert_eq!(header(&req, "Authorization"), Some("Bearer tok_123456"));
        assert_eq!(
            mask_headers(&req.headers, &wh)[1],
            ("Authorization".into(), MASK.into())
        );
    }

    #[test]
    fn api_key_in_header_replaces_custom_header_and_is_masked() {
        let wh = Webhook {
            auth: Auth::ApiKey {
                name: "X-Key".into(),
                value: "k-secret".into(),
                location: KeyLocation::Header,
            },
            ..webhook()
        };
        let mut req = request();
        req.headers.push(("x-key".into(), "old".into()));
        apply_auth(&wh, &mut req);
        assert_eq!(
            req.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-key"))
                .count(),
            1
        );
        assert_eq!(header(&req, "X-Key"), Some("k-secret"));
        assert!(req.query == vec![("a".to_string(), "1".to_string())]);
        assert!(mask_headers(&req.headers, &wh).contains(&("X-Key".into(), MASK.into())));
    }

    #[test]
    fn api_key_in_query_and_masked_url() {
        let wh = Webhook {
            auth: Auth::ApiKey {
                name: "api_key".into(),
                value: "k-secret".into(),
                location: KeyLocation::Query,
            },
            ..webhook()
        };
        let req = applied(&wh);
        assert_eq!(
            req.query,
            vec![
                ("a".into(), "1".into()),
                ("api_key".into(), "k-secret".into())
            ]
        );
        assert_eq!(header(&req, "Authorization"), None);
        assert_eq!(
            mask_url(
                "https://example.com/hook?a=1&api_key=k-secret&b=x%20y#top",
                &wh
            ),
            format!("https://example.com/hook?a=1&api_key={MASK}&b=x%20y#top")
        );
        // A secret copied into another parameter is masked too; the url without a query is intact.
        assert_eq!(
            mask_url("https://example.com/?copy=k-secret", &wh),
            format!("https://example.com/?copy={MASK}")
        );
        assert_eq!(
            mask_url("https://example.com/hook", &wh),
            "https://example.com/hook"
        );
    }

    #[test]
    fn grafana_authorization_header_is_verbatim() {
        let wh = Webhook {
            authorization_header: Some("Token abc-123-def".into()),
            ..webhook()
        };
        let req = applied(&wh);
        assert_eq!(header(&req, "Authorization"), Some("Token abc-123-def"));
        assert_eq!(mask_headers(&req.headers, &wh)[1].1, MASK);
    }

    #[test]
    fn grafana_username_password_is_basic_and_wins_over_authorization_header() {
        let wh = Webhook {
            username: Some("user".into()),
            password: Some("pass".into()),
            authorization_header: Some("Token x".into()),
            ..webhook()
        };
        let req = applied(&wh);
        assert_eq!(header(&req, "Authorization"), Some("Basic dXNlcjpwYXNz"));
        // OnCall needs both: a username alone adds nothing.
        let wh = Webhook {
            username: Some("user".into()),
            ..webhook()
        };
        assert_eq!(applied(&wh), request());
    }

    #[test]
    fn builtin_auth_wins_over_grafana_fields() {
        let wh = Webhook {
            authorization_header: Some("Token x".into()),
            auth: Auth::Bearer { token: "b".into() },
            ..webhook()
        };
        assert_eq!(header(&applied(&wh), "Authorization"), Some("Bearer b"));
    }
}
