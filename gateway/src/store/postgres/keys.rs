//! API keys: insert, look up by token hash, list.

use tokio_postgres::Row;

use super::PostgresStore;
use crate::model::{ApiKey, Role};
use crate::store::StoreResult;

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

pub(super) async fn insert_api_key(store: &PostgresStore, key: ApiKey) -> StoreResult<()> {
    store.execute(
        "INSERT INTO api_keys (id, name, role, team_id, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (token_hash) DO NOTHING",
        &[&key.id, &key.name, &key.role.as_str(), &key.team_id, &key.token_hash, &key.created_at],
    )
    .await
    .map(|_| ())
}

pub(super) async fn api_key_by_hash(
    store: &PostgresStore,
    token_hash: &str,
) -> StoreResult<Option<ApiKey>> {
    store
        .query_opt(
            "SELECT * FROM api_keys WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?
        .as_ref()
        .map(key_from_row)
        .transpose()
}

pub(super) async fn list_api_keys(store: &PostgresStore) -> StoreResult<Vec<ApiKey>> {
    store
        .query("SELECT * FROM api_keys ORDER BY created_at", &[])
        .await?
        .iter()
        .map(key_from_row)
        .collect()
}
