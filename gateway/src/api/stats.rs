//! `GET /api/v1/stats/deliveries`: what the console's overview draws, from the gateway's own
//! data: attempts per time bucket by outcome, attempt latency p50 / p99 (overall and per bucket),
//! the delivery queue now and the disabled webhooks. Admins see every webhook; a manager its own
//! team's. Publisher keys and portal sessions see no statistics.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, CallerVia};
use super::error::{ApiError, ApiResult};
use super::{AppState, parse_time, rfc3339};
use crate::model::{DeliveryStatus, Role};
use crate::store::{DeliveryStats, StatsQuery};

/// The window a request without `since` covers.
pub const DEFAULT_WINDOW_SECS: i64 = 24 * 60 * 60;
/// At most this many buckets per answer.
pub const MAX_BUCKETS: i64 = 1_000;
/// The latest time a window may name (9999-12-31T23:59:59.999Z).
const MAX_TIME_MS: i64 = 253_402_300_799_999;
/// Percentiles are computed from at most this many of the window's most recent attempts.
pub const MAX_SAMPLES: u64 = 50_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stats/deliveries", get(deliveries))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatsParams {
    /// Attempts started at or after this: RFC 3339 or unix milliseconds (default: 24 h ago).
    pub since: Option<String>,
    /// Attempts started before this: RFC 3339 or unix milliseconds (default: now).
    pub until: Option<String>,
    /// Bucket width in seconds, 1 or more, at most 1000 buckets in the window (default: the
    /// window in 48 buckets, at least 60 s each).
    #[param(value_type = Option<u64>, minimum = 1)]
    pub bucket_secs: Option<String>,
}

/// One time bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsBucket {
    #[schema(format = DateTime)]
    pub start: String,
    /// Attempts that delivered (2xx).
    pub delivered: u64,
    /// Attempts that failed with another attempt scheduled.
    pub retrying: u64,
    /// Attempts that failed with none following.
    pub failed: u64,
    /// Median attempt duration in the bucket (ms); null: no attempt sampled.
    #[schema(required)]
    pub latency_p50_ms: Option<u64>,
    #[schema(required)]
    pub latency_p99_ms: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsLatency {
    #[schema(required)]
    pub p50_ms: Option<u64>,
    #[schema(required)]
    pub p99_ms: Option<u64>,
    /// How many attempt durations the percentiles come from.
    pub samples: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsQueue {
    /// Deliveries waiting for their next attempt.
    pub pending: u64,
    /// Deliveries being attempted now.
    pub in_flight: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsWebhooks {
    pub total: u64,
    /// De-activated by a user or auto-disabled by the gateway.
    pub disabled: u64,
}

/// Delivery statistics of the caller's webhooks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryStatsView {
    #[schema(format = DateTime)]
    pub since: String,
    #[schema(format = DateTime)]
    pub until: String,
    pub bucket_secs: u64,
    /// The team covered; null: every webhook (admins).
    #[schema(required)]
    pub team_id: Option<String>,
    pub buckets: Vec<StatsBucket>,
    pub latency: StatsLatency,
    pub queue: StatsQueue,
    pub webhooks: StatsWebhooks,
}

/// `a / b` rounded up, for positive `b`.
fn div_ceil(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1].max(0) as u64)
}

/// Checks the window and bucket width; returns (since, until, bucket ms).
fn window(p: &StatsParams, now: i64) -> ApiResult<(i64, i64, i64)> {
    let until = match &p.until {
        Some(s) => parse_time("until", s)?,
        None => now,
    };
    let since = match &p.since {
        Some(s) => parse_time("since", s)?,
        None => until.saturating_sub(DEFAULT_WINDOW_SECS * 1000),
    };
    // Years 1970 to 9999: the arithmetic below stays in range, and nothing is stored outside it.
    for (field, t) in [("since", since), ("until", until)] {
        if !(0..=MAX_TIME_MS).contains(&t) {
            return Err(ApiError::field(field, "must be between 1970 and 9999"));
        }
    }
    if since >= until {
        return Err(ApiError::field("since", "must be before until"));
    }
    let span = until - since;
    let bucket_ms = match &p.bucket_secs {
        Some(s) => {
            let secs: i64 = s
                .parse()
                .ok()
                .filter(|n| *n >= 1 && *n <= 366 * 86_400)
                .ok_or_else(|| {
                    ApiError::field(
                        "bucket_secs",
                        "must be a whole number of seconds, 1 to 31622400",
                    )
                })?;
            secs * 1000
        }
        None => div_ceil((span / 48).max(60_000), 1000) * 1000,
    };
    if div_ceil(span, bucket_ms) > MAX_BUCKETS {
        return Err(ApiError::field(
            "bucket_secs",
            format!(
                "makes more than {MAX_BUCKETS} buckets in the window; choose a wider bucket or a shorter window"
            ),
        ));
    }
    Ok((since, until, bucket_ms))
}

/// Turns stored statistics into the answer.
pub fn view(
    s: DeliveryStats,
    since: i64,
    until: i64,
    bucket_ms: i64,
    team_id: Option<String>,
) -> DeliveryStatsView {
    let n = div_ceil(until.saturating_sub(since), bucket_ms).max(1) as usize;
    let mut buckets: Vec<StatsBucket> = (0..n)
        .map(|i| StatsBucket {
            start: rfc3339(since + i as i64 * bucket_ms),
            delivered: 0,
            retrying: 0,
            failed: 0,
            latency_p50_ms: None,
            latency_p99_ms: None,
        })
        .collect();
    for (b, outcome, count) in &s.counts {
        let Some(bucket) = usize::try_from(*b).ok().and_then(|b| buckets.get_mut(b)) else {
            continue;
        };
        match outcome.as_str() {
            "success" => bucket.delivered += count,
            "retry" => bucket.retrying += count,
            _ => bucket.failed += count,
        }
    }
    let mut per: Vec<Vec<i64>> = vec![Vec::new(); n];
    let mut all: Vec<i64> = Vec::with_capacity(s.durations.len());
    for (b, d) in &s.durations {
        if let Some(v) = usize::try_from(*b).ok().and_then(|b| per.get_mut(b)) {
            v.push(*d);
        }
        all.push(*d);
    }
    for (bucket, mut ds) in buckets.iter_mut().zip(per) {
        ds.sort_unstable();
        bucket.latency_p50_ms = percentile(&ds, 50.0);
        bucket.latency_p99_ms = percentile(&ds, 99.0);
    }
    all.sort_unstable();
    let queued = |st: DeliveryStatus| {
        s.queue
            .iter()
            .filter(|(q, _)| *q == st)
            .map(|(_, n)| n)
            .sum()
    };
    DeliveryStatsView {
        since: rfc3339(since),
        until: rfc3339(until),
        bucket_secs: (bucket_ms / 1000) as u64,
        team_id,
        buckets,
        latency: StatsLatency {
            p50_ms: percentile(&all, 50.0),
            p99_ms: percentile(&all, 99.0),
            samples: all.len() as u64,
        },
        queue: StatsQueue {
            pending: queued(DeliveryStatus::Pending),
            in_flight: queued(DeliveryStatus::InFlight),
        },
        webhooks: StatsWebhooks {
            total: s.webhooks,
            disabled: s.disabled_webhooks,
        },
    }
}

/// The statistics a caller may see (the overview page calls this too).
pub async fn for_caller(
    st: &AppState,
    caller: &Caller,
    p: &StatsParams,
) -> ApiResult<DeliveryStatsView> {
    caller.may_use_webhooks()?;
    if caller.via == CallerVia::Portal {
        return Err(ApiError::Forbidden(
            "a portal session sees its webhooks, not the gateway's statistics".into(),
        ));
    }
    let team_id = match caller.role {
        Role::Admin => None,
        _ => Some(caller.team_id.clone().unwrap_or_default()),
    };
    let (since, until, bucket_ms) = window(p, st.clock.now_ms())?;
    let stats = st
        .store
        .delivery_stats(&StatsQuery {
            team_id: team_id.clone(),
            since,
            until,
            bucket_ms,
            max_samples: MAX_SAMPLES,
        })
        .await?;
    Ok(view(stats, since, until, bucket_ms, team_id))
}

/// Deliveries over time by outcome, latency percentiles, queue depth and disabled webhooks.
#[utoipa::path(get, path = "/api/v1/stats/deliveries", operation_id = "delivery_stats", tag = "stats",
    params(StatsParams),
    responses(
        (status = 200, body = DeliveryStatsView, description = "Statistics of the caller's webhooks (a manager: its team's)"),
        (status = 400, description = "A parameter is invalid (named in `field`)"),
        (status = 403, description = "A publisher key or a portal session"),
    ),
    security(("api_key" = [])))]
pub async fn deliveries(
    State(st): State<AppState>,
    caller: Caller,
    query: Result<Query<StatsParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<DeliveryStatsView>> {
    let Query(p) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    Ok(Json(for_caller(&st, &caller, &p).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_window_is_checked_and_named() {
        let p = |since: Option<&str>, bucket: Option<&str>| StatsParams {
            since: since.map(str::to_string),
            until: Some("100000000".into()),
            bucket_secs: bucket.map(str::to_string),
        };
        assert_eq!(
            window(&p(Some("40000000"), Some("60")), 0).unwrap(),
            (40_000_000, 100_000_000, 60_000)
        );
        let field = |e: ApiError| match e {
            ApiError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(window(&p(None, Some("0")), 0).unwrap_err()).as_deref(),
            Some("bucket_secs")
        );
        assert_eq!(
            field(window(&p(None, Some("1")), 0).unwrap_err()).as_deref(),
            Some("bucket_secs")
        );
        assert_eq!(
            field(window(&p(Some("200000000"), None), 0).unwrap_err()).as_deref(),
            Some("since")
        );
        let far = StatsParams {
            since: Some(i64::MIN.to_string()),
            until: Some(i64::MAX.to_string()),
            bucket_secs: None,
        };
        assert_eq!(
            field(window(&far, 0).unwrap_err()).as_deref(),
            Some("since")
        );
        let (s, u, b) = window(&p(None, None), 0).unwrap();
        assert!((u - s) / b <= 48, "the default makes at most 48 buckets");
    }

    #[test]
    fn view_fills_empty_buckets_and_sorts_outcomes() {
        let s = DeliveryStats {
            counts: vec![
                (0, "success".into(), 3),
                (2, "failed".into(), 1),
                (2, "retry".into(), 2),
            ],
            durations: vec![(0, 10), (0, 30), (2, 500)],
            queue: vec![(DeliveryStatus::Pending, 4)],
            webhooks: 5,
            disabled_webhooks: 2,
        };
        let v = view(s, 0, 180_000, 60_000, None);
        assert_eq!(v.buckets.len(), 3);
        assert_eq!((v.buckets[0].delivered, v.buckets[1].delivered), (3, 0));
        assert_eq!((v.buckets[2].failed, v.buckets[2].retrying), (1, 2));
        assert_eq!(v.buckets[0].latency_p50_ms, Some(10));
        assert_eq!(v.buckets[1].latency_p50_ms, None);
        assert_eq!(v.latency.p99_ms, Some(500));
        assert_eq!((v.queue.pending, v.queue.in_flight), (4, 0));
        assert_eq!(v.webhooks.disabled, 2);
    }
}
