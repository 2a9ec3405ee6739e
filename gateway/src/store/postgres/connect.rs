//! Connecting: the builder, `search_path` handling, error mapping and migrations.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Mutex, mpsc};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::ingest::{INGEST_WRITERS, IngestJob, MAX_BATCH, ingest_writer};
use super::{Inner, PostgresStore};
use crate::store::migrations::{self, Dialect};
use crate::store::{StoreError, StoreResult};

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
    pub(super) fn new(url: &str) -> Self {
        PostgresStoreBuilder {
            url: url.to_string(),
            schema: None,
            max_connections: 16,
            connect_timeout: Duration::from_secs(3),
            op_timeout: Duration::from_secs(15),
        }
    }

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
        let mut pg: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| StoreError::Internal(format!("database_url: {e}")))?;
        let schema = match &self.schema {
            Some(s) => {
                if !valid_schema_name(s) {
                    return Err(StoreError::Internal(format!(
                        "schema {s:?}: letters, digits and _ only"
                    )));
                }
                let opts = pg
                    .get_options()
                    .map(|o| format!("{o} "))
                    .unwrap_or_default();
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
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
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
            inner: Arc::new(Inner {
                pool: pool.clone(),
                ingest: tx,
                op_timeout: self.op_timeout,
            }),
        };
        store
            .timed(async {
                let mut client = store.inner.pool.get().await?;
                if let Some(s) = &schema
                    && valid_schema_name(s)
                {
                    // Creating the schema this connection already searches; harmless when it exists.
                    client
                        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
                        .await?;
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
        if let Some(v) = setting
            .strip_prefix("search_path=")
            .or_else(|| setting.strip_prefix("search-path="))
        {
            return v
                .split(',')
                .next()
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty());
        }
    }
    None
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
            return if retryable {
                StoreError::Unavailable(msg)
            } else {
                StoreError::Internal(msg)
            };
        }
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let text = e.to_string();
        let connection_level = e.is_closed()
            || io
            || [
                "error communicating",
                "error connecting",
                "timeout waiting",
                "unexpected message",
                "error performing TLS",
                "authentication",
            ]
            .iter()
            .any(|p| text.starts_with(p));
        let msg = match std::error::Error::source(&e) {
            Some(s) => format!("postgres: {text}: {s}"),
            None => format!("postgres: {text}"),
        };
        if connection_level {
            StoreError::Unavailable(msg)
        } else {
            StoreError::Internal(msg)
        }
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
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> StoreResult<Vec<i64>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('webhook-gateway migrations ' || COALESCE(current_schema(), '')))", &[])
        .await?;
    tx.batch_execute(migrations::VERSION_TABLE).await?;
    let mut applied = Vec::new();
    for (version, description, sql) in migrations::MIGRATIONS {
        if tx
            .query_opt(
                "SELECT version FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some()
        {
            continue;
        }
        tx.batch_execute(&migrations::render(sql, Dialect::Postgres))
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_is_read_from_options() {
        assert_eq!(
            search_path_in_options("-csearch_path=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            search_path_in_options("-c statement_timeout=5 -c search_path=x,public").as_deref(),
            Some("x")
        );
        assert_eq!(
            search_path_in_options("--search_path=y").as_deref(),
            Some("y")
        );
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
