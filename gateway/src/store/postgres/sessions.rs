//! Console sessions: insert (dropping expired rows), look up by cookie hash, touch, delete.

use tokio_postgres::Row;

use super::PostgresStore;
use crate::model::{ConsoleSession, Role};
use crate::store::StoreResult;

fn session_from_row(r: &Row) -> StoreResult<ConsoleSession> {
    let role: String = r.try_get("role")?;
    Ok(ConsoleSession {
        id_hash: r.try_get("id_hash")?,
        key_id: r.try_get("key_id")?,
        // An unreadable role grants the least.
        role: Role::parse(&role).unwrap_or(Role::Publisher),
        team_id: r.try_get("team_id")?,
        only_webhook: r.try_get("only_webhook")?,
        portal: r.try_get::<_, i64>("portal")? != 0,
        csrf: r.try_get("csrf")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}

pub(super) async fn insert(store: &PostgresStore, s: ConsoleSession) -> StoreResult<()> {
    store
        .execute(
            "DELETE FROM console_sessions WHERE expires_at <= $1",
            &[&s.created_at],
        )
        .await?;
    store
        .execute(
            "INSERT INTO console_sessions (id_hash, key_id, role, team_id, only_webhook, portal, csrf, created_at, expires_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id_hash) DO NOTHING",
            &[&s.id_hash, &s.key_id, &s.role.as_str(), &s.team_id, &s.only_webhook,
                &i64::from(s.portal), &s.csrf, &s.created_at, &s.expires_at, &s.last_seen_at],
        )
        .await
        .map(|_| ())
}

pub(super) async fn get(
    store: &PostgresStore,
    id_hash: &str,
) -> StoreResult<Option<ConsoleSession>> {
    store
        .query_opt(
            "SELECT * FROM console_sessions WHERE id_hash = $1",
            &[&id_hash],
        )
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
}

pub(super) async fn touch(store: &PostgresStore, id_hash: &str, at: i64) -> StoreResult<()> {
    store
        .execute(
            "UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2",
            &[&id_hash, &at],
        )
        .await
        .map(|_| ())
}

pub(super) async fn delete(store: &PostgresStore, id_hash: &str) -> StoreResult<()> {
    store
        .execute(
            "DELETE FROM console_sessions WHERE id_hash = $1",
            &[&id_hash],
        )
        .await
        .map(|_| ())
}
