//! The store test suite, written once and run against every backend (`gateway/tests/store_suite.rs`
//! runs each function on a fresh SQLite file and on PostgreSQL in a fresh schema).
//!
//! Each function takes a fresh, empty store and panics when the store misbehaves. They live in the
//! library (hidden from the docs) so integration tests and other crates' tests can share them.
//! [`PgTestDb`] gives tests a PostgreSQL store in a throwaway schema.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinSet;

use super::postgres::PostgresStore;
use super::{AttemptRecord, HealthChange, Store, StoreError, WebhookQuery};
use crate::model::{
    ApiKey, Attempt, AttemptOutcome, AttemptQuery, Delivery, DeliveryStatus, Event, IngestOutcome,
    NewEvent, PluginRecord, PreparedRequest, Role, Scope, Signing, Webhook, WebhookHealth, new_id,
};

// ---------------------------------------------------------------- fixtures

/// A minimal enabled webhook in `scope`, created at `created_at`.
pub fn webhook(scope: Scope, created_at: i64) -> Webhook {
    Webhook {
        id: new_id("wh"),
        name: "suite".into(),
        description: None,
        is_webhook_enabled: true,
        scope,
        urls: vec!["https://receiver.example/hook".into()],
        http_method: "POST".into(),
        trigger_events: vec!["incident.triggered".into()],
        trigger_type: None,
        data: None,
        forward_all: true,
        username: None,
        password: None,
        authorization_header: None,
        trigger_template: None,
        headers: None,
        integration_filter: None,
        filter: None,
        plugins: Vec::new(),
        authenticator: None,
        auth: Default::default(),
        signing: Signing::None,
        send_as: Default::default(),
        retry: Default::default(),
        timeout_secs: 15,
        auto_disable: Default::default(),
        failure_email: None,
        include_private_payloads: false,
        disabled_reason: None,
        created_at,
        updated_at: created_at,
    }
}

fn team(t: &str) -> Scope {
    Scope::Team { team_id: t.into() }
}

/// An event received at `at` with one pending delivery (due at `at`) per webhook id.
pub fn new_event(at: i64, webhook_ids: &[&str], key: Option<&str>) -> NewEvent {
    let body = json!({ "event_type": "incident_triggered", "message": "disk full", "service": { "id": "svc1" } });
    let event = Event::from_body(new_id("evt"), body, at).expect("valid event");
    let deliveries = webhook_ids.iter().map(|w| Delivery::new(&event.id, w, "https://receiver.example/hook", at)).collect();
    NewEvent { event, deliveries, idempotency_key: key.map(str::to_string) }
}

async fn ingest(store: &dyn Store, at: i64, webhook_ids: &[&str]) -> (String, Vec<Delivery>) {
    let new = new_event(at, webhook_ids, None);
    let id = new.event.id.clone();
    let out = store.ingest(new).await.expect("ingest");
    assert_eq!(out, IngestOutcome::Created { event_id: id.clone(), deliveries: webhook_ids.len() });
    let ds = store.deliveries_for_event(&id).await.unwrap();
    (id, ds)
}

/// A finished attempt of `d` (number `no`), started at `at`.
pub fn attempt(d: &Delivery, no: u32, at: i64, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        id: new_id("att"),
        delivery_id: d.id.clone(),
        webhook_id: d.webhook_id.clone(),
        event_id: d.event_id.clone(),
        attempt_no: no,
        started_at: at,
        duration_ms: 12,
        method: "POST".into(),
        url: d.url.clone(),
        request_headers: vec![("authorization".into(), "****************".into())],
        request_body: Some("{}".into()),
        status_code: Some(if outcome == AttemptOutcome::Success { 200 } else { 500 }),
        response_body: Some("ok".into()),
        error: (outcome != AttemptOutcome::Success).then(|| "HTTP 500".to_string()),
        outcome,
    }
}

fn record(a: Attempt, status: DeliveryStatus, next: i64, request: Option<PreparedRequest>, health: HealthChange) -> AttemptRecord {
    AttemptRecord { delivery_id: a.delivery_id.clone(), attempt: a, status, next_attempt_at: next, request, health }
}

fn prepared(body: &str) -> PreparedRequest {
    PreparedRequest {
        method: "POST".into(),
        url: "https://receiver.example/hook".into(),
        query: vec![("a".into(), "1".into())],
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.into()),
    }
}

fn plugin(name: &str, version: &str, sha: &str, at: i64) -> PluginRecord {
    PluginRecord {
        name: name.into(),
        version: version.into(),
        kind: "transformer".into(),
        sha256: sha.into(),
        size: 3,
        description: Some("suite".into()),
        builtin: false,
        created_at: at,
    }
}

// ---------------------------------------------------------------- API keys and webhooks

pub async fn api_keys(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
    assert!(store.list_api_keys().await.unwrap().is_empty());
    let admin = ApiKey { id: new_id("key"), name: "admin".into(), role: Role::Admin, team_id: None, token_hash: "h1".into(), created_at: 1 };
    let mgr = ApiKey {
        id: new_id("key"),
        name: "mgr".into(),
        role: Role::Manager,
        team_id: Some("t1".into()),
        token_hash: "h2".into(),
        created_at: 2,
    };
    store.insert_api_key(mgr.clone()).await.unwrap();
    store.insert_api_key(admin.clone()).await.unwrap();
    // The same token again (e.g. the bootstrap admin at every start) is a no-op.
    store.insert_api_key(ApiKey { id: new_id("key"), created_at: 3, ..admin.clone() }).await.unwrap();
    assert_eq!(store.api_key_by_hash("h1").await.unwrap(), Some(admin.clone()));
    assert_eq!(store.api_key_by_hash("h2").await.unwrap(), Some(mgr.clone()));
    assert_eq!(store.api_key_by_hash("nope").await.unwrap(), None);
    assert_eq!(store.list_api_keys().await.unwrap(), vec![admin, mgr], "ordered by creation");
}

pub async fn webhook_crud(store: Arc<dyn Store>) {
    let mut w = webhook(team("t1"), 100);
    w.filter = Some(json!({ "service.id": { "$in": ["a", "b"] } }));
    w.password = Some("secret".into());
    store.insert_webhook(&w).await.unwrap();
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), Some(w.clone()), "secrets stored in clear, document intact");
    assert_eq!(store.webhook_health(&w.id).await.unwrap(), WebhookHealth::default());
    assert!(store.insert_webhook(&w).await.is_err(), "duplicate id refused");

    w.name = "renamed".into();
    w.scope = Scope::Service { team_id: Some("t2".into()), service_id: "svc".into() };
    w.updated_at = 200;
    store.update_webhook(&w).await.unwrap();
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), Some(w.clone()));
    assert_eq!(store.all_webhooks().await.unwrap(), vec![w.clone()]);

    let ghost = webhook(Scope::Global, 1);
    assert!(matches!(store.update_webhook(&ghost).await, Err(StoreError::NotFound)));
    assert!(matches!(store.webhook_health(&ghost.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_webhook(&ghost.id).await, Err(StoreError::NotFound)));
    assert_eq!(store.get_webhook(&ghost.id).await.unwrap(), None);

    store.delete_webhook(&w.id).await.unwrap();
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), None);
    assert!(store.all_webhooks().await.unwrap().is_empty());
}

pub async fn webhook_list_paging_and_team_filter(store: Arc<dyn Store>) {
    let mut all = Vec::new();
    for i in 0..7 {
        let scope = match i % 3 {
            0 => Scope::Global,
            1 => team("t1"),
            _ => Scope::Service { team_id: Some("t1".into()), service_id: format!("svc{i}") },
        };
        // Created out of order: the list is by creation time.
        let w = webhook(scope, 1000 - i * 10);
        store.insert_webhook(&w).await.unwrap();
        all.push(w);
    }
    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let ids = |ws: &[Webhook]| ws.iter().map(|w| w.id.clone()).collect::<Vec<_>>();

    let p1 = store.list_webhooks(&WebhookQuery { team_id: None, offset: 0, limit: 3 }).await.unwrap();
    let p3 = store.list_webhooks(&WebhookQuery { team_id: None, offset: 6, limit: 3 }).await.unwrap();
    assert_eq!((p1.total, p3.total), (7, 7));
    assert_eq!(ids(&p1.items), ids(&all[..3]));
    assert_eq!(ids(&p3.items), ids(&all[6..]));
    let past = store.list_webhooks(&WebhookQuery { team_id: None, offset: 10, limit: 3 }).await.unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.total, 7);
    let zero = store.list_webhooks(&WebhookQuery { team_id: None, offset: 0, limit: 0 }).await.unwrap();
    assert_eq!(zero.items.len(), 1, "a zero limit means one");

    let t1: Vec<Webhook> = all.iter().filter(|w| w.scope.team() == Some("t1")).cloned().collect();
    let page = store.list_webhooks(&WebhookQuery { team_id: Some("t1".into()), offset: 1, limit: 2 }).await.unwrap();
    assert_eq!(page.total, t1.len() as u64);
    assert_eq!(ids(&page.items), ids(&t1[1..3]));
    let none = store.list_webhooks(&WebhookQuery { team_id: Some("t9".into()), offset: 0, limit: 10 }).await.unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
    assert_eq!(ids(&store.all_webhooks().await.unwrap()), ids(&all));
}

pub async fn webhook_scope_counts(store: Arc<dyn Store>) {
    let svc = |t: Option<&str>, s: &str| Scope::Service { team_id: t.map(str::to_string), service_id: s.into() };
    for scope in [Scope::Global, Scope::Global, team("t1"), team("t1"), team("t1"), team("t2"), svc(Some("t1"), "s1"), svc(None, "s1"), svc(Some("t1"), "s2")] {
        store.insert_webhook(&webhook(scope, 5)).await.unwrap();
    }
    assert_eq!(store.count_webhooks_in_scope(&Scope::Global).await.unwrap(), 2);
    assert_eq!(store.count_webhooks_in_scope(&team("t1")).await.unwrap(), 3);
    assert_eq!(store.count_webhooks_in_scope(&team("t2")).await.unwrap(), 1);
    assert_eq!(store.count_webhooks_in_scope(&team("t3")).await.unwrap(), 0);
    // A service scope is counted by service, whoever owns it.
    assert_eq!(store.count_webhooks_in_scope(&svc(Some("t9"), "s1")).await.unwrap(), 2);
    assert_eq!(store.count_webhooks_in_scope(&svc(None, "s2")).await.unwrap(), 1);
}

pub async fn set_webhook_enabled_resets_health(store: Arc<dyn Store>) {
    let w = webhook(Scope::Global, 1);
    store.insert_webhook(&w).await.unwrap();
    let (_, ds) = ingest(store.as_ref(), 10, &[&w.id]).await;
    let a = attempt(&ds[0], 1, 20, AttemptOutcome::Failed);
    store.record_attempts(vec![record(a, DeliveryStatus::Failed, 20, None, HealthChange::DeliveryFailed)]).await.unwrap();
    assert_eq!(store.webhook_health(&w.id).await.unwrap(), WebhookHealth { consecutive_failures: 1, failing_since: Some(20) });

    store.set_webhook_enabled(&w.id, false, Some("6 failed deliveries"), 30).await.unwrap();
    let off = store.get_webhook(&w.id).await.unwrap().unwrap();
    assert!(!off.is_webhook_enabled);
    assert_eq!(off.disabled_reason.as_deref(), Some("6 failed deliveries"));
    assert_eq!(off.updated_at, 30);
    assert_eq!(store.webhook_health(&w.id).await.unwrap().consecutive_failures, 1, "disabling keeps health");

    store.set_webhook_enabled(&w.id, true, Some("ignored"), 40).await.unwrap();
    let on = store.get_webhook(&w.id).await.unwrap().unwrap();
    assert!(on.is_webhook_enabled);
    assert_eq!(on.disabled_reason, None);
    assert_eq!(on.updated_at, 40);
    assert_eq!(store.webhook_health(&w.id).await.unwrap(), WebhookHealth::default(), "enabling resets health");
    assert!(matches!(store.set_webhook_enabled("wh_nope", true, None, 1).await, Err(StoreError::NotFound)));
}

// ---------------------------------------------------------------- events and ingest

pub async fn ingest_and_read_back(store: Arc<dyn Store>) {
    let new = new_event(1_000, &["wh_a", "wh_b"], None);
    let event = new.event.clone();
    let mut expected = new.deliveries.clone();
    assert_eq!(store.ingest(new).await.unwrap(), IngestOutcome::Created { event_id: event.id.clone(), deliveries: 2 });
    assert_eq!(store.get_event(&event.id).await.unwrap(), Some(event.clone()));
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.deliveries_for_event(&event.id).await.unwrap(), expected, "ordered by id, every field kept");
    assert_eq!(store.get_delivery(&expected[1].id).await.unwrap(), Some(expected[1].clone()));
    assert_eq!(store.get_delivery("msg_nope").await.unwrap(), None);
    assert_eq!(store.get_event("evt_nope").await.unwrap(), None);
    assert!(store.deliveries_for_event("evt_nope").await.unwrap().is_empty());

    // An event nobody subscribes to is still stored.
    let lonely = new_event(2_000, &[], None);
    let id = lonely.event.id.clone();
    assert_eq!(store.ingest(lonely).await.unwrap(), IngestOutcome::Created { event_id: id.clone(), deliveries: 0 });
    assert!(store.get_event(&id).await.unwrap().is_some());

    // A failing ingest stores nothing of itself (here: an event id already taken).
    let mut clash = new_event(3_000, &["wh_c"], Some("clash-key"));
    clash.event.id = event.id.clone();
    for d in &mut clash.deliveries {
        d.event_id = event.id.clone();
    }
    let clash_delivery = clash.deliveries[0].id.clone();
    assert!(store.ingest(clash).await.is_err());
    assert_eq!(store.get_delivery(&clash_delivery).await.unwrap(), None);
    assert_eq!(store.deliveries_for_event(&event.id).await.unwrap().len(), 2);
    // ...and its idempotency key was not kept either.
    let retry = new_event(3_001, &["wh_c"], Some("clash-key"));
    assert!(matches!(store.ingest(retry).await.unwrap(), IngestOutcome::Created { .. }));
}

pub async fn ingest_idempotency(store: Arc<dyn Store>) {
    let first = new_event(1_000, &["wh_a"], Some("key-1"));
    let first_id = first.event.id.clone();
    assert!(matches!(store.ingest(first).await.unwrap(), IngestOutcome::Created { .. }));
    let again = new_event(2_000, &["wh_a"], Some("key-1"));
    let again_id = again.event.id.clone();
    assert_eq!(store.ingest(again).await.unwrap(), IngestOutcome::Duplicate { event_id: first_id.clone() });
    assert_eq!(store.get_event(&again_id).await.unwrap(), None, "the duplicate is not stored");
    assert!(store.deliveries_for_event(&again_id).await.unwrap().is_empty());
    assert_eq!(store.deliveries_for_event(&first_id).await.unwrap().len(), 1);
    // Another key, or none, is a new event.
    assert!(matches!(store.ingest(new_event(3_000, &["wh_a"], Some("key-2"))).await.unwrap(), IngestOutcome::Created { .. }));
    assert!(matches!(store.ingest(new_event(3_000, &["wh_a"], None)).await.unwrap(), IngestOutcome::Created { .. }));
    assert!(matches!(store.ingest(new_event(3_000, &["wh_a"], None)).await.unwrap(), IngestOutcome::Created { .. }));
}

pub async fn concurrent_duplicate_keys_make_one_event(store: Arc<dyn Store>) {
    let mut set = JoinSet::new();
    for i in 0..24 {
        let store = store.clone();
        set.spawn(async move {
            let new = new_event(1_000 + i, &["wh_a", "wh_b"], Some("same-key"));
            let id = new.event.id.clone();
            (id, store.ingest(new).await.expect("ingest"))
        });
    }
    let mut created = Vec::new();
    let mut duplicates = Vec::new();
    let mut losers = Vec::new();
    while let Some(res) = set.join_next().await {
        let (own, out) = res.unwrap();
        match out {
            IngestOutcome::Created { event_id, deliveries } => {
                assert_eq!((event_id.as_str(), deliveries), (own.as_str(), 2));
                created.push(event_id);
            }
            IngestOutcome::Duplicate { event_id } => {
                duplicates.push(event_id);
                losers.push(own);
            }
        }
    }
    assert_eq!(created.len(), 1, "exactly one event is created");
    assert_eq!(duplicates.len(), 23);
    assert!(duplicates.iter().all(|d| d == &created[0]), "every duplicate names the winner");
    for l in losers {
        assert_eq!(store.get_event(&l).await.unwrap(), None);
    }
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!(counts, vec![(DeliveryStatus::Pending, 2)], "only the winner's deliveries exist");
}

pub async fn concurrent_ingests_all_land(store: Arc<dyn Store>) {
    // A burst mixing keyed, unkeyed and one failing ingest: each caller gets its own answer.
    let (taken_id, _) = ingest(store.as_ref(), 1, &[]).await;
    let mut set = JoinSet::new();
    for i in 0..120i64 {
        let store = store.clone();
        let taken = taken_id.clone();
        set.spawn(async move {
            let key = (i % 3 == 0).then(|| format!("k{}", i % 30));
            let mut new = new_event(10 + i, &["wh_a"], key.as_deref());
            if i == 77 {
                new.event.id = taken;
                new.deliveries[0].event_id = new.event.id.clone();
            }
            (i, store.ingest(new).await)
        });
    }
    let (mut created, mut dup) = (0, 0);
    while let Some(res) = set.join_next().await {
        match res.unwrap() {
            (77, out) => assert!(out.is_err(), "the clashing event fails alone"),
            (_, Ok(IngestOutcome::Created { .. })) => created += 1,
            (_, Ok(IngestOutcome::Duplicate { .. })) => dup += 1,
            (i, Err(e)) => panic!("ingest {i} failed: {e}"),
        }
    }
    // 40 keyed ingests over 10 distinct keys (i % 30 for multiples of 3), 79 unkeyed ones.
    assert_eq!((created, dup), (79 + 10, 30));
    assert_eq!(store.delivery_counts().await.unwrap(), vec![(DeliveryStatus::Pending, 89)]);
}

// ---------------------------------------------------------------- the queue

pub async fn claim_due_takes_only_due(store: Arc<dyn Store>) {
    let (_, early) = ingest(store.as_ref(), 1_000, &["wh_a", "wh_b"]).await;
    let (_, late) = ingest(store.as_ref(), 5_000, &["wh_a"]).await;
    assert_eq!(store.next_due_at().await.unwrap(), Some(1_000));
    assert!(store.claim_due(999, 2_000, 10).await.unwrap().is_empty(), "nothing due before its time");

    let mut claimed = store.claim_due(1_000, 31_000, 10).await.unwrap();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(claimed.iter().map(|d| &d.id).collect::<Vec<_>>(), early.iter().map(|d| &d.id).collect::<Vec<_>>());
    for d in &claimed {
        assert_eq!(d.status, DeliveryStatus::InFlight);
        assert_eq!(d.lease_until, Some(31_000));
        assert_eq!(d.next_attempt_at, 31_000, "an in-flight row is due again at its lease end");
        assert_eq!(d.updated_at, 1_000);
        assert_eq!(d.attempts, 0);
    }
    assert_eq!(store.get_delivery(&early[0].id).await.unwrap().unwrap().status, DeliveryStatus::InFlight);
    assert!(store.claim_due(1_000, 31_000, 10).await.unwrap().is_empty(), "claimed rows are not claimed twice");
    assert_eq!(store.next_due_at().await.unwrap(), Some(5_000));

    // The limit is honoured, earliest first.
    let (_, more) = ingest(store.as_ref(), 4_000, &["wh_c", "wh_d", "wh_e"]).await;
    let got = store.claim_due(6_000, 36_000, 2).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|d| more.iter().any(|m| m.id == d.id)), "earliest due first");
    let rest = store.claim_due(6_000, 36_000, 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().any(|d| d.id == late[0].id));
    assert_eq!(store.claim_due(6_000, 36_000, 0).await.unwrap().len(), 0);
}

pub async fn lease_expiry_makes_claimable_again(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a"]).await;
    assert_eq!(store.claim_due(1_000, 2_000, 5).await.unwrap().len(), 1);
    assert!(store.claim_due(1_999, 3_000, 5).await.unwrap().is_empty(), "lease still held");
    assert_eq!(store.next_due_at().await.unwrap(), Some(2_000), "an in-flight lease end counts as due");
    // The worker vanished: once the lease ends another claims it, attempts untouched.
    let again = store.claim_due(2_000, 9_000, 5).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, ds[0].id);
    assert_eq!((again[0].lease_until, again[0].next_attempt_at, again[0].attempts), (Some(9_000), 9_000, 0));
}

pub async fn concurrent_claimers_never_share(store: Arc<dyn Store>) {
    let mut all = HashSet::new();
    for i in 0..10 {
        let (_, ds) = ingest(store.as_ref(), 100 + i, &["wh_a", "wh_b", "wh_c", "wh_d", "wh_e"]).await;
        all.extend(ds.into_iter().map(|d| d.id));
    }
    let mut set = JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(1_000, 60_000, 3).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|d| d.id));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    while let Some(res) = set.join_next().await {
        for id in res.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "delivery {id} was claimed twice");
        }
    }
    assert_eq!(total, 50);
    assert_eq!(seen, all, "every due delivery was claimed");
}

// ---------------------------------------------------------------- attempts

pub async fn record_attempts_updates_delivery_and_health(store: Arc<dyn Store>) {
    let w = webhook(Scope::Global, 1);
    let other = webhook(Scope::Global, 2);
    store.insert_webhook(&w).await.unwrap();
    store.insert_webhook(&other).await.unwrap();
    let (_, ds) = ingest(store.as_ref(), 1_000, &[&w.id, &other.id]).await;
    let d = ds.iter().find(|d| d.webhook_id == w.id).unwrap().clone();
    let od = ds.iter().find(|d| d.webhook_id == other.id).unwrap().clone();
    store.claim_due(1_000, 31_000, 10).await.unwrap();

    // First attempt fails, a retry follows: the request is stored, failing-since starts.
    let a1 = attempt(&d, 1, 1_100, AttemptOutcome::Retry);
    let healths = store
        .record_attempts(vec![record(a1.clone(), DeliveryStatus::Pending, 6_100, Some(prepared("first")), HealthChange::AttemptFailed)])
        .await
        .unwrap();
    assert_eq!(healths, vec![(w.id.clone(), WebhookHealth { consecutive_failures: 0, failing_since: Some(1_100) })]);
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(got.status, DeliveryStatus::Pending);
    assert_eq!((got.attempts, got.next_attempt_at, got.lease_until), (1, 6_100, None));
    assert_eq!(got.request, Some(prepared("first")));
    assert_eq!((got.last_error.as_deref(), got.last_status_code), (Some("HTTP 500"), Some(500)));
    assert_eq!(got.updated_at, 1_100 + 12, "updated when the attempt ended");

    // Second attempt fails for good, in one batch with a test send (no health change) and the
    // other webhook's success.
    let a2 = attempt(&d, 2, 6_200, AttemptOutcome::Failed);
    let ok = attempt(&od, 1, 6_300, AttemptOutcome::Success);
    let test_send = attempt(&od, 2, 6_400, AttemptOutcome::Success);
    let healths = store
        .record_attempts(vec![
            record(a2.clone(), DeliveryStatus::Failed, 6_200, Some(prepared("second")), HealthChange::DeliveryFailed),
            record(ok.clone(), DeliveryStatus::Succeeded, 6_300, Some(prepared("other")), HealthChange::Success),
            record(test_send.clone(), DeliveryStatus::Succeeded, 6_400, None, HealthChange::None),
        ])
        .await
        .unwrap();
    assert_eq!(
        healths,
        vec![
            (w.id.clone(), WebhookHealth { consecutive_failures: 1, failing_since: Some(1_100) }),
            (other.id.clone(), WebhookHealth::default()),
        ],
        "one health per record that changed it"
    );
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts), (DeliveryStatus::Failed, 2));
    assert_eq!(got.request, Some(prepared("first")), "the request is stored once");
    let got = store.get_delivery(&od.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts, got.last_status_code, got.last_error), (DeliveryStatus::Succeeded, 2, Some(200), None));

    // A later success resets the failing webhook.
    let (_, ds2) = ingest(store.as_ref(), 7_000, &[&w.id]).await;
    let a3 = attempt(&ds2[0], 1, 7_100, AttemptOutcome::Success);
    let healths =
        store.record_attempts(vec![record(a3.clone(), DeliveryStatus::Succeeded, 7_100, None, HealthChange::Success)]).await.unwrap();
    assert_eq!(healths, vec![(w.id.clone(), WebhookHealth::default())]);
    assert_eq!(store.webhook_health(&w.id).await.unwrap(), WebhookHealth::default());

    // Consecutive failures add up; failing-since keeps the first.
    for (i, at) in [8_000, 9_000].into_iter().enumerate() {
        let (_, ds) = ingest(store.as_ref(), at, &[&w.id]).await;
        let a = attempt(&ds[0], 1, at + 1, AttemptOutcome::Failed);
        let h = store.record_attempts(vec![record(a, DeliveryStatus::Failed, at + 1, None, HealthChange::DeliveryFailed)]).await.unwrap();
        assert_eq!(h[0].1, WebhookHealth { consecutive_failures: i as u32 + 1, failing_since: Some(8_001) });
    }

    // The log holds every attempt, document intact.
    let log = store.list_attempts(&AttemptQuery { delivery_id: Some(d.id.clone()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(log.items, vec![a2, a1]);
    assert!(store.record_attempts(Vec::new()).await.unwrap().is_empty());
}

pub async fn list_attempts_filters_and_paging(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a", "wh_b"]).await;
    let (a, b) = if ds[0].webhook_id == "wh_a" { (&ds[0], &ds[1]) } else { (&ds[1], &ds[0]) };
    let mut recs = Vec::new();
    let mut all = Vec::new();
    for i in 0..6u32 {
        let d = if i % 2 == 0 { a } else { b };
        let outcome = if i == 5 { AttemptOutcome::Success } else { AttemptOutcome::Retry };
        let at = attempt(d, i / 2 + 1, 2_000 + i as i64 * 100, outcome);
        all.push(at.clone());
        recs.push(record(at, DeliveryStatus::Pending, 9_000, None, HealthChange::None));
    }
    store.record_attempts(recs).await.unwrap();
    all.reverse(); // newest first
    let q = |f: fn(&mut AttemptQuery)| {
        let mut q = AttemptQuery { limit: 100, ..Default::default() };
        f(&mut q);
        q
    };
    let page = store.list_attempts(&q(|_| {})).await.unwrap();
    assert_eq!((page.items.clone(), page.total), (all.clone(), 6));

    let by_webhook = store.list_attempts(&q(|q| q.webhook_id = Some("wh_a".into()))).await.unwrap();
    assert_eq!(by_webhook.total, 3);
    assert!(by_webhook.items.iter().all(|x| x.webhook_id == "wh_a"));
    let by_delivery = store.list_attempts(&AttemptQuery { delivery_id: Some(b.id.clone()), limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(by_delivery.items.iter().map(|x| x.attempt_no).collect::<Vec<_>>(), vec![3, 2, 1]);
    let ok = store.list_attempts(&q(|q| q.outcome = Some(AttemptOutcome::Success))).await.unwrap();
    assert_eq!((ok.total, ok.items[0].started_at), (1, 2_500));
    let window = store.list_attempts(&q(|q| (q.since, q.until) = (Some(2_100), Some(2_300)))).await.unwrap();
    assert_eq!(window.items.iter().map(|x| x.started_at).collect::<Vec<_>>(), vec![2_300, 2_200, 2_100], "bounds inclusive");
    let combined = store
        .list_attempts(&AttemptQuery {
            webhook_id: Some("wh_b".into()),
            outcome: Some(AttemptOutcome::Retry),
            since: Some(2_000),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(combined.items.iter().map(|x| x.started_at).collect::<Vec<_>>(), vec![2_300, 2_100]);

    let p2 = store.list_attempts(&AttemptQuery { offset: 2, limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!((p2.items, p2.total), (all[2..4].to_vec(), 6));
    let p0 = store.list_attempts(&AttemptQuery { offset: 0, limit: 0, ..Default::default() }).await.unwrap();
    assert_eq!(p0.items.len(), 1, "a zero limit means one");
    let none = store.list_attempts(&q(|q| q.webhook_id = Some("wh_zzz".into()))).await.unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
}

// ---------------------------------------------------------------- operator actions

pub async fn requeue_delivery_makes_it_due_now(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a"]).await;
    let d = &ds[0];
    store.claim_due(1_000, 31_000, 1).await.unwrap();
    let a = attempt(d, 1, 1_100, AttemptOutcome::Failed);
    store.record_attempts(vec![record(a, DeliveryStatus::Failed, 1_100, Some(prepared("p")), HealthChange::None)]).await.unwrap();

    store.requeue_delivery(&d.id, 50_000).await.unwrap();
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.next_attempt_at, got.lease_until, got.updated_at), (DeliveryStatus::Pending, 50_000, None, 50_000));
    assert_eq!((got.attempts, got.request), (1, Some(prepared("p"))), "history and request kept");
    assert_eq!(store.claim_due(50_000, 80_000, 5).await.unwrap().len(), 1);
    // Whatever its state: an in-flight one is released too.
    store.requeue_delivery(&d.id, 60_000).await.unwrap();
    let got = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.lease_until), (DeliveryStatus::Pending, None));
    assert!(matches!(store.requeue_delivery("msg_nope", 1).await, Err(StoreError::NotFound)));
}

pub async fn requeue_failed_since_only_failed_and_recent(store: Arc<dyn Store>) {
    let (_, old) = ingest(store.as_ref(), 1_000, &["wh_a"]).await;
    let (_, new) = ingest(store.as_ref(), 5_000, &["wh_a", "wh_b"]).await;
    let (_, ok) = ingest(store.as_ref(), 6_000, &["wh_a"]).await;
    store.claim_due(10_000, 40_000, 10).await.unwrap();
    let mut recs = Vec::new();
    for d in old.iter().chain(&new) {
        recs.push(record(attempt(d, 1, 10_100, AttemptOutcome::Failed), DeliveryStatus::Failed, 10_100, None, HealthChange::None));
    }
    recs.push(record(attempt(&ok[0], 1, 10_100, AttemptOutcome::Success), DeliveryStatus::Succeeded, 10_100, None, HealthChange::None));
    store.record_attempts(recs).await.unwrap();

    assert_eq!(store.requeue_failed_since("wh_a", 5_000, 20_000).await.unwrap(), 1, "created since, failed, this webhook");
    let new_a = new.iter().find(|d| d.webhook_id == "wh_a").unwrap();
    let got = store.get_delivery(&new_a.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.next_attempt_at, got.updated_at), (DeliveryStatus::Pending, 20_000, 20_000));
    assert_eq!(store.get_delivery(&old[0].id).await.unwrap().unwrap().status, DeliveryStatus::Failed);
    assert_eq!(store.get_delivery(&ok[0].id).await.unwrap().unwrap().status, DeliveryStatus::Succeeded);
    assert_eq!(store.requeue_failed_since("wh_a", 0, 20_000).await.unwrap(), 1, "now the old one");
    assert_eq!(store.requeue_failed_since("wh_a", 0, 20_000).await.unwrap(), 0);
    assert_eq!(store.requeue_failed_since("wh_zzz", 0, 20_000).await.unwrap(), 0);
}

pub async fn fail_pending_for_webhook_leaves_others(store: Arc<dyn Store>) {
    let (_, ds) = ingest(store.as_ref(), 1_000, &["wh_a", "wh_b"]).await;
    let (_, later) = ingest(store.as_ref(), 90_000, &["wh_a"]).await;
    let in_flight = store.claim_due(1_000, 31_000, 10).await.unwrap();
    assert_eq!(in_flight.len(), 2);
    let (_, fresh) = ingest(store.as_ref(), 2_000, &["wh_a"]).await;

    // Only pending ones (the in-flight attempt finishes and records its own outcome).
    assert_eq!(store.fail_pending_for_webhook("wh_a", "webhook disabled", 3_000).await.unwrap(), 2);
    for d in [&fresh[0], &later[0]] {
        let got = store.get_delivery(&d.id).await.unwrap().unwrap();
        assert_eq!((got.status, got.last_error.as_deref(), got.updated_at), (DeliveryStatus::Failed, Some("webhook disabled"), 3_000));
    }
    for d in &ds {
        assert_eq!(store.get_delivery(&d.id).await.unwrap().unwrap().status, DeliveryStatus::InFlight);
    }
    assert_eq!(store.fail_pending_for_webhook("wh_b", "x", 3_000).await.unwrap(), 0);
}

pub async fn delete_webhook_fails_its_queued_deliveries(store: Arc<dyn Store>) {
    let w = webhook(Scope::Global, 1);
    let keep = webhook(Scope::Global, 2);
    store.insert_webhook(&w).await.unwrap();
    store.insert_webhook(&keep).await.unwrap();
    let (_, first) = ingest(store.as_ref(), 1_000, &[&w.id, &keep.id]).await;
    store.claim_due(1_000, 31_000, 10).await.unwrap();
    let (_, second) = ingest(store.as_ref(), 2_000, &[&w.id]).await;
    store.delete_webhook(&w.id).await.unwrap();
    for d in first.iter().chain(&second).filter(|d| d.webhook_id == w.id) {
        let got = store.get_delivery(&d.id).await.unwrap().unwrap();
        assert_eq!((got.status, got.last_error.as_deref()), (DeliveryStatus::Failed, Some("webhook deleted")));
    }
    let kept = first.iter().find(|d| d.webhook_id == keep.id).unwrap();
    assert_eq!(store.get_delivery(&kept.id).await.unwrap().unwrap().status, DeliveryStatus::InFlight);
}

pub async fn delivery_counts_by_status(store: Arc<dyn Store>) {
    assert!(store.delivery_counts().await.unwrap().is_empty());
    ingest(store.as_ref(), 1_000, &["wh_a", "wh_b", "wh_c"]).await;
    ingest(store.as_ref(), 50_000, &["wh_a", "wh_b"]).await;
    let claimed = store.claim_due(1_000, 31_000, 10).await.unwrap();
    let recs = vec![
        record(attempt(&claimed[0], 1, 1_100, AttemptOutcome::Success), DeliveryStatus::Succeeded, 1_100, None, HealthChange::None),
        record(attempt(&claimed[1], 1, 1_100, AttemptOutcome::Failed), DeliveryStatus::Failed, 1_100, None, HealthChange::None),
    ];
    store.record_attempts(recs).await.unwrap();
    let mut counts = store.delivery_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        vec![(DeliveryStatus::Failed, 1), (DeliveryStatus::InFlight, 1), (DeliveryStatus::Pending, 2), (DeliveryStatus::Succeeded, 1)]
    );
}

// ---------------------------------------------------------------- plugins

pub async fn plugins_roundtrip(store: Arc<dyn Store>) {
    assert!(store.list_plugins().await.unwrap().is_empty());
    let bytes_a = b"\0asm-a".to_vec();
    let bytes_b = (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>();
    let t1 = plugin("template", "1.0.0", "sha-a", 10);
    let t2 = plugin("template", "2.0.0", "sha-b", 20);
    let slack = plugin("slack", "1.0.0", "sha-a", 30); // same bytes as template 1.0.0
    store.put_plugin(&t2, &bytes_b).await.unwrap();
    store.put_plugin(&t1, &bytes_a).await.unwrap();
    store.put_plugin(&slack, &bytes_a).await.unwrap();
    assert_eq!(store.list_plugins().await.unwrap(), vec![slack.clone(), t1.clone(), t2.clone()], "by name, then age");
    assert_eq!(store.get_plugin("template", "2.0.0").await.unwrap(), Some(t2.clone()));
    assert_eq!(store.get_plugin("template", "3.0.0").await.unwrap(), None);
    assert_eq!(store.plugin_bytes("sha-b").await.unwrap(), Some(bytes_b.clone()), "binary-safe");
    assert_eq!(store.plugin_bytes("sha-zzz").await.unwrap(), None);

    // Re-uploading a version replaces its record.
    let t2b = PluginRecord { sha256: "sha-c".into(), description: Some("fixed".into()), ..t2.clone() };
    store.put_plugin(&t2b, b"fixed").await.unwrap();
    assert_eq!(store.get_plugin("template", "2.0.0").await.unwrap(), Some(t2b));
    assert_eq!(store.plugin_bytes("sha-c").await.unwrap().as_deref(), Some(&b"fixed"[..]));

    // Bytes go when their last record goes.
    store.delete_plugin("template", "1.0.0").await.unwrap();
    assert_eq!(store.plugin_bytes("sha-a").await.unwrap(), Some(bytes_a), "still used by slack");
    store.delete_plugin("slack", "1.0.0").await.unwrap();
    assert_eq!(store.plugin_bytes("sha-a").await.unwrap(), None);
    assert!(matches!(store.delete_plugin("slack", "1.0.0").await, Err(StoreError::NotFound)));
    assert_eq!(store.list_plugins().await.unwrap().len(), 1);
}

/// Calls macro `$m` with the name of every suite function, so runners list them in one place:
/// `gateway::store_suite_fns!(my_runner_macro);`
#[macro_export]
macro_rules! store_suite_fns {
    ($m:ident) => {
        $m![
            api_keys,
            webhook_crud,
            webhook_list_paging_and_team_filter,
            webhook_scope_counts,
            set_webhook_enabled_resets_health,
            ingest_and_read_back,
            ingest_idempotency,
            concurrent_duplicate_keys_make_one_event,
            concurrent_ingests_all_land,
            claim_due_takes_only_due,
            lease_expiry_makes_claimable_again,
            concurrent_claimers_never_share,
            record_attempts_updates_delivery_and_health,
            list_attempts_filters_and_paging,
            requeue_delivery_makes_it_due_now,
            requeue_failed_since_only_failed_and_recent,
            fail_pending_for_webhook_leaves_others,
            delete_webhook_fails_its_queued_deliveries,
            delivery_counts_by_status,
            plugins_roundtrip,
        ];
    };
}

// ---------------------------------------------------------------- PostgreSQL for tests

/// The server tests use: `GATEWAY_TEST_DATABASE_URL`, else the local one.
pub fn pg_test_url() -> String {
    std::env::var("GATEWAY_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether a missing PostgreSQL fails the test (`GATEWAY_TEST_REQUIRE_POSTGRES=1`, set by CI).
pub fn pg_required() -> bool {
    std::env::var("GATEWAY_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A [`PostgresStore`] in a schema of its own, dropped by [`PgTestDb::drop_schema`].
pub struct PgTestDb {
    pub url: String,
    pub schema: String,
    pub store: PostgresStore,
}

impl PgTestDb {
    /// A fresh schema named after `label`; `None` (after printing why) when PostgreSQL cannot be
    /// reached and is not required. Panics when it is required.
    pub async fn create(label: &str) -> Option<PgTestDb> {
        let url = pg_test_url();
        let clean: String = label.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(30).collect();
        let schema = format!("gwt_{clean}_{}_{:08x}", std::process::id(), rand::random::<u32>());
        match PostgresStore::builder(&url).schema(&schema).max_connections(6).connect().await {
            Ok(store) => Some(PgTestDb { url, schema, store }),
            Err(e) if !pg_required() => {
                eprintln!("skipped: PostgreSQL not reachable at {url} ({e})");
                None
            }
            Err(e) => panic!("PostgreSQL is required (GATEWAY_TEST_REQUIRE_POSTGRES=1) but {url} failed: {e}"),
        }
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(&self) {
        if let Err(e) = drop_schema(&self.url, &self.schema).await {
            eprintln!("warning: could not drop schema {}: {e}", self.schema);
        }
    }
}

/// Drops `schema` (cascading) over a direct connection.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    let res = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", schema.replace('"', ""))).await;
    drop(client);
    let _ = task.await;
    res
}

/// Runs `f` on a PostgreSQL store in a fresh schema, drops the schema, then re-raises any panic.
/// Returns without running when PostgreSQL is unreachable and not required.
pub async fn with_pg<F, Fut>(label: &str, f: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = PgTestDb::create(label).await else { return };
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let res = tokio::spawn(f(store, db.schema.clone())).await;
    db.drop_schema().await;
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
}
