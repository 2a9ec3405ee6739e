//! API keys: insert, look up by token hash or id, list, revoke, record a recent use.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::model::{ApiKey, Role};
use crate::store::StoreResult;

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let role: String = r.get("role")?;
    Ok(ApiKey {
        id: r.get("id")?,
        name: r.get("name")?,
        role: Role::parse(&role).unwrap_or(Role::Manager),
        team_id: r.get("team_id")?,
        token_hash: r.get("token_hash")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        last_used_at: r.get("last_used_at")?,
        revoked_at: r.get("revoked_at")?,
        bootstrap: r.get::<_, i64>("bootstrap")? != 0,
    })
}

pub(super) async fn insert_api_key(store: &SqliteStore, key: ApiKey) -> StoreResult<()> {
    store.write(move |t| {
        t.execute(
            "INSERT INTO api_keys (id, name, role, team_id, token_hash, created_at, expires_at, last_used_at, revoked_at, bootstrap) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (token_hash) DO NOTHING",
            params![key.id, key.name, key.role.as_str(), key.team_id, key.token_hash, key.created_at,
                key.expires_at, key.last_used_at, key.revoked_at, i64::from(key.bootstrap)],
        )?;
        Ok(())
    })
    .await
}

pub(super) async fn api_key_by_hash(
    store: &SqliteStore,
    token_hash: &str,
) -> StoreResult<Option<ApiKey>> {
    let h = token_hash.to_string();
    store
        .read(move |c| {
            Ok(
                c.prepare_cached("SELECT * FROM api_keys WHERE token_hash = ?1")?
                    .query_row([h], key_from_row)
                    .optional()?,
            )
        })
        .await
}

pub(super) async fn list_api_keys(store: &SqliteStore) -> StoreResult<Vec<ApiKey>> {
    store
        .read(|c| {
            let mut stmt = c.prepare("SELECT * FROM api_keys ORDER BY created_at, id")?;
            let rows = stmt
                .query_map([], key_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}

pub(super) async fn revoke_api_key(
    store: &SqliteStore,
    id: &str,
    now: i64,
) -> StoreResult<Option<ApiKey>> {
    let id = id.to_string();
    store
        .write(move |t| {
            t.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, now],
            )?;
            Ok(t.prepare_cached("SELECT * FROM api_keys WHERE id = ?1")?
                .query_row([id], key_from_row)
                .optional()?)
        })
        .await
}

pub(super) async fn touch_api_key(store: &SqliteStore, id: &str, at: i64) -> StoreResult<()> {
    let id = id.to_string();
    store
        .write(move |t| {
            t.execute(
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                params![id, at],
            )?;
            Ok(())
        })
        .await
}
