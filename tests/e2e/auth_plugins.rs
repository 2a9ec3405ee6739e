//! The `oauth2` and `aws-sigv4` authenticators end to end: a real token endpoint that checks the
//! client's Basic credentials and counts calls, and a receiver that checks SigV4 signatures with
//! AWS's own `aws-sigv4` crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::IntoResponse;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::delivery::wait_status;
use crate::support::{Receiver, TestGateway};

const WAIT: Duration = Duration::from_secs(60);
const CLIENT_ID: &str = "client-7";
const CLIENT_SECRET: &str = "s3cret:with/odd&chars";

/// A token endpoint on 127.0.0.1:0: checks `grant_type=client_credentials` and the Basic
/// credentials (RFC 6749 2.3.1: form-urlencoded, then base64), answers `tok-<n>` for the n-th
/// call with `expires_in`, or 401 `invalid_client`.
struct TokenEndpoint {
    rx: Receiver,
    calls: Arc<AtomicUsize>,
}

impl TokenEndpoint {
    async fn start(expires_in: u64) -> Self {
        let rx = Receiver::start().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        rx.set_fallback(move |r| {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(CLIENT_ID),
                    enc(CLIENT_SECRET)
                ))
            );
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            let grant = form
                .iter()
                .any(|(k, v)| k == "grant_type" && v == "client_credentials");
            if r.method != "POST" || r.header("authorization") != Some(want.as_str()) || !grant {
                return (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": "invalid_client"})),
                )
                    .into_response();
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            axum::Json(
                json!({"access_token": format!("tok-{n}"), "token_type": "Bearer",
                "expires_in": expires_in}),
            )
            .into_response()
        });
        TokenEndpoint { rx, calls }
    }

    fn url(&self) -> String {
        self.rx.url("/oauth/token")
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A gateway whose `[plugins] oauth2_token_urls` is `[allowed]`.
async fn gateway_allowing(
    allowed: String,
    clock: Option<gateway::clock::SharedClock>,
) -> TestGateway {
    TestGateway::start_with(move |c| c.plugins.oauth2_token_urls = vec![allowed], clock).await
}

async fn oauth2_webhook(gw: &TestGateway, rx: &Receiver, token_url: &str, secret: &str) -> String {
    let w = gw
        .create_webhook(json!({"name": "oauth", "url": rx.url("/in"), "trigger_events": ["*"],
            "secrets": {"client_id": CLIENT_ID, "client_secret": secret},
            "authenticator": {"name": "oauth2", "config": {"token_url": token_url, "scope": "events:write"}}}))
        .await;
    w["id"].as_str().expect("webhook created").to_string()
}

async fn delivery_of(gw: &TestGateway, event: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, e) = gw
            .admin(Method::GET, &format!("/api/v1/events/{event}"), None)
            .await;
        if let Some(id) = e["deliveries"][0]["id"].as_str() {
            return id.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery for {event}: {e}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_token_is_fetched_once_for_many_deliveries_and_again_after_expiry() {
    let auth = TokenEndpoint::start(3600).await;
    let rx = Receiver::start().await;
    let clock = gateway::clock::ManualClock::new(chrono::Utc::now().timestamp_millis());
    let token_url = auth.url();
    let gw = gateway_allowing(token_url.clone(), Some(Arc::new(clock.clone()))).await;
    oauth2_webhook(&gw, &rx, &token_url, CLIENT_SECRET).await;
    for i in 0..5 {
        gw.post_event(&json!({"event_type": "incident.triggered", "n": i}))
            .await;
    }
    let got = rx.wait_for(5, WAIT).await;
    assert_eq!(auth.calls(), 1, "one token call for five deliveries");
    assert!(
        got.iter()
            .all(|r| r.header("authorization") == Some("Bearer tok-1"))
    );
    let form = String::from_utf8_lossy(&auth.rx.received()[0].body).to_string();
    assert!(form.contains("scope=events%3Awrite"), "{form}");

    // An hour later the token has expired: the next delivery fetches a new one.
    clock.advance_ms(3_600_000);
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered", "n": 6}))
        .await;
    let got = rx.wait_for(6, WAIT).await;
    assert_eq!(auth.calls(), 2);
    assert_eq!(got[5].header("authorization"), Some("Bearer tok-2"));

    // The token is masked in the stored attempt log.
    let d = wait_status(&gw, &delivery_of(&gw, &ev).await, "succeeded").await;
    let text = d.to_string();
    assert!(
        !text.contains("tok-2") && !text.contains(CLIENT_SECRET),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("authorization"),
        "the header is logged, masked: {text}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_a_401_for_an_old_token_fetches_a_new_one_and_the_delivery_succeeds() {
    let auth = TokenEndpoint::start(3600).await;
    let rx = Receiver::start().await;
    // The receiver accepts only the newest token: tok-1 is "revoked" after the first delivery.
    let accepted = Arc::new(parking_lot::Mutex::new("Bearer tok-1".to_string()));
    let current = accepted.clone();
    rx.set_fallback(move |r| {
        if r.header("authorization") == Some(current.lock().as_str()) {
            axum::http::StatusCode::OK.into_response()
        } else {
            axum::http::StatusCode::UNAUTHORIZED.into_response()
        }
    });
    let token_url = auth.url();
    let gw = gateway_allowing(token_url.clone(), None).await;
    oauth2_webhook(&gw, &rx, &token_url, CLIENT_SECRET).await;
    let first = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    wait_status(&gw, &delivery_of(&gw, &first).await, "succeeded").await;
    assert_eq!(auth.calls(), 1);

    *accepted.lock() = "Bearer tok-2".to_string();
    let second = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let d = wait_status(&gw, &delivery_of(&gw, &second).await, "succeeded").await;
    assert_eq!(
        auth.calls(),
        2,
        "the 401 made the gateway fetch a new token"
    );
    assert_eq!(
        d["attempts"], 1,
        "sent again at once, within the same attempt: {d}"
    );
    let got = rx.received();
    let tail: Vec<_> = got[1..]
        .iter()
        .map(|r| r.header("authorization").unwrap_or(""))
        .collect();
    assert_eq!(tail, vec!["Bearer tok-1", "Bearer tok-2"]);
    assert!(
        d.to_string().contains("401"),
        "the attempt log says why it was sent again: {d}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_a_token_url_not_allow_listed_fails_the_delivery_naming_the_setting() {
    let auth = TokenEndpoint::start(3600).await;
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    oauth2_webhook(&gw, &rx, &auth.url(), CLIENT_SECRET).await;
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let d = wait_status(&gw, &delivery_of(&gw, &ev).await, "failed").await;
    let err = d["attempt_log"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("oauth2_token_urls"), "{d}");
    assert_eq!(auth.calls(), 0);
    assert_eq!(rx.count(), 0, "nothing sent without a token");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_wrong_client_secret_fails_with_the_endpoint_answer_not_the_secret() {
    let auth = TokenEndpoint::start(3600).await;
    let rx = Receiver::start().await;
    let token_url = auth.url();
    let gw = gateway_allowing(format!("{}*", auth.rx.url("/oauth/")), None).await;
    oauth2_webhook(&gw, &rx, &token_url, "wrong-secret-value").await;
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered"}))
        .await;
    let d = wait_status(&gw, &delivery_of(&gw, &ev).await, "failed").await;
    let text = d.to_string();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
    assert_eq!(rx.count(), 0);
    gw.stop().await;
}

/// Checks a received request's SigV4 `Authorization` with the `aws-sigv4` crate: the same
/// request, signed with `secret` at its `x-amz-date`, must give the same signature.
fn sigv4_signature_matches(
    r: &crate::support::Received,
    url: &str,
    secret: &str,
) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let amz_date = r.header("x-amz-date").ok_or("no x-amz-date")?;
    let time = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|e| e.to_string())?
        .and_utc();
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new("AKIDEXAMPLE", secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("execute-api")
        .time(time.into())
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let host = r.header("host").ok_or("no host")?;
    let signable = SignableRequest::new(
        &r.method,
        url,
        [("host", host)].into_iter(),
        SignableBody::Bytes(&r.body),
    )
    .map_err(|e| e.to_string())?;
    let expected = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .signature()
        .to_string();
    let auth = r.header("authorization").ok_or("no authorization")?;
    let got = auth.rsplit("Signature=").next().unwrap_or("");
    let scope = format!(
        "Credential=AKIDEXAMPLE/{}/eu-west-1/execute-api/aws4_request",
        &amz_date[..8]
    );
    if !auth.starts_with("AWS4-HMAC-SHA256 ") || !auth.contains(&scope) {
        return Err(format!("unexpected authorization {auth}"));
    }
    if got != expected {
        return Err(format!("signature {got} != {expected}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sigv4_signatures_pass_the_aws_sigv4_crate_check() {
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    gw.create_webhook(json!({"name": "sigv4", "url": rx.url("/prod/hooks?b=2&a=x y"), "trigger_events": ["*"],
        "secrets": {"aws_secret_access_key": SECRET, "aws_session_token": "session-tok"},
        "authenticator": {"name": "aws-sigv4", "config": {"region": "eu-west-1", "service": "execute-api",
            "access_key_id": "AKIDEXAMPLE"}}}))
        .await;
    let ev = gw
        .post_event(&json!({"event_type": "incident.triggered", "title": "disk full"}))
        .await;
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    let url = format!(
        "http://{}{}?{}",
        r.header("host").unwrap(),
        r.path,
        r.query.as_deref().unwrap_or("")
    );
    sigv4_signature_matches(r, &url, SECRET).expect("aws-sigv4 accepts the signature");
    // The checker can fail: another secret gives another signature.
    assert!(sigv4_signature_matches(r, &url, "not-the-secret").is_err());
    assert_eq!(r.header("x-amz-security-token"), Some("session-tok"));
    let d = wait_status(&gw, &delivery_of(&gw, &ev).await, "succeeded").await;
    let text: Value = d;
    assert!(!text.to_string().contains("session-tok"), "{text}");
    gw.stop().await;
}

/// Saving a webhook whose first-party authenticator lacks a secret it opens is refused naming the
/// missing secret, every name the plugin opens (optional ones marked) and the webhook's names;
/// with the secret added it is accepted, and a PATCH dropping it is refused again. (Regression:
/// such webhooks were accepted and then failed every delivery.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plugins_missing_their_secrets_are_refused_when_saved() {
    let gw = TestGateway::start().await;
    let oauth2 =
        json!({"name": "oauth2", "config": {"token_url": "https://auth.example.com/token"}});
    let sigv4 = json!({"name": "aws-sigv4", "config": {"region": "eu-west-1",
        "service": "execute-api", "access_key_id": "AKIDEXAMPLE"}});
    let hook = |auth: &Value, secrets: Value| {
        json!({"name": auth["name"], "url": "https://example.com/hook", "trigger_events": ["*"],
            "secrets": secrets, "authenticator": auth})
    };
    let cases = [
        (
            &oauth2,
            json!({}),
            "\"client_id\"",
            "client_id, client_secret)",
            "none",
        ),
        (
            &oauth2,
            json!({"client_id": "value-id-1"}),
            "\"client_secret\"",
            "client_id, client_secret)",
            "client_id",
        ),
        (
            &sigv4,
            json!({"aws_session_token": "value-tok-2"}),
            "\"aws_secret_access_key\"",
            "aws_secret_access_key (optional: aws_session_token)",
            "aws_session_token",
        ),
    ];
    for (auth, secrets, missing, opens, has) in cases {
        let (s, problem) = gw
            .admin(Method::POST, "/api/v1/webhooks", Some(&hook(auth, secrets)))
            .await;
        assert_eq!(
            (s.as_u16(), problem["field"].as_str()),
            (400, Some("secrets")),
            "{problem}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!(
                "authenticator ({}) needs the secret {missing}",
                auth["name"].as_str().unwrap()
            )),
            "{detail}"
        );
        assert!(detail.contains(opens), "names what it opens: {detail}");
        assert!(
            detail.ends_with(&format!("this webhook's named secrets: {has}")),
            "lists the names it has: {detail}"
        );
        assert!(!detail.contains("value-"), "never a value: {detail}");
    }
    // With the secrets: accepted.
    let ok = gw
        .create_webhook(hook(
            &oauth2,
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        ))
        .await;
    gw.create_webhook(hook(
        &sigv4,
        json!({"aws_secret_access_key": "value-key-3"}),
    ))
    .await;
    // Dropping one later is refused the same way.
    let id = ok["id"].as_str().unwrap();
    let (s, problem) = gw
        .admin(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&json!({"secrets": {"client_id": "****************"}})),
        )
        .await;
    assert_eq!(s, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("needs the secret \"client_secret\""),
        "{problem}"
    );
    gw.stop().await;
}
