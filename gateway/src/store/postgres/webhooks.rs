//! Webhook CRUD, listing, health and enable/disable.

use deadpool_postgres::GenericClient;

use super::{PostgresStore, docs};
use crate::model::{OutboxMail, Scope, Webhook, WebhookHealth};
use crate::store::{Page, StoreError, StoreResult, WEBHOOK_NAME_TAKEN, WebhookQuery};

fn scope_key(scope: &Scope) -> (&'static str, String) {
    match scope {
        Scope::Global => ("global", String::new()),
        Scope::Team { team_id } => ("team", team_id.clone()),
        Scope::Service { service_id, .. } => ("service", service_id.clone()),
    }
}

pub(super) async fn health_of(
    t: &impl GenericClient,
    id: &str,
) -> StoreResult<Option<WebhookHealth>> {
    let row = t
        .query_opt(
            &t.prepare_cached(
                "SELECT consecutive_failures, failing_since FROM webhooks WHERE id = $1",
            )
            .await?,
            &[&id],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(WebhookHealth {
            consecutive_failures: r.try_get::<_, i64>(0)? as u32,
            failing_since: r.try_get(1)?,
        }),
        None => None,
    })
}

/// Serialises name-changing writes of every node (a transaction-scoped advisory lock), then
/// refuses a name another webhook has.
async fn lock_and_check_name(t: &impl GenericClient, id: &str, name: &str) -> StoreResult<()> {
    t.execute(
        "SELECT pg_advisory_xact_lock(hashtext('webhook-gateway webhook names ' || COALESCE(current_schema(), '')))",
        &[],
    )
    .await?;
    let taken = t
        .query_opt(
            "SELECT id FROM webhooks WHERE name = $1 AND id <> $2 LIMIT 1",
            &[&name, &id],
        )
        .await?;
    match taken {
        Some(_) => Err(StoreError::Conflict(WEBHOOK_NAME_TAKEN.into())),
        None => Ok(()),
    }
}

pub(super) async fn insert_webhook(store: &PostgresStore, w: &Webhook) -> StoreResult<()> {
    let doc = serde_json::to_string(w)?;
    let (kind, key) = scope_key(&w.scope);
    store.in_tx(async |t| {
        lock_and_check_name(t, &w.id, &w.name).await?;
        t.execute(
            "INSERT INTO webhooks (id, scope_kind, scope_key, team_id, enabled, doc, created_at, updated_at, name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&w.id, &kind, &key, &w.scope.team(), &(w.is_webhook_enabled as i64), &doc, &w.created_at, &w.updated_at, &w.name],
        )
        .await?;
        Ok(())
    })
    .await
}

pub(super) async fn update_webhook(store: &PostgresStore, w: &Webhook) -> StoreResult<()> {
    let doc = serde_json::to_string(w)?;
    let (kind, key) = scope_key(&w.scope);
    store.in_tx(async |t| {
        let old = t
            .query_opt("SELECT name FROM webhooks WHERE id = $1 FOR UPDATE", &[&w.id])
            .await?
            .ok_or(StoreError::NotFound)?;
        // Only a rename is checked (webhooks that shared a name before names were unique can
        // still be updated, and renamed apart).
        if old.try_get::<_, Option<&str>>(0)? != Some(w.name.as_str()) {
            lock_and_check_name(t, &w.id, &w.name).await?;
        }
        t.execute(
            "UPDATE webhooks SET scope_kind = $2, scope_key = $3, team_id = $4, enabled = $5, doc = $6, updated_at = $7, name = $8 WHERE id = $1",
            &[&w.id, &kind, &key, &w.scope.team(), &(w.is_webhook_enabled as i64), &doc, &w.updated_at, &w.name],
        )
        .await?;
        Ok(())
    })
    .await
}

pub(super) async fn delete_webhook(store: &PostgresStore, id: &str) -> StoreResult<()> {
    store.in_tx(async |t| {
        if t.execute("DELETE FROM webhooks WHERE id = $1", &[&id]).await? == 0 {
            return Err(StoreError::NotFound);
        }
        // Nothing more will be sent for it.
        t.execute(
            "UPDATE deliveries SET status = 'failed', last_error = 'webhook deleted' WHERE webhook_id = $1 AND status IN ('pending', 'in_flight')",
            &[&id],
        )
        .await?;
        Ok(())
    })
    .await
}

pub(super) async fn get_webhook(store: &PostgresStore, id: &str) -> StoreResult<Option<Webhook>> {
    store
        .doc_by("SELECT doc FROM webhooks WHERE id = $1", &[&id])
        .await
}

pub(super) async fn list_webhooks(
    store: &PostgresStore,
    q: &WebhookQuery,
) -> StoreResult<Page<Webhook>> {
    let limit = q.limit.max(1) as i64;
    let offset = q.offset as i64;
    // $1 / $2 NULL: no team / name filter.
    let rows = store
        .query(
            "SELECT doc FROM webhooks WHERE ($1::TEXT IS NULL OR team_id = $1) AND ($2::TEXT IS NULL OR name = $2) ORDER BY created_at, id LIMIT $3 OFFSET $4",
            &[&q.team_id, &q.name, &limit, &offset],
        )
        .await?;
    let total = store
        .count(
            "SELECT COUNT(*) FROM webhooks WHERE ($1::TEXT IS NULL OR team_id = $1) AND ($2::TEXT IS NULL OR name = $2)",
            &[&q.team_id, &q.name],
        )
        .await?;
    Ok(Page {
        items: docs(&rows)?,
        total,
    })
}

pub(super) async fn all_webhooks(store: &PostgresStore) -> StoreResult<Vec<Webhook>> {
    docs(
        &store
            .query("SELECT doc FROM webhooks ORDER BY created_at, id", &[])
            .await?,
    )
}

pub(super) async fn count_webhooks_in_scope(
    store: &PostgresStore,
    scope: &Scope,
) -> StoreResult<u64> {
    let (kind, key) = scope_key(scope);
    store
        .count(
            "SELECT COUNT(*) FROM webhooks WHERE scope_kind = $1 AND scope_key = $2",
            &[&kind, &key],
        )
        .await
}

pub(super) async fn webhook_health(store: &PostgresStore, id: &str) -> StoreResult<WebhookHealth> {
    store
        .with_client(async |c| health_of(c, id).await?.ok_or(StoreError::NotFound))
        .await
}

pub(super) async fn set_webhook_enabled(
    store: &PostgresStore,
    id: &str,
    enabled: bool,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    store.in_tx(async |t| {
        let row = t.query_opt("SELECT doc FROM webhooks WHERE id = $1 FOR UPDATE", &[&id]).await?.ok_or(StoreError::NotFound)?;
        let mut w: Webhook = serde_json::from_str(row.try_get::<_, &str>(0)?)?;
        w.is_webhook_enabled = enabled;
        w.disabled_reason = if enabled { None } else { reason.map(str::to_string) };
        w.updated_at = now;
        let doc = serde_json::to_string(&w)?;
        if enabled {
            t.execute(
                "UPDATE webhooks SET enabled = 1, doc = $2, updated_at = $3, consecutive_failures = 0, failing_since = NULL WHERE id = $1",
                &[&id, &doc, &now],
            )
            .await?;
        } else {
            t.execute("UPDATE webhooks SET enabled = 0, doc = $2, updated_at = $3 WHERE id = $1", &[&id, &doc, &now]).await?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn disable_webhook(
    store: &PostgresStore,
    id: &str,
    reason: &str,
    now: i64,
    notice: Option<&OutboxMail>,
) -> StoreResult<bool> {
    store
        .in_tx(async |t| {
            // The row lock makes a second node's disable wait here, then see it disabled.
            let row = t
                .query_opt(
                    "SELECT enabled <> 0, doc FROM webhooks WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?
                .ok_or(StoreError::NotFound)?;
            if !row.try_get::<_, bool>(0)? {
                return Ok(false);
            }
            let mut w: Webhook = serde_json::from_str(row.try_get::<_, &str>(1)?)?;
            w.is_webhook_enabled = false;
            w.disabled_reason = Some(reason.to_string());
            w.updated_at = now;
            let doc = serde_json::to_string(&w)?;
            t.execute(
                "UPDATE webhooks SET enabled = 0, doc = $2, updated_at = $3 WHERE id = $1",
                &[&id, &doc, &now],
            )
            .await?;
            if let Some(m) = notice {
                super::mail::insert_mail(t, m).await?;
            }
            Ok(true)
        })
        .await
}
