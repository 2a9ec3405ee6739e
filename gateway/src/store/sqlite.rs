//! The embedded SQLite store (WAL, `synchronous=FULL`).
//!
//! Writes go through one writer thread that batches whatever is queued into a single transaction
//! (group commit): one fsync serves every caller in the batch, which is what lets durable ingest
//! reach tens of thousands of events per second. Each queued operation runs inside its own
//! savepoint, so one failing operation rolls back only itself. Reads use a small pool of read-only
//! connections on blocking threads; WAL lets them run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::migrations::{self, Dialect};
use super::{AttemptRecord, HealthChange, Page, Store, StoreError, StoreResult, WebhookQuery};
use crate::model::{
    ApiKey, Attempt, AttemptQuery, Delivery, DeliveryStatus, Event, IngestOutcome, NewEvent,
    PluginRecord, Role, Scope, Webhook, WebhookHealth,
};

/// Most operations folded into one transaction.
const MAX_BATCH: usize = 1024;
const READERS: usize = 4;

type WriteFn = Box<dyn FnOnce(&Connection) + Send>;

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::Sender<WriteFn>,
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
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
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
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk (WAL fsynced) before the caller hears "ok".
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints run on their own thread (below), never inside a commit: an automatic
        // checkpoint would stall every caller in that batch for the whole copy and fsync.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        migrate(&mut conn)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?);
        }
        let (tx, rx) = mpsc::channel::<WriteFn>();
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
            let res = match t.execute_batch("SAVEPOINT op") {
                Ok(()) => {
                    let out = f(t);
                    let end = if out.is_ok() {
                        "RELEASE op"
                    } else {
                        "ROLLBACK TO op; RELEASE op"
                    };
                    match t.execute_batch(end) {
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
            .send(op)
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

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<WriteFn>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
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
    })
}

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let role: String = r.get("role")?;
    Ok(ApiKey {
        id: r.get("id")?,
        name: r.get("name")?,
        role: Role::parse(&role).unwrap_or(Role::Manager),
        team_id: r.get("team_id")?,
        token_hash: r.get("token_hash")?,
        created_at: r.get("created_at")?,
    })
}

const DELIVERY_COLS: &str = "id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at";

fn insert_delivery(tx: &Connection, d: &Delivery) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO deliveries (id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
    ])?;
    Ok(())
}

fn health_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<WebhookHealth>> {
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

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.write(move |t| {
            t.execute(
                "INSERT INTO api_keys (id, name, role, team_id, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (token_hash) DO NOTHING",
                params![key.id, key.name, key.role.as_str(), key.team_id, key.token_hash, key.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        let h = token_hash.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT * FROM api_keys WHERE token_hash = ?1")?
                    .query_row([h], key_from_row)
                    .optional()?,
            )
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT * FROM api_keys ORDER BY created_at")?;
            let rows = stmt
                .query_map([], key_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let w = webhook.clone();
        let doc = serde_json::to_string(&w)?;
        self.write(move |t| {
            let (kind, key) = scope_key(&w.scope);
            t.execute(
                "INSERT INTO webhooks (id, scope_kind, scope_key, team_id, enabled, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![w.id, kind, key, w.scope.team(), w.is_webhook_enabled as i64, doc, w.created_at, w.updated_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let w = webhook.clone();
        let doc = serde_json::to_string(&w)?;
        self.write(move |t| {
            let (kind, key) = scope_key(&w.scope);
            let n = t.execute(
                "UPDATE webhooks SET scope_kind = ?2, scope_key = ?3, team_id = ?4, enabled = ?5, doc = ?6, updated_at = ?7 WHERE id = ?1",
                params![w.id, kind, key, w.scope.team(), w.is_webhook_enabled as i64, doc, w.updated_at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |t| {
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

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        let id = id.to_string();
        let doc = self
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

    async fn list_webhooks(&self, query: &WebhookQuery) -> StoreResult<Page<Webhook>> {
        let q = query.clone();
        let (docs, total) = self
            .read(move |c| {
                let limit = q.limit.max(1) as i64;
                let offset = q.offset as i64;
                let (docs, total): (Vec<String>, i64) = match &q.team_id {
                    Some(team) => {
                        let mut s = c.prepare("SELECT doc FROM webhooks WHERE team_id = ?1 ORDER BY created_at, id LIMIT ?2 OFFSET ?3")?;
                        let docs = s.query_map(params![team, limit, offset], webhook_from_row)?.collect::<Result<_, _>>()?;
                        let total = c.query_row("SELECT COUNT(*) FROM webhooks WHERE team_id = ?1", [team], |r| r.get(0))?;
                        (docs, total)
                    }
                    None => {
                        let mut s = c.prepare("SELECT doc FROM webhooks ORDER BY created_at, id LIMIT ?1 OFFSET ?2")?;
                        let docs = s.query_map(params![limit, offset], webhook_from_row)?.collect::<Result<_, _>>()?;
                        let total = c.query_row("SELECT COUNT(*) FROM webhooks", [], |r| r.get(0))?;
                        (docs, total)
                    }
                };
                Ok((docs, total as u64))
            })
            .await?;
        let items = docs
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<Result<Vec<Webhook>, _>>()?;
        Ok(Page { items, total })
    }

    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let docs: Vec<String> = self
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

    async fn count_webhooks_in_scope(&self, scope: &Scope) -> StoreResult<u64> {
        let (kind, key) = scope_key(scope);
        self.read(move |c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM webhooks WHERE scope_kind = ?1 AND scope_key = ?2",
                params![kind, key],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth> {
        let id = id.to_string();
        self.read(move |c| health_of(c, &id)?.ok_or(StoreError::NotFound))
            .await
    }

    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let id = id.to_string();
        let reason = reason.map(str::to_string);
        self.write(move |t| {
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

    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        let doc = serde_json::to_string(&new.event)?;
        self.write(move |t| {
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

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        let id = id.to_string();
        let doc: Option<String> = self
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

    async fn get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>> {
        let ids = ids.to_vec();
        let docs: Vec<String> = self
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

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLS} FROM deliveries WHERE id = ?1"
            ))?
            .query_row([id], delivery_from_row)
            .optional()?)
        })
        .await
    }

    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>> {
        let id = event_id.to_string();
        self.read(move |c| {
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

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        self.write(move |t| {
            // A claimed delivery's next_attempt_at is its lease end, so one condition finds both
            // pending deliveries that are due and in-flight ones whose worker vanished.
            let mut s = t.prepare_cached(&format!(
                "UPDATE deliveries SET status = 'in_flight', lease_until = ?2, next_attempt_at = ?2, updated_at = ?1 \
                 WHERE id IN (SELECT id FROM deliveries WHERE status IN ('pending', 'in_flight') AND next_attempt_at <= ?1 \
                 ORDER BY next_attempt_at LIMIT ?3) RETURNING {DELIVERY_COLS}"
            ))?;
            let rows = s.query_map(params![now, lease_until, limit as i64], delivery_from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'in_flight')",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?)
        })
        .await
    }

    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<(String, WebhookHealth)>> {
        self.write(move |t| {
            let mut healths = Vec::new();
            for rec in &records {
                let a = &rec.attempt;
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
                let request = rec.request.as_ref().map(serde_json::to_string).transpose()?;
                t.prepare_cached(
                    "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3, lease_until = NULL, \
                     request = COALESCE(request, ?4), last_error = ?5, last_status_code = ?6, updated_at = ?7 WHERE id = ?1",
                )?
                .execute(params![
                    rec.delivery_id,
                    rec.status.as_str(),
                    rec.next_attempt_at,
                    request,
                    a.error,
                    a.status_code.map(|c| c as i64),
                    a.started_at + a.duration_ms as i64,
                ])?;
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

    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |t| {
            let n = t.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, lease_until = NULL, updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn requeue_failed_since(
        &self,
        webhook_id: &str,
        since: i64,
        now: i64,
    ) -> StoreResult<u64> {
        let id = webhook_id.to_string();
        self.write(move |t| {
            let n = t.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?3, lease_until = NULL, updated_at = ?3 \
                 WHERE webhook_id = ?1 AND status = 'failed' AND created_at >= ?2",
                params![id, since, now],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn fail_pending_for_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64> {
        let id = webhook_id.to_string();
        let reason = reason.to_string();
        self.write(move |t| {
            let n = t.execute(
                "UPDATE deliveries SET status = 'failed', last_error = ?2, updated_at = ?3 WHERE webhook_id = ?1 AND status = 'pending'",
                params![id, reason, now],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn list_attempts(&self, query: &AttemptQuery) -> StoreResult<Page<Attempt>> {
        let q = query.clone();
        let (docs, total) = self
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

    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
        self.read(|c| {
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

    async fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> StoreResult<()> {
        let rec = record.clone();
        let bytes = component.to_vec();
        let doc = serde_json::to_string(&rec)?;
        self.write(move |t| {
            t.execute(
                "INSERT INTO plugin_blobs (sha256, bytes) VALUES (?1, ?2) ON CONFLICT (sha256) DO NOTHING",
                params![rec.sha256, bytes],
            )?;
            t.execute(
                "INSERT INTO plugins (name, version, doc, sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (name, version) DO UPDATE SET doc = excluded.doc, sha256 = excluded.sha256",
                params![rec.name, rec.version, doc, rec.sha256, rec.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        let docs: Vec<String> = self
            .read(|c| {
                let mut s = c.prepare("SELECT doc FROM plugins ORDER BY name, created_at")?;
                let docs = s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(docs)
            })
            .await?;
        Ok(docs
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<PluginRecord>> {
        let (n, v) = (name.to_string(), version.to_string());
        let doc: Option<String> = self
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT doc FROM plugins WHERE name = ?1 AND version = ?2",
                    params![n, v],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await?;
        Ok(match doc {
            Some(d) => Some(serde_json::from_str(&d)?),
            None => None,
        })
    }

    async fn plugin_bytes(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        let h = sha256.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT bytes FROM plugin_blobs WHERE sha256 = ?1",
                [h],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn delete_plugin(&self, name: &str, version: &str) -> StoreResult<()> {
        let (n, v) = (name.to_string(), version.to_string());
        self.write(move |t| {
            let sha: Option<String> = t
                .query_row("SELECT sha256 FROM plugins WHERE name = ?1 AND version = ?2", params![n, v], |r| r.get(0))
                .optional()?;
            let sha = sha.ok_or(StoreError::NotFound)?;
            t.execute("DELETE FROM plugins WHERE name = ?1 AND version = ?2", params![n, v])?;
            t.execute(
                "DELETE FROM plugin_blobs WHERE sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM plugins WHERE sha256 = ?1)",
                [sha],
            )?;
            Ok(())
        })
        .await
    }
}
