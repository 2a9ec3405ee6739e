//! The overview page (`/console/`): charts drawn from the gateway's own data, by the statistics
//! API's own function with the session's caller (a manager sees its team): deliveries over time
//! by outcome, attempt latency p50 / p99, the queue now and the disabled webhooks. The charts are
//! inline SVG computed here (no chart library, no script), each with its numbers as a table.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;

use super::session::SignedIn;
use super::{error_page_for, render};
use crate::api::AppState;
use crate::api::stats::{DeliveryStatsView, StatsParams, for_caller};

/// Periods offered: (key, label, seconds).
const WINDOWS: &[(&str, &str, i64)] = &[
    ("1h", "last hour", 3_600),
    ("24h", "last 24 hours", 86_400),
    ("7d", "last 7 days", 7 * 86_400),
];

/// Chart geometry (SVG user units).
const W: f64 = 720.0;
const H: f64 = 200.0;
const LEFT: f64 = 48.0;
const TOP: f64 = 10.0;

pub const DELIVERED: &str = "#1b6e34";
pub const RETRYING: &str = "#8a4b00";
pub const FAILED: &str = "#b3261e";
pub const P50: &str = "#1f5fbf";
pub const P99: &str = "#7a2fb5";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/", get(page))
        .route("/console", get(|| async { Redirect::to("/console/") }))
}

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(default)]
    window: String,
}

#[derive(serde::Serialize)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    fill: &'static str,
    label: String,
}

/// Stacked bars of delivered / retrying / failed attempts per bucket, and the largest total.
fn bars(v: &DeliveryStatsView) -> (Vec<Rect>, u64) {
    let n = v.buckets.len().max(1) as f64;
    let max = v
        .buckets
        .iter()
        .map(|b| b.delivered + b.retrying + b.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let bw = (W - LEFT) / n;
    let scale = (H - TOP) / max as f64;
    let mut out = Vec::new();
    for (i, b) in v.buckets.iter().enumerate() {
        let x = LEFT + i as f64 * bw;
        let mut base = H;
        for (count, fill, what) in [
            (b.delivered, DELIVERED, "delivered"),
            (b.retrying, RETRYING, "retrying"),
            (b.failed, FAILED, "failed"),
        ] {
            if count == 0 {
                continue;
            }
            let h = count as f64 * scale;
            base -= h;
            out.push(Rect {
                x: round(x + bw * 0.1),
                y: round(base),
                w: round((bw * 0.8).max(1.0)),
                h: round(h),
                fill,
                label: format!("{}: {count} {what}", b.start),
            });
        }
    }
    (out, max)
}

/// Polyline points of one latency series and the largest value (ms).
fn lines(v: &DeliveryStatsView) -> (String, String, u64) {
    let n = v.buckets.len().max(1) as f64;
    let max = v
        .buckets
        .iter()
        .filter_map(|b| b.latency_p99_ms.max(b.latency_p50_ms))
        .max()
        .unwrap_or(0)
        .max(1);
    let bw = (W - LEFT) / n;
    let pts = |pick: fn(&crate::api::stats::StatsBucket) -> Option<u64>| {
        v.buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let y = H - pick(b)? as f64 * (H - TOP) / max as f64;
                Some(format!(
                    "{},{}",
                    round(LEFT + (i as f64 + 0.5) * bw),
                    round(y)
                ))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (pts(|b| b.latency_p50_ms), pts(|b| b.latency_p99_ms), max)
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

async fn page(
    State(st): State<AppState>,
    SignedIn(s): SignedIn,
    Query(p): Query<Params>,
) -> Response {
    let (key, label, secs) = WINDOWS
        .iter()
        .find(|(k, _, _)| *k == p.window)
        .copied()
        .unwrap_or(WINDOWS[1]);
    let now = st.clock.now_ms();
    let params = StatsParams {
        since: Some((now - secs * 1000).to_string()),
        until: Some(now.to_string()),
        bucket_secs: None,
    };
    let v = match for_caller(&st, &s.caller, &params).await {
        Ok(v) => v,
        Err(e) => return error_page_for(Some(&s), &e),
    };
    let (rects, max_count) = bars(&v);
    let (p50, p99, max_ms) = lines(&v);
    let attempts: u64 = v
        .buckets
        .iter()
        .map(|b| b.delivered + b.retrying + b.failed)
        .sum();
    render(
        StatusCode::OK,
        Some(&s),
        "overview",
        "overview.html",
        context! {
            title => "Overview",
            windows => WINDOWS.iter().map(|(k, l, _)| context! { key => *k, label => *l }).collect::<Vec<_>>(),
            window => key,
            window_label => label,
            stats => minijinja::Value::from(minijinja::value::Serde(&v)),
            attempts => attempts,
            rects => minijinja::Value::from(minijinja::value::Serde(&rects)),
            max_count => max_count,
            p50 => p50,
            p99 => p99,
            max_ms => max_ms,
            chart => context! { w => W, h => H, left => LEFT, top => TOP },
            colors => context! { delivered => DELIVERED, retrying => RETRYING, failed => FAILED, p50 => P50, p99 => P99 },
            first => v.buckets.first().map(|b| b.start.clone()),
            last => v.buckets.last().map(|b| b.start.clone()),
        },
    )
}
