//! Ingest (idempotency key, event and its deliveries in one write) and reading events back.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::model::{Delivery, Event, IngestOutcome, NewEvent};
use crate::store::StoreResult;

fn insert_delivery(tx: &Connection, d: &Delivery) -> rusqlite::Result<()> {
    // An ordered delivery goes to the back of its (webhook, url) stream: one past the highest
    // seq still owed there (the single writer makes this race-free).
    let mut stmt = tx.prepare_cached(
        "INSERT INTO deliveries (id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at, stream, seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
         CASE WHEN ?14 IS NOT NULL THEN (SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries WHERE stream IS NOT NULL AND status IN ('pending', 'in_flight') AND webhook_id = ?3 AND stream = ?14) END)",
    )?;
    stmt.execute(params![
        d.id,
        d.event_id,
        d.webhook_id,
        d.url,
        d.status.as_str(),
        d.attempts as i64,
        d.next_attempt_at,
        d.lease_until,
        d.request
            .as_ref()
            .map(|r| serde_json::to_string(r).unwrap_or_default()),
        d.last_error,
        d.last_status_code.map(|c| c as i64),
        d.created_at,
        d.updated_at,
        d.stream.map(i64::from),
    ])?;
    Ok(())
}

pub(super) async fn ingest(store: &SqliteStore, new: NewEvent) -> StoreResult<IngestOutcome> {
    let doc = serde_json::to_string(&new.event)?;
    store
        .write(move |t| {
            if let Some(key) = &new.idempotency_key {
                let seen: Option<String> = t
                    .prepare_cached("SELECT event_id FROM idempotency_keys WHERE key = ?1")?
                    .query_row([key], |r| r.get(0))
                    .optional()?;
                if let Some(event_id) = seen {
                    return Ok(IngestOutcome::Duplicate { event_id });
                }
                t.prepare_cached(
                    "INSERT INTO idempotency_keys (key, event_id, created_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key, new.event.id, new.event.received_at])?;
            }
            // An event id already stored is an ingest retried after its commit landed.
            let stored = t
                .prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
                .query_row([&new.event.id], |_| Ok(()))
                .optional()?
                .is_some();
            if stored {
                return Ok(IngestOutcome::Duplicate {
                    event_id: new.event.id.clone(),
                });
            }
            t.prepare_cached(
                "INSERT INTO events (id, event_type, doc, received_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                new.event.id,
                new.event.event_type,
                doc,
                new.event.received_at
            ])?;
            for d in &new.deliveries {
                insert_delivery(t, d)?;
            }
            Ok(IngestOutcome::Created {
                event_id: new.event.id.clone(),
                deliveries: new.deliveries.len(),
            })
        })
        .await
}

pub(super) async fn get_event(store: &SqliteStore, id: &str) -> StoreResult<Option<Event>> {
    let id = id.to_string();
    let doc: Option<String> = store
        .read(move |c| {
            Ok(c.prepare_cached("SELECT doc FROM events WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?)
        })
        .await?;
    Ok(match doc {
        Some(d) => Some(serde_json::from_str(&d)?),
        None => None,
    })
}

pub(super) async fn get_events(store: &SqliteStore, ids: &[String]) -> StoreResult<Vec<Event>> {
    let ids = ids.to_vec();
    let docs: Vec<String> = store
        .read(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            let mut stmt = c.prepare_cached("SELECT doc FROM events WHERE id = ?1")?;
            for id in &ids {
                if let Some(d) = stmt.query_row([id], |r| r.get::<_, String>(0)).optional()? {
                    out.push(d);
                }
            }
            Ok(out)
        })
        .await?;
    Ok(docs
        .iter()
        .map(|d| serde_json::from_str(d))
        .collect::<Result<Vec<Event>, _>>()?)
}
