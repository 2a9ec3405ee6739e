//! `store copy` round trip: a SQLite store filled through the `Store` trait, copied into a fresh
//! PostgreSQL schema, read back through `PostgresStore` and compared; a second run adds nothing.

use std::sync::Arc;

use gateway::model::{
    AttemptOutcome, AttemptQuery, DeliveryStatus, IngestOutcome, PluginRecord, Role, Scope,
};
use gateway::store::copy::{self, CopyOptions};
use gateway::store::sqlite::SqliteStore;
use gateway::store::suite::{self, attempt, new_event, webhook};
use gateway::store::{AttemptRecord, HealthChange, Store};

const DAY: i64 = 86_400_000;

fn rec(a: gateway::model::Attempt, status: DeliveryStatus, health: HealthChange) -> AttemptRecord {
    AttemptRecord {
        delivery_id: a.delivery_id.clone(),
        next_attempt_at: a.started_at + 60_000,
        attempt: a,
        status,
        request: None,
        health,
        claimed_lease: None,
        failure_note: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_copied_to_postgres_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let p = path.clone();
    let src: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || SqliteStore::open(&p))
            .await
            .unwrap()
            .unwrap(),
    );
    let now = chrono::Utc::now().timestamp_millis();

    // Keys, webhooks (one failing), plugins sharing bytes.
    for (i, role) in [Role::Admin, Role::Manager].into_iter().enumerate() {
        let key = gateway::model::ApiKey {
            id: format!("key_{i}"),
            name: format!("k{i}"),
            role,
            team_id: (role == Role::Manager).then(|| "t1".into()),
            token_hash: format!("hash{i}"),
            created_at: now + i as i64,
            expires_at: Some(now + 86_400_000),
            last_used_at: Some(now),
            revoked_at: (role == Role::Manager).then_some(now),
            bootstrap: role == Role::Admin,
        };
        src.insert_api_key(key).await.unwrap();
    }
    let healthy = webhook(Scope::Global, now - 3 * DAY);
    let failing = webhook(
        Scope::Team {
            team_id: "t1".into(),
        },
        now - 2 * DAY,
    );
    src.insert_webhook(&healthy).await.unwrap();
    src.insert_webhook(&failing).await.unwrap();
    let plugin = |name: &str, sha: &str| PluginRecord {
        name: name.into(),
        version: "1.0.0".into(),
        kind: "transformer".into(),
        sha256: sha.into(),
        size: 4,
        description: None,
        builtin: false,
        created_at: now,
    };
    src.put_plugin(&plugin("template", "sha-1"), &[0, 97, 115, 109])
        .await
        .unwrap();
    src.put_plugin(&plugin("slack", "sha-1"), &[0, 97, 115, 109])
        .await
        .unwrap();
    src.put_plugin(&plugin("pagerduty", "sha-2"), &[1, 2, 255])
        .await
        .unwrap();

    // An old finished event (stays behind), its old attempt, and a failure counted on `failing`.
    let done = new_event(now - 9 * DAY, &[&healthy.id, &failing.id], Some("done-key"));
    let done_id = done.event.id.clone();
    src.ingest(done).await.unwrap();
    let ds = src
        .claim_due(now - 9 * DAY, now - 9 * DAY + 30_000, 10)
        .await
        .unwrap();
    let mut recs = Vec::new();
    for d in &ds {
        let (outcome, status, health) = if d.webhook_id == healthy.id {
            (
                AttemptOutcome::Success,
                DeliveryStatus::Succeeded,
                HealthChange::Success,
            )
        } else {
            (
                AttemptOutcome::Failed,
                DeliveryStatus::Failed,
                HealthChange::DeliveryFailed,
            )
        };
        recs.push(rec(
            attempt(d, 1, now - 9 * DAY + 10, outcome),
            status,
            health,
        ));
    }
    src.record_attempts(recs).await.unwrap();

    // A queued event: one delivery retrying (recent attempt), one in flight, one succeeded.
    let third = webhook(Scope::Global, now - DAY);
    src.insert_webhook(&third).await.unwrap();
    let queued = new_event(
        now - 60_000,
        &[&healthy.id, &failing.id, &third.id],
        Some("queued-key"),
    );
    let queued_id = queued.event.id.clone();
    src.ingest(queued).await.unwrap();
    let claimed = src
        .claim_due(now - 60_000, now + 300_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let by = |w: &str| claimed.iter().find(|d| d.webhook_id == w).unwrap().clone();
    src.record_attempts(vec![
        rec(
            attempt(&by(&failing.id), 1, now - 50_000, AttemptOutcome::Retry),
            DeliveryStatus::Pending,
            HealthChange::AttemptFailed,
        ),
        rec(
            attempt(&by(&third.id), 1, now - 40_000, AttemptOutcome::Success),
            DeliveryStatus::Succeeded,
            HealthChange::Success,
        ),
    ])
    .await
    .unwrap();

    suite::with_pg("store_copy", move |dst, schema| async move {
        let url = suite::pg_test_url();
        let pg = gateway::store::postgres::PostgresStore::connect_with_schema(&url, &schema)
            .await
            .unwrap();
        let first = copy::sqlite_to_postgres(&path, &pg, CopyOptions::last_days(7))
            .await
            .unwrap();
        println!("{first}");
        for (table, n) in [
            ("api_keys", 2),
            ("webhooks", 3),
            ("plugin_blobs", 2),
            ("plugins", 3),
            ("events", 1),
            ("deliveries", 3),
            ("idempotency_keys", 1),
            ("attempts", 2),
        ] {
            assert_eq!(first.inserted(table), n, "{table}");
        }

        assert_eq!(
            dst.list_api_keys().await.unwrap(),
            src.list_api_keys().await.unwrap()
        );
        assert_eq!(
            dst.all_webhooks().await.unwrap(),
            src.all_webhooks().await.unwrap()
        );
        for w in [&healthy, &failing, &third] {
            assert_eq!(
                dst.webhook_health(&w.id).await.unwrap(),
                src.webhook_health(&w.id).await.unwrap(),
                "health of {}",
                w.id
            );
        }
        assert_eq!(
            dst.webhook_health(&failing.id)
                .await
                .unwrap()
                .consecutive_failures,
            1
        );
        assert_eq!(
            dst.list_plugins().await.unwrap(),
            src.list_plugins().await.unwrap()
        );
        for sha in ["sha-1", "sha-2"] {
            assert_eq!(
                dst.plugin_bytes(sha).await.unwrap(),
                src.plugin_bytes(sha).await.unwrap()
            );
        }

        assert_eq!(
            dst.get_event(&queued_id).await.unwrap(),
            src.get_event(&queued_id).await.unwrap()
        );
        assert_eq!(
            dst.deliveries_for_event(&queued_id).await.unwrap(),
            src.deliveries_for_event(&queued_id).await.unwrap()
        );
        assert_eq!(
            dst.get_event(&done_id).await.unwrap(),
            None,
            "finished events stay behind"
        );
        let recent = AttemptQuery {
            limit: 100,
            ..Default::default()
        };
        let copied = dst.list_attempts(&recent).await.unwrap();
        assert_eq!(
            copied.items,
            src.list_attempts(&AttemptQuery {
                since: Some(now - 7 * DAY),
                ..recent.clone()
            })
            .await
            .unwrap()
            .items
        );
        assert_eq!(copied.total, 2, "older attempts stay behind");

        // The copied queue works: the in-flight delivery is due at its lease end, the retry at
        // its next time; the idempotency key still answers.
        assert_eq!(
            dst.next_due_at().await.unwrap(),
            src.next_due_at().await.unwrap()
        );
        let due = dst
            .claim_due(now + 300_000, now + 600_000, 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 2);
        let again = new_event(now, &[&healthy.id], Some("queued-key"));
        assert_eq!(
            dst.ingest(again).await.unwrap(),
            IngestOutcome::Duplicate {
                event_id: queued_id.clone()
            }
        );

        // A re-run inserts nothing and overwrites nothing (the claim above is kept).
        let report = copy::sqlite_to_postgres(&path, &pg, CopyOptions::last_days(7))
            .await
            .unwrap();
        // Every table reads what the first run read (tables the source never wrote, such as
        // sessions or the mail outbox here, read nothing both times).
        assert_eq!(report.tables.len(), first.tables.len(), "{report}");
        for ((table, read, inserted), (_, first_read, _)) in report.tables.iter().zip(&first.tables)
        {
            assert_eq!(*inserted, 0, "{table} re-inserted rows:\n{report}");
            assert_eq!(read, first_read, "{table} read differently:\n{report}");
        }
        assert!(
            dst.deliveries_for_event(&queued_id)
                .await
                .unwrap()
                .iter()
                .all(|d| d.status != DeliveryStatus::Pending)
        );
    })
    .await;
}

#[tokio::test]
async fn copy_refuses_a_missing_file() {
    suite::with_pg("copy_missing", |_dst, schema| async move {
        let pg = gateway::store::postgres::PostgresStore::connect_with_schema(
            &suite::pg_test_url(),
            &schema,
        )
        .await
        .unwrap();
        let err = copy::sqlite_to_postgres(
            std::path::Path::new("/nonexistent/gateway.db"),
            &pg,
            CopyOptions::last_days(7),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no such SQLite file"), "{err}");
    })
    .await;
}
