//! The authorisation rules as a table, without HTTP (the e2e `tenancy` test drives the same rules
//! through the API).

use super::*;
use serde_json::json;

fn caller(role: Role, team: Option<&str>) -> Caller {
    Caller {
        key_id: format!("key_{}", role.as_str()),
        role,
        team_id: team.map(str::to_string),
        only_webhook: None,
        via: CallerVia::Key,
    }
}

fn event(body: Value) -> Event {
    Event::from_body("evt_1".into(), body, 0).unwrap()
}

#[test]
fn managers_only_touch_their_team() {
    let m = caller(Role::Manager, Some("T1"));
    let team = |t: &str| Scope::Team {
        team_id: t.to_string(),
    };
    assert!(m.may_manage(&team("T1")).is_ok());
    assert!(
        m.may_manage(&Scope::Service {
            team_id: Some("T1".into()),
            service_id: "S".into()
        })
        .is_ok()
    );
    assert!(m.may_manage(&team("T2")).is_err());
    assert!(
        m.may_manage(&Scope::Service {
            team_id: None,
            service_id: "S".into()
        })
        .is_err()
    );
    assert!(m.may_manage(&Scope::Global).is_err());
    assert!(caller(Role::Admin, None).may_manage(&Scope::Global).is_ok());
    let p = caller(Role::Publisher, None);
    assert!(p.may_manage(&team("T1")).is_err());
    assert!(p.may_use_webhooks().is_err());
    assert!(p.may_read_plugins().is_err());
}

#[test]
fn event_table() {
    let a = event(json!({"event_type": "x", "team_id": "A"}));
    let b = event(json!({"event_type": "x", "owner": {"type": "team", "id": "B"}}));
    let none = event(json!({"event_type": "x"}));
    let (admin, publ) = (caller(Role::Admin, None), caller(Role::Publisher, None));
    let (ma, mb) = (
        caller(Role::Manager, Some("A")),
        caller(Role::Manager, Some("B")),
    );
    // (caller, event, may post, may read)
    let table = [
        (&admin, &a, true, true),
        (&admin, &b, true, true),
        (&admin, &none, true, true),
        (&publ, &a, true, true),
        (&publ, &b, true, true),
        (&publ, &none, true, true),
        (&ma, &a, true, true),
        (&ma, &b, false, false),
        (&ma, &none, false, false),
        (&mb, &a, false, false),
        (&mb, &b, true, true),
        (&mb, &none, false, false),
    ];
    for (c, e, post, read) in table {
        assert_eq!(
            c.may_post_event(e).is_ok(),
            post,
            "{c:?} posts {:?}",
            e.scope
        );
        assert_eq!(c.may_read_event(e), read, "{c:?} reads {:?}", e.scope);
    }
    // The refusal names the field the team came from.
    let field = |r: Result<(), ApiError>| match r {
        Err(ApiError::ForbiddenField { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(ma.may_post_event(&b)), "owner");
    assert_eq!(field(mb.may_post_event(&a)), "team_id");
    assert_eq!(field(ma.may_post_event(&none)), "team_id");
    let nested = event(json!({"event_type": "x", "team": {"id": "B"}}));
    assert_eq!(field(ma.may_post_event(&nested)), "team.id");
    assert!(publ.may_dry_run(&a).is_err());
    assert!(ma.may_dry_run(&a).is_ok() && ma.may_dry_run(&b).is_err());
}

#[test]
fn deliveries_follow_event_and_webhook() {
    let a = event(json!({"event_type": "x", "team_id": "A"}));
    let ma = caller(Role::Manager, Some("A"));
    let mine = Scope::Team {
        team_id: "A".into(),
    };
    assert!(ma.may_read_delivery(&a, Some(&mine)));
    assert!(!ma.may_read_delivery(&a, Some(&Scope::Global)));
    assert!(!ma.may_read_delivery(&a, None));
    assert!(caller(Role::Publisher, None).may_read_delivery(&a, Some(&Scope::Global)));
    assert!(caller(Role::Publisher, None).may_resend(&a, &mine).is_err());
    assert!(ma.may_resend(&a, &mine).is_ok());
    let b = event(json!({"event_type": "x", "team_id": "B"}));
    assert!(matches!(
        ma.may_resend(&b, &mine),
        Err(ApiError::NotFound(_))
    ));
}

#[test]
fn idempotency_tenants_never_collide() {
    let a = event(json!({"event_type": "x", "team_id": "A"}));
    let b = event(json!({"event_type": "x", "team_id": "B"}));
    let ma = caller(Role::Manager, Some("A"));
    let ma2 = Caller {
        key_id: "other".into(),
        ..ma.clone()
    };
    let publ = caller(Role::Publisher, None);
    // One team's managers share a scope; everything else differs.
    assert_eq!(ma.idempotency_tenant(&a), ma2.idempotency_tenant(&a));
    assert_ne!(
        ma.idempotency_tenant(&a),
        caller(Role::Manager, Some("B")).idempotency_tenant(&b)
    );
    assert_ne!(publ.idempotency_tenant(&a), publ.idempotency_tenant(&b));
    assert_ne!(publ.idempotency_tenant(&a), ma.idempotency_tenant(&a));
    assert_ne!(
        publ.idempotency_tenant(&a),
        caller(Role::Admin, None).idempotency_tenant(&a)
    );
    // A team id cannot smuggle in another tenant's prefix.
    let tricky = caller(Role::Manager, Some("A\",\"key"));
    assert_ne!(tricky.idempotency_tenant(&a), ma.idempotency_tenant(&a));
}

#[test]
fn tokens_are_random_and_hashed() {
    let (a, b) = (new_token(), new_token());
    assert_ne!(a, b);
    assert_eq!(hash_token(&a).len(), 64);
    assert_ne!(hash_token(&a), a);
}

#[test]
fn a_portal_session_reaches_its_webhooks_logs_test_and_replay_only() {
    let portal = |only: Option<&str>| Caller {
        key_id: "portal:portal_1".into(),
        role: Role::Manager,
        team_id: Some("A".into()),
        only_webhook: only.map(str::to_string),
        via: CallerVia::Portal,
    };
    let team = portal(None);
    let reached = [
        ("GET", "/api/v1/webhooks/"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/wh_1/"),
        ("PUT", "/api/v1/webhooks/wh_1/"),
        ("DELETE", "/api/v1/webhooks/wh_1"),
        ("GET", "/api/v1/webhooks/wh_1/attempts"),
        ("GET", "/api/v1/webhooks/wh_1/responses/"),
        ("POST", "/api/v1/webhooks/wh_1/test"),
        ("POST", "/api/v1/webhooks/wh_1/recover"),
        ("POST", "/api/v1/webhooks/wh_1/secret/rotate"),
        ("GET", "/api/v1/deliveries/dlv_1"),
        ("POST", "/api/v1/deliveries/dlv_1/resend"),
        ("GET", "/console/webhooks"),
        ("HEAD", "/console/webhooks/wh_1"),
        ("GET", "/console/webhooks/new"),
        ("GET", "/console/webhooks/wh_1/logs"),
        ("POST", "/console/sign-out"),
    ];
    for (m, p) in reached {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        assert!(team.may_reach(&m, p).is_ok(), "{m} {p}");
    }
    let refused = [
        ("POST", "/api/v1/events"),
        ("POST", "/api/v1/events/"),
        ("GET", "/api/v1/events/evt_1"),
        ("POST", "/api/v1/events/dry-run"),
        ("GET", "/api/v1/plugins"),
        ("POST", "/api/v1/plugins"),
        ("GET", "/api/v1/plugins/slack/1.0.0"),
        ("DELETE", "/api/v1/plugins/slack/1.0.0"),
        ("POST", "/api/v1/plugins/slack/1.0.0/try"),
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys"),
        ("GET", "/api/v1/stats/deliveries"),
        ("POST", "/api/v1/portal/links"),
        ("GET", "/api/v1/actions"),
        ("GET", "/api/v1/webhooks/wh_1/secret"),
        ("POST", "/api/v1/webhooks/wh_1/attempts"),
        ("GET", "/console/"),
        ("GET", "/console/dry-run"),
        ("POST", "/console/dry-run"),
        ("GET", "/console/plugins"),
        ("GET", "/console/keys"),
        ("GET", "/console/portal-links"),
        ("POST", "/console/webhooks/wh_1/secret"),
        ("GET", "/metrics"),
    ];
    for (m, p) in refused {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        let e = team.may_reach(&m, p).unwrap_err();
        assert_eq!(e.status(), 403, "{m} {p}");
    }
    // A link for one webhook adds none.
    let one = portal(Some("wh_1"));
    assert!(one.may_reach(&Method::POST, "/api/v1/webhooks/").is_err());
    assert!(
        one.may_reach(&Method::GET, "/console/webhooks/new")
            .is_err()
    );
    assert!(one.may_reach(&Method::GET, "/api/v1/webhooks/wh_1").is_ok());
    // And the checks handlers call directly refuse it too.
    let e = event(json!({"event_type": "incident.triggered", "team_id": "A"}));
    assert!(team.may_post_event(&e).is_err());
    assert!(team.may_dry_run(&e).is_err());
    assert!(team.may_read_plugins().is_err());
    // A manager key of the same team reaches everything its rules allow.
    let manager = caller(Role::Manager, Some("A"));
    assert!(manager.may_reach(&Method::POST, "/api/v1/events").is_ok());
    assert!(manager.may_post_event(&e).is_ok());
    assert!(manager.may_read_plugins().is_ok());
}
