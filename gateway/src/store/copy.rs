//! `webhook-gateway store copy`: moves an embedded SQLite store into PostgreSQL when a deployment
//! scales out.
//!
//! What is copied: every webhook (with its health counters), API key and plugin (record and
//! bytes); every event that still has a pending or in-flight delivery, with all of that event's
//! deliveries (an in-flight one keeps its lease, so it becomes due when the lease ends, exactly
//! as after a crash); idempotency keys and attempts from the last `attempts_days` days. Finished
//! events, older logs and console sessions (people sign in again) stay behind. Failure mails
//! still owed (open digests, mails the SMTP server has not accepted yet) travel too, so no
//! notification is lost by scaling out.
//!
//! Why rows rather than the [`Store`](super::Store) trait: the trait has no way to write health
//! counters, attempts or deliveries in a given state, and adding export/import methods to every
//! backend for a one-off tool would widen the trait for everybody. Both backends share one schema
//! (`store::migrations`), so the copy reads the SQLite file read-only with rusqlite and inserts
//! the same columns into PostgreSQL, `ON CONFLICT DO NOTHING`, one transaction per chunk. A re-run
//! therefore only adds what is missing and never overwrites rows PostgreSQL already has; the
//! source file is never written.
//!
//! Secrets travel sealed: rows are copied byte for byte, so the sealed values and the key check
//! (`settings`) arrive as ciphertext and the PostgreSQL nodes must run with the same master key
//! as the SQLite gateway did (see `secrets`). A target that already holds a key check of another
//! key is refused before anything is copied.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use tokio_postgres::types::{ToSql, Type};

use super::StoreError;
use super::migrations::MIGRATIONS;
use super::postgres::PostgresStore;

/// Rows read from SQLite and written to PostgreSQL per transaction.
const CHUNK: i64 = 500;

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("writing to PostgreSQL: {0}")]
    Postgres(#[from] StoreError),
    #[error("{0}")]
    Schema(String),
}

/// What to copy besides the always-copied tables.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Attempts and idempotency keys from this unix-ms time on are copied.
    pub since: i64,
}

impl CopyOptions {
    /// Attempts and idempotency keys of the last `days` days.
    pub fn last_days(days: u32) -> Self {
        CopyOptions {
            since: chrono::Utc::now().timestamp_millis() - i64::from(days) * 86_400_000,
        }
    }
}

/// Rows seen and rows newly inserted, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64, u64)>,
}

impl CopyReport {
    /// Rows newly inserted into `table`.
    pub fn inserted(&self, table: &str) -> u64 {
        self.tables.iter().find(|t| t.0 == table).map_or(0, |t| t.2)
    }
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<18} {:>10} {:>10}", "table", "read", "inserted")?;
        for (t, read, ins) in &self.tables {
            writeln!(f, "{t:<18} {read:>10} {ins:>10}")?;
        }
        Ok(())
    }
}

/// Events still owed a delivery.
const QUEUED_EVENTS: &str =
    "SELECT event_id FROM deliveries WHERE status IN ('pending', 'in_flight')";

/// Tables in dependency order, each with the rows to take (`{since}` is substituted).
fn plan() -> [(&'static str, String); 13] {
    [
        // First: the key check travels with the sealed values it vouches for.
        ("settings", "1 = 1".into()),
        ("api_keys", "1 = 1".into()),
        ("webhooks", "1 = 1".into()),
        ("plugin_blobs", "1 = 1".into()),
        ("plugins", "1 = 1".into()),
        ("events", format!("id IN ({QUEUED_EVENTS})")),
        ("deliveries", format!("event_id IN ({QUEUED_EVENTS})")),
        ("idempotency_keys", "created_at >= {since}".into()),
        ("attempts", "started_at >= {since}".into()),
        // Console sessions stay behind: people sign in again on the new store.
        ("console_sessions", "1 = 0".into()),
        // Used and expired links stay for the audit, like revoked keys.
        ("portal_links", "1 = 1".into()),
        // Failure mails owed: open digests and mails not yet accepted by the SMTP server.
        ("mail_digests", "1 = 1".into()),
        ("mail_outbox", "status = 'pending'".into()),
    ]
}

/// Copies the SQLite store at `from` into `to` (already connected, hence migrated).
pub async fn sqlite_to_postgres(
    from: &Path,
    to: &PostgresStore,
    options: CopyOptions,
) -> Result<CopyReport, CopyError> {
    let path = from.to_path_buf();
    if !path.is_file() {
        return Err(CopyError::Schema(format!(
            "{}: no such SQLite file",
            path.display()
        )));
    }
    let version = blocking(&path, |c| {
        c.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
    })
    .await?;
    let latest = MIGRATIONS.last().map(|m| m.0);
    if version != latest {
        return Err(CopyError::Schema(format!(
            "{} is at schema version {version:?}, this gateway at {latest:?}: open it once with this version (webhook-gateway migrate) first",
            path.display()
        )));
    }
    check_same_key(&path, to).await?;
    let mut report = CopyReport::default();
    for (table, filter) in plan() {
        let filter = filter.replace("{since}", &options.since.to_string());
        let (mut read, mut inserted, mut after) = (0u64, 0u64, i64::MIN);
        loop {
            let sql = format!(
                "SELECT rowid AS copy_rowid_, * FROM {table} WHERE ({filter}) AND rowid > ?1 ORDER BY rowid LIMIT {CHUNK}"
            );
            let (columns, rows) = blocking(&path, move |c| {
                let mut stmt = c.prepare(&sql)?;
                let columns: Vec<String> = stmt
                    .column_names()
                    .into_iter()
                    .skip(1)
                    .map(str::to_string)
                    .collect();
                let n = columns.len() + 1;
                let rows = stmt
                    .query_map([after], |r| {
                        (0..n)
                            .map(|i| r.get::<_, Value>(i))
                            .collect::<Result<Vec<_>, _>>()
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((columns, rows))
            })
            .await?;
            let Some(last) = rows.last() else { break };
            after = match last[0] {
                Value::Integer(i) => i,
                _ => {
                    return Err(CopyError::Schema(format!(
                        "{table}: rowid is not an integer"
                    )));
                }
            };
            read += rows.len() as u64;
            inserted += insert_chunk(to, table, &columns, &rows).await?;
            if (rows.len() as i64) < CHUNK {
                break;
            }
        }
        tracing::info!(table, read, inserted, "copied");
        report.tables.push((table, read, inserted));
    }
    // Ordered deliveries copied keep their seq: PostgreSQL's sequence must draw past them, so
    // events accepted from now on queue behind them.
    let client = to.pool().get().await.map_err(StoreError::from)?;
    client
        .execute(
            "SELECT setval('deliveries_seq', GREATEST((SELECT COALESCE(MAX(seq), 1) FROM deliveries), (SELECT last_value FROM deliveries_seq)))",
            &[],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(report)
}

/// Refuses a target whose secrets are sealed under another master key than the source's.
async fn check_same_key(path: &Path, to: &PostgresStore) -> Result<(), CopyError> {
    use crate::secrets::{CHECK_SETTING, RawDb, cipher::sealed_key_id};
    let source: Option<String> = blocking(path, |c| {
        use rusqlite::OptionalExtension;
        c.query_row(
            "SELECT value FROM settings WHERE name = ?1",
            [CHECK_SETTING],
            |r| r.get(0),
        )
        .optional()
    })
    .await?;
    let target = RawDb::Postgres(to.pool().clone())
        .get_setting(CHECK_SETTING)
        .await
        .map_err(|e| CopyError::Schema(e.to_string()))?;
    if let (Some(s), Some(t)) = (&source, &target) {
        let (s, t) = (sealed_key_id(s), sealed_key_id(t));
        if s != t {
            return Err(CopyError::Schema(format!(
                "the target's secrets are sealed under master key {}, the SQLite file's under {}: copy into a fresh database, or rotate one to the other's key first (webhook-gateway secrets rotate)",
                t.unwrap_or("?"),
                s.unwrap_or("?")
            )));
        }
    }
    Ok(())
}

/// Runs `f` on a read-only connection to `path`, on a blocking thread.
async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, CopyError> {
    let path = path.to_path_buf();
    let p = path.clone();
    let res = tokio::task::spawn_blocking(move || {
        let c = Connection::open_with_flags(
            &p,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        f(&c)
    })
    .await
    .map_err(|e| CopyError::Schema(format!("reader task: {e}")))?;
    res.map_err(|source| CopyError::Sqlite { path, source })
}

/// Inserts one chunk (first value of each row is the SQLite rowid, skipped) in one transaction;
/// returns how many rows were new.
async fn insert_chunk(
    to: &PostgresStore,
    table: &str,
    columns: &[String],
    rows: &[Vec<Value>],
) -> Result<u64, CopyError> {
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
        columns.join(", "),
        placeholders.join(", ")
    );
    let mut client = to.pool().get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let stmt = tx.prepare(&sql).await.map_err(StoreError::from)?;
    let mut inserted = 0;
    for row in rows {
        let params = row[1..]
            .iter()
            .zip(stmt.params())
            .zip(columns)
            .map(|((v, ty), col)| {
                to_pg(v, ty).ok_or_else(|| {
                    CopyError::Schema(format!("{table}.{col}: cannot store {v:?} as {ty}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        inserted += tx.execute(&stmt, &refs).await.map_err(StoreError::from)?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(inserted)
}

/// A SQLite value as a parameter of the PostgreSQL column type (the schema's three types).
fn to_pg(v: &Value, ty: &Type) -> Option<Box<dyn ToSql + Sync + Send>> {
    Some(
        match (
            *ty == Type::INT8,
            *ty == Type::TEXT || *ty == Type::VARCHAR,
            *ty == Type::BYTEA,
            v,
        ) {
            (true, _, _, Value::Integer(i)) => Box::new(Some(*i)),
            (true, _, _, Value::Null) => Box::new(None::<i64>),
            (_, true, _, Value::Text(s)) => Box::new(Some(s.clone())),
            (_, true, _, Value::Null) => Box::new(None::<String>),
            (_, _, true, Value::Blob(b)) => Box::new(Some(b.clone())),
            (_, _, true, Value::Null) => Box::new(None::<Vec<u8>>),
            _ => return None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_values_map_to_the_column_type() {
        assert!(to_pg(&Value::Integer(3), &Type::INT8).is_some());
        assert!(to_pg(&Value::Null, &Type::TEXT).is_some());
        assert!(to_pg(&Value::Blob(vec![1]), &Type::BYTEA).is_some());
        assert!(to_pg(&Value::Text("x".into()), &Type::INT8).is_none());
        assert!(to_pg(&Value::Real(1.0), &Type::INT8).is_none());
    }

    #[test]
    fn every_table_of_the_schema_is_planned() {
        let created: usize = MIGRATIONS
            .iter()
            .map(|m| m.2.matches("CREATE TABLE").count())
            .sum();
        assert_eq!(
            plan().len(),
            created,
            "a new table needs a line in copy::plan"
        );
    }
}
