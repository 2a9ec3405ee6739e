//! Role checks: no key 401, wrong team 403, admin allowed.

use crate::support::{ADMIN, TestGateway};
use reqwest::Method;
use serde_json::json;

async fn manager_token(gw: &TestGateway, team: &str) -> String {
    let (s, k) = gw
        .admin(
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"name": "m", "role": "manager", "team_id": team})),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    k["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced() {
    let gw = TestGateway::start().await;
    let t1 = manager_token(&gw, "T1").await;
    let t2 = manager_token(&gw, "T2").await;
    let body = json!({"name": "w", "url": "https://example.com", "http_method": "POST", "trigger_type": "resolve"});

    // No key, a wrong key: 401.
    let (s, p) = gw.call(Method::GET, "/api/v1/webhooks/", None, None).await;
    assert_eq!(s, 401, "{p}");
    let (s, _) = gw
        .call(Method::GET, "/api/v1/webhooks/", Some("nope"), None)
        .await;
    assert_eq!(s, 401);
    let (s, _) = gw
        .call(
            Method::POST,
            "/api/v1/events",
            None,
            Some(&json!({"event_type": "x"})),
        )
        .await;
    assert_eq!(s, 401);

    // A manager creates in its own team by default; a global webhook is admin-only.
    let (s, w1) = gw
        .call(Method::POST, "/api/v1/webhooks/", Some(&t1), Some(&body))
        .await;
    assert_eq!(s, 201, "{w1}");
    assert_eq!(w1["team"], "T1");
    let mut global = body.clone();
    global["scope"] = json!("global");
    let (s, _) = gw
        .call(Method::POST, "/api/v1/webhooks/", Some(&t1), Some(&global))
        .await;
    assert_eq!(s, 403);
    let mut other = body.clone();
    other["team"] = json!("T2");
    let (s, _) = gw
        .call(Method::POST, "/api/v1/webhooks/", Some(&t1), Some(&other))
        .await;
    assert_eq!(s, 403);

    // The other team's manager cannot read, change or delete it, nor see it in lists.
    let path = format!("/api/v1/webhooks/{}/", w1["id"].as_str().unwrap());
    for (m, b) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"name": "x"}))),
        (Method::DELETE, None),
    ] {
        let (s, _) = gw.call(m.clone(), &path, Some(&t2), b.as_ref()).await;
        assert_eq!(s, 403, "{m} by the wrong team");
    }
    let (_, list) = gw
        .call(Method::GET, "/api/v1/webhooks/", Some(&t2), None)
        .await;
    assert_eq!(list["count"], 0);
    // Moving it to another team is refused too.
    let (s, _) = gw
        .call(Method::PUT, &path, Some(&t1), Some(&json!({"team": "T2"})))
        .await;
    assert_eq!(s, 403);

    // Its own manager and the admin may.
    let (s, _) = gw
        .call(
            Method::PUT,
            &path,
            Some(&t1),
            Some(&json!({"name": "mine"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, got) = gw.call(Method::GET, &path, Some(ADMIN), None).await;
    assert_eq!((s.as_u16(), got["name"].as_str()), (200, Some("mine")));
    let (_, list) = gw
        .call(Method::GET, "/api/v1/webhooks/", Some(ADMIN), None)
        .await;
    assert_eq!(list["count"], 1);
    // Managers may not create keys.
    let (s, _) = gw
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&t1),
            Some(&json!({"name": "x", "role": "admin"})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = gw.call(Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(s, 204);
    gw.stop().await;
}
