//! Plugin records and their content-addressed component blobs.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::model::PluginRecord;
use crate::store::{StoreError, StoreResult};

pub(super) async fn put_plugin(
    store: &SqliteStore,
    record: &PluginRecord,
    component: &[u8],
) -> StoreResult<()> {
    let rec = record.clone();
    let bytes = component.to_vec();
    let doc = serde_json::to_string(&rec)?;
    store.write(move |t| {
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

pub(super) async fn list_plugins(store: &SqliteStore) -> StoreResult<Vec<PluginRecord>> {
    let docs: Vec<String> = store
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

pub(super) async fn get_plugin(
    store: &SqliteStore,
    name: &str,
    version: &str,
) -> StoreResult<Option<PluginRecord>> {
    let (n, v) = (name.to_string(), version.to_string());
    let doc: Option<String> = store
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

pub(super) async fn plugin_bytes(
    store: &SqliteStore,
    sha256: &str,
) -> StoreResult<Option<Vec<u8>>> {
    let h = sha256.to_string();
    store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT bytes FROM plugin_blobs WHERE sha256 = ?1",
                [h],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
}

pub(super) async fn delete_plugin(
    store: &SqliteStore,
    name: &str,
    version: &str,
) -> StoreResult<()> {
    let (n, v) = (name.to_string(), version.to_string());
    store.write(move |t| {
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
