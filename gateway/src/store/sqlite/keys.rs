//! API keys: insert, look up by token hash, list.

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
    })
}

pub(super) async fn insert_api_key(store: &SqliteStore, key: ApiKey) -> StoreResult<()> {
    store.write(move |t| {
        t.execute(
            "INSERT INTO api_keys (id, name, role, team_id, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (token_hash) DO NOTHING",
            params![key.id, key.name, key.role.as_str(), key.team_id, key.token_hash, key.created_at],
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
            let mut stmt = c.prepare("SELECT * FROM api_keys ORDER BY created_at")?;
            let rows = stmt
                .query_map([], key_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}
