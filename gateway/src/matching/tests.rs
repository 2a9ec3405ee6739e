//! Matcher-level tests: scopes, triggers, integration filter, templates, private events, explain.

use super::*;
use crate::model::Scope;
use serde_json::json;

const TRIGGERED: &str = include_str!("../../../tests/fixtures/squadcast/incident_triggered.json");
const ACKNOWLEDGED: &str =
    include_str!("../../../tests/fixtures/squadcast/incident_acknowledged.json");

/// The smallest stored webhook (serde fills every defaulted field).
fn hook(id: &str, scope: Scope, triggers: &[&str]) -> Webhook {
    serde_json::from_value(json!({
        "id": id, "name": id, "is_webhook_enabled": true, "scope": scope,
        "urls": [format!("https://example.com/{id}")], "http_method": "POST", "trigger_events": triggers,
        "forward_all": true, "signing": {"type": "none"}, "timeout_secs": 15, "created_at": 0, "updated_at": 0,
    }))
    .unwrap()
}

fn team(t: &str) -> Scope {
    Scope::Team { team_id: t.into() }
}

fn service(s: &str) -> Scope {
    Scope::Service {
        team_id: None,
        service_id: s.into(),
    }
}

fn event(body: Value) -> Event {
    Event::from_body("evt_1".into(), body, 0).unwrap()
}

fn typed(ty: &str, team: Option<&str>, service: Option<&str>) -> Event {
    let mut body = json!({"event_type": ty, "severity": "high"});
    if let Some(t) = team {
        body["owner"] = json!({"id": t, "type": "team"});
    }
    if let Some(s) = service {
        body["service"] = json!({"id": s, "slug": format!("{s}-slug")});
    }
    event(body)
}

fn fired(m: &Matcher, e: &Event) -> Vec<String> {
    m.matches(e)
        .into_iter()
        .map(|x| x.webhook.id.clone())
        .collect()
}

fn reason(m: &Matcher, e: &Event, id: &str) -> Option<Reason> {
    let d = m
        .explain(e)
        .into_iter()
        .find(|d| d.webhook_id == id)
        .unwrap();
    match d.verdict {
        Verdict::Fired { .. } => None,
        Verdict::Skipped { reason } => Some(reason),
    }
}

#[test]
fn scope_table() {
    let m = Matcher::new([
        hook("global", Scope::Global, &["*"]),
        hook("team1", team("T1"), &["*"]),
        hook("team2", team("T2"), &["*"]),
        hook(
            "svc1",
            Scope::Service {
                team_id: Some("T1".into()),
                service_id: "S1".into(),
            },
            &["*"],
        ),
        hook("svc2", service("S2"), &["*"]),
    ]);
    for (team, service, want) in [
        (Some("T1"), Some("S1"), &["global", "team1", "svc1"][..]),
        (Some("T1"), Some("S2"), &["global", "team1", "svc2"]),
        (Some("T1"), None, &["global", "team1"]),
        // svc1 is team T1's: T2's event of the same service does not reach it.
        (Some("T2"), Some("S1"), &["global", "team2"]),
        (None, Some("S1"), &["global"]),
        (Some("T3"), Some("S3"), &["global"]),
        (None, Some("S2"), &["global", "svc2"]),
        (None, None, &["global"]),
    ] {
        assert_eq!(
            fired(&m, &typed("incident_triggered", team, service)),
            want,
            "{team:?} {service:?}"
        );
    }
    assert_eq!(
        reason(&m, &typed("incident_triggered", Some("T2"), None), "team1"),
        Some(Reason::Scope {
            scope: "team",
            wanted: "T1".into(),
            event_value: Some("T2".into())
        })
    );
    assert_eq!(
        reason(&m, &typed("incident_triggered", None, None), "svc2"),
        Some(Reason::Scope {
            scope: "service",
            wanted: "S2".into(),
            event_value: None
        })
    );
}

#[test]
fn scope_reads_team_id_and_service_id_fields_too() {
    let m = Matcher::new([
        hook("t", team("T9"), &["*"]),
        hook("s", service("S9"), &["*"]),
    ]);
    let e = event(json!({"event_type": "x.y", "team_id": "T9", "service_id": "S9"}));
    assert_eq!(fired(&m, &e), ["t", "s"]);
}

#[test]
fn triggers_aliases_status_change_and_star() {
    let m = Matcher::new([
        hook("created", Scope::Global, &["alert group created"]),
        hook("ack", Scope::Global, &["incident_acknowledged"]),
        hook("status", Scope::Global, &["status change"]),
        hook("all", Scope::Global, &["*"]),
        hook("custom", Scope::Global, &["deploy.finished"]),
        hook("two", Scope::Global, &["resolve", "escalation"]),
    ]);
    for (posted, want) in [
        ("incident.created", &["created", "all"][..]),
        ("incident_triggered", &["created", "all"]),
        ("acknowledge", &["ack", "status", "all"]),
        ("incident.unacknowledged", &["status", "all"]),
        ("incident_resolved", &["status", "all", "two"]),
        ("unresolve", &["status", "all"]),
        ("silence", &["status", "all"]),
        ("unsilence", &["status", "all"]),
        ("escalation", &["all", "two"]),
        ("incident_reassigned", &["all"]),
        ("deploy.finished", &["all", "custom"]),
        ("something.else", &["all"]),
    ] {
        assert_eq!(fired(&m, &typed(posted, None, None)), want, "{posted}");
    }
    assert!(matches!(
        reason(&m, &typed("incident_reassigned", None, None), "ack"),
        Some(Reason::Trigger { .. })
    ));
}

#[test]
fn disabled_and_invalid_webhooks_never_fire_and_say_why() {
    let mut off = hook("off", Scope::Global, &["*"]);
    off.is_webhook_enabled = false;
    off.disabled_reason = Some("410 Gone".into());
    let mut bad = hook("bad", Scope::Global, &["*"]);
    bad.filter = Some(json!({"severity": {"$gt": []}}));
    let m = Matcher::new([off, bad, hook("ok", Scope::Global, &["*"])]);
    let e = typed("incident_triggered", None, None);
    assert_eq!(fired(&m, &e), ["ok"]);
    assert_eq!(
        reason(&m, &e, "off"),
        Some(Reason::Disabled {
            disabled_reason: Some("410 Gone".into())
        })
    );
    let invalid = Reason::Invalid {
        field: "filter.severity.$gt".into(),
        message: "expected a number or string".into(),
    };
    assert_eq!(reason(&m, &e, "bad"), Some(invalid));
    assert_eq!(m.invalid().len(), 1);
    assert_eq!(m.invalid()[0].webhook_id, "bad");
    assert_eq!(m.len(), 3);
}

#[test]
fn filter_failure_is_reported_by_clause() {
    let mut w = hook("f", Scope::Global, &["*"]);
    w.filter =
        Some(json!({"$and": [{"services": ["617411eac6991e7406f95ec6"]}, {"status": "resolved"}]}));
    let m = Matcher::new([w]);
    let e = event(serde_json::from_str(TRIGGERED).unwrap());
    assert_eq!(fired(&m, &e), Vec::<String>::new());
    assert_eq!(
        reason(&m, &e, "f"),
        Some(Reason::Filter {
            clause: "filter.$and[1].status".into()
        })
    );
}

#[test]
fn integration_filter_on_the_matcher() {
    let mut w = hook("grafana", Scope::Global, &["acknowledge"]);
    w.integration_filter = Some(vec!["CRV8A5MXC751A".into()]);
    let mut empty = hook("empty", Scope::Global, &["acknowledge"]);
    empty.integration_filter = Some(vec![]);
    let m = Matcher::new([w, empty]);
    let ours = event(
        json!({"event": {"type": "acknowledge"}, "alert_group": {"integration_id": "CRV8A5MXC751A"}}),
    );
    let other = event(json!({"event": {"type": "acknowledge"}, "integration": {"id": "OTHER"}}));
    assert_eq!(fired(&m, &ours), ["grafana", "empty"]);
    assert_eq!(fired(&m, &other), ["empty"]);
    assert_eq!(
        reason(&m, &other, "grafana"),
        Some(Reason::IntegrationFilter {
            alert_sources: vec!["OTHER".into()]
        })
    );
    let squadcast = event(serde_json::from_str(ACKNOWLEDGED).unwrap());
    assert_eq!(fired(&m, &squadcast), ["empty"]);
}

#[test]
fn trigger_template_true_false_one_and_error() {
    let with = |id: &str, t: &str| {
        let mut w = hook(id, Scope::Global, &["*"]);
        w.trigger_template = Some(t.into());
        w
    };
    let m = Matcher::new([
        with("true", "{{ status == 'triggered' }}"),
        with(
            "one",
            "{% if service.slug == 'team-2-service-1' %}1{% else %}0{% endif %}",
        ),
        with("false", "{{ status == 'resolved' }}"),
        with("truthy", "{{ status }}"),
        with("error", "{{ nope.deeper }}"),
        with("blank", "   "),
    ]);
    let e = event(serde_json::from_str(TRIGGERED).unwrap());
    assert_eq!(fired(&m, &e), ["true", "one", "blank"]);
    assert_eq!(
        reason(&m, &e, "false"),
        Some(Reason::TriggerTemplateFalse {
            rendered: "False".into()
        })
    );
    assert_eq!(
        reason(&m, &e, "truthy"),
        Some(Reason::TriggerTemplateFalse {
            rendered: "triggered".into()
        })
    );
    assert!(
        matches!(reason(&m, &e, "error"), Some(Reason::TriggerTemplateError { error }) if error.contains("undefined"))
    );
}

#[test]
fn private_events_send_a_stub_unless_opted_in() {
    let mut opted = hook("opted", Scope::Global, &["*"]);
    opted.include_private_payloads = true;
    let m = Matcher::new([hook("plain", Scope::Global, &["*"]), opted]);
    let private = event(
        json!({"event_type": "incident.triggered", "id": "inc_1", "private": true, "name": "secret"}),
    );
    let got: Vec<(String, PayloadView)> = m
        .matches(&private)
        .into_iter()
        .map(|x| (x.webhook.id.clone(), x.payload))
        .collect();
    assert_eq!(
        got,
        [
            ("plain".into(), PayloadView::PrivateStub),
            ("opted".into(), PayloadView::Full)
        ]
    );
    let stub = PayloadView::PrivateStub.body(&private);
    assert_eq!(
        *stub,
        json!({"id": "evt_1", "event_type": "incident.triggered", "private": true})
    );
    assert!(!stub.to_string().contains("secret"));
    assert_eq!(*PayloadView::Full.body(&private), private.body);
    let public = typed("incident.triggered", None, None);
    assert!(
        m.matches(&public)
            .iter()
            .all(|x| x.payload == PayloadView::Full)
    );
    let d = &m.explain(&private)[0];
    assert_eq!(
        d.verdict,
        Verdict::Fired {
            payload: PayloadView::PrivateStub
        }
    );
}

#[test]
fn validate_names_the_bad_field() {
    let ok = hook("w", Scope::Global, &["resolve"]);
    assert_eq!(validate(&ok), Ok(()));
    let mut w = ok.clone();
    w.filter = Some(json!({"$and": [{"a": 1}, {"severity": {"$gt": null}}]}));
    assert_eq!(
        validate(&w).unwrap_err().to_string(),
        "filter.$and[1].severity.$gt: expected a number or string"
    );
    let mut w = ok.clone();
    w.trigger_template = Some("{% if x %}".into());
    let e = validate(&w).unwrap_err();
    assert_eq!(e.field, "trigger_template");
    assert!(e.message.starts_with("line 1"), "{e}");
    let mut w = ok.clone();
    w.trigger_events = vec!["resolve".into(), "no such!".into()];
    assert_eq!(validate(&w).unwrap_err().field, "trigger_events[1]");
    let mut w = ok.clone();
    w.integration_filter = Some(vec!["".into()]);
    assert_eq!(validate(&w).unwrap_err().field, "integration_filter[0]");
    let mut w = ok;
    w.filter = Some(Value::Null);
    assert_eq!(validate(&w), Ok(()), "a null filter is no filter");
}

#[test]
fn rebuild_reuses_unchanged_webhooks_and_sees_changes() {
    let mut a = hook("a", Scope::Global, &["*"]);
    a.trigger_template = Some("true".into());
    let b = hook("b", team("T1"), &["resolve"]);
    let m1 = Matcher::new([a.clone(), b.clone()]);
    let mut b2 = b.clone();
    b2.scope = Scope::Global;
    let m2 = m1.rebuild([a, b2]);
    let e = typed("incident_resolved", None, None);
    assert_eq!(fired(&m1, &e), ["a"]);
    assert_eq!(fired(&m2, &e), ["a", "b"]);
    let (Some(old), Some(new)) = (
        m1.matches(&e).into_iter().next(),
        m2.matches(&e).into_iter().next(),
    ) else {
        panic!()
    };
    assert!(
        Arc::ptr_eq(&old.webhook, &new.webhook),
        "unchanged webhook was not recompiled"
    );
    assert_eq!(fired(&m1.rebuild([b]), &e), Vec::<String>::new());
}

/// The property the dry-run endpoint relies on: over a table of webhooks and events, the indexed
/// `matches` fires exactly the webhooks the linear `explain` says fire, with the same views.
#[test]
fn explain_equals_matches_over_a_table() {
    let scopes = [
        Scope::Global,
        team("T1"),
        team("T2"),
        service("S1"),
        service("S2"),
    ];
    let triggers: [&[&str]; 6] = [
        &["incident.triggered"],
        &["status_change"],
        &["*"],
        &["resolve", "acknowledge"],
        &["deploy.done"],
        &["acknowledge", "status change"],
    ];
    let filters = [
        None,
        Some(json!({"services": ["S1-slug"]})),
        Some(json!({"severity": {"$in": ["high", "critical"]}})),
        Some(json!({"$or": [{"severity": "low"}, {"alert_sources": ["A1"]}]})),
        Some(json!({"severity": {"$regex": "("}})),
    ];
    let mut hooks = Vec::new();
    for (si, scope) in scopes.iter().enumerate() {
        for (ti, t) in triggers.iter().enumerate() {
            for (fi, f) in filters.iter().enumerate() {
                for variant in 0..3 {
                    let mut w = hook(&format!("w{si}-{ti}-{fi}-{variant}"), scope.clone(), t);
                    w.filter = f.clone();
                    match variant {
                        1 => w.is_webhook_enabled = false,
                        2 => {
                            w.include_private_payloads = true;
                            w.integration_filter = Some(vec!["A1".into()]);
                            w.trigger_template = Some("{{ severity != 'low' }}".into());
                        }
                        _ => {}
                    }
                    hooks.push(w);
                }
            }
        }
    }
    let m = Matcher::new(hooks);
    let (mut total_fired, mut total_skipped) = (0, 0);
    for ty in [
        "incident_triggered",
        "acknowledge",
        "resolve",
        "incident_reassigned",
        "deploy.done",
        "unsilence",
    ] {
        for t in [Some("T1"), Some("T2"), None] {
            for s in [Some("S1"), Some("S2"), None] {
                for (private, severity, source) in [
                    (false, "high", "A1"),
                    (true, "low", "A2"),
                    (true, "critical", "A1"),
                ] {
                    let mut body = typed(ty, t, s).body;
                    body["private"] = json!(private);
                    body["severity"] = json!(severity);
                    body["alert_source"] = json!({"id": source});
                    let e = event(body);
                    let from_index: Vec<(String, PayloadView)> = m
                        .matches(&e)
                        .into_iter()
                        .map(|x| (x.webhook.id.clone(), x.payload))
                        .collect();
                    let decisions = m.explain(&e);
                    assert_eq!(decisions.len(), m.len());
                    let from_explain: Vec<(String, PayloadView)> = decisions
                        .iter()
                        .filter_map(|d| match &d.verdict {
                            Verdict::Fired { payload } => Some((d.webhook_id.clone(), *payload)),
                            Verdict::Skipped { .. } => None,
                        })
                        .collect();
                    assert_eq!(
                        from_index, from_explain,
                        "{ty} {t:?} {s:?} private={private}"
                    );
                    total_fired += from_index.len();
                    total_skipped += decisions.len() - from_index.len();
                }
            }
        }
    }
    assert!(
        total_fired > 500 && total_skipped > 10_000,
        "the table must exercise both sides: {total_fired} / {total_skipped}"
    );
}

#[test]
fn decisions_serialize_for_the_dry_run_endpoint() {
    let m = Matcher::new([
        hook("a", team("T1"), &["*"]),
        hook("b", Scope::Global, &["*"]),
    ]);
    let v = serde_json::to_value(m.explain(&typed("x.y", None, None))).unwrap();
    assert_eq!(
        v,
        json!([
            {"webhook_id": "a", "outcome": "skipped", "reason": {"kind": "scope", "scope": "team", "wanted": "T1", "event_value": null}},
            {"webhook_id": "b", "outcome": "fired", "payload": "full"}
        ])
    );
}
