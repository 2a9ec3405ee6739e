//! The delivery queue: reading deliveries, claiming due ones, recording attempts, requeueing,
//! failing, counting, and listing attempts.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use super::webhooks::health_of;
use crate::model::{Attempt, AttemptQuery, Delivery, DeliveryStatus, WebhookHealth};
use crate::store::{AttemptRecord, HealthChange, Page, StoreError, StoreResult};

const DELIVERY_COLS: &str = "id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at, stream";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = r.get("status")?;
    let request: Option<String> = r.get("request")?;
    Ok(Delivery {
        id: r.get("id")?,
        event_id: r.get("event_id")?,
        webhook_id: r.get("webhook_id")?,
        url: r.get("url")?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending),
        attempts: r.get::<_, i64>("attempts")? as u32,
        next_attempt_at: r.get("next_attempt_at")?,
        lease_until: r.get("lease_until")?,
        request: request.and_then(|s| serde_json::from_str(&s).ok()),
        last_error: r.get("last_error")?,
        last_status_code: r
            .get::<_, Option<i64>>("last_status_code")?
            .map(|c| c as u16),
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        stream: r.get::<_, Option<i64>>("stream")?.map(|s| s as u32),
    })
}

pub(super) async fn get_delivery(store: &SqliteStore, id: &str) -> StoreResult<Option<Delivery>> {
    let id = id.to_string();
    store
        .read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLS} FROM deliveries WHERE id = ?1"
            ))?
            .query_row([id], delivery_from_row)
            .optional()?)
        })
        .await
}

pub(super) async fn deliveries_for_event(
    store: &SqliteStore,
    event_id: &str,
) -> StoreResult<Vec<Delivery>> {
    let id = event_id.to_string();
    store
        .read(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLS} FROM deliveries WHERE event_id = ?1 ORDER BY id"
            ))?;
            let rows = s
                .query_map([id], delivery_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}

/// The ordered deliveries at the head of their (webhook, url) stream: no earlier one there is
/// still owed (pending, in flight, or waiting for a retry). `d` is the candidate row.
const STREAM_HEAD: &str = "d.stream IS NOT NULL AND d.status IN ('pending', 'in_flight') AND NOT EXISTS (SELECT 1 FROM deliveries e \
     WHERE e.stream IS NOT NULL AND e.status IN ('pending', 'in_flight') AND e.webhook_id = d.webhook_id AND e.stream = d.stream AND e.seq < d.seq)";

pub(super) async fn claim_due(
    store: &SqliteStore,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> StoreResult<Vec<Delivery>> {
    store.write(move |t| {
        // A claimed delivery's next_attempt_at is its lease end, so one condition finds both
        // pending deliveries that are due and in-flight ones whose worker vanished. Ordered
        // streams go first, at most their head each; unordered deliveries keep their own index
        // and take the rest of the batch.
        let mut rows = t
            .prepare_cached(&format!(
                "UPDATE deliveries SET status = 'in_flight', lease_until = ?2, next_attempt_at = ?2, updated_at = ?1 \
                 WHERE id IN (SELECT d.id FROM deliveries d WHERE {STREAM_HEAD} AND d.next_attempt_at <= ?1 \
                 ORDER BY d.next_attempt_at LIMIT ?3) RETURNING {DELIVERY_COLS}"
            ))?
            .query_map(params![now, lease_until, limit as i64], delivery_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let rest = limit.saturating_sub(rows.len());
        if rest > 0 {
            let mut s = t.prepare_cached(&format!(
                "UPDATE deliveries SET status = 'in_flight', lease_until = ?2, next_attempt_at = ?2, updated_at = ?1 \
                 WHERE id IN (SELECT id FROM deliveries WHERE status IN ('pending', 'in_flight') AND stream IS NULL AND next_attempt_at <= ?1 \
                 ORDER BY next_attempt_at LIMIT ?3) RETURNING {DELIVERY_COLS}"
            ))?;
            for d in s.query_map(params![now, lease_until, rest as i64], delivery_from_row)? {
                rows.push(d?);
            }
        }
        Ok(rows)
    })
    .await
}

pub(super) async fn next_due_at(store: &SqliteStore) -> StoreResult<Option<i64>> {
    // Deliveries waiting behind their stream's head are not due: they do not wake workers.
    store
        .read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT MIN(t) FROM (SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE status IN ('pending', 'in_flight') AND stream IS NULL \
                 UNION ALL SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE {STREAM_HEAD})"
            ))?
            .query_row([], |r| r.get::<_, Option<i64>>(0))?)
        })
        .await
}

pub(super) async fn record_attempts(
    store: &SqliteStore,
    records: Vec<AttemptRecord>,
) -> StoreResult<Vec<(String, WebhookHealth)>> {
    store.write(move |t| {
        let mut healths = Vec::new();
        for rec in &records {
            let a = &rec.attempt;
            // Already stored (an earlier call committed): skip the whole record, so a retry
            // after an unknown outcome records once.
            let seen = t
                .prepare_cached("SELECT 1 FROM attempts WHERE id = ?1")?
                .query_row([&a.id], |_| Ok(()))
                .optional()?
                .is_some();
            if seen {
                continue;
            }
            // Compare-and-set on the claim: a delivery whose lease another worker took since is
            // not recorded over.
            let request = rec.request.as_ref().map(serde_json::to_string).transpose()?;
            let changed = t.prepare_cached(
                "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3, lease_until = NULL, \
                 request = COALESCE(request, ?4), last_error = ?5, last_status_code = ?6, updated_at = ?7 \
                 WHERE id = ?1 AND (?8 = 0 OR lease_until IS ?9)",
            )?
            .execute(params![
                rec.delivery_id,
                rec.status.as_str(),
                rec.next_attempt_at,
                request,
                a.error,
                a.status_code.map(|c| c as i64),
                a.started_at + a.duration_ms as i64,
                rec.claimed_lease.is_some() as i64,
                rec.claimed_lease,
            ])?;
            if changed == 0 {
                tracing::info!(delivery = %rec.delivery_id, "attempt of a delivery whose lease was taken over not recorded");
                continue;
            }
            t.prepare_cached(
                "INSERT INTO attempts (id, delivery_id, webhook_id, event_id, attempt_no, started_at, outcome, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                a.id,
                a.delivery_id,
                a.webhook_id,
                a.event_id,
                a.attempt_no as i64,
                a.started_at,
                a.outcome.as_str(),
                serde_json::to_string(a)?
            ])?;
            if let Some(note) = &rec.failure_note {
                super::mail::note_failure(t, a, note)?;
            }
            let now = a.started_at;
            let sql = match rec.health {
                HealthChange::None => continue,
                // Healthy webhooks (the common case) are not rewritten.
                HealthChange::Success => {
                    "UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL \
                     WHERE id = ?1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)"
                }
                HealthChange::AttemptFailed => "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?2) WHERE id = ?1",
                HealthChange::DeliveryFailed => {
                    "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, ?2) WHERE id = ?1"
                }
            };
            if rec.health == HealthChange::Success {
                // A success never disables: nothing to read back.
                t.prepare_cached(sql)?.execute([&a.webhook_id])?;
                continue;
            } else {
                t.prepare_cached(sql)?.execute(params![a.webhook_id, now])?;
            }
            if let Some(h) = health_of(t, &a.webhook_id)? {
                healths.push((a.webhook_id.clone(), h));
            }
        }
        Ok(healths)
    })
    .await
}

/// Moves an ordered delivery to the back of its stream (one past the highest seq owed there);
/// an unordered one keeps no seq.
const TO_THE_BACK: &str = "seq = CASE WHEN stream IS NOT NULL THEN (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM deliveries e \
     WHERE e.stream IS NOT NULL AND e.status IN ('pending', 'in_flight') AND e.webhook_id = deliveries.webhook_id AND e.stream = deliveries.stream) ELSE seq END";

pub(super) async fn requeue_delivery(store: &SqliteStore, id: &str, now: i64) -> StoreResult<()> {
    let id = id.to_string();
    store.write(move |t| {
        let n = t.execute(
            &format!("UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, lease_until = NULL, updated_at = ?2, {TO_THE_BACK} WHERE id = ?1"),
            params![id, now],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    })
    .await
}

pub(super) async fn requeue_failed_since(
    store: &SqliteStore,
    webhook_id: &str,
    since: i64,
    now: i64,
) -> StoreResult<u64> {
    let id = webhook_id.to_string();
    store.write(move |t| {
        // One by one in their old order, so requeued ordered deliveries keep their order among
        // themselves at the back of the stream.
        let ids: Vec<String> = t
            .prepare_cached(
                "SELECT id FROM deliveries WHERE webhook_id = ?1 AND status = 'failed' AND created_at >= ?2 ORDER BY created_at, seq, id",
            )?
            .query_map(params![id, since], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut requeue = t.prepare_cached(&format!(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, lease_until = NULL, updated_at = ?2, {TO_THE_BACK} WHERE id = ?1"
        ))?;
        for d in &ids {
            requeue.execute(params![d, now])?;
        }
        Ok(ids.len() as u64)
    })
    .await
}

pub(super) async fn fail_pending_for_webhook(
    store: &SqliteStore,
    webhook_id: &str,
    reason: &str,
    now: i64,
) -> StoreResult<u64> {
    let id = webhook_id.to_string();
    let reason = reason.to_string();
    store.write(move |t| {
        let n = t.execute(
            "UPDATE deliveries SET status = 'failed', last_error = ?2, updated_at = ?3 WHERE webhook_id = ?1 AND status = 'pending'",
            params![id, reason, now],
        )?;
        Ok(n as u64)
    })
    .await
}

pub(super) async fn list_attempts(
    store: &SqliteStore,
    query: &AttemptQuery,
) -> StoreResult<Page<Attempt>> {
    let q = query.clone();
    let (docs, total) = store
        .read(move |c| {
            let mut where_ = vec!["1 = 1".to_string()];
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut push = |cond: &str, v: rusqlite::types::Value| {
                args.push(v);
                where_.push(format!("{cond} ?{}", args.len()));
            };
            if let Some(w) = &q.webhook_id {
                push("webhook_id =", w.clone().into());
            }
            if let Some(d) = &q.delivery_id {
                push("delivery_id =", d.clone().into());
            }
            if let Some(o) = q.outcome {
                push("outcome =", o.as_str().to_string().into());
            }
            if let Some(s) = q.since {
                push("started_at >=", s.into());
            }
            if let Some(u) = q.until {
                push("started_at <=", u.into());
            }
            let cond = where_.join(" AND ");
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM attempts WHERE {cond}"),
                rusqlite::params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let n = args.len();
            args.push((q.limit.max(1) as i64).into());
            args.push((q.offset as i64).into());
            let mut s = c.prepare(&format!(
                "SELECT doc FROM attempts WHERE {cond} ORDER BY started_at DESC, id DESC LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            ))?;
            let docs: Vec<String> = s.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok((docs, total as u64))
        })
        .await?;
    let items = docs
        .iter()
        .map(|d| serde_json::from_str(d))
        .collect::<Result<Vec<Attempt>, _>>()?;
    Ok(Page { items, total })
}

pub(super) async fn delivery_counts(
    store: &SqliteStore,
) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
    store
        .read(|c| {
            let mut s = c.prepare("SELECT status, COUNT(*) FROM deliveries GROUP BY status")?;
            let rows = s
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(s, n)| DeliveryStatus::parse(&s).map(|s| (s, n as u64)))
                .collect())
        })
        .await
}
