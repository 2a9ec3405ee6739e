use super::*;
use serde_json::json;

const TRIGGERED: &str =
    include_str!("../../../../tests/fixtures/squadcast/incident_triggered.json");
const REASSIGNED: &str =
    include_str!("../../../../tests/fixtures/squadcast/incident_reassigned.json");
const ACKNOWLEDGED: &str =
    include_str!("../../../../tests/fixtures/squadcast/incident_acknowledged.json");
const RESOLVED: &str = include_str!("../../../../tests/fixtures/squadcast/incident_resolved.json");

fn event(body: Value) -> Event {
    Event::from_body("evt_1".into(), body, 0).unwrap()
}

fn fixture(raw: &str) -> Event {
    event(serde_json::from_str(raw).unwrap())
}

fn sample() -> Event {
    event(json!({
        "event_type": "incident_triggered",
        "severity": "high",
        "priority": 3,
        "score": 2.5,
        "tags": ["db", "prod"],
        "labels": {"env": "prod", "region": "eu-west-1"},
        "assigned_to": [{"type": "escalationpolicy", "id": "E1"}, {"type": "user", "id": "U1"}],
        "nothing": null,
        "message": "Disk FULL on db-1",
        "created": "2024-05-01T10:00:00Z",
    }))
}

fn passes(filter: Value, e: &Event) -> bool {
    Filter::compile(&filter, "filter")
        .unwrap_or_else(|err| panic!("{filter}: {err}"))
        .matches(e)
}

fn failing_clause(filter: Value, e: &Event) -> String {
    Filter::compile(&filter, "filter")
        .unwrap()
        .check(e)
        .unwrap_err()
        .to_string()
}

fn refused(filter: Value) -> FieldError {
    Filter::compile(&filter, "filter").map(|_| ()).unwrap_err()
}

/// Each row: filter, expected result against `sample()`.
fn table(rows: &[(Value, bool)]) {
    let e = sample();
    for (f, want) in rows {
        assert_eq!(passes(f.clone(), &e), *want, "{f}");
    }
}

#[test]
fn eq_and_shorthand() {
    table(&[
        (json!({"severity": "high"}), true),
        (json!({"severity": "low"}), false),
        (json!({"severity": {"$eq": "high"}}), true),
        (json!({"priority": 3.0}), true),
        (json!({"labels.env": "prod"}), true),
        (
            json!({"labels": {"env": "prod", "region": "eu-west-1"}}),
            true,
        ),
        (json!({"labels": {"env": "prod"}}), false),
        (json!({"nothing": null}), true),
        (json!({"missing": null}), true),
        (json!({"severity": null}), false),
    ]);
}

#[test]
fn ne() {
    table(&[
        (json!({"severity": {"$ne": "low"}}), true),
        (json!({"severity": {"$ne": "high"}}), false),
        (json!({"missing": {"$ne": "x"}}), true),
        (json!({"missing": {"$ne": null}}), false),
        (json!({"tags": {"$ne": "db"}}), false),
    ]);
}

#[test]
fn in_and_nin() {
    table(&[
        (json!({"severity": {"$in": ["critical", "high"]}}), true),
        (json!({"severity": {"$in": ["low"]}}), false),
        (json!({"severity": {"$in": []}}), false),
        (json!({"missing": {"$in": [null, "x"]}}), true),
        (json!({"severity": {"$nin": ["low", "info"]}}), true),
        (json!({"severity": {"$nin": ["high"]}}), false),
        (json!({"missing": {"$nin": ["x"]}}), true),
    ]);
}

#[test]
fn arrays_match_when_any_element_matches() {
    table(&[
        (json!({"tags": "db"}), true),
        (json!({"tags": ["db", "prod"]}), true),
        (json!({"tags": ["prod", "db"]}), false),
        (json!({"tags": {"$in": ["web", "prod"]}}), true),
        (json!({"tags": {"$nin": ["prod"]}}), false),
        (json!({"tags": {"$nin": ["web"]}}), true),
        (json!({"tags": {"$regex": "^pr"}}), true),
        (json!({"assigned_to.type": "user"}), true),
        (json!({"assigned_to.type": "squad"}), false),
        (json!({"assigned_to.id": {"$in": ["U9", "E1"]}}), true),
    ]);
}

#[test]
fn array_index_segments() {
    table(&[
        (json!({"assigned_to.0.type": "escalationpolicy"}), true),
        (json!({"assigned_to.0.type": "user"}), false),
        (json!({"assigned_to.1.type": "user"}), true),
        (json!({"assigned_to.5.type": {"$exists": true}}), false),
        (json!({"tags.1": "prod"}), true),
    ]);
}

#[test]
fn gt_gte_lt_lte() {
    table(&[
        (json!({"priority": {"$gt": 2}}), true),
        (json!({"priority": {"$gt": 3}}), false),
        (json!({"priority": {"$gte": 3}}), true),
        (json!({"priority": {"$gte": 3.5}}), false),
        (json!({"priority": {"$lt": 4}}), true),
        (json!({"priority": {"$lt": 3}}), false),
        (json!({"priority": {"$lte": 3}}), true),
        (json!({"priority": {"$lte": 2}}), false),
        (json!({"score": {"$gt": 2, "$lt": 3}}), true),
        (json!({"score": {"$gt": 2, "$lt": 2.4}}), false),
        // Strings compare with strings (ISO timestamps sort), never with numbers.
        (json!({"created": {"$gte": "2024-01-01"}}), true),
        (json!({"created": {"$lt": "2024-01-01"}}), false),
        (json!({"severity": {"$gt": 1}}), false),
        (json!({"priority": {"$gt": "1"}}), false),
        (json!({"missing": {"$lt": 10}}), false),
    ]);
}

#[test]
fn exists() {
    table(&[
        (json!({"severity": {"$exists": true}}), true),
        (json!({"nothing": {"$exists": true}}), true),
        (json!({"missing": {"$exists": true}}), false),
        (json!({"missing": {"$exists": false}}), true),
        (json!({"severity": {"$exists": false}}), false),
        (json!({"labels.env": {"$exists": 1}}), true),
    ]);
}

#[test]
fn regex_and_options() {
    table(&[
        (json!({"message": {"$regex": "^Disk"}}), true),
        (json!({"message": {"$regex": "full"}}), false),
        (
            json!({"message": {"$regex": "full", "$options": "i"}}),
            true,
        ),
        (json!({"priority": {"$regex": "3"}}), false),
        (json!({"missing": {"$regex": ".*"}}), false),
    ]);
}

#[test]
fn field_level_not() {
    table(&[
        (
            json!({"severity": {"$not": {"$in": ["low", "info"]}}}),
            true,
        ),
        (json!({"severity": {"$not": {"$eq": "high"}}}), false),
        (json!({"priority": {"$not": {"$gt": 1, "$lt": 5}}}), false),
        (json!({"missing": {"$not": {"$eq": "x"}}}), true),
        (json!({"message": {"$not": {"$regex": "^Disk"}}}), false),
    ]);
}

#[test]
fn and_or_not_and_implicit_and() {
    table(&[
        (json!({"severity": "high", "priority": 3}), true),
        (json!({"severity": "high", "priority": 4}), false),
        (
            json!({"$and": [{"severity": "high"}, {"tags": "db"}]}),
            true,
        ),
        (
            json!({"$and": [{"severity": "high"}, {"tags": "web"}]}),
            false,
        ),
        (json!({"$or": [{"severity": "low"}, {"tags": "db"}]}), true),
        (
            json!({"$or": [{"severity": "low"}, {"tags": "web"}]}),
            false,
        ),
        (json!({"$not": {"severity": "low"}}), true),
        (json!({"$not": {"severity": "high"}}), false),
        (
            json!({"$or": [{"$and": [{"severity": "high"}, {"priority": {"$gte": 5}}]}, {"labels.region": {"$regex": "^eu-"}}]}),
            true,
        ),
        (json!({}), true),
    ]);
}

#[test]
fn failing_clause_is_named_by_path() {
    let e = sample();
    assert_eq!(
        failing_clause(json!({"severity": "high", "priority": {"$gt": 5}}), &e),
        "filter.priority.$gt"
    );
    assert_eq!(
        failing_clause(
            json!({"$and": [{"severity": "high"}, {"tags": {"$nin": ["db"]}}]}),
            &e
        ),
        "filter.$and[1].tags.$nin"
    );
    assert_eq!(
        failing_clause(json!({"$or": [{"severity": "low"}, {"tags": "web"}]}), &e),
        "filter.$or"
    );
    assert_eq!(
        failing_clause(json!({"$not": {"severity": "high"}}), &e),
        "filter.$not"
    );
    assert_eq!(
        failing_clause(json!({"severity": "low"}), &e),
        "filter.severity"
    );
}

#[test]
fn invalid_filters_name_the_position() {
    for (f, field, msg) in [
        (
            json!({"$and": [{"a": 1}, {"severity": {"$gt": true}}]}),
            "filter.$and[1].severity.$gt",
            "expected a number or string",
        ),
        (
            json!({"a": {"$in": "x"}}),
            "filter.a.$in",
            "expected an array",
        ),
        (
            json!({"a": {"$foo": 1}}),
            "filter.a.$foo",
            "unknown operator $foo",
        ),
        (json!({"$foo": []}), "filter.$foo", "unknown operator $foo"),
        (json!({"$or": []}), "filter.$or", "non-empty array"),
        (
            json!({"$or": [1]}),
            "filter.$or[0]",
            "expected a filter object",
        ),
        (
            json!({"a": {"$regex": "("}}),
            "filter.a.$regex",
            "invalid regular expression",
        ),
        (
            json!({"a": {"$regex": "x", "$options": "q"}}),
            "filter.a.$options",
            "unknown regex flag",
        ),
        (
            json!({"a": {"$options": "i"}}),
            "filter.a.$options",
            "only valid beside $regex",
        ),
        (
            json!({"a": {"$exists": "yes"}}),
            "filter.a.$exists",
            "expected true or false",
        ),
        (
            json!({"a": {"$not": 3}}),
            "filter.a.$not",
            "operator object",
        ),
        (json!({"a": {"$eq": 1, "b": 2}}), "filter.a.b", "cannot mix"),
        (json!({"a..b": 1}), "filter.a..b", "empty segment"),
        (json!([]), "filter", "expected a filter object"),
        (
            json!({"services": [1]}),
            "filter.services[0]",
            "service ids",
        ),
        (
            json!({"alert_sources": {"x": 1}}),
            "filter.alert_sources",
            "alert source ids",
        ),
    ] {
        let e = refused(f.clone());
        assert_eq!(e.field, field, "{f}: {e}");
        assert!(e.message.contains(msg), "{f}: {e}");
    }
    assert_eq!(
        refused(json!({"$and": [{"a": 1}, {"severity": {"$gt": true}}]})).to_string(),
        "filter.$and[1].severity.$gt: expected a number or string"
    );
}

#[test]
fn oversized_regex_and_runaway_filters_are_refused() {
    assert!(
        refused(json!({"a": {"$regex": "x".repeat(MAX_REGEX_LEN + 1)}}))
            .message
            .contains("longer than")
    );
    let huge = json!({"a": {"$regex": "\\w{1000}\\w{1000}\\w{1000}"}});
    assert!(refused(huge).message.contains("too large"));
    let mut deep = json!({"a": 1});
    for _ in 0..MAX_DEPTH + 2 {
        deep = json!({"$not": deep});
    }
    assert!(refused(deep).message.contains("nested"));
    let wide: Vec<Value> = (0..MAX_CLAUSES + 1)
        .map(|i| json!({format!("f{i}"): i}))
        .collect();
    assert!(refused(json!({"$or": wide})).message.contains("clauses"));
}

#[test]
fn squadcast_services_by_id_slug_or_name() {
    for raw in [TRIGGERED, REASSIGNED, ACKNOWLEDGED, RESOLVED] {
        let e = fixture(raw);
        for s in [
            "617411eac6991e7406f95ec6",
            "team-2-service-1",
            "Team 2 Service 1",
        ] {
            assert!(passes(json!({"services": [s]}), &e), "{s}");
        }
        assert!(passes(
            json!({"services": ["other", "team-2-service-1"]}),
            &e
        ));
        assert!(!passes(json!({"services": ["other-service"]}), &e));
        assert!(
            passes(json!({"services": []}), &e),
            "an empty list does not restrict"
        );
    }
}

#[test]
fn squadcast_alert_sources_by_id_or_short_name() {
    let e = fixture(TRIGGERED);
    assert!(passes(
        json!({"alert_sources": ["6077f7225fdc7075e371685f"]}),
        &e
    ));
    assert!(passes(json!({"alert_sources": ["squadcastui"]}), &e));
    assert!(!passes(json!({"alert_sources": ["prometheus"]}), &e));
    assert!(passes(
        json!({"services": ["team-2-service-1"], "alert_sources": ["squadcastui"]}),
        &e
    ));
    assert!(!passes(
        json!({"services": ["team-2-service-1"], "alert_sources": ["prometheus"]}),
        &e
    ));
    assert_eq!(
        failing_clause(json!({"services": ["x"]}), &e),
        "filter.services"
    );
}

#[test]
fn squadcast_shortcuts_mix_with_mongo_on_fixture_fields() {
    let reassigned = fixture(REASSIGNED);
    let triggered = fixture(TRIGGERED);
    let f = json!({"services": ["team-2-service-1"], "assigned_to.type": "user"});
    assert!(passes(f.clone(), &reassigned));
    assert!(!passes(f, &triggered));
    assert!(passes(
        json!({"status": {"$in": ["acknowledged", "resolved"]}}),
        &fixture(ACKNOWLEDGED)
    ));
    assert!(passes(
        json!({"owner.type": "team", "event_count": {"$gte": 1}}),
        &fixture(RESOLVED)
    ));
}

#[test]
fn expression_groups_map_onto_the_same_checks() {
    let e = fixture(REASSIGNED);
    let rules = |m: &str, rules: Value| json!({"match": m, "rules": rules});
    for (f, want) in [
        (
            rules(
                "all",
                json!([{"field": "service", "op": "is", "value": "team-2-service-1"}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "service", "op": "is_not", "value": "team-2-service-1"}]),
            ),
            false,
        ),
        (
            rules(
                "all",
                json!([{"field": "alert_source", "op": "in", "value": ["prometheus", "squadcastui"]}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "alert_source", "op": "not_in", "value": ["prometheus"]}]),
            ),
            true,
        ),
        (
            rules("all", json!([{"field": "status", "value": "triggered"}])),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "status", "op": "is_not", "value": "triggered"}]),
            ),
            false,
        ),
        (
            rules(
                "all",
                json!([{"field": "assigned_to.type", "op": "in", "value": ["user"]}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "assigned_to.type", "op": "not_in", "value": ["user"]}]),
            ),
            false,
        ),
        (
            rules(
                "all",
                json!([{"field": "event_count", "op": "gt", "value": 0}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "event_count", "op": "gte", "value": 2}]),
            ),
            false,
        ),
        (
            rules(
                "all",
                json!([{"field": "event_count", "op": "lt", "value": 2}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "event_count", "op": "lte", "value": 0}]),
            ),
            false,
        ),
        (
            rules(
                "all",
                json!([{"field": "incident_payload.assignee", "op": "exists"}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "incident_payload.nope", "op": "not_exists"}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "message", "op": "matches", "value": "^Sample"}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "message", "op": "contains", "value": "testing webhooks"}]),
            ),
            true,
        ),
        (
            rules(
                "all",
                json!([{"field": "message", "op": "contains", "value": "(."}]),
            ),
            false,
        ),
        (
            rules(
                "any",
                json!([{"field": "service", "value": "x"}, {"field": "alert_source", "value": "squadcastui"}]),
            ),
            true,
        ),
        (
            rules(
                "any",
                json!([{"field": "service", "value": "x"}, {"field": "alert_source", "value": "y"}]),
            ),
            false,
        ),
        (
            rules(
                "all",
                json!([{"field": "service", "value": "x"}, {"field": "alert_source", "value": "squadcastui"}]),
            ),
            false,
        ),
    ] {
        assert_eq!(passes(f.clone(), &e), want, "{f}");
    }
}

#[test]
fn nested_groups() {
    let e = fixture(REASSIGNED);
    // service is team-2-service-1 AND (alert source is prometheus OR (status is triggered AND a user is assigned))
    let f = json!({"match": "all", "rules": [
        {"field": "service", "op": "is", "value": "team-2-service-1"},
        {"match": "any", "rules": [
            {"field": "alert_source", "op": "is", "value": "prometheus"},
            {"match": "all", "rules": [
                {"field": "status", "op": "is", "value": "triggered"},
                {"field": "assigned_to.type", "op": "is", "value": "user"}
            ]}
        ]}
    ]});
    assert!(passes(f.clone(), &e));
    assert!(
        !passes(f.clone(), &fixture(TRIGGERED)),
        "no user assigned yet"
    );
    assert_eq!(failing_clause(f, &fixture(TRIGGERED)), "filter.rules[1]");
    let g = json!({"match": "all", "rules": [{"match": "all", "rules": [{"field": "status", "value": "resolved"}]}]});
    assert_eq!(failing_clause(g, &e), "filter.rules[0].rules[0]");
    // Groups sit anywhere a filter object does, including inside Mongo operators.
    let mixed = json!({"$or": [{"severity": "x"}, {"match": "any", "rules": [{"field": "service", "value": "team-2-service-1"}]}]});
    assert!(passes(mixed, &e));
}

#[test]
fn invalid_groups_name_the_position() {
    for (f, field) in [
        (
            json!({"match": "some", "rules": [{"field": "a", "value": 1}]}),
            "filter.match",
        ),
        (json!({"match": "all", "rules": []}), "filter.rules"),
        (json!({"match": "all"}), "filter.rules"),
        (
            json!({"rules": [{"field": "a", "value": 1}], "extra": 1}),
            "filter.extra",
        ),
        (
            json!({"rules": [{"field": "a", "op": "like", "value": 1}]}),
            "filter.rules[0].op",
        ),
        (
            json!({"rules": [{"field": "a", "op": "is"}]}),
            "filter.rules[0].value",
        ),
        (
            json!({"rules": [{"op": "is", "value": 1}]}),
            "filter.rules[0].field",
        ),
        (
            json!({"rules": [{"field": "a", "op": "gt", "value": [1]}]}),
            "filter.rules[0].value",
        ),
        (
            json!({"rules": [{"field": "service", "op": "gt", "value": "x"}]}),
            "filter.rules[0].op",
        ),
        (
            json!({"rules": [{"field": "service", "op": "in", "value": []}]}),
            "filter.rules[0].value",
        ),
        (
            json!({"rules": [{"rules": [{"field": "a", "op": "matches", "value": "("}]}]}),
            "filter.rules[0].rules[0].value",
        ),
        (json!({"rules": ["x"]}), "filter.rules[0]"),
        (
            json!({"rules": [{"field": "a", "value": 1, "negate": true}]}),
            "filter.rules[0].negate",
        ),
    ] {
        let e = refused(f.clone());
        assert_eq!(e.field, field, "{f}: {e}");
    }
}

#[test]
fn integration_filter_matches_alert_source_ids() {
    let e = fixture(TRIGGERED);
    let f = |ids: &[&str]| {
        Filter::integration(
            &ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "integration_filter",
        )
    };
    assert!(f(&[]).unwrap().is_none(), "empty means every integration");
    assert!(
        f(&["CRV8A5MXC751A", "6077f7225fdc7075e371685f"])
            .unwrap()
            .unwrap()
            .matches(&e)
    );
    assert!(!f(&["CRV8A5MXC751A"]).unwrap().unwrap().matches(&e));
    let grafana = event(
        json!({"event": {"type": "acknowledge"}, "alert_group": {"integration_id": "CRV8A5MXC751A"},
        "integration": {"id": "CRV8A5MXC751A"}}),
    );
    assert!(f(&["CRV8A5MXC751A"]).unwrap().unwrap().matches(&grafana));
    assert_eq!(f(&["a", " "]).unwrap_err().field, "integration_filter[1]");
}
