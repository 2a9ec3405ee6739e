//! API keys: insert, look up by token hash or id, list, revoke, record a recent use.

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
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
        bootstrap: r.try_get::<_, i64>("bootstrap")? != 0,
    })
}

pub(super) async fn insert_api_key(store: &PostgresStore, key: ApiKey) -> StoreResult<()> {
    store.execute(
        "INSERT INTO api_keys (id, name, role, team_id, token_hash, created_at, expires_at, last_used_at, revoked_at, bootstrap) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (token_hash) DO NOTHING",
        &[&key.id, &key.name, &key.role.as_str(), &key.team_id, &key.token_hash, &key.created_at,
            &key.expires_at, &key.last_used_at, &key.revoked_at, &i64::from(key.bootstrap)],
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
        .query("SELECT * FROM api_keys ORDER BY created_at, id", &[])
        .await?
        .iter()
        .map(key_from_row)
        .collect()
}

pub(super) async fn revoke_api_key(
    store: &PostgresStore,
    id: &str,
    now: i64,
) -> StoreResult<Option<ApiKey>> {
    store
        .query_opt(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *",
            &[&id, &now],
        )
        .await?
        .as_ref()
        .map(key_from_row)
        .transpose()
}

pub(super) async fn touch_api_key(store: &PostgresStore, id: &str, at: i64) -> StoreResult<()> {
    store
        .execute(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            &[&id, &at],
        )
        .await
        .map(|_| ())
}
