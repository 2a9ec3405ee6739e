//! Matching through the API: scopes with roles and the per-scope cap, filters on the seed
//! payloads, trigger templates, private events, and dry-run answers that equal what delivery does.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Receiver, TestGateway, fixture};

async fn manager(gw: &TestGateway, team: &str) -> String {
    let (s, k) = gw
        .admin(
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"name": "m", "role": "manager", "team_id": team})),
        )
        .await;
    assert_eq!(s, 201);
    k["token"].as_str().unwrap().to_string()
}

fn ids(v: &[Value]) -> BTreeSet<String> {
    v.iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_roles_and_the_all_three_fire_case() {
    let gw = TestGateway::start_with(|c| c.max_webhooks_per_scope = 2, None).await;
    let team = "617411a8c6991e7406f95ec0"; // owner of the Squadcast samples
    let service = "617411eac6991e7406f95ec6";
    let t1 = manager(&gw, team).await;
    let other = manager(&gw, "T-other").await;
    let mk = |name: &str, scope: Value| json!({"name": name, "url": "http://127.0.0.1:9/x", "trigger_events": ["*"], "scope": scope});
    // Roles x scopes: admin may do all; a manager its team's team and service webhooks only.
    let table = [
        (gw.url("/"), "admin", json!("global"), 201),
        (
            gw.url("/"),
            "admin",
            json!({"kind": "team", "team_id": team}),
            201,
        ),
        (
            gw.url("/"),
            "manager",
            json!({"kind": "service", "team_id": team, "service_id": service}),
            201,
        ),
        (gw.url("/"), "manager", json!("global"), 403),
        (
            gw.url("/"),
            "other",
            json!({"kind": "team", "team_id": team}),
            403,
        ),
        (
            gw.url("/"),
            "other",
            json!({"kind": "service", "team_id": team, "service_id": service}),
            403,
        ),
        (
            gw.url("/"),
            "manager",
            json!({"kind": "team", "team_id": "T-other"}),
            403,
        ),
    ];
    let mut created = Vec::new();
    for (i, (_, who, scope, want)) in table.iter().enumerate() {
        let token = match *who {
            "admin" => crate::support::ADMIN.to_string(),
            "manager" => t1.clone(),
            _ => other.clone(),
        };
        let (s, w) = gw
            .call(
                Method::POST,
                "/api/v1/webhooks/",
                Some(&token),
                Some(&mk(&format!("w{i}"), scope.clone())),
            )
            .await;
        assert_eq!(s.as_u16(), *want, "{who} creating {scope}: {w}");
        if s == 201 {
            created.push(w);
        }
    }
    // Webhooks of another team and another service do not fire.
    gw.create_webhook(mk(
        "other-team",
        json!({"kind": "team", "team_id": "T-other"}),
    ))
    .await;
    gw.create_webhook(mk(
        "other-service",
        json!({"kind": "service", "service_id": "S-other"}),
    ))
    .await;
    // One Squadcast event fires global, team and service webhooks alike.
    let ev = gw
        .post_event(&fixture("squadcast/incident_triggered.json"))
        .await;
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{ev}"), None)
        .await;
    let fired: BTreeSet<String> = e["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fired,
        ids(&created),
        "global + team + service all fire, nothing else"
    );
    // The per-scope cap (2 here) answers a clear 4xx naming the scope.
    gw.create_webhook(mk("global-2", json!("global"))).await;
    let (s, p) = gw
        .admin(
            Method::POST,
            "/api/v1/webhooks/",
            Some(&mk("global-3", json!("global"))),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(p["field"], "scope");
    assert!(
        p["detail"].as_str().unwrap().contains("maximum of 2"),
        "{p}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_templates_and_dry_run_agree_with_delivery() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let url = |p: &str| rx.url(p);
    let hooks = [
        json!({"name": "svc-slug", "url": url("/a"), "trigger_events": ["*"], "filter": {"services": ["team-2-service-1"]}}),
        json!({"name": "svc-other", "url": url("/b"), "trigger_events": ["*"], "filter": {"services": ["nope"]}}),
        json!({"name": "alert-src", "url": url("/c"), "trigger_events": ["*"], "filter": {"alert_sources": ["squadcastui"]}}),
        json!({"name": "group", "url": url("/d"), "trigger_events": ["*"],
            "filter": {"match": "any", "rules": [{"field": "status", "op": "is", "value": "resolved"}, {"field": "alert_source", "op": "is", "value": "other"}]}}),
        json!({"name": "mongo", "url": url("/e"), "trigger_events": ["*"], "filter": {"$and": [{"event_count": {"$gte": 1}}, {"message": {"$regex": "^Sample"}}]}}),
        json!({"name": "integration", "url": url("/f"), "trigger_events": ["*"], "integration_filter": ["6077f7225fdc7075e371685f"]}),
        json!({"name": "integration-no", "url": url("/g"), "trigger_events": ["*"], "integration_filter": ["CRV8A5MXC751A"]}),
        json!({"name": "tmpl-true", "url": url("/h"), "trigger_events": ["*"], "trigger_template": "{{ service.slug == 'team-2-service-1' }}"}),
        json!({"name": "tmpl-false", "url": url("/i"), "trigger_events": ["*"], "trigger_template": "{{ status == 'resolved' }}"}),
        json!({"name": "tmpl-error", "url": url("/j"), "trigger_events": ["*"], "trigger_template": "{{ missing.deeper.value }}"}),
        json!({"name": "wrong-type", "url": url("/k"), "trigger_events": ["resolve"]}),
        json!({"name": "disabled", "url": url("/l"), "trigger_events": ["*"], "is_webhook_enabled": false}),
    ];
    for h in &hooks {
        gw.create_webhook(h.clone()).await;
    }
    let event = fixture("squadcast/incident_triggered.json");
    let (s, dry) = gw
        .admin(Method::POST, "/api/v1/events/dry-run", Some(&event))
        .await;
    assert_eq!(s, 200, "{dry}");
    let decisions = dry["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), hooks.len());
    let by_name = |n: &str| {
        decisions
            .iter()
            .find(|d| d["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing in {dry}"))
    };
    let fired_names: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d["outcome"] == "fired")
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        fired_names,
        BTreeSet::from(["svc-slug", "alert-src", "mongo", "integration", "tmpl-true"])
    );
    assert_eq!(by_name("svc-other")["reason"]["kind"], "filter");
    assert_eq!(by_name("group")["reason"]["kind"], "filter");
    assert_eq!(
        by_name("integration-no")["reason"]["kind"],
        "integration_filter"
    );
    assert_eq!(
        by_name("tmpl-false")["reason"]["kind"],
        "trigger_template_false"
    );
    assert_eq!(
        by_name("tmpl-error")["reason"]["kind"],
        "trigger_template_error"
    );
    assert_eq!(by_name("wrong-type")["reason"]["kind"], "trigger");
    assert_eq!(by_name("disabled")["reason"]["kind"], "disabled");
    // What delivery then does is exactly what the dry run said.
    gw.post_event(&event).await;
    let got = rx
        .wait_for(fired_names.len(), Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: BTreeSet<String> = rx.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        BTreeSet::from(["/a", "/c", "/e", "/f", "/h"].map(String::from)),
        "{got:?}"
    );
    // The resolved sample fires the status group rule.
    let (_, dry) = gw
        .admin(
            Method::POST,
            "/api/v1/events/dry-run",
            Some(&fixture("squadcast/incident_resolved.json")),
        )
        .await;
    let group = dry["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "group")
        .unwrap()
        .clone();
    assert_eq!(group["outcome"], "fired", "{group}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_filters_and_templates_are_refused_with_their_position() {
    let gw = TestGateway::start().await;
    let base = json!({"name": "x", "url": "https://example.com", "trigger_events": ["*"]});
    let cases = [
        (
            json!({"filter": {"$and": [{"a": 1}, {"severity": {"$gt": [1]}}]}}),
            "filter.$and[1].severity.$gt",
        ),
        (json!({"filter": {"x": {"$regex": "("}}}), "filter.x.$regex"),
        (
            json!({"filter": {"match": "all", "rules": [{"field": "status", "op": "nope", "value": 1}]}}),
            "filter.rules[0].op",
        ),
        (
            json!({"trigger_template": "{{ unclosed "}),
            "trigger_template",
        ),
    ];
    for (extra, field) in cases {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, p) = gw.admin(Method::POST, "/api/v1/webhooks/", Some(&b)).await;
        assert_eq!(s, 400, "{extra}: {p}");
        assert!(
            p["field"].as_str().unwrap().starts_with(field),
            "{extra}: {p}"
        );
    }
    let (_, list) = gw.admin(Method::GET, "/api/v1/webhooks/", None).await;
    assert_eq!(list["count"], 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_events_send_only_id_and_type_unless_opted_in() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    gw.create_webhook(json!({"name": "plain", "url": rx.url("/plain"), "trigger_events": ["*"]}))
        .await;
    gw.create_webhook(json!({"name": "optin", "url": rx.url("/optin"), "trigger_events": ["*"], "include_private_payloads": true})).await;
    let ev = gw.post_event(&json!({"event_type": "incident.triggered", "private": true, "message": "salary data leak", "id": "INC-7"})).await;
    let got = rx.wait_for(2, Duration::from_secs(15)).await;
    let plain = got.iter().find(|r| r.path == "/plain").unwrap().json();
    assert_eq!(
        plain,
        json!({"id": ev, "event_type": "incident.triggered", "private": true})
    );
    assert!(!plain.to_string().contains("salary"));
    let optin = got.iter().find(|r| r.path == "/optin").unwrap().json();
    assert_eq!(optin["message"], "salary data leak");
    gw.stop().await;
}
