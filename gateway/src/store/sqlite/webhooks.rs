//! Webhook CRUD, listing, health and enable/disable.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::model::{OutboxMail, Scope, Webhook, WebhookHealth};
use crate::store::{Page, StoreError, StoreResult, WEBHOOK_NAME_TAKEN, WebhookQuery};

fn scope_key(scope: &Scope) -> (&'static str, String) {
    match scope {
        Scope::Global => ("global", String::new()),
        Scope::Team { team_id } => ("team", team_id.clone()),
        Scope::Service { service_id, .. } => ("service", service_id.clone()),
    }
}

fn webhook_from_row(r: &Row<'_>) -> rusqlite::Result<String> {
    r.get::<_, String>(0)
}

pub(super) fn health_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<WebhookHealth>> {
    conn.query_row(
        "SELECT consecutive_failures, failing_since FROM webhooks WHERE id = ?1",
        [id],
        |r| {
            Ok(WebhookHealth {
                consecutive_failures: r.get::<_, i64>(0)? as u32,
                failing_since: r.get(1)?,
            })
        },
    )
    .optional()
}

/// Refuses a name another webhook has (checked in the writing transaction: SQLite has one writer).
fn check_name(t: &Connection, id: &str, name: &str) -> StoreResult<()> {
    let taken: Option<String> = t
        .query_row(
            "SELECT id FROM webhooks WHERE name = ?1 AND id <> ?2 LIMIT 1",
            params![name, id],
            |r| r.get(0),
        )
        .optional()?;
    match taken {
        Some(_) => Err(StoreError::Conflict(WEBHOOK_NAME_TAKEN.into())),
        None => Ok(()),
    }
}

pub(super) async fn insert_webhook(store: &SqliteStore, webhook: &Webhook) -> StoreResult<()> {
    let w = webhook.clone();
    let doc = serde_json::to_string(&w)?;
    store.write(move |t| {
        check_name(t, &w.id, &w.name)?;
        let (kind, key) = scope_key(&w.scope);
        t.execute(
            "INSERT INTO webhooks (id, scope_kind, scope_key, team_id, enabled, doc, created_at, updated_at, name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![w.id, kind, key, w.scope.team(), w.is_webhook_enabled as i64, doc, w.created_at, w.updated_at, w.name],
        )?;
        Ok(())
    })
    .await
}

pub(super) async fn update_webhook(store: &SqliteStore, webhook: &Webhook) -> StoreResult<()> {
    let w = webhook.clone();
    let doc = serde_json::to_string(&w)?;
    store.write(move |t| {
        // Only a rename is checked, so webhooks that shared a name before names were unique
        // can still be updated (and renamed apart).
        let old: Option<Option<String>> = t
            .query_row("SELECT name FROM webhooks WHERE id = ?1", [&w.id], |r| r.get(0))
            .optional()?;
        if old.as_ref().is_some_and(|o| o.as_deref() != Some(w.name.as_str())) {
            check_name(t, &w.id, &w.name)?;
        }
        let (kind, key) = scope_key(&w.scope);
        let n = t.execute(
            "UPDATE webhooks SET scope_kind = ?2, scope_key = ?3, team_id = ?4, enabled = ?5, doc = ?6, updated_at = ?7, name = ?8 WHERE id = ?1",
            params![w.id, kind, key, w.scope.team(), w.is_webhook_enabled as i64, doc, w.updated_at, w.name],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    })
    .await
}

pub(super) async fn delete_webhook(store: &SqliteStore, id: &str) -> StoreResult<()> {
    let id = id.to_string();
    store.write(move |t| {
        if t.execute("DELETE FROM webhooks WHERE id = ?1", [&id])? == 0 {
            return Err(StoreError::NotFound);
        }
        // Nothing more will be sent for it.
        t.execute(
            "UPDATE deliveries SET status = 'failed', last_error = 'webhook deleted' WHERE webhook_id = ?1 AND status IN ('pending', 'in_flight')",
            [&id],
        )?;
        Ok(())
    })
    .await
}

pub(super) async fn get_webhook(store: &SqliteStore, id: &str) -> StoreResult<Option<Webhook>> {
    let id = id.to_string();
    let doc = store
        .read(move |c| {
            Ok(c.prepare_cached("SELECT doc FROM webhooks WHERE id = ?1")?
                .query_row([id], webhook_from_row)
                .optional()?)
        })
        .await?;
    Ok(match doc {
        Some(d) => Some(serde_json::from_str(&d)?),
        None => None,
    })
}

pub(super) async fn list_webhooks(
    store: &SqliteStore,
    query: &WebhookQuery,
) -> StoreResult<Page<Webhook>> {
    let q = query.clone();
    let (docs, total) = store
        .read(move |c| {
            let limit = q.limit.max(1) as i64;
            let offset = q.offset as i64;
            // ?1 / ?2 NULL: no team / name filter.
            const WHERE: &str = "WHERE (?1 IS NULL OR team_id = ?1) AND (?2 IS NULL OR name = ?2)";
            let mut s = c.prepare_cached(&format!(
                "SELECT doc FROM webhooks {WHERE} ORDER BY created_at, id LIMIT ?3 OFFSET ?4"
            ))?;
            let docs: Vec<String> = s
                .query_map(params![q.team_id, q.name, limit, offset], webhook_from_row)?
                .collect::<Result<_, _>>()?;
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM webhooks {WHERE}"),
                params![q.team_id, q.name],
                |r| r.get(0),
            )?;
            Ok((docs, total as u64))
        })
        .await?;
    let items = docs
        .iter()
        .map(|d| serde_json::from_str(d))
        .collect::<Result<Vec<Webhook>, _>>()?;
    Ok(Page { items, total })
}

pub(super) async fn all_webhooks(store: &SqliteStore) -> StoreResult<Vec<Webhook>> {
    let docs: Vec<String> = store
        .read(|c| {
            let mut s = c.prepare("SELECT doc FROM webhooks ORDER BY created_at, id")?;
            let docs = s
                .query_map([], webhook_from_row)?
                .collect::<Result<_, _>>()?;
            Ok(docs)
        })
        .await?;
    Ok(docs
        .iter()
        .map(|d| serde_json::from_str(d))
        .collect::<Result<Vec<Webhook>, _>>()?)
}

pub(super) async fn count_webhooks_in_scope(
    store: &SqliteStore,
    scope: &Scope,
) -> StoreResult<u64> {
    let (kind, key) = scope_key(scope);
    store
        .read(move |c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM webhooks WHERE scope_kind = ?1 AND scope_key = ?2",
                params![kind, key],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
        .await
}

pub(super) async fn webhook_health(store: &SqliteStore, id: &str) -> StoreResult<WebhookHealth> {
    let id = id.to_string();
    store
        .read(move |c| health_of(c, &id)?.ok_or(StoreError::NotFound))
        .await
}

pub(super) async fn set_webhook_enabled(
    store: &SqliteStore,
    id: &str,
    enabled: bool,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    let id = id.to_string();
    let reason = reason.map(str::to_string);
    store.write(move |t| {
        let doc: Option<String> =
            t.query_row("SELECT doc FROM webhooks WHERE id = ?1", [&id], |r| r.get(0)).optional()?;
        let mut w: Webhook = serde_json::from_str(&doc.ok_or(StoreError::NotFound)?)?;
        w.is_webhook_enabled = enabled;
        w.disabled_reason = if enabled { None } else { reason };
        w.updated_at = now;
        let doc = serde_json::to_string(&w)?;
        if enabled {
            t.execute(
                "UPDATE webhooks SET enabled = 1, doc = ?2, updated_at = ?3, consecutive_failures = 0, failing_since = NULL WHERE id = ?1",
                params![id, doc, now],
            )?;
        } else {
            t.execute("UPDATE webhooks SET enabled = 0, doc = ?2, updated_at = ?3 WHERE id = ?1", params![id, doc, now])?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn disable_webhook(
    store: &SqliteStore,
    id: &str,
    reason: &str,
    now: i64,
    notice: Option<&OutboxMail>,
) -> StoreResult<bool> {
    let (id, reason, notice) = (id.to_string(), reason.to_string(), notice.cloned());
    // One writer: reading the flag and writing the change cannot interleave with another node's.
    store
        .write(move |t| {
            let row: Option<(i64, String)> = t
                .query_row(
                    "SELECT enabled, doc FROM webhooks WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (enabled, doc) = row.ok_or(StoreError::NotFound)?;
            if enabled == 0 {
                return Ok(false);
            }
            let mut w: Webhook = serde_json::from_str(&doc)?;
            w.is_webhook_enabled = false;
            w.disabled_reason = Some(reason);
            w.updated_at = now;
            t.execute(
                "UPDATE webhooks SET enabled = 0, doc = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, serde_json::to_string(&w)?, now],
            )?;
            if let Some(m) = &notice {
                super::mail::insert_mail(t, m)?;
            }
            Ok(true)
        })
        .await
}
