//! Group commit for ingest: a few writer tasks fold whatever ingests are waiting into one
//! transaction of a few set-wise statements.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::DELIVERY_COLS;
use crate::model::{Delivery, IngestOutcome, NewEvent};
use crate::store::{StoreError, StoreResult};

/// Most ingests folded into one transaction.
pub(super) const MAX_BATCH: usize = 256;
/// Writer tasks draining the ingest queue (each holds one connection while it commits).
pub(super) const INGEST_WRITERS: usize = 4;

/// One queued ingest and where its answer goes (after the commit).
pub(super) struct IngestJob {
    pub(super) new: NewEvent,
    /// The event, serialised by the caller.
    pub(super) doc: String,
    pub(super) reply: oneshot::Sender<StoreResult<IngestOutcome>>,
}

/// Drains the ingest queue: each wake-up takes what is waiting (up to [`MAX_BATCH`]) and commits
/// it as one transaction.
pub(super) async fn ingest_writer(pool: Pool, rx: Arc<Mutex<mpsc::Receiver<IngestJob>>>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        // Keys are taken in one global order, so concurrent batches (here or on other nodes)
        // wait for each other instead of deadlocking.
        batch.sort_by(|a, b| a.new.idempotency_key.cmp(&b.new.idempotency_key));
        let jobs: Vec<(&NewEvent, &str)> = batch.iter().map(|j| (&j.new, j.doc.as_str())).collect();
        match ingest_batch(&pool, &jobs).await {
            Ok(outcomes) => {
                for (job, out) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(out);
                }
            }
            Err(e) => {
                let msg = match e {
                    StoreError::Unavailable(m)
                    | StoreError::Internal(m)
                    | StoreError::Conflict(m) => m,
                    StoreError::NotFound => "not found".into(),
                };
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unavailable(msg.clone())));
                }
            }
        }
    }
}

/// Stores a batch; the outer error means nothing was committed and every caller hears it.
///
/// The batch goes in set-wise, a handful of statements whatever its size: that is what makes
/// group commit pay (per-ingest statements would cost a round trip each). If the set-wise attempt
/// fails for a reason other than the connection (one bad event), each ingest is retried in its
/// own transaction so only the bad one fails.
async fn ingest_batch(
    pool: &Pool,
    jobs: &[(&NewEvent, &str)],
) -> StoreResult<Vec<StoreResult<IngestOutcome>>> {
    if jobs.len() > 1 {
        match ingest_set(pool, jobs).await {
            Err(StoreError::Internal(e)) => {
                tracing::debug!(error = %e, "batched ingest failed; retrying one by one")
            }
            other => return other,
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (new, doc) in jobs {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        match ingest_one(&tx, new, doc).await {
            Ok(out) => {
                tx.commit().await?;
                outcomes.push(Ok(out));
            }
            Err(StoreError::Unavailable(m)) => return Err(StoreError::Unavailable(m)),
            Err(e) => outcomes.push(Err(e)),
        }
    }
    Ok(outcomes)
}

/// The whole batch in one transaction and four statements: claim the keys, read the keys
/// others hold, insert the events, insert the deliveries.
async fn ingest_set(
    pool: &Pool,
    jobs: &[(&NewEvent, &str)],
) -> StoreResult<Vec<StoreResult<IngestOutcome>>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let keyed: Vec<(&str, &str, i64)> = jobs
        .iter()
        .filter_map(|(n, _)| {
            n.idempotency_key
                .as_deref()
                .map(|k| (k, n.event.id.as_str(), n.event.received_at))
        })
        .collect();
    // key -> the event that owns it (ours, an earlier one in this batch, or another caller's).
    let mut owner: HashMap<String, String> = HashMap::new();
    if !keyed.is_empty() {
        let (keys, ids, ats): (Vec<&str>, Vec<&str>, Vec<i64>) = (
            keyed.iter().map(|k| k.0).collect(),
            keyed.iter().map(|k| k.1).collect(),
            keyed.iter().map(|k| k.2).collect(),
        );
        // In key order (the batch is sorted), so concurrent batches cannot deadlock; a duplicate
        // inside the batch loses to its first occurrence.
        let won = tx
            .query(
                &tx.prepare_cached(
                    "INSERT INTO idempotency_keys (key, event_id, created_at) SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) \
                     ON CONFLICT (key) DO NOTHING RETURNING key, event_id",
                )
                .await?,
                &[&keys, &ids, &ats],
            )
            .await?;
        for r in &won {
            owner.insert(r.try_get(0)?, r.try_get(1)?);
        }
        let taken: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !owner.contains_key(*k))
            .collect();
        if !taken.is_empty() {
            let rows = tx
                .query(
                    &tx.prepare_cached(
                        "SELECT key, event_id FROM idempotency_keys WHERE key = ANY($1)",
                    )
                    .await?,
                    &[&taken],
                )
                .await?;
            for r in &rows {
                owner.insert(r.try_get(0)?, r.try_get(1)?);
            }
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut winners: Vec<&(&NewEvent, &str)> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let ev = &job.0.event;
        match job.0.idempotency_key.as_deref().map(|k| owner.get(k)) {
            Some(Some(first)) if first != &ev.id => outcomes.push(Ok(IngestOutcome::Duplicate {
                event_id: first.clone(),
            })),
            Some(None) => {
                return Err(StoreError::Internal(
                    "idempotency key vanished during ingest".into(),
                ));
            }
            _ => {
                outcomes.push(Ok(IngestOutcome::Created {
                    event_id: ev.id.clone(),
                    deliveries: job.0.deliveries.len(),
                }));
                winners.push(job);
            }
        }
    }
    if !winners.is_empty() {
        let ids: Vec<&str> = winners.iter().map(|j| j.0.event.id.as_str()).collect();
        let types: Vec<&str> = winners
            .iter()
            .map(|j| j.0.event.event_type.as_str())
            .collect();
        let docs: Vec<&str> = winners.iter().map(|j| j.1).collect();
        let ats: Vec<i64> = winners.iter().map(|j| j.0.event.received_at).collect();
        // An event id already stored is an ingest retried after its commit landed: it answers
        // Duplicate with that id and adds nothing.
        let inserted: std::collections::HashSet<String> = tx
            .query(
                &tx.prepare_cached(
                    "INSERT INTO events (id, event_type, doc, received_at) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) \
                     ON CONFLICT (id) DO NOTHING RETURNING id",
                )
                .await?,
                &[&ids, &types, &docs, &ats],
            )
            .await?
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<_, _>>()?;
        for out in outcomes.iter_mut() {
            if let Ok(IngestOutcome::Created { event_id, .. }) = out
                && !inserted.contains(event_id.as_str())
            {
                *out = Ok(IngestOutcome::Duplicate {
                    event_id: event_id.clone(),
                });
            }
        }
        let deliveries: Vec<Delivery> = winners
            .iter()
            .filter(|j| inserted.contains(j.0.event.id.as_str()))
            .flat_map(|j| j.0.deliveries.iter().cloned())
            .collect();
        insert_deliveries(&tx, &deliveries).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn ingest_one(
    t: &impl GenericClient,
    new: &NewEvent,
    doc: &str,
) -> StoreResult<IngestOutcome> {
    let ev = &new.event;
    if let Some(key) = &new.idempotency_key {
        let inserted = t
            .execute(
                &t.prepare_cached("INSERT INTO idempotency_keys (key, event_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
                    .await?,
                &[key, &ev.id, &ev.received_at],
            )
            .await?;
        if inserted == 0 {
            let row = t
                .query_one(
                    &t.prepare_cached("SELECT event_id FROM idempotency_keys WHERE key = $1")
                        .await?,
                    &[key],
                )
                .await?;
            return Ok(IngestOutcome::Duplicate {
                event_id: row.try_get(0)?,
            });
        }
    }
    let inserted = t
        .execute(
            &t.prepare_cached(
                "INSERT INTO events (id, event_type, doc, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            )
            .await?,
            &[&ev.id, &ev.event_type, &doc, &ev.received_at],
        )
        .await?;
    if inserted == 0 {
        // Retried after its commit landed: the same id, nothing new.
        return Ok(IngestOutcome::Duplicate {
            event_id: ev.id.clone(),
        });
    }
    insert_deliveries(t, &new.deliveries).await?;
    Ok(IngestOutcome::Created {
        event_id: ev.id.clone(),
        deliveries: new.deliveries.len(),
    })
}

/// Inserts deliveries in one statement (arrays unnested server-side).
///
/// Ordered deliveries draw their seq from `deliveries_seq` under a transaction lock per
/// (webhook, url) stream, taken before the insert: a later ingest of the same stream waits for
/// this one to commit, so seq order is commit order and a delivery never lands behind a later
/// one already being sent.
async fn insert_deliveries(t: &impl GenericClient, ds: &[Delivery]) -> StoreResult<()> {
    if ds.is_empty() {
        return Ok(());
    }
    lock_streams(
        t,
        ds.iter().filter_map(|d| Some((&d.webhook_id, d.stream?))),
    )
    .await?;
    let col = |f: fn(&Delivery) -> String| ds.iter().map(f).collect::<Vec<_>>();
    let (ids, events, webhooks, urls) = (
        col(|d| d.id.clone()),
        col(|d| d.event_id.clone()),
        col(|d| d.webhook_id.clone()),
        col(|d| d.url.clone()),
    );
    let statuses: Vec<&str> = ds.iter().map(|d| d.status.as_str()).collect();
    let attempts: Vec<i64> = ds.iter().map(|d| d.attempts as i64).collect();
    let next: Vec<i64> = ds.iter().map(|d| d.next_attempt_at).collect();
    let leases: Vec<Option<i64>> = ds.iter().map(|d| d.lease_until).collect();
    let requests: Vec<Option<String>> = ds
        .iter()
        .map(|d| d.request.as_ref().map(serde_json::to_string).transpose())
        .collect::<Result<_, _>>()?;
    let errors: Vec<Option<String>> = ds.iter().map(|d| d.last_error.clone()).collect();
    let codes: Vec<Option<i64>> = ds
        .iter()
        .map(|d| d.last_status_code.map(i64::from))
        .collect();
    let created: Vec<i64> = ds.iter().map(|d| d.created_at).collect();
    let updated: Vec<i64> = ds.iter().map(|d| d.updated_at).collect();
    let streams: Vec<Option<i64>> = ds.iter().map(|d| d.stream.map(i64::from)).collect();
    let stmt = t
        .prepare_cached(&format!(
            "INSERT INTO deliveries ({DELIVERY_COLS}, seq) SELECT *, CASE WHEN v.stream IS NOT NULL THEN nextval('deliveries_seq') END \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], \
             $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[]) \
             AS v(id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at, stream)"
        ))
        .await?;
    t.execute(
        &stmt,
        &[
            &ids, &events, &webhooks, &urls, &statuses, &attempts, &next, &leases, &requests,
            &errors, &codes, &created, &updated, &streams,
        ],
    )
    .await?;
    Ok(())
}

/// Takes the transaction lock of each (webhook, url) stream, in one global order so concurrent
/// ingests (here or on other nodes) queue instead of deadlocking.
async fn lock_streams<'a>(
    t: &impl GenericClient,
    streams: impl Iterator<Item = (&'a String, u32)>,
) -> StoreResult<()> {
    let mut keys: Vec<i64> = streams.map(|(w, s)| stream_lock_key(w, s)).collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    t.execute(
        &t.prepare_cached("SELECT pg_advisory_xact_lock(k) FROM UNNEST($1::bigint[]) AS l(k)")
            .await?,
        &[&keys],
    )
    .await?;
    Ok(())
}

/// A stable 64-bit advisory-lock key for a stream (the same on every node).
fn stream_lock_key(webhook_id: &str, stream: u32) -> i64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::new()
        .chain_update(b"webhook-gateway stream ")
        .chain_update(webhook_id.as_bytes())
        .chain_update([0u8])
        .chain_update(stream.to_be_bytes())
        .finalize();
    i64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}
