//! The embedded SQLite store (WAL, `synchronous=FULL`).
//!
//! Writes go through one writer thread that batches whatever is queued into a single transaction
//! (group commit): one fsync serves every caller in the batch, which is what lets durable ingest
//! reach tens of thousands of events per second. Each queued operation runs inside its own
//! savepoint, so one failing operation rolls back only itself. Reads use a small pool of read-only
//! connections on blocking threads; WAL lets them run beside the writer.

mod events;
mod keys;
pub(crate) mod mail;
mod plugins;
mod portal;
mod queue;
pub mod retention;
mod sessions;
mod stats;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use super::migrations::{self, Dialect};
use super::{
    AttemptRecord, Page, PruneCutoffs, PruneReport, Store, StoreError, StoreResult, WebhookQuery,
};
use super::{DeliveryStats, StatsQuery};
use crate::model::{
    ApiKey, Attempt, AttemptQuery, ConsoleSession, Delivery, DeliveryStatus, Event, IngestOutcome,
    NewEvent, PluginRecord, Scope, Webhook, WebhookHealth,
};
use crate::model::{MailDigest, MailOutcome, OutboxMail, PortalLink, PortalRedeem};

/// Most operations folded into one transaction.
const MAX_BATCH: usize = 1024;
const READERS: usize = 4;
/// How long a connection waits for a lock another holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The no-op update behind [`Store::write_probe`].
const PROBE_SQL: &str = "UPDATE schema_migrations SET applied_at = applied_at WHERE version = (SELECT MAX(version) FROM schema_migrations)";

type WriteFn = Box<dyn FnOnce(&Connection) + Send>;

/// What the writer thread runs: an operation folded into the next transaction, or one run alone
/// between transactions (a WAL truncate, which must not be inside one, and is done here rather
/// than on another connection so no second writer ever competes with this one).
enum Op {
    InTx(WriteFn),
    Alone(WriteFn),
}

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::Sender<Op>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                ) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Internal(format!("stored document: {e}"))
    }
}

fn open(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // rusqlite keeps 16 prepared statements by default; the writer alone runs more than that on
    // the hot path (ingest, claims, attempt records, savepoints), and an evicted statement is
    // parsed and planned again on its next use.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// Applies pending migrations on `conn`; returns the versions applied.
fn migrate(conn: &mut Connection) -> rusqlite::Result<Vec<i64>> {
    conn.execute_batch(migrations::VERSION_TABLE)?;
    let mut applied = Vec::new();
    for (version, description, sql) in migrations::MIGRATIONS {
        let done: Option<i64> = conn
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()?;
        if done.is_some() {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(&migrations::render(sql, Dialect::Sqlite))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            params![version, description, chrono::Utc::now().timestamp_millis()],
        )?;
        tx.commit()?;
        applied.push(*version);
    }
    Ok(applied)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        }
        let mut conn = open(path, OpenFlags::default())?;
        // Before WAL and the first table: a new database gives pruned pages back (retention).
        retention::choose_auto_vacuum(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk (WAL fsynced) before the caller hears "ok".
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints run on their own thread (below), never inside a commit: an automatic
        // checkpoint would stall every caller in that batch for the whole copy and fsync.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Savepoint sub-journals and temporary b-trees in memory, not in temp files: every op
        // runs in a savepoint, and the file-backed sub-journal was ~9% of a busy gateway's CPU.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        migrate(&mut conn)?;
        retention::convert_if_small(&conn, path)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?);
        }
        let (tx, rx) = mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let inner = Arc::new(Inner {
            writer: tx,
            readers: Mutex::new(readers),
            path: path.to_path_buf(),
        });
        let checkpointer = open(path, OpenFlags::default())?;
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, weak))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(SqliteStore { inner })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` inside the writer's next transaction and waits until it is committed.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        // The writer answers only after the commit; until then the result waits here.
        let op: WriteFn = Box::new(move |t: &Connection| {
            // Each op in its own savepoint, so a failing op leaves the rest of the batch alone.
            // The statements are prepared once (cached), not parsed per op.
            let res = match t
                .prepare_cached("SAVEPOINT op")
                .and_then(|mut s| s.execute([]))
            {
                Ok(_) => {
                    let out = f(t);
                    let end = if out.is_ok() {
                        t.prepare_cached("RELEASE op")
                            .and_then(|mut s| s.execute([]))
                            .map(drop)
                    } else {
                        t.execute_batch("ROLLBACK TO op; RELEASE op")
                    };
                    match end {
                        Ok(()) => out,
                        Err(e) => Err(e.into()),
                    }
                }
                Err(e) => Err(e.into()),
            };
            COMMIT_WAITERS.with(|w| {
                w.borrow_mut()
                    .push(Box::new(move |committed: Result<(), String>| {
                        let _ = tx.send(match committed {
                            Ok(()) => res,
                            Err(e) => Err(StoreError::Unavailable(e)),
                        });
                    }))
            });
        });
        self.inner
            .writer
            .send(Op::InTx(op))
            .map_err(|_| StoreError::Unavailable("sqlite writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("sqlite writer stopped".into()))?
    }

    /// Runs `f` on the writer's connection between two transactions (outside any).
    async fn write_alone<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let op: WriteFn = Box::new(move |c: &Connection| {
            let _ = tx.send(f(c));
        });
        self.inner
            .writer
            .send(Op::Alone(op))
            .map_err(|_| StoreError::Unavailable("sqlite writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("sqlite writer stopped".into()))?
    }

    /// Runs a read on a pooled read connection, on a blocking thread.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.readers.lock().pop();
            let conn = match conn {
                Some(c) => c,
                None => open(
                    &inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?,
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock();
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Internal(format!("reader task: {e}")))?
    }
}

type Waiter = Box<dyn FnOnce(Result<(), String>) + Send>;

thread_local! {
    /// Answers owed by the writer thread once the current transaction commits.
    static COMMIT_WAITERS: std::cell::RefCell<Vec<Waiter>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies the WAL back into the database in the background (PASSIVE: never blocks the writer or
/// readers), until the store is dropped.
fn checkpoint_loop(conn: Connection, store: std::sync::Weak<Inner>) {
    while store.strong_count() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite checkpoint failed");
        }
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Op>) {
    // An `Alone` op met while collecting a batch runs right after that batch commits.
    let mut next: Option<Op> = None;
    loop {
        let first = match next.take().map_or_else(|| rx.recv().ok(), Some) {
            Some(Op::InTx(op)) => op,
            Some(Op::Alone(op)) => {
                op(&conn);
                continue;
            }
            None => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Op::InTx(op)) => batch.push(op),
                Ok(alone) => {
                    next = Some(alone);
                    break;
                }
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for op in batch.drain(..) {
                op(&tx);
            }
            tx.commit()
        })();
        // Ops not yet run (transaction failed to start) are dropped: their senders close and the
        // callers hear "writer stopped"-style unavailability.
        batch.clear();
        let waiters = COMMIT_WAITERS.with(|w| std::mem::take(&mut *w.borrow_mut()));
        let outcome = result.map_err(|e| format!("commit failed: {e}"));
        for w in waiters {
            w(outcome.clone());
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())?)
        })
        .await?;
        self.write(|t| {
            Ok(t.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())?)
        })
        .await
    }

    async fn write_probe(&self) -> StoreResult<()> {
        // A real change to a page (SQLite rewrites the row even when the value is the same), so
        // a full disk fails it as it fails every other write.
        self.write(|t| {
            t.execute(PROBE_SQL, [])?;
            Ok(())
        })
        .await
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        keys::insert_api_key(self, key).await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        keys::api_key_by_hash(self, token_hash).await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        keys::list_api_keys(self).await
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<Option<ApiKey>> {
        keys::revoke_api_key(self, id, now).await
    }

    async fn touch_api_key(&self, id: &str, at: i64) -> StoreResult<()> {
        keys::touch_api_key(self, id, at).await
    }

    async fn insert_console_session(&self, session: ConsoleSession) -> StoreResult<()> {
        sessions::insert(self, session).await
    }
    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
        sessions::get(self, id_hash).await
    }
    async fn touch_console_session(&self, id_hash: &str, at: i64) -> StoreResult<()> {
        sessions::touch(self, id_hash, at).await
    }
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        sessions::delete(self, id_hash).await
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        webhooks::insert_webhook(self, webhook).await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        webhooks::update_webhook(self, webhook).await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        webhooks::delete_webhook(self, id).await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        webhooks::get_webhook(self, id).await
    }

    async fn list_webhooks(&self, query: &WebhookQuery) -> StoreResult<Page<Webhook>> {
        webhooks::list_webhooks(self, query).await
    }

    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        webhooks::all_webhooks(self).await
    }

    async fn count_webhooks_in_scope(&self, scope: &Scope) -> StoreResult<u64> {
        webhooks::count_webhooks_in_scope(self, scope).await
    }

    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth> {
        webhooks::webhook_health(self, id).await
    }

    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        webhooks::set_webhook_enabled(self, id, enabled, reason, now).await
    }

    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        events::ingest(self, new).await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        events::get_event(self, id).await
    }

    async fn get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>> {
        events::get_events(self, ids).await
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        queue::get_delivery(self, id).await
    }

    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>> {
        queue::deliveries_for_event(self, event_id).await
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        queue::claim_due(self, now, lease_until, limit).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        queue::next_due_at(self).await
    }

    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<(String, WebhookHealth)>> {
        queue::record_attempts(self, records).await
    }

    async fn disable_webhook(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        notice: Option<&OutboxMail>,
    ) -> StoreResult<bool> {
        webhooks::disable_webhook(self, id, reason, now, notice).await
    }

    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()> {
        queue::requeue_delivery(self, id, now).await
    }

    async fn requeue_failed_since(
        &self,
        webhook_id: &str,
        since: i64,
        now: i64,
    ) -> StoreResult<u64> {
        queue::requeue_failed_since(self, webhook_id, since, now).await
    }

    async fn fail_pending_for_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64> {
        queue::fail_pending_for_webhook(self, webhook_id, reason, now).await
    }

    async fn list_attempts(&self, query: &AttemptQuery) -> StoreResult<Page<Attempt>> {
        queue::list_attempts(self, query).await
    }

    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
        queue::delivery_counts(self).await
    }

    async fn prune_batch(&self, cutoffs: PruneCutoffs, batch: usize) -> StoreResult<PruneReport> {
        retention::prune_batch(self, cutoffs, batch).await
    }

    async fn reclaim_space(&self) -> StoreResult<()> {
        retention::reclaim_space(self).await
    }

    async fn disk_usage(&self) -> StoreResult<Option<u64>> {
        retention::disk_usage(self).await
    }

    async fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> StoreResult<()> {
        plugins::put_plugin(self, record, component).await
    }

    async fn list_plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        plugins::list_plugins(self).await
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<PluginRecord>> {
        plugins::get_plugin(self, name, version).await
    }

    async fn plugin_bytes(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        plugins::plugin_bytes(self, sha256).await
    }

    async fn delete_plugin(&self, name: &str, version: &str) -> StoreResult<()> {
        plugins::delete_plugin(self, name, version).await
    }

    async fn insert_portal_link(&self, link: &PortalLink) -> StoreResult<()> {
        portal::insert_portal_link(self, link).await
    }
    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> StoreResult<PortalRedeem> {
        portal::redeem_portal_link(self, token_hash, now).await
    }
    async fn delivery_stats(&self, query: &StatsQuery) -> StoreResult<DeliveryStats> {
        stats::delivery_stats(self, query).await
    }

    async fn enqueue_mail(&self, mail: &OutboxMail) -> StoreResult<()> {
        mail::enqueue_mail(self, mail).await
    }

    async fn due_mail_digests(&self, now: i64, limit: usize) -> StoreResult<Vec<MailDigest>> {
        mail::due_mail_digests(self, now, limit).await
    }

    async fn close_mail_digest(&self, digest: &MailDigest, mail: &OutboxMail) -> StoreResult<bool> {
        mail::close_mail_digest(self, digest, mail).await
    }

    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        mail::claim_mail(self, now, lease_until, limit).await
    }

    async fn finish_mail(&self, id: &str, outcome: &MailOutcome, now: i64) -> StoreResult<()> {
        mail::finish_mail(self, id, outcome, now).await
    }
}
