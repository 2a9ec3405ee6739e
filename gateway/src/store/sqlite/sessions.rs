//! Console sessions: insert (dropping expired rows), look up by cookie hash, touch, delete.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::model::{ConsoleSession, Role};
use crate::store::StoreResult;

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<ConsoleSession> {
    let role: String = r.get("role")?;
    Ok(ConsoleSession {
        id_hash: r.get("id_hash")?,
        key_id: r.get("key_id")?,
        // An unreadable role grants the least.
        role: Role::parse(&role).unwrap_or(Role::Publisher),
        team_id: r.get("team_id")?,
        only_webhook: r.get("only_webhook")?,
        portal: r.get::<_, i64>("portal")? != 0,
        csrf: r.get("csrf")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        last_seen_at: r.get("last_seen_at")?,
    })
}

pub(super) async fn insert(store: &SqliteStore, s: ConsoleSession) -> StoreResult<()> {
    store
        .write(move |t| {
            t.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?1",
                [s.created_at],
            )?;
            t.execute(
                "INSERT INTO console_sessions (id_hash, key_id, role, team_id, only_webhook, portal, csrf, created_at, expires_at, last_seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id_hash) DO NOTHING",
                params![s.id_hash, s.key_id, s.role.as_str(), s.team_id, s.only_webhook,
                    i64::from(s.portal), s.csrf, s.created_at, s.expires_at, s.last_seen_at],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn get(store: &SqliteStore, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
    let h = id_hash.to_string();
    store
        .read(move |c| {
            Ok(
                c.prepare_cached("SELECT * FROM console_sessions WHERE id_hash = ?1")?
                    .query_row([h], session_from_row)
                    .optional()?,
            )
        })
        .await
}

pub(super) async fn touch(store: &SqliteStore, id_hash: &str, at: i64) -> StoreResult<()> {
    let h = id_hash.to_string();
    store
        .write(move |t| {
            t.execute(
                "UPDATE console_sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?2",
                params![h, at],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn delete(store: &SqliteStore, id_hash: &str) -> StoreResult<()> {
    let h = id_hash.to_string();
    store
        .write(move |t| {
            t.execute("DELETE FROM console_sessions WHERE id_hash = ?1", [h])?;
            Ok(())
        })
        .await
}
