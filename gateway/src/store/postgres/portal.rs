//! Team portal links: insert, and open once (checked and marked used in one statement).

use tokio_postgres::Row;

use super::PostgresStore;
use crate::model::{PortalLink, PortalRedeem};
use crate::store::StoreResult;

fn link_from_row(r: &Row) -> StoreResult<PortalLink> {
    Ok(PortalLink {
        id: r.try_get("id")?,
        token_hash: r.try_get("token_hash")?,
        team_id: r.try_get("team_id")?,
        webhook_id: r.try_get("webhook_id")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
    })
}

pub(super) async fn insert_portal_link(store: &PostgresStore, l: &PortalLink) -> StoreResult<()> {
    store
        .execute(
            "INSERT INTO portal_links (id, token_hash, team_id, webhook_id, created_by, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&l.id, &l.token_hash, &l.team_id, &l.webhook_id, &l.created_by, &l.created_at,
                &l.expires_at, &l.used_at],
        )
        .await
        .map(|_| ())
}

pub(super) async fn redeem_portal_link(
    store: &PostgresStore,
    token_hash: &str,
    now: i64,
) -> StoreResult<PortalRedeem> {
    // Row-locking UPDATE: of two concurrent opens, the second re-checks `used_at` and finds it set.
    let opened = store
        .query_opt(
            "UPDATE portal_links SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING *",
            &[&token_hash, &now],
        )
        .await?;
    if let Some(r) = opened {
        return Ok(PortalRedeem::Opened(link_from_row(&r)?));
    }
    let found = store
        .query_opt(
            "SELECT * FROM portal_links WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
    Ok(match found.as_ref().map(link_from_row).transpose()? {
        None => PortalRedeem::Unknown,
        Some(l) if l.used_at.is_some() => PortalRedeem::Used,
        Some(_) => PortalRedeem::Expired,
    })
}
