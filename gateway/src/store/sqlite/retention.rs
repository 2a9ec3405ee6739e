//! Pruning old rows (one short write per batch, queued like every other write so ingest keeps
//! flowing between batches) and giving the freed pages back to the file system: the database runs
//! in `auto_vacuum = INCREMENTAL` mode, so `PRAGMA incremental_vacuum` returns free pages, and a
//! `wal_checkpoint(TRUNCATE)` then shrinks the file and empties the WAL.

use std::path::Path;

use std::time::Duration;

use rusqlite::{Connection, params};

use super::{BUSY_TIMEOUT, SqliteStore};
use crate::store::{PruneCutoffs, PruneReport, StoreResult};

/// Databases smaller than this are switched to incremental auto-vacuum at open (a `VACUUM`, well
/// under a second at this size); larger ones by `webhook-gateway store prune --vacuum`.
pub const AUTO_CONVERT_MAX_BYTES: u64 = 64 << 20;

/// Free pages returned per write (4 MiB of 4 KiB pages), so one reclaim never holds the writer
/// for long.
const VACUUM_PAGES: i64 = 1024;

/// How long the WAL truncate waits for readers and the writer before giving up until next time.
const TRUNCATE_BUSY_MS: u64 = 1_000;

/// The delivery states that are still owed: never pruned.
const OWED: &str = "('pending', 'in_flight')";

/// Outbox mails that are done with: sent, or refused for good. Pending ones are never pruned.
pub(crate) const FINISHED_MAIL: &str = "('sent', 'rejected')";

/// When a finished mail finished: `finish_mail` sets `sent_at` for a sent one and moves
/// `next_attempt_at` to the refusal time for a refused one.
pub(crate) const MAIL_FINISHED_AT: &str = "COALESCE(sent_at, next_attempt_at)";

/// Before the first table is created: new databases use incremental auto-vacuum (the mode can
/// only be chosen before any table exists, or by a `VACUUM`).
pub(super) fn choose_auto_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    Ok(())
}

/// Whether the database gives pages back incrementally (`auto_vacuum = 2`).
pub(super) fn is_incremental(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn.query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))? == 2)
}

/// Switches an existing database to incremental auto-vacuum with a full `VACUUM` (which needs
/// as much free disk as the database and blocks writers while it runs).
pub fn convert_to_incremental(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
}

/// At open: a small database still without incremental auto-vacuum is converted now; a large one
/// is left as it is (its freed pages are reused, not returned) with a warning naming the command.
pub(super) fn convert_if_small(conn: &Connection, path: &Path) -> rusqlite::Result<()> {
    if is_incremental(conn)? {
        return Ok(());
    }
    let size = file_bytes(path);
    if size <= AUTO_CONVERT_MAX_BYTES {
        tracing::info!(
            bytes = size,
            "switching the SQLite database to incremental auto-vacuum (one-off VACUUM)"
        );
        convert_to_incremental(conn)
    } else {
        tracing::warn!(
            bytes = size,
            "the SQLite database predates incremental auto-vacuum: pruned space is reused but not given back until `webhook-gateway store prune --vacuum` runs once"
        );
        Ok(())
    }
}

/// The database file plus its WAL, in bytes.
fn file_bytes(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.as_os_str(), wal.as_os_str()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Removes one batch of old events (with their finished deliveries, those deliveries' attempts
/// and the events' idempotency keys), then one batch of old attempts and one of old finished
/// mails. The writer runs one
/// operation at a time, so nothing can change an event's deliveries between the choice and the
/// deletes.
fn prune_in(t: &Connection, cutoffs: PruneCutoffs, batch: i64) -> rusqlite::Result<PruneReport> {
    let mut report = PruneReport::default();
    if let Some(before) = cutoffs.events_before {
        let ids: Vec<String> = t
            .prepare_cached(&format!(
                "SELECT e.id FROM events e WHERE e.received_at < ?1 AND NOT EXISTS \
                 (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status IN {OWED}) \
                 ORDER BY e.received_at LIMIT ?2"
            ))?
            .query_map(params![before, batch], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut attempts = t.prepare_cached(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?1)",
        )?;
        let mut deliveries = t.prepare_cached("DELETE FROM deliveries WHERE event_id = ?1")?;
        let mut keys = t.prepare_cached("DELETE FROM idempotency_keys WHERE event_id = ?1")?;
        let mut events = t.prepare_cached("DELETE FROM events WHERE id = ?1")?;
        for id in &ids {
            report.attempts += attempts.execute([id])? as u64;
            report.deliveries += deliveries.execute([id])? as u64;
            report.idempotency_keys += keys.execute([id])? as u64;
            report.events += events.execute([id])? as u64;
        }
    }
    if let Some(before) = cutoffs.attempts_before {
        report.attempts += t
            .prepare_cached(&format!(
                "DELETE FROM attempts WHERE rowid IN (SELECT a.rowid FROM attempts a WHERE a.started_at < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id AND d.status IN {OWED}) \
                 ORDER BY a.started_at LIMIT ?2)"
            ))?
            .execute(params![before, batch])? as u64;
        report.mails += t
            .prepare_cached(&format!(
                "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox WHERE status IN {FINISHED_MAIL} \
                 AND {MAIL_FINISHED_AT} < ?1 ORDER BY created_at LIMIT ?2)"
            ))?
            .execute(params![before, batch])? as u64;
    }
    Ok(report)
}

pub(super) async fn prune_batch(
    store: &SqliteStore,
    cutoffs: PruneCutoffs,
    batch: usize,
) -> StoreResult<PruneReport> {
    let batch = batch.max(1) as i64;
    store.write(move |t| Ok(prune_in(t, cutoffs, batch)?)).await
}

pub(super) async fn reclaim_space(store: &SqliteStore) -> StoreResult<()> {
    // Nothing to give back in the old mode (a large database not yet converted).
    if store.read(|c| Ok(is_incremental(c)?)).await? {
        // A few MiB per write, through the writer, until the free list is empty (or stops
        // shrinking: other writes free pages too, the next pass takes those).
        let mut before = i64::MAX;
        loop {
            let left: i64 = store
                .write(|t| {
                    t.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
                    Ok(t.query_row("PRAGMA freelist_count", [], |r| r.get(0))?)
                })
                .await?;
            if left == 0 || left >= before {
                break;
            }
            before = left;
        }
    }
    // The vacuumed pages are cut from the file when the WAL is copied back; TRUNCATE also
    // empties the WAL, which would otherwise keep its largest size. It waits for readers only
    // briefly: a busy moment defers it to the next pass.
    store
        .write_alone(|c| {
            c.busy_timeout(Duration::from_millis(TRUNCATE_BUSY_MS))?;
            let busy = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
            c.busy_timeout(BUSY_TIMEOUT)?;
            if busy? != 0 {
                tracing::debug!("WAL truncate deferred: readers were busy");
            }
            Ok(())
        })
        .await
}

pub(super) async fn disk_usage(store: &SqliteStore) -> StoreResult<Option<u64>> {
    Ok(Some(file_bytes(store.path())))
}
