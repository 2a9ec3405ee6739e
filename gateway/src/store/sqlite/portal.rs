//! Team portal links: insert, and open once (checked and marked used in one statement).

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::model::{PortalLink, PortalRedeem};
use crate::store::StoreResult;

fn link_from_row(r: &Row<'_>) -> rusqlite::Result<PortalLink> {
    Ok(PortalLink {
        id: r.get("id")?,
        token_hash: r.get("token_hash")?,
        team_id: r.get("team_id")?,
        webhook_id: r.get("webhook_id")?,
        created_by: r.get("created_by")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        used_at: r.get("used_at")?,
    })
}

pub(super) async fn insert_portal_link(store: &SqliteStore, l: &PortalLink) -> StoreResult<()> {
    let l = l.clone();
    store
        .write(move |t| {
            t.execute(
                "INSERT INTO portal_links (id, token_hash, team_id, webhook_id, created_by, created_at, expires_at, used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![l.id, l.token_hash, l.team_id, l.webhook_id, l.created_by, l.created_at,
                    l.expires_at, l.used_at],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn redeem_portal_link(
    store: &SqliteStore,
    token_hash: &str,
    now: i64,
) -> StoreResult<PortalRedeem> {
    let h = token_hash.to_string();
    store
        .write(move |t| {
            let opened = t
                .prepare_cached(
                    "UPDATE portal_links SET used_at = ?2 \
                     WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING *",
                )?
                .query_row(params![h, now], link_from_row)
                .optional()?;
            if let Some(l) = opened {
                return Ok(PortalRedeem::Opened(l));
            }
            let found = t
                .prepare_cached("SELECT * FROM portal_links WHERE token_hash = ?1")?
                .query_row([h], link_from_row)
                .optional()?;
            Ok(match found {
                None => PortalRedeem::Unknown,
                Some(l) if l.used_at.is_some() => PortalRedeem::Used,
                Some(_) => PortalRedeem::Expired,
            })
        })
        .await
}
