//! Delivery statistics for the overview: attempts per time bucket and outcome, recent attempt
//! durations, the queue now and the disabled webhooks, of one team's webhooks or of all.

use super::PostgresStore;
use crate::model::DeliveryStatus;
use crate::store::{DeliveryStats, StatsQuery, StoreResult};

/// The webhooks a query covers (`$1`: a team id, or NULL for all).
const OF_TEAM: &str =
    "($1::text IS NULL OR webhook_id IN (SELECT id FROM webhooks WHERE team_id = $1::text))";

pub(super) async fn delivery_stats(
    store: &PostgresStore,
    q: &StatsQuery,
) -> StoreResult<DeliveryStats> {
    let counts = store
        .query(
            &format!(
                "SELECT (started_at - $2) / $4 AS b, outcome, COUNT(*) FROM attempts \
                 WHERE {OF_TEAM} AND started_at >= $2 AND started_at < $3 \
                 GROUP BY b, outcome ORDER BY b"
            ),
            &[&q.team_id, &q.since, &q.until, &q.bucket_ms],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<_, i64>(2)? as u64)))
        .collect::<StoreResult<Vec<_>>>()?;
    let limit = q.max_samples as i64;
    let durations = store
        .query(
            &format!(
                "SELECT (started_at - $2) / $4, ((doc::json) ->> 'duration_ms')::bigint \
                 FROM attempts WHERE {OF_TEAM} AND started_at >= $2 AND started_at < $3 \
                 ORDER BY started_at DESC LIMIT $5"
            ),
            &[&q.team_id, &q.since, &q.until, &q.bucket_ms, &limit],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, Option<i64>>(1)?.unwrap_or(0))))
        .collect::<StoreResult<Vec<_>>>()?;
    let queue = store
        .query(
            &format!(
                "SELECT status, COUNT(*) FROM deliveries \
                 WHERE {OF_TEAM} AND status IN ('pending', 'in_flight') GROUP BY status"
            ),
            &[&q.team_id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)? as u64)))
        .collect::<StoreResult<Vec<_>>>()?
        .into_iter()
        .filter_map(|(s, n)| DeliveryStatus::parse(&s).map(|s| (s, n)))
        .collect();
    let row = store
        .query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN enabled = 0 THEN 1 ELSE 0 END), 0)::bigint \
             FROM webhooks WHERE $1::text IS NULL OR team_id = $1::text",
            &[&q.team_id],
        )
        .await?;
    let (webhooks, disabled) = match row.first() {
        Some(r) => (r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?),
        None => (0, 0),
    };
    Ok(DeliveryStats {
        counts,
        durations,
        queue,
        webhooks: webhooks as u64,
        disabled_webhooks: disabled as u64,
    })
}
