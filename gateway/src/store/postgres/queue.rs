//! The delivery queue: reading deliveries, claiming due ones (`FOR UPDATE SKIP LOCKED`),
//! recording attempts, requeueing, failing, counting, and listing attempts.

use std::collections::{HashMap, HashSet};

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::webhooks::health_of;
use super::{DELIVERY_COLS, PostgresStore, docs};
use crate::model::{Attempt, AttemptQuery, Delivery, DeliveryStatus, WebhookHealth};
use crate::store::{AttemptRecord, HealthChange, Page, StoreError, StoreResult};

fn delivery_from_row(r: &Row) -> StoreResult<Delivery> {
    let status: String = r.try_get("status")?;
    let request: Option<String> = r.try_get("request")?;
    Ok(Delivery {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        webhook_id: r.try_get("webhook_id")?,
        url: r.try_get("url")?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending),
        attempts: r.try_get::<_, i64>("attempts")? as u32,
        next_attempt_at: r.try_get("next_attempt_at")?,
        lease_until: r.try_get("lease_until")?,
        request: request.and_then(|s| serde_json::from_str(&s).ok()),
        last_error: r.try_get("last_error")?,
        last_status_code: r
            .try_get::<_, Option<i64>>("last_status_code")?
            .map(|c| c as u16),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        stream: r.try_get::<_, Option<i64>>("stream")?.map(|s| s as u32),
    })
}

pub(super) async fn get_delivery(store: &PostgresStore, id: &str) -> StoreResult<Option<Delivery>> {
    store
        .query_opt(
            &format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
}

pub(super) async fn deliveries_for_event(
    store: &PostgresStore,
    event_id: &str,
) -> StoreResult<Vec<Delivery>> {
    store
        .query(
            &format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE event_id = $1 ORDER BY id"),
            &[&event_id],
        )
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}

/// The head of every ordered (webhook, url) stream: its owed delivery (pending, in flight, or
/// waiting for a retry) with the lowest seq. Read from the `deliveries_stream` index.
const STREAM_HEADS: &str = "SELECT DISTINCT ON (webhook_id, stream) id, next_attempt_at FROM deliveries \
     WHERE stream IS NOT NULL AND status IN ('pending', 'in_flight') ORDER BY webhook_id, stream, seq";

pub(super) async fn claim_due(
    store: &PostgresStore,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> StoreResult<Vec<Delivery>> {
    // A claimed delivery's next_attempt_at is its lease end, so one condition finds both
    // pending deliveries that are due and in-flight ones whose worker vanished. SKIP LOCKED
    // lets other nodes claim other rows meanwhile; a row another node claimed and committed
    // since our snapshot is re-checked against the condition and dropped.
    //
    // Ordered streams go first, their head only: a head another node claimed meanwhile fails
    // the re-check, and the next delivery of a stream is a head in our snapshot only once the
    // earlier one had finished in it, so two nodes never send consecutive deliveries of one
    // stream at once. Unordered deliveries keep their own index and take the rest of the batch.
    let limit = limit as i64;
    let rows = store
        .query(
            &format!(
                "WITH heads AS ({STREAM_HEADS}), \
                 due_ordered AS (SELECT d.id FROM deliveries d JOIN heads h ON h.id = d.id \
                 WHERE h.next_attempt_at <= $1 AND d.status IN ('pending', 'in_flight') AND d.next_attempt_at <= $1 \
                 ORDER BY h.next_attempt_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED), \
                 due_unordered AS (SELECT id FROM deliveries WHERE status IN ('pending', 'in_flight') AND stream IS NULL AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT GREATEST($3 - (SELECT COUNT(*) FROM due_ordered), 0) FOR UPDATE SKIP LOCKED), \
                 due AS (SELECT id FROM due_ordered UNION ALL SELECT id FROM due_unordered) \
                 UPDATE deliveries d SET status = 'in_flight', lease_until = $2, next_attempt_at = $2, updated_at = $1 \
                 FROM due WHERE d.id = due.id RETURNING {}",
                DELIVERY_COLS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ")
            ),
            &[&now, &lease_until, &limit],
        )
        .await?;
    rows.iter().map(delivery_from_row).collect()
}

pub(super) async fn next_due_at(store: &PostgresStore) -> StoreResult<Option<i64>> {
    // Deliveries waiting behind their stream's head are not due: they do not wake workers.
    let rows = store
        .query(
            &format!(
                "SELECT MIN(t) FROM (SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE status IN ('pending', 'in_flight') AND stream IS NULL \
                 UNION ALL SELECT MIN(next_attempt_at) FROM ({STREAM_HEADS}) h) m"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .first()
        .map(|r| r.try_get::<_, Option<i64>>(0))
        .transpose()?
        .flatten())
}

pub(super) async fn record_attempts(
    store: &PostgresStore,
    records: Vec<AttemptRecord>,
) -> StoreResult<Vec<(String, WebhookHealth)>> {
    store.in_tx(async |t| {
        // Lock the webhooks whose health changes in one order up front: concurrent batches
        // (other workers, other nodes) then queue instead of deadlocking.
        let mut ids: Vec<&str> =
            records.iter().filter(|r| r.health != HealthChange::None).map(|r| r.attempt.webhook_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            t.execute("SELECT 1 FROM (SELECT id FROM webhooks WHERE id = ANY($1) ORDER BY id FOR UPDATE) l", &[&ids]).await?;
        }
        // 1. The attempt logs, skipping ids already stored: a retry of a batch whose commit
        //    landed (answer lost) finds them all there and changes nothing.
        let (mut ids, mut dids, mut wids, mut eids, mut nos, mut starts, mut outcomes, mut adocs) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for rec in &records {
            let a = &rec.attempt;
            ids.push(a.id.as_str());
            dids.push(rec.delivery_id.as_str());
            wids.push(a.webhook_id.as_str());
            eids.push(a.event_id.as_str());
            nos.push(a.attempt_no as i64);
            starts.push(a.started_at);
            outcomes.push(a.outcome.as_str());
            adocs.push(serde_json::to_string(a)?);
        }
        let fresh: HashSet<String> = t
            .query(
                &t.prepare_cached(
                    "INSERT INTO attempts (id, delivery_id, webhook_id, event_id, attempt_no, started_at, outcome, doc) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[]) \
                     ON CONFLICT (id) DO NOTHING RETURNING id",
                )
                .await?,
                &[&ids, &dids, &wids, &eids, &nos, &starts, &outcomes, &adocs],
            )
            .await?
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<_, _>>()?;
        let fresh: Vec<&AttemptRecord> = records.iter().filter(|r| fresh.contains(&r.attempt.id)).collect();
        // 2. One row per delivery (a batch may hold two attempts of one delivery): the last
        //    attempt sets the state, the first request given is kept, attempts add up, and the
        //    first record's lease is the one the row must still hold (compare-and-set).
        let (mut udids, mut statuses, mut nexts, mut requests, mut errors, mut codes, mut updated, mut counts) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut checks, mut leases) = (vec![], vec![]);
        let mut index: HashMap<&str, usize> = HashMap::new();
        for rec in &fresh {
            let a = &rec.attempt;
            let request = rec.request.as_ref().map(serde_json::to_string).transpose()?;
            let i = *index.entry(rec.delivery_id.as_str()).or_insert_with(|| {
                udids.push(rec.delivery_id.as_str());
                statuses.push("");
                nexts.push(0);
                requests.push(None);
                errors.push(None);
                codes.push(None);
                updated.push(0);
                counts.push(0i64);
                checks.push(rec.claimed_lease.is_some());
                leases.push(rec.claimed_lease);
                udids.len() - 1
            });
            statuses[i] = rec.status.as_str();
            nexts[i] = rec.next_attempt_at;
            if requests[i].is_none() {
                requests[i] = request;
            }
            errors[i] = a.error.clone();
            codes[i] = a.status_code.map(i64::from);
            updated[i] = a.started_at + a.duration_ms as i64;
            counts[i] += 1;
        }
        let applied: HashSet<String> = if udids.is_empty() {
            HashSet::new()
        } else {
            t.query(
                &t.prepare_cached(
                    "UPDATE deliveries d SET status = v.status, attempts = d.attempts + v.n, next_attempt_at = v.next, lease_until = NULL, \
                     request = COALESCE(d.request, v.request), last_error = v.error, last_status_code = v.code, updated_at = v.updated \
                     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bool[], $10::bigint[]) \
                     AS v(id, status, next, request, error, code, updated, n, checked, lease) \
                     WHERE d.id = v.id AND (NOT v.checked OR d.lease_until IS NOT DISTINCT FROM v.lease) RETURNING d.id",
                )
                .await?,
                &[&udids, &statuses, &nexts, &requests, &errors, &codes, &updated, &counts, &checks, &leases],
            )
            .await?
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<_, _>>()?
        };
        // 3. Attempts of deliveries this node no longer holds are not recorded at all.
        let stale: Vec<&str> =
            fresh.iter().filter(|r| !applied.contains(&r.delivery_id)).map(|r| r.attempt.id.as_str()).collect();
        if !stale.is_empty() {
            tracing::info!(n = stale.len(), "attempts of deliveries whose lease another node took were not recorded");
            t.execute("DELETE FROM attempts WHERE id = ANY($1)", &[&stale]).await?;
        }
        let mut healths = Vec::new();
        for rec in fresh.iter().filter(|r| applied.contains(&r.delivery_id)) {
            let a = &rec.attempt;
            let now = a.started_at;
            if let Some(note) = &rec.failure_note {
                super::mail::note_failure(t, a, note).await?;
            }
            match rec.health {
                HealthChange::None => continue,
                HealthChange::Success => {
                    // Healthy webhooks (the common case) are not rewritten, and nothing is
                    // read back: a success never disables.
                    t.execute(
                        "UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL \
                         WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)",
                        &[&a.webhook_id],
                    )
                    .await?;
                    continue;
                }
                HealthChange::AttemptFailed => {
                    t.execute("UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1", &[&a.webhook_id, &now])
                        .await?
                }
                HealthChange::DeliveryFailed => {
                    t.execute(
                        "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, $2) WHERE id = $1",
                        &[&a.webhook_id, &now],
                    )
                    .await?
                }
            };
            if let Some(h) = health_of(t, &a.webhook_id).await? {
                healths.push((a.webhook_id.clone(), h));
            }
        }
        Ok(healths)
    })
    .await
}

pub(super) async fn requeue_delivery(store: &PostgresStore, id: &str, now: i64) -> StoreResult<()> {
    // An ordered delivery goes to the back of its stream with a new seq.
    let n = store
        .execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_until = NULL, updated_at = $2, \
             seq = CASE WHEN stream IS NOT NULL THEN nextval('deliveries_seq') ELSE seq END WHERE id = $1",
            &[&id, &now],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn requeue_failed_since(
    store: &PostgresStore,
    webhook_id: &str,
    since: i64,
    now: i64,
) -> StoreResult<u64> {
    // New seqs drawn in the old order: requeued ordered deliveries keep their order among
    // themselves, at the back of their stream.
    store.execute(
        "WITH r AS (SELECT id FROM deliveries WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2 ORDER BY created_at, seq, id), \
         s AS (SELECT id, nextval('deliveries_seq') AS seq FROM r) \
         UPDATE deliveries d SET status = 'pending', next_attempt_at = $3, lease_until = NULL, updated_at = $3, \
         seq = CASE WHEN d.stream IS NOT NULL THEN s.seq ELSE d.seq END FROM s WHERE d.id = s.id",
        &[&webhook_id, &since, &now],
    )
    .await
}

pub(super) async fn fail_pending_for_webhook(
    store: &PostgresStore,
    webhook_id: &str,
    reason: &str,
    now: i64,
) -> StoreResult<u64> {
    store.execute(
        "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = $3 WHERE webhook_id = $1 AND status = 'pending'",
        &[&webhook_id, &reason, &now],
    )
    .await
}

pub(super) async fn list_attempts(
    store: &PostgresStore,
    q: &AttemptQuery,
) -> StoreResult<Page<Attempt>> {
    let mut where_ = vec!["1 = 1".to_string()];
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut push = |cond: &str, v: Box<dyn ToSql + Sync + Send>| {
        args.push(v);
        where_.push(format!("{cond} ${}", args.len()));
    };
    if let Some(w) = &q.webhook_id {
        push("webhook_id =", Box::new(w.clone()));
    }
    if let Some(d) = &q.delivery_id {
        push("delivery_id =", Box::new(d.clone()));
    }
    if let Some(o) = q.outcome {
        push("outcome =", Box::new(o.as_str()));
    }
    if let Some(s) = q.since {
        push("started_at >=", Box::new(s));
    }
    if let Some(u) = q.until {
        push("started_at <=", Box::new(u));
    }
    let cond = where_.join(" AND ");
    let n = args.len();
    args.push(Box::new(q.limit.max(1) as i64));
    args.push(Box::new(q.offset as i64));
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let total = store
        .count(
            &format!("SELECT COUNT(*) FROM attempts WHERE {cond}"),
            &params[..n],
        )
        .await?;
    let rows = store
        .query(
            &format!("SELECT doc FROM attempts WHERE {cond} ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}", n + 1, n + 2),
            &params,
        )
        .await?;
    Ok(Page {
        items: docs(&rows)?,
        total,
    })
}

pub(super) async fn delivery_counts(
    store: &PostgresStore,
) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
    let rows = store
        .query(
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        if let Some(s) = DeliveryStatus::parse(r.try_get(0)?) {
            out.push((s, r.try_get::<_, i64>(1)? as u64));
        }
    }
    Ok(out)
}
