//! The console's foundation and webhook pages against a real gateway on port 0: sessions, CSRF,
//! security headers and secrets over plain HTTP (reqwest with the session cookie), and the
//! pages themselves in headless Chromium (tests/support/browser.rs) with a real receiver. Every
//! browser test saves a screenshot under target/screenshots/ and runs axe-core on its pages.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::{ADMIN, TestGateway};

const WAIT: Duration = Duration::from_secs(15);

/// A client that shows redirects instead of following them.
fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// The value of the `name=` cookie a response sets, with its attributes.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set: &str) -> String {
    set.split(';').next().unwrap().to_string()
}

/// The text between `before` and the next `"` in `html`.
fn attr_after(html: &str, before: &str) -> Option<String> {
    let i = html.find(before)? + before.len();
    Some(html[i..].split('"').next()?.to_string())
}

/// The path patterns of every `.route("...")` in the console's source files.
fn console_route_patterns() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/src/console");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the console's sources") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        for part in src.split(".route(").skip(1) {
            let Some(rest) = part.trim_start().strip_prefix('"') else {
                continue;
            };
            out.push(rest.split('"').next().unwrap().to_string());
        }
    }
    assert!(out.len() >= 10, "found only {out:?} in {}", dir.display());
    out
}

/// Whether the concrete `url` (its path) is an instance of the route `pattern` (`{x}`: any
/// one segment).
fn route_matches(pattern: &str, url: &str) -> bool {
    let path = url.split('?').next().unwrap();
    let p: Vec<&str> = pattern.split('/').collect();
    let u: Vec<&str> = path.split('/').collect();
    p.len() == u.len()
        && p.iter()
            .zip(&u)
            .all(|(p, u)| p == u || (p.starts_with('{') && p.ends_with('}') && !u.is_empty()))
}

/// A signed-in session over HTTP: (`gw_session=...` cookie, CSRF token).
async fn sign_in(gw: &TestGateway, key: &str) -> (String, String) {
    let c = plain();
    let form = c.get(gw.url("/console/sign-in")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let pre = cookie_value(&set_cookie(&form, "gw_signin").expect("sign-in cookie"));
    let html = form.text().await.unwrap();
    let token = attr_after(&html, "name=\"csrf\" value=\"").expect("form token");
    let r = c
        .post(gw.url("/console/sign-in"))
        .header(COOKIE, &pre)
        .form(&[("api_key", key), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "sign-in answered {}",
        r.status()
    );
    let set = set_cookie(&r, "gw_session").expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(
        !set.contains("Secure"),
        "plain http on loopback: no Secure ({set})"
    );
    let session = cookie_value(&set);
    let page = c
        .get(gw.url("/console/webhooks"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = attr_after(&html, "name=\"csrf-token\" content=\"").expect("csrf meta");
    (session, csrf)
}

async fn with_session(
    method: Method,
    url: &str,
    session: &str,
    csrf: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut rb = plain()
        .request(
            reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
            url,
        )
        .header(COOKIE, session);
    if let Some(t) = csrf {
        rb = rb.header("X-CSRF-Token", t);
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().await.unwrap();
    let s = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let text = r.text().await.unwrap();
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn manager_key(gw: &TestGateway, team: &str) -> String {
    let (s, k) = gw
        .admin(
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"name": format!("manager {team}"), "role": "manager", "team_id": team})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    k["token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_session_needs_the_csrf_token_for_changes_and_ends_at_sign_out() {
    let gw = TestGateway::start().await;
    let token = manager_key(&gw, "team-a").await;
    let (session, csrf) = sign_in(&gw, &token).await;
    let body = json!({"name": "via console", "urls": ["https://example.com/hook"], "trigger_events": ["*"]});
    let hooks = gw.url("/api/v1/webhooks/");

    // Reads need the cookie only; the session acts as the manager key (its team only).
    let (s, page) = with_session(Method::GET, &hooks, &session, None, None).await;
    assert_eq!(s, 200, "{page}");
    // A change without the token, or with another, is refused and changes nothing.
    for bad in [None, Some("not-the-token")] {
        let (s, p) = with_session(Method::POST, &hooks, &session, bad, Some(&body)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("missing or wrong CSRF token"),
            "{p}"
        );
    }
    let (_, all) = gw.admin(Method::GET, "/api/v1/webhooks/", None).await;
    assert_eq!(all["count"], 0, "a refused change stored nothing: {all}");
    // With the token it goes through, as the key's role and team.
    let (s, w) = with_session(Method::POST, &hooks, &session, Some(&csrf), Some(&body)).await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["scope"], json!({"kind": "team", "team_id": "team-a"}));
    let global = json!({"name": "global", "urls": ["https://example.com/g"], "trigger_events": ["*"], "scope": "global"});
    let (s, _) = with_session(Method::POST, &hooks, &session, Some(&csrf), Some(&global)).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a manager's session may not make a global webhook"
    );

    // Sign-out needs the token too, then the cookie is worth nothing.
    let c = plain();
    let r = c
        .post(gw.url("/console/sign-out"))
        .header(COOKIE, &session)
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (s, _) = with_session(Method::GET, &hooks, &session, None, None).await;
    assert_eq!(s, 200, "a refused sign-out ends nothing");
    let r = c
        .post(gw.url("/console/sign-out"))
        .header(COOKIE, &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&r, "gw_session").unwrap().contains("Max-Age=0"));
    let (s, _) = with_session(Method::GET, &hooks, &session, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let page = c
        .get(gw.url("/console/webhooks"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/console/sign-in");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_refuses_bad_keys_and_foreign_forms_and_revocation_ends_sessions() {
    let gw = TestGateway::start().await;
    let c = plain();
    let form = c.get(gw.url("/console/sign-in")).send().await.unwrap();
    let pre = cookie_value(&set_cookie(&form, "gw_signin").unwrap());
    let token = attr_after(&form.text().await.unwrap(), "name=\"csrf\" value=\"").unwrap();
    // A form posted from elsewhere (no double-submit cookie) is refused, even with a good key.
    let r = c
        .post(gw.url("/console/sign-in"))
        .form(&[("api_key", ADMIN), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&r, "gw_session").is_none());
    // An unknown key: 401 and the page says so, no session.
    let r = c
        .post(gw.url("/console/sign-in"))
        .header(COOKIE, &pre)
        .form(&[("api_key", "gw_not-a-key"), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, "gw_session").is_none());
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("unknown, revoked or expired")
    );

    // Revoking the key ends the sessions opened with it.
    let (s, k) = gw
        .admin(
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"name": "short", "role": "admin"})),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let (session, _) = sign_in(&gw, k["token"].as_str().unwrap()).await;
    let hooks = gw.url("/api/v1/webhooks/");
    assert_eq!(
        with_session(Method::GET, &hooks, &session, None, None)
            .await
            .0,
        200
    );
    let (s, _) = gw
        .admin(
            Method::DELETE,
            &format!("/api/v1/keys/{}", k["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(s.is_success(), "revoke: {s}");
    // (The key cache trusts a key for auth.key_cache_secs; the session re-reads the store.)
    assert_eq!(
        with_session(Method::GET, &hooks, &session, None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_expire_when_idle_and_at_their_maximum_age() {
    let clock = gateway::clock::ManualClock::new(1_700_000_000_000);
    let shared: gateway::clock::SharedClock = std::sync::Arc::new(clock.clone());
    let gw = TestGateway::start_with(
        |c| {
            c.console.session_idle_secs = 60;
            c.console.session_max_secs = 300;
        },
        Some(shared),
    )
    .await;
    let hooks = gw.url("/api/v1/webhooks/");
    let (session, _) = sign_in(&gw, ADMIN).await;
    // Active every 50 s: alive past the idle limit, until the maximum age.
    for _ in 0..5 {
        clock.advance_ms(50_000);
        assert_eq!(
            with_session(Method::GET, &hooks, &session, None, None)
                .await
                .0,
            200
        );
    }
    clock.advance_ms(50_001);
    assert_eq!(
        with_session(Method::GET, &hooks, &session, None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "300 s after sign-in the session is over"
    );
    let (session, _) = sign_in(&gw, ADMIN).await;
    clock.advance_ms(61_000);
    assert_eq!(
        with_session(Method::GET, &hooks, &session, None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "61 s idle ends it"
    );
    gw.stop().await;
}

/// Secrets of one webhook, none of which may appear in any console page.
const PASSWORD: &str = "basic-pass-5ecret-0001";
const API_KEY_VALUE: &str = "apikey-5ecret-value-0002";
const HMAC_SECRET: &str = "hmac-5ecret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_route_sends_the_csp_and_no_page_holds_a_secret() {
    let gw = TestGateway::start().await;
    let a = gw
        .create_webhook(json!({"name": "basic", "urls": ["https://example.com/a"], "trigger_events": ["*"],
            "auth": {"type": "basic", "username": "u", "password": PASSWORD},
            "signing": {"type": "hmac_sha512", "header": "X-Callgoose-Signature", "secret": HMAC_SECRET}}))
        .await;
    let b = gw
        .create_webhook(json!({"name": "api key", "urls": ["https://example.com/b"], "trigger_events": ["*"],
            "auth": {"type": "api_key", "name": "X-Api-Key", "value": API_KEY_VALUE, "in": "header"}}))
        .await;
    let (s, sw) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{}/secret", b["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let standard_secret = sw["secret"].as_str().unwrap().to_string();
    let (session, _) = sign_in(&gw, ADMIN).await;
    // A team portal session, and the page of its link once used.
    let (s, link) = gw
        .admin(
            Method::POST,
            "/api/v1/portal/links",
            Some(&json!({"team_id": "team-a"})),
        )
        .await;
    assert_eq!(s, 201, "{link}");
    let used = link["path"].as_str().unwrap().to_string();
    let opened = plain().get(gw.url(&used)).send().await.unwrap();
    assert_eq!(opened.status(), 200);
    let portal = cookie_value(&set_cookie(&opened, "gw_session").expect("portal session"));
    let mut routes = vec![
        "/".to_string(),
        "/console".into(),
        "/console/".into(),
        "/console/?window=7d".into(),
        "/console/sign-in".into(),
        "/console/sign-out".into(),
        "/console/webhooks".into(),
        "/console/webhooks?q=basic".into(),
        "/console/webhooks/new".into(),
        "/console/webhooks/wh_missing".into(),
        "/console/dry-run".into(),
        "/console/dry-run?sample=incidentio-created".into(),
        "/console/plugins".into(),
        "/console/keys".into(),
        "/console/portal-links".into(),
        "/console/assets/missing.js".into(),
        used.clone(),
        "/portal/gwp_not-a-link".into(),
    ];
    for name in gateway::console::asset_names() {
        routes.push(format!("/console/assets/{name}"));
    }
    for w in [&a, &b] {
        let id = w["id"].as_str().unwrap();
        routes.push(format!("/console/webhooks/{id}"));
        routes.push(format!("/console/webhooks/{id}/logs"));
        routes.push(format!("/console/webhooks/{id}/secret"));
    }
    // Every route the console's router declares is visited (read from its source, so a new page
    // cannot slip past this test).
    for pattern in console_route_patterns() {
        assert!(
            routes.iter().any(|r| route_matches(&pattern, r)),
            "the console route {pattern} is not in this test's list"
        );
    }
    let c = plain();
    for route in &routes {
        for cookie in [None, Some(session.as_str()), Some(portal.as_str())] {
            let mut rb = c.get(gw.url(route));
            if let Some(ck) = cookie {
                rb = rb.header(COOKIE, ck);
            }
            let r = rb.send().await.unwrap();
            let status = r.status();
            let csp = r
                .headers()
                .get(CONTENT_SECURITY_POLICY)
                .unwrap_or_else(|| panic!("{route}: no CSP ({status})"))
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
                "{route}: {csp}"
            );
            assert!(!csp.contains("unsafe-inline"), "{route}: {csp}");
            assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{route}");
            assert_eq!(r.headers()["x-frame-options"], "DENY", "{route}");
            assert_eq!(r.headers()["referrer-policy"], "same-origin", "{route}");
            let html_page = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/html"));
            let html = r.text().await.unwrap();
            for secret in [
                PASSWORD,
                API_KEY_VALUE,
                HMAC_SECRET,
                standard_secret.as_str(),
                ADMIN,
            ] {
                assert!(!html.contains(secret), "{route} shows a secret");
            }
            if html_page {
                assert!(
                    html.contains("<html lang=\"en\">") && html.contains("<main"),
                    "{route} ({status})"
                );
                assert!(
                    !html.contains(" style=") && !html.contains("onclick"),
                    "{route}: inline style or handler"
                );
            }
            if cookie == Some(session.as_str())
                && status == StatusCode::OK
                && route.starts_with("/console/")
                && !route.starts_with("/console/assets/")
            {
                assert!(html_page, "{route}: a signed-in page is html");
            }
        }
    }
    // An unknown webhook is the API's 404, as a page.
    let r = c
        .get(gw.url("/console/webhooks/wh_missing"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // The reveal is the console's explicit POST (CSRF token needed) and answers the secret once.
    let id = b["id"].as_str().unwrap();
    let url = gw.url(&format!("/console/webhooks/{id}/secret"));
    assert_eq!(
        with_session(Method::POST, &url, &session, None, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    gw.stop().await;
}
