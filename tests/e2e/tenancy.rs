//! Tenancy: which key may post, read and replay which team's events, as one table of expected
//! statuses (every cell asserted), plus the API-key lifecycle (list, revoke, expiry, last use)
//! and the bootstrap key's rotation when `GATEWAY_ADMIN_TOKEN` changes.

use std::time::{Duration, Instant};

use gateway::clock::{Clock, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN, Receiver, TestGateway, test_config};

async fn new_key(gw: &TestGateway, body: Value) -> (String, String) {
    let (s, k) = gw.admin(Method::POST, "/api/v1/keys", Some(&body)).await;
    assert_eq!(s, 201, "{k}");
    (
        k["id"].as_str().unwrap().to_string(),
        k["token"].as_str().unwrap().to_string(),
    )
}

/// Posts an event with an optional `Idempotency-Key`: (status, body, replayed?).
async fn post(
    gw: &TestGateway,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> (StatusCode, Value, bool) {
    let mut req = gw
        .client
        .post(gw.url("/api/v1/events"))
        .header("Authorization", token)
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.unwrap();
    let (s, replayed) = (r.status(), r.headers().get("idempotent-replayed").is_some());
    (s, r.json().await.unwrap_or(Value::Null), replayed)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Admin,
    Publisher,
    ManagerA,
    ManagerB,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Team {
    A,
    B,
    None,
}

/// The event body for `team`, naming the team the way each product does.
fn body_for(team: Team, seq: u64) -> Value {
    match team {
        Team::A => json!({"event_type": "incident_triggered", "team_id": "A", "seq": seq}),
        Team::B => {
            json!({"event_type": "incident_triggered", "owner": {"type": "team", "id": "B"}, "seq": seq})
        }
        Team::None => json!({"event_type": "incident_triggered", "seq": seq}),
    }
}

/// Posting: (who, team, expected status, field named by a 403).
const POST_TABLE: &[(Who, Team, u16, Option<&str>)] = &[
    (Who::Admin, Team::A, 202, None),
    (Who::Admin, Team::B, 202, None),
    (Who::Admin, Team::None, 202, None),
    (Who::Publisher, Team::A, 202, None),
    (Who::Publisher, Team::B, 202, None),
    (Who::Publisher, Team::None, 202, None),
    (Who::ManagerA, Team::A, 202, None),
    (Who::ManagerA, Team::B, 403, Some("owner")),
    (Who::ManagerA, Team::None, 403, Some("team_id")),
    (Who::ManagerB, Team::A, 403, Some("team_id")),
    (Who::ManagerB, Team::B, 202, None),
    (Who::ManagerB, Team::None, 403, Some("team_id")),
];

/// Reading an event of `team` and its deliveries: (who, team, event status, deliveries shown).
/// Managers see their own team's webhooks' deliveries only; global webhooks' stay with admins
/// and publishers.
const READ_TABLE: &[(Who, Team, u16, usize)] = &[
    (Who::Admin, Team::A, 200, 2),
    (Who::Admin, Team::B, 200, 2),
    (Who::Admin, Team::None, 200, 1),
    (Who::Publisher, Team::A, 200, 2),
    (Who::Publisher, Team::B, 200, 2),
    (Who::Publisher, Team::None, 200, 1),
    (Who::ManagerA, Team::A, 200, 1),
    (Who::ManagerA, Team::B, 404, 0),
    (Who::ManagerA, Team::None, 404, 0),
    (Who::ManagerB, Team::A, 404, 0),
    (Who::ManagerB, Team::B, 200, 1),
    (Who::ManagerB, Team::None, 404, 0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenancy_table_post_read_and_idempotency_per_team() {
    let gw = TestGateway::start().await;
    let rx = Receiver::start().await;
    let (_, publisher) = new_key(&gw, json!({"name": "platform", "role": "publisher"})).await;
    let (_, ma) = new_key(&gw, json!({"name": "a", "role": "manager", "team_id": "A"})).await;
    let (_, mb) = new_key(&gw, json!({"name": "b", "role": "manager", "team_id": "B"})).await;
    let token = |w: Who| match w {
        Who::Admin => ADMIN,
        Who::Publisher => publisher.as_str(),
        Who::ManagerA => ma.as_str(),
        Who::ManagerB => mb.as_str(),
    };
    // A global webhook (admin) and one per team (each by its manager).
    gw.create_webhook(json!({"name": "global", "url": rx.url("/global"), "trigger_events": ["*"]}))
        .await;
    for (t, path) in [(&ma, "/a"), (&mb, "/b")] {
        let (s, w) = gw
            .call(
                Method::POST,
                "/api/v1/webhooks/",
                Some(t),
                Some(&json!({"name": path, "url": rx.url(path), "trigger_events": ["*"]})),
            )
            .await;
        assert_eq!(s, 201, "{w}");
    }

    // Posting.
    let mut accepted: Vec<(Team, String, u64)> = Vec::new();
    for (seq, &(who, team, want, field)) in POST_TABLE.iter().enumerate() {
        let (s, v, _) = post(&gw, token(who), &body_for(team, seq as u64), None).await;
        assert_eq!(s.as_u16(), want, "{who:?} posts for {team:?}: {v}");
        if want == 202 {
            accepted.push((team, v["id"].as_str().unwrap().to_string(), seq as u64));
        } else {
            assert_eq!(
                v["field"].as_str(),
                field,
                "{who:?} posts for {team:?}: {v}"
            );
        }
    }

    // Reading every accepted event and each of its deliveries.
    for (team, id, _) in &accepted {
        let (_, all) = gw
            .admin(Method::GET, &format!("/api/v1/events/{id}"), None)
            .await;
        let all_deliveries: Vec<(String, String)> = all["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_string(),
                    d["url"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for &(who, t, want, shown) in READ_TABLE.iter().filter(|r| r.1 == *team) {
            let (s, v) = gw
                .call(
                    Method::GET,
                    &format!("/api/v1/events/{id}"),
                    Some(token(who)),
                    None,
                )
                .await;
            assert_eq!(s.as_u16(), want, "{who:?} reads an event of {t:?}: {v}");
            let seen = v["deliveries"].as_array().map_or(0, Vec::len);
            assert_eq!(seen, shown, "{who:?} sees deliveries of {t:?}: {v}");
            for (d, url) in &all_deliveries {
                let mine = match who {
                    Who::Admin | Who::Publisher => true,
                    Who::ManagerA => t == Team::A && url.ends_with("/a"),
                    Who::ManagerB => t == Team::B && url.ends_with("/b"),
                };
                let (s, v) = gw
                    .call(
                        Method::GET,
                        &format!("/api/v1/deliveries/{d}"),
                        Some(token(who)),
                        None,
                    )
                    .await;
                let want = if mine { 200 } else { 404 };
                assert_eq!(s.as_u16(), want, "{who:?} reads delivery to {url}: {v}");
            }
        }
    }

    // Idempotency per tenant: the same Idempotency-Key, then the same event_id, used by A then B.
    let mut seq = 1000;
    let mut next = || {
        seq += 1;
        seq
    };
    let key = "shared-key-1";
    let (s1, a1, r1) = post(&gw, &ma, &body_for(Team::A, next()), Some(key)).await;
    let (s2, b1, r2) = post(&gw, &mb, &body_for(Team::B, next()), Some(key)).await;
    let (s3, a2, r3) = post(&gw, &ma, &body_for(Team::A, next()), Some(key)).await;
    assert_eq!((s1.as_u16(), s2.as_u16(), s3.as_u16()), (202, 202, 202));
    assert_ne!(
        a1["id"], b1["id"],
        "team B's key must not replay team A's event"
    );
    assert_eq!((r1, r2), (false, false));
    assert_eq!(a2["id"], a1["id"], "team A repeating its key replays");
    assert!(r3, "Idempotent-Replayed on A's repeat");
    // The platform key: its own scope, per team.
    let (_, p_a, pr1) = post(&gw, &publisher, &body_for(Team::A, next()), Some(key)).await;
    let (_, p_b, pr2) = post(&gw, &publisher, &body_for(Team::B, next()), Some(key)).await;
    let (_, p_a2, pr3) = post(&gw, &publisher, &body_for(Team::A, next()), Some(key)).await;
    assert!(!pr1 && !pr2 && pr3, "{p_a} {p_b} {p_a2}");
    assert_ne!(p_a["id"], a1["id"]);
    assert_ne!(p_a["id"], p_b["id"]);
    assert_eq!(p_a2["id"], p_a["id"]);
    // event_id in the body: the same rule.
    let with_id = |team: Team, seq: u64| {
        let mut b = body_for(team, seq);
        b["event_id"] = json!("ev-shared-7");
        b
    };
    let (_, ea, er1) = post(&gw, &ma, &with_id(Team::A, next()), None).await;
    let (_, eb, er2) = post(&gw, &mb, &with_id(Team::B, next()), None).await;
    let (_, ea2, er3) = post(&gw, &ma, &with_id(Team::A, next()), None).await;
    assert!(!er1 && !er2 && er3);
    assert_ne!(ea["id"], eb["id"]);
    assert_eq!(ea2["id"], ea["id"]);

    // Every event was delivered to its own team's webhook and the global one, nothing else.
    let mut want: Vec<(u64, &str)> = Vec::new();
    for (team, _, seq) in &accepted {
        want.push((*seq, "/global"));
        match team {
            Team::A => want.push((*seq, "/a")),
            Team::B => want.push((*seq, "/b")),
            Team::None => {}
        }
    }
    let first_seq = |v: &Value| v["seq"].as_u64().unwrap();
    for (v, team) in [
        (&a1, Team::A),
        (&b1, Team::B),
        (&p_a, Team::A),
        (&p_b, Team::B),
        (&ea, Team::A),
        (&eb, Team::B),
    ] {
        let (_, e) = gw
            .admin(
                Method::GET,
                &format!("/api/v1/events/{}", v["id"].as_str().unwrap()),
                None,
            )
            .await;
        let seq = first_seq(&e["payload"]);
        want.push((seq, "/global"));
        want.push((seq, if team == Team::A { "/a" } else { "/b" }));
    }
    rx.wait_for(want.len(), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got: Vec<(u64, String)> = rx
        .received()
        .iter()
        .map(|r| (r.json()["seq"].as_u64().unwrap(), r.path.clone()))
        .collect();
    got.sort();
    let mut want: Vec<(u64, String)> = want.into_iter().map(|(s, p)| (s, p.into())).collect();
    want.sort();
    assert!(got.len() >= want.len());
    assert_eq!(
        got, want,
        "each event reaches its team's and the global webhook only"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_keys_post_and_read_events_only() {
    let gw = TestGateway::start().await;
    let (_, p) = new_key(&gw, json!({"name": "platform", "role": "publisher"})).await;
    let hook = json!({"name": "w", "url": "https://example.com/h", "trigger_events": ["*"]});
    let ev = json!({"event_type": "incident_triggered", "team_id": "A"});
    let cases: [(Method, &str, Option<&Value>, u16); 8] = [
        (Method::GET, "/api/v1/webhooks/", None, 403),
        (Method::POST, "/api/v1/webhooks/", Some(&hook), 403),
        (Method::GET, "/api/v1/keys", None, 403),
        (
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"name": "x", "role": "admin"})),
            403,
        ),
        (Method::GET, "/api/v1/plugins", None, 403),
        (Method::POST, "/api/v1/events/dry-run", Some(&ev), 403),
        (Method::POST, "/api/v1/events", Some(&ev), 202),
        (Method::GET, "/api/v1/events/evt_missing", None, 404),
    ];
    for (m, path, body, want) in cases {
        let (s, v) = gw.call(m.clone(), path, Some(&p), body).await;
        assert_eq!(s.as_u16(), want, "{m} {path}: {v}");
    }
    // A manager's dry-run of another team's event is refused like posting it.
    let (_, ma) = new_key(&gw, json!({"name": "a", "role": "manager", "team_id": "B"})).await;
    let (s, v) = gw
        .call(Method::POST, "/api/v1/events/dry-run", Some(&ma), Some(&ev))
        .await;
    assert_eq!(
        (s.as_u16(), v["field"].as_str()),
        (403, Some("team_id")),
        "{v}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_list_revoke_expire_and_record_last_use() {
    let clock = ManualClock::new(chrono::Utc::now().timestamp_millis());
    let gw = TestGateway::start_with(|_| {}, Some(std::sync::Arc::new(clock.clone()))).await;
    let (id, token) = new_key(&gw, json!({"name": "m", "role": "manager", "team_id": "T"})).await;
    // Bad input names the field.
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    for (body, field) in [
        (json!({"name": "x", "role": "owner"}), "role"),
        (
            json!({"name": "x", "role": "publisher", "team_id": "T"}),
            "team_id",
        ),
        (json!({"name": "x", "role": "manager"}), "team_id"),
        (
            json!({"name": "x", "role": "admin", "expires_at": "soon"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "role": "admin", "expires_at": iso(clock.now_ms() - 1000)}),
            "expires_at",
        ),
    ] {
        let (s, v) = gw.admin(Method::POST, "/api/v1/keys", Some(&body)).await;
        assert_eq!(
            (s.as_u16(), v["field"].as_str()),
            (400, Some(field)),
            "{body}: {v}"
        );
    }

    // A use shows up as last_used_at (written off the request path, so poll briefly).
    let (s, _) = gw
        .call(Method::GET, "/api/v1/webhooks/", Some(&token), None)
        .await;
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let listed = loop {
        let (s, list) = gw.admin(Method::GET, "/api/v1/keys", None).await;
        assert_eq!(s, 200);
        let me = list["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .cloned()
            .unwrap();
        if !me["last_used_at"].is_null() {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "last_used_at never appeared: {me}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The list never shows a token or its hash.
    let text = listed.to_string();
    assert!(!text.contains(&token) && !text.contains(ADMIN), "{text}");
    assert!(
        !text.contains(&gateway::api::auth::hash_token(&token)),
        "{text}"
    );
    assert!(!text.contains("token"), "{text}");
    assert_eq!(listed["results"].as_array().unwrap().len(), 2);

    // Revoked: refused at once; a second revocation is 204; unknown 404; no key revokes itself.
    let path = format!("/api/v1/keys/{id}");
    let (s, v) = gw.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, 204, "{v}");
    let (s, _) = gw
        .call(Method::GET, "/api/v1/webhooks/", Some(&token), None)
        .await;
    assert_eq!(
        s, 401,
        "a revoked key is refused at once on the revoking node"
    );
    let (s, _) = gw.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, 204);
    let (s, v) = gw
        .admin(Method::DELETE, "/api/v1/keys/key_nope", None)
        .await;
    assert_eq!((s.as_u16(), v["status"].as_u64()), (404, Some(404)), "{v}");
    let (_, list) = gw.admin(Method::GET, "/api/v1/keys", None).await;
    let boot = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["bootstrap"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = gw
        .admin(Method::DELETE, &format!("/api/v1/keys/{boot}"), None)
        .await;
    assert_eq!(s, 409, "a key cannot revoke itself");
    let revoked = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (revoked["revoked"].as_bool(), revoked["active"].as_bool()),
        (Some(true), Some(false))
    );

    // Expiry follows the gateway's clock: fine before, 401 after (cached or not).
    let soon = iso(clock.now_ms() + 60_000);
    let (_, t2) = new_key(
        &gw,
        json!({"name": "p", "role": "publisher", "expires_at": soon}),
    )
    .await;
    let ev = json!({"event_type": "x"});
    let (s, _) = gw
        .call(Method::POST, "/api/v1/events", Some(&t2), Some(&ev))
        .await;
    assert_eq!(s, 202);
    clock.advance_ms(61_000);
    let (s, _) = gw
        .call(Method::POST, "/api/v1/events", Some(&t2), Some(&ev))
        .await;
    assert_eq!(s, 401, "an expired key is refused");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_admin_token_revokes_the_previous_bootstrap_key() {
    let data = tempfile::tempdir().unwrap();
    let start = |token: &str| {
        let mut c = test_config(data.path());
        c.admin_token = token.into();
        async move { TestGateway::start_in(tempfile::tempdir().unwrap(), c, None).await }
    };
    let get = |gw: &TestGateway, t: &'static str| {
        let (client, url) = (gw.client.clone(), gw.url("/api/v1/keys"));
        async move {
            crate::support::call(&client, Method::GET, &url, Some(t), None)
                .await
                .0
                .as_u16()
        }
    };
    let (old, new) = ("old-admin-token-0123456789", "new-admin-token-9876543210");
    let gw = start(old).await;
    assert_eq!(get(&gw, old).await, 200);
    gw.stop().await;
    let gw = start(new).await;
    assert_eq!((get(&gw, old).await, get(&gw, new).await), (401, 200));
    gw.stop().await;
    // Unset: existing keys stay as they are.
    let gw = start("").await;
    assert_eq!((get(&gw, old).await, get(&gw, new).await), (401, 200));
    gw.stop().await;
    // Going back to a revoked token does not bring it back (and revokes nothing else).
    let gw = start(old).await;
    assert_eq!((get(&gw, old).await, get(&gw, new).await), (401, 200));
    gw.stop().await;
}
