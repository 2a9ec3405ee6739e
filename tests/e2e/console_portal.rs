//! Team portal links: minted through the API by an admin, the platform's publisher key or a
//! team's manager; opened once in a real headless Chromium against a real gateway; limited to
//! the link's team (or webhook) in console pages and API calls alike; expiring; framed only as
//! `console.frame_ancestors` allows.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::{ADMIN, Receiver, TestGateway};

const WAIT: Duration = Duration::from_secs(15);

async fn key(gw: &TestGateway, role: &str, team: Option<&str>) -> String {
    let (s, k) = gw
        .admin(
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"name": format!("{role} {team:?}"), "role": role, "team_id": team})),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    k["token"].as_str().unwrap().to_string()
}

async fn team_webhook(gw: &TestGateway, name: &str, team: &str) -> Value {
    gw.create_webhook(json!({
        "name": name, "url": format!("http://127.0.0.1:9/{name}"), "trigger_events": ["*"],
        "scope": {"kind": "team", "team_id": team},
    }))
    .await
}

async fn mint(gw: &TestGateway, token: &str, body: Value) -> (StatusCode, Value) {
    gw.call(
        Method::POST,
        "/api/v1/portal/links",
        Some(token),
        Some(&body),
    )
    .await
}

/// A GET with the portal session's cookie: status and body text.
async fn with_cookie(gw: &TestGateway, cookie: &str, path: &str) -> (StatusCode, String) {
    let r = gw
        .client
        .get(gw.url(path))
        .header("Cookie", format!("gw_session={cookie}"))
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_links_are_minted_by_admin_publisher_or_own_manager_and_stored_hashed() {
    let gw = TestGateway::start().await;
    let a1 = team_webhook(&gw, "a-one", "A").await;
    let b1 = team_webhook(&gw, "b-one", "B").await;
    let manager_a = key(&gw, "manager", Some("A")).await;
    let publisher = key(&gw, "publisher", None).await;

    let (s, link) = mint(&gw, ADMIN, json!({"team_id": "A"})).await;
    assert_eq!(s, 201, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{}/portal/gwp_", gw.addr)),
        "{url}"
    );
    assert_eq!(
        link["path"].as_str(),
        url.strip_prefix(&format!("http://{}", gw.addr))
    );
    assert_eq!(link["team_id"], "A");
    assert_eq!(link["webhook_id"], Value::Null);
    let expires = chrono::DateTime::parse_from_rfc3339(link["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let ttl = expires - chrono::Utc::now().timestamp();
    assert!(
        (880..=901).contains(&ttl),
        "the default ttl is 15 min, got {ttl} s"
    );

    let (s, v) = mint(
        &gw,
        &publisher,
        json!({"team_id": "B", "webhook_id": b1["id"], "ttl_secs": 60}),
    )
    .await;
    assert_eq!(s, 201, "the platform's key mints for any team: {v}");
    assert_eq!(v["webhook_id"], b1["id"]);
    let (s, v) = mint(
        &gw,
        &manager_a,
        json!({"team_id": "A", "webhook_id": a1["id"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // Refusals, each naming its field.
    let cases = [
        (&manager_a, json!({"team_id": "B"}), 403, "team_id"),
        (
            &manager_a,
            json!({"team_id": "A", "webhook_id": b1["id"]}),
            400,
            "webhook_id",
        ),
        (
            &manager_a,
            json!({"team_id": "A", "webhook_id": "wh_nope"}),
            400,
            "webhook_id",
        ),
        (
            &publisher,
            json!({"team_id": "A", "ttl_secs": 0}),
            400,
            "ttl_secs",
        ),
        (
            &publisher,
            json!({"team_id": "A", "ttl_secs": 86_401}),
            400,
            "ttl_secs",
        ),
        (&publisher, json!({"team_id": ""}), 400, "team_id"),
    ];
    for (who, body, status, field) in cases {
        let (s, p) = mint(&gw, who, body.clone()).await;
        assert_eq!(s.as_u16(), status, "{body}: {p}");
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let (s, _) = mint(&gw, "gw_unknown", json!({"team_id": "A"})).await;
    assert_eq!(s, 401);

    // Only the token's sha256 is stored.
    let token = url.rsplit('/').next().unwrap();
    let db = rusqlite::Connection::open(gw.dir.path().join("gateway.db")).unwrap();
    let hashes: Vec<String> = db
        .prepare("SELECT token_hash FROM portal_links")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hashes.len(), 3);
    use sha2::Digest;
    let want = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    assert!(hashes.contains(&want));
    assert!(!hashes.iter().any(|h| h.contains(token)));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_link_opens_once_and_shows_its_team_only() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = TestGateway::start().await;
    let a1 = team_webhook(&gw, "alpha-pager", "A").await;
    let a2 = team_webhook(&gw, "alpha-chat", "A").await;
    let b1 = team_webhook(&gw, "bravo-secret-hook", "B").await;
    let (s, link) = mint(&gw, ADMIN, json!({"team_id": "A"})).await;
    assert_eq!(s, 201, "{link}");
    let url = link["url"].as_str().unwrap().to_string();

    browser.goto(&url).await;
    browser.wait_for_text("main", "alpha-pager").await;
    let page = browser.text("main").await;
    assert!(page.contains("alpha-chat"), "{page}");
    assert!(
        !page.contains("bravo-secret-hook"),
        "team B's webhook in A's portal: {page}"
    );
    assert!(
        browser
            .client()
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/console/webhooks"),
        "the portal lands on the webhooks"
    );
    browser.screenshot("portal-team-a-webhooks").await;
    browser.assert_accessible("portal webhooks").await;
    let cookie = browser
        .cookie("gw_session")
        .await
        .expect("portal session cookie");

    // Inside the portal, team B's webhook does not exist: its page and its API answers.
    let b = b1["id"].as_str().unwrap();
    for path in [
        format!("/console/webhooks/{b}"),
        format!("/api/v1/webhooks/{b}/"),
        format!("/api/v1/webhooks/{b}/responses"),
    ] {
        let (s, body) = with_cookie(&gw, &cookie, &path).await;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN,
            "{path} answered {s} inside team A's portal"
        );
        assert!(!body.contains("bravo-secret-hook"), "{path}: {body}");
    }
    let (s, list) = with_cookie(&gw, &cookie, "/api/v1/webhooks/").await;
    assert_eq!(s, 200, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    let names: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"bravo-secret-hook"));
    // Admin-only and statistics pages are not the portal's.
    for path in ["/api/v1/keys", "/api/v1/stats/deliveries"] {
        let (s, _) = with_cookie(&gw, &cookie, path).await;
        assert!(
            s == 403 || s == 404,
            "{path} answered {s} to a portal session"
        );
    }

    // The link opened once: a second open (another browser, no cookie) is refused, with no session.
    let again = gw.client.get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(again.headers().get("set-cookie").is_none());
    assert!(again.text().await.unwrap().contains("already opened"));
    browser.goto(&url).await;
    browser.wait_for_text("main", "already opened").await;
    browser.screenshot("portal-link-used").await;
    browser
        .assert_accessible("portal link already opened")
        .await;

    // A link for one webhook shows that webhook only.
    let (_, one) = mint(&gw, ADMIN, json!({"team_id": "A", "webhook_id": a2["id"]})).await;
    let one_url = one["url"].as_str().unwrap();
    browser.goto(one_url).await;
    let page = browser.wait_for_text("main", "alpha-chat").await;
    assert!(!page.contains("alpha-pager"), "{page}");
    let cookie = browser.cookie("gw_session").await.unwrap();
    let (s, _) = with_cookie(
        &gw,
        &cookie,
        &format!("/api/v1/webhooks/{}/", a1["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the team's other webhook, outside a one-webhook link"
    );
    browser.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_link_expires_and_unknown_links_are_refused() {
    let gw = TestGateway::start().await;
    team_webhook(&gw, "a-one", "A").await;
    let (s, link) = mint(&gw, ADMIN, json!({"team_id": "A", "ttl_secs": 1})).await;
    assert_eq!(s, 201, "{link}");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = gw
        .client
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("expired"));

    let r = gw
        .client
        .get(gw.url("/portal/gwp_not-a-link"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().get("set-cookie").is_none());

    // A fresh link opens (and sets the session cookie) exactly once.
    let (_, link) = mint(&gw, ADMIN, json!({"team_id": "A"})).await;
    let r = gw
        .client
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.starts_with("gw_session=") && set.contains("HttpOnly"),
        "{set}"
    );
    assert!(set.contains("SameSite=Strict"), "not framed: {set}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_pages_are_framed_only_as_frame_ancestors_allow() {
    for (ancestors, framed) in [(None, false), (Some("https://platform.example"), true)] {
        let gw = TestGateway::start_with(
            |c| {
                if let Some(a) = ancestors {
                    c.console.frame_ancestors = a.into();
                }
            },
            None,
        )
        .await;
        let (_, link) = mint(&gw, ADMIN, json!({"team_id": "A"})).await;
        let r = gw
            .client
            .get(link["url"].as_str().unwrap())
            .header("X-Forwarded-Proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        let cookie = h["set-cookie"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        if framed {
            assert!(
                csp.ends_with("frame-ancestors https://platform.example"),
                "{csp}"
            );
            assert!(h.get("x-frame-options").is_none());
            assert!(
                cookie.contains("SameSite=None") && cookie.contains("Secure"),
                "{cookie}"
            );
        } else {
            assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
            assert_eq!(h["x-frame-options"], "DENY");
            assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        }
        gw.stop().await;
    }
}

/// A request with the portal session's cookie and CSRF token: status, content type and body.
async fn as_portal(
    gw: &TestGateway,
    cookie: &str,
    csrf: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, String, Value) {
    let mut rb = gw
        .client
        .request(method, gw.url(path))
        .header("Cookie", format!("gw_session={cookie}"))
        .header("X-CSRF-Token", csrf);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().await.unwrap();
    let s = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = r.text().await.unwrap_or_default();
    (s, ct, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Opens a portal link in the browser; returns the session's cookie and CSRF token.
async fn open_portal(browser: &Browser, url: &str, expect: &str) -> (String, String) {
    browser.goto(url).await;
    browser.wait_for_text("main", expect).await;
    let cookie = browser.cookie("gw_session").await.expect("portal cookie");
    (cookie, browser.csrf().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_session_reaches_its_webhooks_logs_test_and_replay_and_nothing_else() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let a1 = gw
        .create_webhook(
            json!({"name": "alpha-live", "url": rx.url("/a1"), "trigger_events": ["*"],
            "scope": {"kind": "team", "team_id": "A"}}),
        )
        .await;
    let a2 = gw
        .create_webhook(
            json!({"name": "alpha-other", "url": rx.url("/a2"), "trigger_events": ["*"],
            "scope": {"kind": "team", "team_id": "A"}}),
        )
        .await;
    let a1_id = a1["id"].as_str().unwrap().to_string();
    let event_id = gw
        .post_event(&json!({"event_type": "incident.triggered", "id": "portal-e1", "team_id": "A"}))
        .await;
    assert_eq!(
        rx.wait_for(2, WAIT).await.len(),
        2,
        "both of A's webhooks fired"
    );
    // The attempt is recorded once the receiver has answered: wait for it (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    let delivery = loop {
        let (_, attempts) = gw
            .admin(
                Method::GET,
                &format!("/api/v1/webhooks/{a1_id}/attempts"),
                None,
            )
            .await;
        if let Some(d) = attempts["results"][0]["delivery_id"].as_str() {
            break d.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no attempt recorded: {attempts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let (s, link) = mint(&gw, ADMIN, json!({"team_id": "A"})).await;
    assert_eq!(s, 201, "{link}");
    let (cookie, csrf) = open_portal(&browser, link["url"].as_str().unwrap(), "alpha-live").await;

    // Beyond its webhooks: events (posting and reading), dry-runs, plugins, keys, statistics,
    // portal links: a 403 problem, and nothing happens.
    let sample = json!({"event_type": "incident.triggered", "id": "from-portal", "team_id": "A"});
    let refused = [
        (
            Method::POST,
            "/api/v1/events".to_string(),
            Some(sample.clone()),
        ),
        (
            Method::POST,
            "/api/v1/events/".to_string(),
            Some(sample.clone()),
        ),
        (Method::GET, format!("/api/v1/events/{event_id}"), None),
        (
            Method::POST,
            "/api/v1/events/dry-run".to_string(),
            Some(sample.clone()),
        ),
        (Method::GET, "/api/v1/plugins".to_string(), None),
        (Method::GET, "/api/v1/plugins/slack/1.0.0".to_string(), None),
        (
            Method::POST,
            "/api/v1/plugins/slack/1.0.0/try".to_string(),
            Some(json!({"event": sample})),
        ),
        (
            Method::DELETE,
            "/api/v1/plugins/slack/1.0.0".to_string(),
            None,
        ),
        (Method::GET, "/api/v1/keys".to_string(), None),
        (
            Method::POST,
            "/api/v1/keys".to_string(),
            Some(json!({"name": "x", "role": "admin"})),
        ),
        (Method::GET, "/api/v1/stats/deliveries".to_string(), None),
        (
            Method::POST,
            "/api/v1/portal/links".to_string(),
            Some(json!({"team_id": "A"})),
        ),
        (Method::GET, "/api/v1/actions".to_string(), None),
    ];
    for (m, path, body) in &refused {
        let (s, ct, p) = as_portal(&gw, &cookie, &csrf, m.clone(), path, body.as_ref()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path} inside a portal: {p}");
        assert!(
            ct.starts_with("application/problem+json"),
            "{m} {path}: {ct}"
        );
        assert!(
            p["detail"].as_str().unwrap_or_default().contains("portal"),
            "{m} {path}: {p}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 2, "the refused event fired nothing");
    // The console pages beyond its webhooks: a 403 page (the overview sends it to its webhooks).
    for page in [
        "/console/dry-run",
        "/console/plugins",
        "/console/keys",
        "/console/portal-links",
    ] {
        let (s, body) = with_cookie(&gw, &cookie, page).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{page} inside a portal");
        assert!(
            body.contains("portal session reaches"),
            "{page}: {body:.300}"
        );
    }

    // Its own: webhooks, logs, Test and resend still work, in the API and in the pages.
    let (s, _, list) = as_portal(&gw, &cookie, &csrf, Method::GET, "/api/v1/webhooks/", None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["count"], 2, "{list}");
    let (s, _, logs) = as_portal(
        &gw,
        &cookie,
        &csrf,
        Method::GET,
        &format!("/api/v1/webhooks/{a1_id}/attempts"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{logs}");
    assert_eq!(logs["results"][0]["delivery_id"], delivery.as_str());
    let (s, _, d) = as_portal(
        &gw,
        &cookie,
        &csrf,
        Method::GET,
        &format!("/api/v1/deliveries/{delivery}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{d}");
    browser
        .goto(&gw.url(&format!("/console/webhooks/{a1_id}")))
        .await;
    browser.wait_for("form[data-loaded=true]").await;
    browser.click("#test").await;
    browser.wait_for_text("#test-status", "200").await;
    assert_eq!(
        rx.wait_for(3, WAIT).await.len(),
        3,
        "Test sent from the portal"
    );
    browser.screenshot("portal-editor-tested").await;
    browser
        .assert_accessible("portal editor after a test")
        .await;
    browser
        .goto(&gw.url(&format!("/console/webhooks/{a1_id}/logs")))
        .await;
    browser.wait_for("#filters[data-loaded=true]").await;
    browser
        .wait_for("#attempts tbody tr.attempt button.resend")
        .await;
    browser.screenshot("portal-logs").await;
    browser.assert_accessible("portal logs").await;
    let (s, _, r) = as_portal(
        &gw,
        &cookie,
        &csrf,
        Method::POST,
        &format!("/api/v1/deliveries/{delivery}/resend"),
        None,
    )
    .await;
    assert!(s.is_success(), "resend from the portal: {s} {r}");
    assert_eq!(rx.wait_for(4, WAIT).await.len(), 4, "resent");

    // A link for one webhook cannot reach the team's other webhooks through an event either.
    let (_, one) = mint(&gw, ADMIN, json!({"team_id": "A", "webhook_id": a2["id"]})).await;
    let (cookie, csrf) = open_portal(&browser, one["url"].as_str().unwrap(), "alpha-other").await;
    let (s, _, p) = as_portal(
        &gw,
        &cookie,
        &csrf,
        Method::POST,
        "/api/v1/events",
        Some(&json!({
        "event_type": "incident.triggered", "id": "from-one", "team_id": "A"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let (s, _, p) = as_portal(
        &gw,
        &cookie,
        &csrf,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&json!({
        "name": "widened", "url": rx.url("/w"), "trigger_events": ["*"]})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a one-webhook link creates none: {p}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 4, "nothing fired from the one-webhook portal");
    browser.screenshot("portal-one-webhook").await;
    browser.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_minted_in_the_console_opens_that_teams_webhooks_in_a_fresh_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = TestGateway::start().await;
    team_webhook(&gw, "alpha-pager", "A").await;
    let a2 = team_webhook(&gw, "alpha-chat", "A").await;
    team_webhook(&gw, "bravo-hook", "B").await;
    let manager_a = key(&gw, "manager", Some("A")).await;

    // A manager mints for its own team: the team is fixed, B's webhooks are not offered.
    browser.goto(&gw.url("/console/sign-in")).await;
    browser.fill("#api_key", &manager_a).await;
    browser.click("main form button[type=submit]").await;
    browser.wait_for("nav[aria-label]").await;
    browser.click("a[href='/console/portal-links']").await;
    browser.wait_for_text("main h1", "Portal link").await;
    assert_eq!(browser.value("#portal-team").await, "A");
    let offered = browser.text("#portal-webhook").await;
    assert!(
        offered.contains("alpha-chat") && !offered.contains("bravo"),
        "{offered}"
    );
    browser.screenshot("portal-link-form").await;
    browser.assert_accessible("portal link form").await;
    browser.click("#portal-form button[type=submit]").await;
    browser.wait_for("#portal-created:not([hidden])").await;
    let url = browser.value("#portal-url").await;
    assert!(url.starts_with(&gw.url("/portal/gwp_")), "{url}");
    let expires = browser
        .execute("return document.getElementById('portal-expires').getAttribute('datetime');")
        .await;
    let expires = chrono::DateTime::parse_from_rfc3339(expires.as_str().unwrap()).unwrap();
    let ttl = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!((880..=901).contains(&ttl), "15 min by default, got {ttl} s");
    assert!(!browser.text("#portal-expires").await.is_empty());
    browser.screenshot("portal-link-created").await;
    browser.assert_accessible("portal link created").await;
    // Shown once: the page the server renders holds no link.
    browser.goto(&gw.url("/console/portal-links")).await;
    assert!(
        !browser.dom().await.contains(&url),
        "the link is shown once only"
    );

    // And for one webhook (the admin's form fills the team from the webhook chosen).
    browser.close().await;
    let browser = Browser::start().await.expect("a second browser");
    browser.goto(&gw.url("/console/sign-in")).await;
    browser.fill("#api_key", ADMIN).await;
    browser.click("main form button[type=submit]").await;
    browser.wait_for("nav[aria-label]").await;
    browser.goto(&gw.url("/console/portal-links")).await;
    let pick = format!(
        "var s = document.getElementById('portal-webhook'); s.value = {:?}; s.dispatchEvent(new Event('change')); return document.getElementById('portal-team').value;",
        a2["id"].as_str().unwrap()
    );
    assert_eq!(browser.execute(&pick).await, json!("A"));
    browser.click("#portal-form button[type=submit]").await;
    browser.wait_for("#portal-created:not([hidden])").await;
    let one_url = browser.value("#portal-url").await;
    assert!(browser.text("#portal-created").await.contains("alpha-chat"));
    browser.close().await;

    // A fresh browser (no cookie at all) opens the team link: A's webhooks, not B's.
    let browser = Browser::start().await.expect("a fresh browser");
    browser.goto(&url).await;
    let page = browser.wait_for_text("main", "alpha-pager").await;
    assert!(
        page.contains("alpha-chat") && !page.contains("bravo-hook"),
        "{page}"
    );
    assert!(browser.text("header").await.contains("Team portal"));
    browser.screenshot("portal-from-console-link").await;
    browser
        .assert_accessible("portal opened from a console link")
        .await;
    browser.goto(&one_url).await;
    let page = browser.wait_for_text("main", "alpha-chat").await;
    assert!(!page.contains("alpha-pager"), "{page}");
    browser
        .screenshot("portal-from-console-link-one-webhook")
        .await;
    browser.close().await;
    gw.stop().await;
}
