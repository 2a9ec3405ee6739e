//! Delivery statistics for the overview: attempts per time bucket and outcome, recent attempt
//! durations, the queue now and the disabled webhooks, of one team's webhooks or of all.

use rusqlite::params;

use super::SqliteStore;
use crate::model::DeliveryStatus;
use crate::store::{DeliveryStats, StatsQuery, StoreResult};

/// The webhooks a query covers (`?1`: a team id, or NULL for all).
const OF_TEAM: &str = "(?1 IS NULL OR webhook_id IN (SELECT id FROM webhooks WHERE team_id = ?1))";

pub(super) async fn delivery_stats(
    store: &SqliteStore,
    q: &StatsQuery,
) -> StoreResult<DeliveryStats> {
    let q = q.clone();
    store
        .read(move |c| {
            let window = params![q.team_id, q.since, q.until, q.bucket_ms];
            let counts = c
                .prepare_cached(&format!(
                    "SELECT (started_at - ?2) / ?4 AS b, outcome, COUNT(*) FROM attempts \
                     WHERE {OF_TEAM} AND started_at >= ?2 AND started_at < ?3 \
                     GROUP BY b, outcome ORDER BY b"
                ))?
                .query_map(window, |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let durations = c
                .prepare_cached(&format!(
                    "SELECT (started_at - ?2) / ?4, CAST(json_extract(doc, '$.duration_ms') AS INTEGER) \
                     FROM attempts WHERE {OF_TEAM} AND started_at >= ?2 AND started_at < ?3 \
                     ORDER BY started_at DESC LIMIT ?5"
                ))?
                .query_map(
                    params![q.team_id, q.since, q.until, q.bucket_ms, q.max_samples as i64],
                    |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0))),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let queue = c
                .prepare_cached(&format!(
                    "SELECT status, COUNT(*) FROM deliveries \
                     WHERE {OF_TEAM} AND status IN ('pending', 'in_flight') GROUP BY status"
                ))?
                .query_map([&q.team_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter_map(|(s, n)| DeliveryStatus::parse(&s).map(|s| (s, n)))
                .collect();
            let (webhooks, disabled): (i64, i64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN enabled = 0 THEN 1 ELSE 0 END), 0) \
                 FROM webhooks WHERE ?1 IS NULL OR team_id = ?1",
                [&q.team_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(DeliveryStats {
                counts,
                durations,
                queue,
                webhooks: webhooks as u64,
                disabled_webhooks: disabled as u64,
            })
        })
        .await
}
