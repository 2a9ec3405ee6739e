//! The PostgreSQL store: the scale-out sibling of [`super::sqlite::SqliteStore`], with the same
//! semantics (the shared suite in `store::suite` runs against both).
//!
//! - **Several nodes, one queue.** `claim_due` locks due rows with `FOR UPDATE SKIP LOCKED` and
//!   leases them: a claimed delivery's `next_attempt_at` is its lease end, so a dead node's work
//!   becomes due again when the lease runs out, exactly as in SQLite.
//! - **Idempotency across nodes.** The key is inserted with `ON CONFLICT DO NOTHING` in the same
//!   transaction as the event and its deliveries; a loser then reads the winner's event id (a new
//!   statement sees the winner's commit under READ COMMITTED, after the insert waited for it).
//! - **Group commit.** Concurrent ingests are queued to a few writer tasks that fold whatever is
//!   waiting into one transaction, each ingest in its own savepoint (so one failure rolls back only
//!   itself). Batches take idempotency keys in sorted order, so two nodes' batches cannot deadlock.
//! - **A dead database is seen quickly.** Pool wait/create/recycle and TCP connect time out after a
//!   few seconds and every operation has an overall deadline; connection-level failures map to
//!   [`StoreError::Unavailable`] (the API answers 503). Every write is one transaction, so a failure
//!   never leaves half an event behind.
//! - **Schemas.** `connect` honours a `search_path` given in the URL's `options`
//!   (`?options=-csearch_path%3Dname`); [`PostgresStoreBuilder::schema`] sets it for every pooled
//!   connection. Either way the schema is created if missing and migrations run inside it, which
//!   is how tests isolate themselves.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::migrations::{self, Dialect};
use super::{AttemptRecord, HealthChange, Page, Store, StoreError, StoreResult, WebhookQuery};
use crate::model::{
    ApiKey, Attempt, AttemptQuery, Delivery, DeliveryStatus, Event, IngestOutcome, NewEvent,
    PluginRecord, Role, Scope, Webhook, WebhookHealth,
};

/// Most ingests folded into one transaction.
const MAX_BATCH: usize = 256;
/// Writer tasks draining the ingest queue (each holds one connection while it commits).
const INGEST_WRITERS: usize = 4;

/// Connects a [`PostgresStore`]; every knob has a default suited to a gateway node.
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    url: String,
    schema: Option<String>,
    max_connections: usize,
    connect_timeout: Duration,
    op_timeout: Duration,
}

impl PostgresStoreBuilder {
    /// Runs everything in `schema` (created if missing) by setting `search_path` on every
    /// connection. Letters, digits and `_` only.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
    /// Pool size (default 16).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(2);
        self
    }
    /// How long to wait for a connection, a new connection or a recycle check (default 3 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Deadline of one store operation, queueing included (default 15 s).
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.op_timeout = d;
        self
    }

    /// Builds the pool, creates the schema if needed and applies migrations.
    pub async fn connect(self) -> StoreResult<PostgresStore> {
        let mut pg: tokio_postgres::Config =
            self.url.parse().map_err(|e| StoreError::Internal(format!("database_url: {e}")))?;
        let schema = match &self.schema {
            Some(s) => {
                if !valid_schema_name(s) {
                    return Err(StoreError::Internal(format!("schema {s:?}: letters, digits and _ only")));
                }
                let opts = pg.get_options().map(|o| format!("{o} ")).unwrap_or_default();
                pg.options(format!("{opts}-csearch_path={s}"));
                Some(s.clone())
            }
            None => pg.get_options().and_then(search_path_in_options),
        };
        pg.connect_timeout(self.connect_timeout);
        pg.keepalives_idle(Duration::from_secs(30));
        if pg.get_application_name().is_none() {
            pg.application_name("webhook-gateway");
        }
        let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(self.max_connections)
            .wait_timeout(Some(self.connect_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("building the pool: {e}")))?;
        let (tx, rx) = mpsc::channel::<IngestJob>(MAX_BATCH * INGEST_WRITERS * 4);
        let store = PostgresStore {
            inner: Arc::new(Inner { pool: pool.clone(), ingest: tx, op_timeout: self.op_timeout }),
        };
        store.timed(async {
            let mut client = store.inner.pool.get().await?;
            if let Some(s) = &schema
                && valid_schema_name(s)
            {
                // Creating the schema this connection already searches; harmless when it exists.
                client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\"")).await?;
            }
            migrate(&mut client).await
        })
        .await?;
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..INGEST_WRITERS {
            tokio::spawn(ingest_writer(pool.clone(), rx.clone()));
        }
        Ok(store)
    }
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The first schema of a `search_path` set in libpq-style `options` (`-csearch_path=a,b` or
/// `-c search_path=a`).
fn search_path_in_options(options: &str) -> Option<String> {
    let mut words = options.split_whitespace();
    while let Some(w) = words.next() {
        let setting = match w.strip_prefix("-c") {
            Some("") => words.next()?,
            Some(rest) => rest,
            None => w.strip_prefix("--").unwrap_or(""),
        };
        if let Some(v) = setting.strip_prefix("search_path=").or_else(|| setting.strip_prefix("search-path=")) {
            return v.split(',').next().map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty());
        }
    }
    None
}

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    ingest: mpsc::Sender<IngestJob>,
    op_timeout: Duration,
}

struct IngestJob {
    new: NewEvent,
    doc: String,
    reply: oneshot::Sender<StoreResult<IngestOutcome>>,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            let retryable = code.code().starts_with("08") // connection exception
                || code.code().starts_with("53") // insufficient resources (too many connections, disk full)
                || code.code().starts_with("57P") // server shutting down / starting up
                || [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED, SqlState::LOCK_NOT_AVAILABLE, SqlState::QUERY_CANCELED]
                    .contains(code);
            let msg = format!("postgres {}: {}", code.code(), db.message());
            return if retryable { StoreError::Unavailable(msg) } else { StoreError::Internal(msg) };
        }
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let text = e.to_string();
        let connection_level = e.is_closed()
            || io
            || ["error communicating", "error connecting", "timeout waiting", "unexpected message", "error performing TLS", "authentication"]
                .iter()
                .any(|p| text.starts_with(p));
        let msg = match std::error::Error::source(&e) {
            Some(s) => format!("postgres: {text}: {s}"),
            None => format!("postgres: {text}"),
        };
        if connection_level { StoreError::Unavailable(msg) } else { StoreError::Internal(msg) }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(format!("postgres pool: {other}")),
        }
    }
}

/// Applies pending migrations on `client`, in one transaction under an advisory lock so nodes
/// starting together do not race; returns the versions applied.
async fn migrate(client: &mut deadpool_postgres::Client) -> StoreResult<Vec<i64>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('webhook-gateway migrations ' || COALESCE(current_schema(), '')))", &[])
        .await?;
    tx.batch_execute(migrations::VERSION_TABLE).await?;
    let mut applied = Vec::new();
    for (version, description, sql) in migrations::MIGRATIONS {
        if tx.query_opt("SELECT version FROM schema_migrations WHERE version = $1", &[version]).await?.is_some() {
            continue;
        }
        tx.batch_execute(&migrations::render(sql, Dialect::Postgres)).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
            &[version, description, &chrono::Utc::now().timestamp_millis()],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}

/// Drains the ingest queue: each wake-up takes what is waiting (up to [`MAX_BATCH`]) and commits
/// it as one transaction.
async fn ingest_writer(pool: Pool, rx: Arc<Mutex<mpsc::Receiver<IngestJob>>>) {
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
                    StoreError::Unavailable(m) | StoreError::Internal(m) | StoreError::Conflict(m) => m,
                    StoreError::NotFound => "not found".into(),
                };
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unavailable(msg.clone())));
                }
            }
        }
    }
}

/// One transaction for the batch; the outer error means nothing was committed.
async fn ingest_batch(pool: &Pool, jobs: &[(&NewEvent, &str)]) -> StoreResult<Vec<StoreResult<IngestOutcome>>> {
    let mut client = pool.get().await?;
    let mut tx = client.transaction().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    if let [(new, doc)] = jobs {
        // Alone in its transaction: no savepoint needed, a failure rolls back the whole thing.
        let out = ingest_one(&tx, new, doc).await?;
        tx.commit().await?;
        return Ok(vec![Ok(out)]);
    }
    for (new, doc) in jobs {
        let sp = tx.savepoint("op").await?;
        match ingest_one(&sp, new, doc).await {
            Ok(out) => {
                sp.commit().await?;
                outcomes.push(Ok(out));
            }
            Err(e) => {
                sp.rollback().await?;
                outcomes.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn ingest_one(t: &impl GenericClient, new: &NewEvent, doc: &str) -> StoreResult<IngestOutcome> {
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
            let row = t.query_one(&t.prepare_cached("SELECT event_id FROM idempotency_keys WHERE key = $1").await?, &[key]).await?;
            return Ok(IngestOutcome::Duplicate { event_id: row.try_get(0)? });
        }
    }
    t.execute(
        &t.prepare_cached("INSERT INTO events (id, event_type, doc, received_at) VALUES ($1, $2, $3, $4)").await?,
        &[&ev.id, &ev.event_type, &doc, &ev.received_at],
    )
    .await?;
    insert_deliveries(t, &new.deliveries).await?;
    Ok(IngestOutcome::Created { event_id: ev.id.clone(), deliveries: new.deliveries.len() })
}

/// Inserts deliveries in one statement (arrays unnested server-side).
async fn insert_deliveries(t: &impl GenericClient, ds: &[Delivery]) -> StoreResult<()> {
    if ds.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Delivery) -> String| ds.iter().map(f).collect::<Vec<_>>();
    let (ids, events, webhooks, urls) =
        (col(|d| d.id.clone()), col(|d| d.event_id.clone()), col(|d| d.webhook_id.clone()), col(|d| d.url.clone()));
    let statuses: Vec<&str> = ds.iter().map(|d| d.status.as_str()).collect();
    let attempts: Vec<i64> = ds.iter().map(|d| d.attempts as i64).collect();
    let next: Vec<i64> = ds.iter().map(|d| d.next_attempt_at).collect();
    let leases: Vec<Option<i64>> = ds.iter().map(|d| d.lease_until).collect();
    let requests: Vec<Option<String>> =
        ds.iter().map(|d| d.request.as_ref().map(serde_json::to_string).transpose()).collect::<Result<_, _>>()?;
    let errors: Vec<Option<String>> = ds.iter().map(|d| d.last_error.clone()).collect();
    let codes: Vec<Option<i64>> = ds.iter().map(|d| d.last_status_code.map(i64::from)).collect();
    let created: Vec<i64> = ds.iter().map(|d| d.created_at).collect();
    let updated: Vec<i64> = ds.iter().map(|d| d.updated_at).collect();
    let stmt = t
        .prepare_cached(&format!(
            "INSERT INTO deliveries ({DELIVERY_COLS}) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[])"
        ))
        .await?;
    t.execute(
        &stmt,
        &[&ids, &events, &webhooks, &urls, &statuses, &attempts, &next, &leases, &requests, &errors, &codes, &created, &updated],
    )
    .await?;
    Ok(())
}

const DELIVERY_COLS: &str = "id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at";

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
        last_status_code: r.try_get::<_, Option<i64>>("last_status_code")?.map(|c| c as u16),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn key_from_row(r: &Row) -> StoreResult<ApiKey> {
    let role: String = r.try_get("role")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).unwrap_or(Role::Manager),
        team_id: r.try_get("team_id")?,
        token_hash: r.try_get("token_hash")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Parses the first column of each row as a JSON document.
fn docs<T: serde::de::DeserializeOwned>(rows: &[Row]) -> StoreResult<Vec<T>> {
    rows.iter().map(|r| Ok(serde_json::from_str(r.try_get::<_, &str>(0)?)?)).collect()
}

fn scope_key(scope: &Scope) -> (&'static str, String) {
    match scope {
        Scope::Global => ("global", String::new()),
        Scope::Team { team_id } => ("team", team_id.clone()),
        Scope::Service { service_id, .. } => ("service", service_id.clone()),
    }
}

async fn health_of(t: &impl GenericClient, id: &str) -> StoreResult<Option<WebhookHealth>> {
    let row = t.query_opt(&t.prepare_cached("SELECT consecutive_failures, failing_since FROM webhooks WHERE id = $1").await?, &[&id]).await?;
    Ok(match row {
        Some(r) => Some(WebhookHealth { consecutive_failures: r.try_get::<_, i64>(0)? as u32, failing_since: r.try_get(1)? }),
        None => None,
    })
}

impl PostgresStore {
    /// Connects with the defaults (see [`PostgresStoreBuilder`]) and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::builder(url).connect().await
    }

    /// Connects with every connection's `search_path` set to `schema` (created if missing).
    pub async fn connect_with_schema(url: &str, schema: &str) -> StoreResult<Self> {
        Self::builder(url).schema(schema).connect().await
    }

    pub fn builder(url: &str) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.to_string(),
            schema: None,
            max_connections: 16,
            connect_timeout: Duration::from_secs(3),
            op_timeout: Duration::from_secs(15),
        }
    }

    /// The connection pool (for tools such as `store copy` that move rows in bulk).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Applies any migrations not yet applied (connecting already did); returns their versions.
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        self.timed(async {
            let mut client = self.inner.pool.get().await?;
            migrate(&mut client).await
        })
        .await
    }

    /// Runs `fut` under the operation deadline; running out of time means "unavailable".
    async fn timed<T>(&self, fut: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        tokio::time::timeout(self.inner.op_timeout, fut)
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("postgres: no answer within {:?}", self.inner.op_timeout))))
    }

    /// Runs `f` with a pooled connection, under the operation deadline.
    async fn with_client<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: AsyncFnOnce(&deadpool_postgres::Client) -> StoreResult<T>,
    {
        self.timed(async {
            let client = self.inner.pool.get().await?;
            f(&client).await
        })
        .await
    }

    /// Runs `f` in a transaction, committed when it returns `Ok` (rolled back otherwise).
    async fn in_tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> StoreResult<T>,
    {
        self.timed(async {
            let mut client = self.inner.pool.get().await?;
            let tx = client.transaction().await?;
            let out = f(&tx).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        self.with_client(async |c| Ok(c.query(&c.prepare_cached(sql).await?, params).await?)).await
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<Row>> {
        self.with_client(async |c| Ok(c.query_opt(&c.prepare_cached(sql).await?, params).await?)).await
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        self.with_client(async |c| Ok(c.execute(&c.prepare_cached(sql).await?, params).await?)).await
    }

    async fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let rows = self.query(sql, params).await?;
        Ok(rows.first().map(|r| r.try_get::<_, i64>(0)).transpose()?.unwrap_or(0) as u64)
    }

    async fn doc_by<T: serde::de::DeserializeOwned>(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<T>> {
        Ok(docs(&self.query_opt(sql, params).await?.into_iter().collect::<Vec<_>>())?.pop())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.with_client(async |c| Ok(c.simple_query("SELECT 1").await.map(|_| ())?)).await
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.execute(
            "INSERT INTO api_keys (id, name, role, team_id, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (token_hash) DO NOTHING",
            &[&key.id, &key.name, &key.role.as_str(), &key.team_id, &key.token_hash, &key.created_at],
        )
        .await
        .map(|_| ())
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.query_opt("SELECT * FROM api_keys WHERE token_hash = $1", &[&token_hash]).await?.as_ref().map(key_from_row).transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.query("SELECT * FROM api_keys ORDER BY created_at", &[]).await?.iter().map(key_from_row).collect()
    }

    async fn insert_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let doc = serde_json::to_string(w)?;
        let (kind, key) = scope_key(&w.scope);
        self.execute(
            "INSERT INTO webhooks (id, scope_kind, scope_key, team_id, enabled, doc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&w.id, &kind, &key, &w.scope.team(), &(w.is_webhook_enabled as i64), &doc, &w.created_at, &w.updated_at],
        )
        .await
        .map(|_| ())
    }

    async fn update_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let doc = serde_json::to_string(w)?;
        let (kind, key) = scope_key(&w.scope);
        let n = self
            .execute(
                "UPDATE webhooks SET scope_kind = $2, scope_key = $3, team_id = $4, enabled = $5, doc = $6, updated_at = $7 WHERE id = $1",
                &[&w.id, &kind, &key, &w.scope.team(), &(w.is_webhook_enabled as i64), &doc, &w.updated_at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        self.in_tx(async |t| {
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

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        self.doc_by("SELECT doc FROM webhooks WHERE id = $1", &[&id]).await
    }

    async fn list_webhooks(&self, q: &WebhookQuery) -> StoreResult<Page<Webhook>> {
        let limit = q.limit.max(1) as i64;
        let offset = q.offset as i64;
        let (rows, total) = match &q.team_id {
            Some(team) => (
                self.query("SELECT doc FROM webhooks WHERE team_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3", &[team, &limit, &offset])
                    .await?,
                self.count("SELECT COUNT(*) FROM webhooks WHERE team_id = $1", &[team]).await?,
            ),
            None => (
                self.query("SELECT doc FROM webhooks ORDER BY created_at, id LIMIT $1 OFFSET $2", &[&limit, &offset]).await?,
                self.count("SELECT COUNT(*) FROM webhooks", &[]).await?,
            ),
        };
        Ok(Page { items: docs(&rows)?, total })
    }

    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        docs(&self.query("SELECT doc FROM webhooks ORDER BY created_at, id", &[]).await?)
    }

    async fn count_webhooks_in_scope(&self, scope: &Scope) -> StoreResult<u64> {
        let (kind, key) = scope_key(scope);
        self.count("SELECT COUNT(*) FROM webhooks WHERE scope_kind = $1 AND scope_key = $2", &[&kind, &key]).await
    }

    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth> {
        self.with_client(async |c| health_of(c, id).await?.ok_or(StoreError::NotFound)).await
    }

    async fn set_webhook_enabled(&self, id: &str, enabled: bool, reason: Option<&str>, now: i64) -> StoreResult<()> {
        self.in_tx(async |t| {
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

    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        let doc = serde_json::to_string(&new.event)?;
        let (reply, rx) = oneshot::channel();
        self.timed(async {
            self.inner
                .ingest
                .send(IngestJob { new, doc, reply })
                .await
                .map_err(|_| StoreError::Unavailable("postgres ingest writers stopped".into()))?;
            rx.await.map_err(|_| StoreError::Unavailable("postgres ingest writers stopped".into()))?
        })
        .await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        self.doc_by("SELECT doc FROM events WHERE id = $1", &[&id]).await
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        self.query_opt(&format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>> {
        self.query(&format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE event_id = $1 ORDER BY id"), &[&event_id])
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn claim_due(&self, now: i64, lease_until: i64, limit: usize) -> StoreResult<Vec<Delivery>> {
        // A claimed delivery's next_attempt_at is its lease end, so one condition finds both
        // pending deliveries that are due and in-flight ones whose worker vanished. SKIP LOCKED
        // lets other nodes claim other rows meanwhile; a row another node claimed and committed
        // since our snapshot is re-checked against the condition and dropped.
        let limit = limit as i64;
        let rows = self
            .query(
                &format!(
                    "WITH due AS (SELECT id FROM deliveries WHERE status IN ('pending', 'in_flight') AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     UPDATE deliveries d SET status = 'in_flight', lease_until = $2, next_attempt_at = $2, updated_at = $1 \
                     FROM due WHERE d.id = due.id RETURNING {}",
                    DELIVERY_COLS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ")
                ),
                &[&now, &lease_until, &limit],
            )
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        let rows = self.query("SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'in_flight')", &[]).await?;
        Ok(rows.first().map(|r| r.try_get::<_, Option<i64>>(0)).transpose()?.flatten())
    }

    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> StoreResult<Vec<(String, WebhookHealth)>> {
        self.in_tx(async |t| {
            // Lock the webhooks whose health changes in one order up front: concurrent batches
            // (other workers, other nodes) then queue instead of deadlocking.
            let mut ids: Vec<&str> =
                records.iter().filter(|r| r.health != HealthChange::None).map(|r| r.attempt.webhook_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() {
                t.execute("SELECT 1 FROM (SELECT id FROM webhooks WHERE id = ANY($1) ORDER BY id FOR UPDATE) l", &[&ids]).await?;
            }
            let mut healths = Vec::new();
            for rec in &records {
                let a = &rec.attempt;
                t.execute(
                    &t.prepare_cached(
                        "INSERT INTO attempts (id, delivery_id, webhook_id, event_id, attempt_no, started_at, outcome, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .await?,
                    &[&a.id, &a.delivery_id, &a.webhook_id, &a.event_id, &(a.attempt_no as i64), &a.started_at, &a.outcome.as_str(), &serde_json::to_string(a)?],
                )
                .await?;
                let request = rec.request.as_ref().map(serde_json::to_string).transpose()?;
                t.execute(
                    &t.prepare_cached(
                        "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3, lease_until = NULL, \
                         request = COALESCE(request, $4), last_error = $5, last_status_code = $6, updated_at = $7 WHERE id = $1",
                    )
                    .await?,
                    &[
                        &rec.delivery_id,
                        &rec.status.as_str(),
                        &rec.next_attempt_at,
                        &request,
                        &a.error,
                        &a.status_code.map(i64::from),
                        &(a.started_at + a.duration_ms as i64),
                    ],
                )
                .await?;
                let now = a.started_at;
                match rec.health {
                    HealthChange::None => continue,
                    HealthChange::Success => {
                        t.execute("UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL WHERE id = $1", &[&a.webhook_id]).await?
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

    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()> {
        let n = self
            .execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_until = NULL, updated_at = $2 WHERE id = $1",
                &[&id, &now],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn requeue_failed_since(&self, webhook_id: &str, since: i64, now: i64) -> StoreResult<u64> {
        self.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, lease_until = NULL, updated_at = $3 \
             WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2",
            &[&webhook_id, &since, &now],
        )
        .await
    }

    async fn fail_pending_for_webhook(&self, webhook_id: &str, reason: &str, now: i64) -> StoreResult<u64> {
        self.execute(
            "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = $3 WHERE webhook_id = $1 AND status = 'pending'",
            &[&webhook_id, &reason, &now],
        )
        .await
    }

    async fn list_attempts(&self, q: &AttemptQuery) -> StoreResult<Page<Attempt>> {
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
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
        let total = self.count(&format!("SELECT COUNT(*) FROM attempts WHERE {cond}"), &params[..n]).await?;
        let rows = self
            .query(
                &format!("SELECT doc FROM attempts WHERE {cond} ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}", n + 1, n + 2),
                &params,
            )
            .await?;
        Ok(Page { items: docs(&rows)?, total })
    }

    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
        let rows = self.query("SELECT status, COUNT(*) FROM deliveries GROUP BY status", &[]).await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(s) = DeliveryStatus::parse(r.try_get(0)?) {
                out.push((s, r.try_get::<_, i64>(1)? as u64));
            }
        }
        Ok(out)
    }

    async fn put_plugin(&self, rec: &PluginRecord, component: &[u8]) -> StoreResult<()> {
        let doc = serde_json::to_string(rec)?;
        self.in_tx(async |t| {
            t.execute("INSERT INTO plugin_blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING", &[&rec.sha256, &component])
                .await?;
            t.execute(
                "INSERT INTO plugins (name, version, doc, sha256, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name, version) DO UPDATE SET doc = excluded.doc, sha256 = excluded.sha256",
                &[&rec.name, &rec.version, &doc, &rec.sha256, &rec.created_at],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn list_plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        docs(&self.query("SELECT doc FROM plugins ORDER BY name, created_at", &[]).await?)
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<PluginRecord>> {
        self.doc_by("SELECT doc FROM plugins WHERE name = $1 AND version = $2", &[&name, &version]).await
    }

    async fn plugin_bytes(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query_opt("SELECT bytes FROM plugin_blobs WHERE sha256 = $1", &[&sha256]).await?.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    async fn delete_plugin(&self, name: &str, version: &str) -> StoreResult<()> {
        self.in_tx(async |t| {
            let row = t
                .query_opt("DELETE FROM plugins WHERE name = $1 AND version = $2 RETURNING sha256", &[&name, &version])
                .await?
                .ok_or(StoreError::NotFound)?;
            let sha: String = row.try_get(0)?;
            t.execute("DELETE FROM plugin_blobs WHERE sha256 = $1 AND NOT EXISTS (SELECT 1 FROM plugins WHERE sha256 = $1)", &[&sha])
                .await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_is_read_from_options() {
        assert_eq!(search_path_in_options("-csearch_path=abc").as_deref(), Some("abc"));
        assert_eq!(search_path_in_options("-c statement_timeout=5 -c search_path=x,public").as_deref(), Some("x"));
        assert_eq!(search_path_in_options("--search_path=y").as_deref(), Some("y"));
        assert_eq!(search_path_in_options("-c statement_timeout=5"), None);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema_name("gw_test_1"));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("a\"; DROP"));
        assert!(!valid_schema_name(""));
    }
}
