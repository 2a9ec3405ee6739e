//! Plugin records and their content-addressed component blobs.

use super::{PostgresStore, docs};
use crate::model::PluginRecord;
use crate::store::{StoreError, StoreResult};

pub(super) async fn put_plugin(
    store: &PostgresStore,
    rec: &PluginRecord,
    component: &[u8],
) -> StoreResult<()> {
    let doc = serde_json::to_string(rec)?;
    store.in_tx(async |t| {
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

pub(super) async fn list_plugins(store: &PostgresStore) -> StoreResult<Vec<PluginRecord>> {
    docs(
        &store
            .query("SELECT doc FROM plugins ORDER BY name, created_at", &[])
            .await?,
    )
}

pub(super) async fn get_plugin(
    store: &PostgresStore,
    name: &str,
    version: &str,
) -> StoreResult<Option<PluginRecord>> {
    store
        .doc_by(
            "SELECT doc FROM plugins WHERE name = $1 AND version = $2",
            &[&name, &version],
        )
        .await
}

pub(super) async fn plugin_bytes(
    store: &PostgresStore,
    sha256: &str,
) -> StoreResult<Option<Vec<u8>>> {
    store
        .query_opt(
            "SELECT bytes FROM plugin_blobs WHERE sha256 = $1",
            &[&sha256],
        )
        .await?
        .map(|r| Ok(r.try_get(0)?))
        .transpose()
}

pub(super) async fn delete_plugin(
    store: &PostgresStore,
    name: &str,
    version: &str,
) -> StoreResult<()> {
    store.in_tx(async |t| {
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
