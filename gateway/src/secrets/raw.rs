//! Direct access to the database for what the `Store` trait does not cover and should not: the
//! `settings` rows holding the key check, and the passes that seal clear values of an older
//! database or re-seal everything under a new key. Both backends share the schema
//! (`store::migrations`), so the same statements run on both, chunked by primary key and one
//! transaction per chunk; a pass is idempotent, so an interrupted one is finished by running it
//! again.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Keyring, SecretsError, fields};
use crate::model::{PreparedRequest, Webhook};

/// Rows per transaction in a pass.
const CHUNK: i64 = 200;

/// The database behind a store.
#[derive(Clone)]
pub enum RawDb {
    Sqlite(PathBuf),
    Postgres(deadpool_postgres::Pool),
}

/// What a pass changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassReport {
    pub rows: u64,
    pub changed: u64,
}

fn db<E: std::fmt::Display>(e: E) -> SecretsError {
    SecretsError::Db(e.to_string())
}

impl RawDb {
    /// One `settings` value.
    pub async fn get_setting(&self, name: &str) -> Result<Option<String>, SecretsError> {
        let name = name.to_string();
        match self {
            RawDb::Sqlite(path) => {
                sqlite(path.clone(), move |c| {
                    c.query_row("SELECT value FROM settings WHERE name = ?1", [&name], |r| {
                        r.get(0)
                    })
                    .optional()
                })
                .await
            }
            RawDb::Postgres(pool) => {
                let c = pool.get().await.map_err(db)?;
                let row = c
                    .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
                    .await
                    .map_err(db)?;
                Ok(row.map(|r| r.get(0)))
            }
        }
    }

    /// Writes a `settings` value; with `overwrite` false an existing value is kept.
    pub async fn put_setting(
        &self,
        name: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<(), SecretsError> {
        let now = chrono::Utc::now().timestamp_millis();
        let sql = if overwrite {
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        } else {
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
        };
        let (name, value) = (name.to_string(), value.to_string());
        match self {
            RawDb::Sqlite(path) => {
                sqlite(path.clone(), move |c| {
                    c.execute(&sqlite_sql(sql), params![name, value, now])
                        .map(|_| ())
                })
                .await
            }
            RawDb::Postgres(pool) => {
                let c = pool.get().await.map_err(db)?;
                c.execute(sql, &[&name, &value, &now]).await.map_err(db)?;
                Ok(())
            }
        }
    }

    /// After sealing clear values: rewrites the SQLite file so no page keeps the old clear bytes
    /// (a no-op on PostgreSQL, whose dead tuples vacuum reclaims).
    pub async fn compact(&self) -> Result<(), SecretsError> {
        match self {
            RawDb::Sqlite(path) => {
                sqlite(path.clone(), |c| {
                    c.execute_batch(
                        "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
                    )
                })
                .await
            }
            RawDb::Postgres(_) => Ok(()),
        }
    }

    /// Re-seals every secret of every webhook and delivery with `ring` (clear values sealed,
    /// values under an older key moved to the current one, current ones left alone).
    pub async fn reseal_all(&self, ring: Keyring) -> Result<PassReport, SecretsError> {
        let mut total = PassReport::default();
        for table in [Table::Webhooks, Table::Deliveries] {
            let mut after = String::new();
            loop {
                let rows = self.chunk(table, &after).await?;
                let Some(last) = rows.last() else { break };
                after = last.0.clone();
                let n = rows.len();
                let mut changed = Vec::new();
                for (id, a, b) in rows {
                    if let Some((a2, b2)) = table.reseal(&ring, &a, b.as_deref())? {
                        changed.push((id, a2, b2));
                    }
                }
                total.rows += n as u64;
                total.changed += changed.len() as u64;
                self.write(table, changed).await?;
                if (n as i64) < CHUNK {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn chunk(
        &self,
        table: Table,
        after: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, SecretsError> {
        let sql = table.select();
        let after = after.to_string();
        match self {
            RawDb::Sqlite(path) => {
                sqlite(path.clone(), move |c| {
                    let mut s = c.prepare(&sqlite_sql(sql))?;
                    s.query_map(params![after, CHUNK], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect()
                })
                .await
            }
            RawDb::Postgres(pool) => {
                let c = pool.get().await.map_err(db)?;
                let rows = c.query(sql, &[&after, &CHUNK]).await.map_err(db)?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect())
            }
        }
    }

    async fn write(
        &self,
        table: Table,
        rows: Vec<(String, String, Option<String>)>,
    ) -> Result<(), SecretsError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = table.update();
        match self {
            RawDb::Sqlite(path) => {
                sqlite(path.clone(), move |c| {
                    let tx = c.unchecked_transaction()?;
                    let sql = sqlite_sql(sql);
                    let sql = sql.as_str();
                    for (id, a, b) in &rows {
                        match table {
                            Table::Webhooks => tx.execute(sql, params![id, a])?,
                            Table::Deliveries => tx.execute(sql, params![id, a, b])?,
                        };
                    }
                    tx.commit()
                })
                .await
            }
            RawDb::Postgres(pool) => {
                let mut c = pool.get().await.map_err(db)?;
                let tx = c.transaction().await.map_err(db)?;
                let stmt = tx.prepare(sql).await.map_err(db)?;
                for (id, a, b) in &rows {
                    match table {
                        Table::Webhooks => tx.execute(&stmt, &[id, a]).await,
                        Table::Deliveries => tx.execute(&stmt, &[id, a, b]).await,
                    }
                    .map_err(db)?;
                }
                tx.commit().await.map_err(db)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Webhooks,
    Deliveries,
}

impl Table {
    /// (id, first column, second column) of the next chunk after an id.
    fn select(self) -> &'static str {
        match self {
            Table::Webhooks => {
                "SELECT id, doc, CAST(NULL AS TEXT) FROM webhooks WHERE id > $1 ORDER BY id LIMIT $2"
            }
            Table::Deliveries => {
                "SELECT id, url, request FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2"
            }
        }
    }

    fn update(self) -> &'static str {
        match self {
            Table::Webhooks => "UPDATE webhooks SET doc = $2 WHERE id = $1",
            Table::Deliveries => "UPDATE deliveries SET url = $2, request = $3 WHERE id = $1",
        }
    }

    /// The row's columns re-sealed, or `None` when nothing changed.
    #[allow(clippy::type_complexity)]
    fn reseal(
        self,
        ring: &Keyring,
        a: &str,
        b: Option<&str>,
    ) -> Result<Option<(String, Option<String>)>, SecretsError> {
        let mut f = |s: &str| ring.reseal(s);
        match self {
            Table::Webhooks => {
                let mut w: Webhook = serde_json::from_str(a)
                    .map_err(|e| SecretsError::Db(format!("a stored webhook: {e}")))?;
                let before = w.clone();
                fields::webhook(&mut w, &mut f)?;
                if w == before {
                    return Ok(None);
                }
                let doc = serde_json::to_string(&w).map_err(db)?;
                Ok(Some((doc, None)))
            }
            Table::Deliveries => {
                let url = f(a)?;
                let request = match b {
                    None => None,
                    Some(text) => {
                        let mut r: PreparedRequest = serde_json::from_str(text)
                            .map_err(|e| SecretsError::Db(format!("a stored request: {e}")))?;
                        fields::request(&mut r, &mut f)?;
                        Some(serde_json::to_string(&r).map_err(db)?)
                    }
                };
                if url == a && request.as_deref() == b {
                    return Ok(None);
                }
                Ok(Some((url, request)))
            }
        }
    }
}

/// The statements are written with PostgreSQL's `$n`; SQLite numbers `?n` exactly (its `$n` are
/// named parameters, numbered by first appearance).
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Runs `f` on a connection to the SQLite file, on a blocking thread.
async fn sqlite<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, SecretsError> {
    tokio::task::spawn_blocking(move || {
        let c = Connection::open(&path)?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        f(&c)
    })
    .await
    .map_err(db)?
    .map_err(db)
}
