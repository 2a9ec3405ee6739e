//! The store test suite, written once and run against every backend (`gateway/tests/store_suite.rs`
//! runs each function on a fresh SQLite file and on PostgreSQL in a fresh schema).
//!
//! Each function takes a fresh, empty store and panics when the store misbehaves. They live in the
//! library (hidden from the docs) so integration tests and other crates' tests can share them.
//! [`PgTestDb`] gives tests a PostgreSQL store in a throwaway schema; [`throwaway::Throwaway`] a
//! private PostgreSQL server they may stop and restart.

mod attempts;
mod idempotency;
mod mail;
mod ordering;
mod portal;
mod queue;
mod retention;
mod sessions;
pub mod throwaway;
mod webhooks;

pub use attempts::*;
pub use idempotency::*;
pub use mail::*;
pub use ordering::*;
pub use portal::*;
pub use queue::*;
pub use retention::*;
pub use sessions::*;
pub use webhooks::*;

use std::sync::Arc;

use serde_json::json;

use super::postgres::PostgresStore;
use super::{AttemptRecord, HealthChange, Store};
use crate::model::{
    Attempt, AttemptOutcome, Delivery, DeliveryStatus, Event, IngestOutcome, NewEvent,
    PluginRecord, PreparedRequest, Scope, Webhook, new_id,
};

// ---------------------------------------------------------------- fixtures

/// A minimal enabled webhook in `scope`, created at `created_at`.
pub fn webhook(scope: Scope, created_at: i64) -> Webhook {
    let id = new_id("wh");
    Webhook {
        // Names are unique (Grafana OnCall's rule, enforced by the stores).
        name: format!("suite-{id}"),
        id,
        scope,
        urls: vec!["https://receiver.example/hook".into()],
        trigger_events: vec!["incident.triggered".into()],
        created_at,
        updated_at: created_at,
        ..Webhook::default()
    }
}

fn team(t: &str) -> Scope {
    Scope::Team { team_id: t.into() }
}

/// An event received at `at` with one pending delivery (due at `at`) per webhook id.
pub fn new_event(at: i64, webhook_ids: &[&str], key: Option<&str>) -> NewEvent {
    let body = json!({ "event_type": "incident_triggered", "message": "disk full", "service": { "id": "svc1" } });
    let event = Event::from_body(new_id("evt"), body, at).expect("valid event");
    let deliveries = webhook_ids
        .iter()
        .map(|w| Delivery::new(&event.id, w, "https://receiver.example/hook", at))
        .collect();
    NewEvent {
        event,
        deliveries,
        idempotency_key: key.map(str::to_string),
    }
}

async fn ingest(store: &dyn Store, at: i64, webhook_ids: &[&str]) -> (String, Vec<Delivery>) {
    let new = new_event(at, webhook_ids, None);
    let id = new.event.id.clone();
    let out = store.ingest(new).await.expect("ingest");
    assert_eq!(
        out,
        IngestOutcome::Created {
            event_id: id.clone(),
            deliveries: webhook_ids.len()
        }
    );
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
        status_code: Some(if outcome == AttemptOutcome::Success {
            200
        } else {
            500
        }),
        response_body: Some("ok".into()),
        error: (outcome != AttemptOutcome::Success).then(|| "HTTP 500".to_string()),
        outcome,
        plugin_logs: Vec::new(),
    }
}

fn record(
    a: Attempt,
    status: DeliveryStatus,
    next: i64,
    request: Option<PreparedRequest>,
    health: HealthChange,
) -> AttemptRecord {
    AttemptRecord {
        delivery_id: a.delivery_id.clone(),
        attempt: a,
        status,
        next_attempt_at: next,
        request,
        health,
        claimed_lease: None,
        failure_note: None,
    }
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
            record_attempts_retried_records_once,
            record_with_a_stale_lease_is_not_recorded,
            ingest_retried_after_commit_is_a_duplicate,
            write_probe_succeeds,
            prune_removes_old_rows_and_keeps_owed_and_recent,
            concurrent_prunes_remove_each_row_once,
            prune_removes_finished_mails_and_keeps_unsent,
            ordered_head_blocks_the_next,
            ordered_next_claimable_after_success,
            ordered_next_claimable_after_give_up,
            ordered_streams_are_per_webhook_and_url,
            ordered_requeue_goes_to_the_back,
            concurrent_claimers_keep_one_in_flight_per_stream,
            console_sessions,
            portal_links_open_once_and_expire,
            delivery_stats_by_bucket_outcome_and_team,
            failure_digest_counts_a_window_once_and_closes_into_one_mail,
            a_digest_that_grew_since_it_was_read_is_not_closed,
            mail_outbox_claims_leases_retries_and_finishes,
            concurrent_mail_claimers_never_share,
            disabling_a_webhook_queues_one_notice_per_transition,
        ];
    };
}

// ---------------------------------------------------------------- PostgreSQL for tests

/// The server tests use: `GATEWAY_TEST_DATABASE_URL`, else the local one.
pub fn pg_test_url() -> String {
    std::env::var("GATEWAY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
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
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let schema = format!(
            "gwt_{clean}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        match PostgresStore::builder(&url)
            .schema(&schema)
            .max_connections(6)
            .connect()
            .await
        {
            Ok(store) => Some(PgTestDb { url, schema, store }),
            Err(e) if !pg_required() => {
                eprintln!("skipped: PostgreSQL not reachable at {url} ({e})");
                None
            }
            Err(e) => panic!(
                "PostgreSQL is required (GATEWAY_TEST_REQUIRE_POSTGRES=1) but {url} failed: {e}"
            ),
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
    let res = client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            schema.replace('"', "")
        ))
        .await;
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
    let Some(db) = PgTestDb::create(label).await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let res = tokio::spawn(f(store, db.schema.clone())).await;
    db.drop_schema().await;
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
}
