//! Retry decisions and the auto-disable rule, as pure functions of the policy, the attempt's result,
//! an injected `now` and an injected jitter source, so whole schedules are tested without sleeping.
//!
//! Choices (the design leaves them open):
//! - **What counts as success**: 2xx only. 3xx is a failure (redirects are never followed: a
//!   redirect could lead the request past the outbound guard) and is retried like any other failure.
//! - **410 Gone** gives up at once and disables the webhook (Svix's rule): the receiver says the
//!   endpoint no longer exists, so further deliveries would only fail.
//! - **Every other status** (4xx, 429, 5xx, and anything outside 2xx) is retried per the policy.
//!   4xx is retried too, because receivers often answer 401/403/404 during deploys or key rotations.
//! - **Transport errors and timeouts** are retried.
//! - **Plugin errors, guard refusals and invalid requests are permanent**: plugins are
//!   deterministic (no clock, randomness or I/O, and the transform's output is stored once), so a
//!   retry would fail the same way; a guard refusal is a policy decision, not a fault. These give up
//!   without disabling the webhook: the event stays and an operator can replay it after fixing the
//!   plugin or the allow-list, and repeated failures still reach [`should_disable`].
//! - **Retry-After** (seconds or an HTTP-date) on a failed response is clamped to
//!   [`RetryBounds::retry_after_min_ms`, `retry_after_max_ms`] (1 s to 1 h by default) and can only
//!   *delay* the next attempt, never bring it forward: the next attempt is at
//!   `now + max(policy delay, clamped Retry-After)`. The policy is the operator's promise about how
//!   hard a receiver is hit, and the upper clamp stops a receiver from parking deliveries for days.
//!   Retry-After never grants attempts beyond the policy.
//! - **Jitter** (±20% by default) applies to the default schedule only. `Fixed` and `Schedule` are
//!   the user's explicit timings (Callgoose's "every N minutes") and are kept exact.

use crate::model::{AutoDisable, RetryPolicy, WebhookHealth};

/// Delays before each retry of the default (Standard Webhooks / Svix) schedule, in seconds. With
/// the first, immediate attempt that makes 8 attempts: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h.
pub const DEFAULT_SCHEDULE_SECS: [u64; 7] =
    [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Limits the gateway applies around a webhook's policy (configuration, not per webhook).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBounds {
    /// Shortest wait a `Retry-After` can ask for (shorter values are raised to it).
    pub retry_after_min_ms: i64,
    /// Longest wait a `Retry-After` can impose (longer values are cut to it).
    pub retry_after_max_ms: i64,
    /// Relative jitter on the default schedule's delays: 0.2 spreads each delay over ±20%.
    pub jitter: f64,
}

impl Default for RetryBounds {
    fn default() -> Self {
        RetryBounds {
            retry_after_min_ms: 1_000,
            retry_after_max_ms: 3_600_000,
            jitter: 0.2,
        }
    }
}

/// A parsed `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`.
    Seconds(u64),
    /// `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`, as unix ms.
    At(i64),
}

impl RetryAfter {
    /// Parses a header value: delay-seconds, or an HTTP-date in any of the three forms RFC 9110
    /// accepts (IMF-fixdate, RFC 850, asctime). Anything else is `None` (and ignored).
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // An absurdly long number saturates; the bounds clamp it anyway.
            return Some(RetryAfter::Seconds(value.parse().unwrap_or(u64::MAX)));
        }
        let at = chrono::DateTime::parse_from_rfc2822(value)
            .map(|d| d.timestamp_millis())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT")
                    .map(|d| d.and_utc().timestamp_millis())
            })
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y")
                    .map(|d| d.and_utc().timestamp_millis())
            })
            .ok()?;
        Some(RetryAfter::At(at))
    }

    /// The wait this asks for from `now_ms`, in ms (negative for a date in the past).
    fn delay_ms(self, now_ms: i64) -> i64 {
        match self {
            RetryAfter::Seconds(s) => i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000),
            RetryAfter::At(at) => at.saturating_sub(now_ms),
        }
    }
}

/// How one attempt ended, as far as retrying cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered with this status (redirects are not followed, so 3xx arrives here).
    Response {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Connecting, TLS, or sending/receiving failed. Retried.
    Transport { message: String },
    /// No complete response within the per-attempt timeout. Retried.
    Timeout,
    /// The gateway's own failure (out of descriptors, its resolver failing; see
    /// [`super::cause`]): retried within seconds and never counted against the webhook.
    Local { message: String },
    /// A transformer or authenticator plugin failed (trap, fuel, memory, bad output). Permanent.
    Plugin { message: String },
    /// The outbound guard refused the destination. Permanent.
    Refused { message: String },
    /// The request could not be built (size caps, bad headers, unusable signing secret). Permanent.
    Invalid { message: String },
}

/// A short description for give-up reasons and attempt logs ("HTTP 503", "timed out", ...).
impl std::fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptResult::Response { status, .. } => write!(f, "HTTP {status}"),
            AttemptResult::Transport { message } => write!(f, "transport error: {message}"),
            AttemptResult::Timeout => f.write_str("timed out"),
            AttemptResult::Local { message } => {
                write!(f, "gateway-side failure (not the receiver's): {message}")
            }
            AttemptResult::Plugin { message } => write!(f, "plugin error: {message}"),
            AttemptResult::Refused { message } => write!(f, "destination refused: {message}"),
            AttemptResult::Invalid { message } => write!(f, "invalid request: {message}"),
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Succeeded,
    /// Try again at this unix ms.
    RetryAt(i64),
    /// No further attempt; `disable_webhook` asks the caller to disable the whole webhook.
    GiveUp {
        disable_webhook: bool,
        reason: String,
    },
}

/// The unjittered delay before retry number `retry_no` (1-based), or `None` when the policy has
/// no such retry.
pub fn retry_delay_secs(policy: &RetryPolicy, retry_no: u32) -> Option<u64> {
    let idx = usize::try_from(retry_no.checked_sub(1)?).ok()?;
    match policy {
        RetryPolicy::Default => DEFAULT_SCHEDULE_SECS.get(idx).copied(),
        RetryPolicy::Fixed {
            count,
            interval_secs,
        } => (retry_no <= *count).then_some(*interval_secs),
        RetryPolicy::Schedule { delays_secs } => delays_secs.get(idx).copied(),
    }
}

/// Attempts a delivery gets in all under `policy` (the first attempt plus its retries).
pub fn max_attempts(policy: &RetryPolicy) -> u32 {
    let retries = match policy {
        RetryPolicy::Default => DEFAULT_SCHEDULE_SECS.len(),
        RetryPolicy::Fixed { count, .. } => usize::try_from(*count).unwrap_or(usize::MAX),
        RetryPolicy::Schedule { delays_secs } => delays_secs.len(),
    };
    u32::try_from(retries).unwrap_or(u32::MAX).saturating_add(1)
}

/// Decides what follows an attempt.
///
/// `attempts_made` counts attempts including the one that produced `result` (so it is 1 after the
/// first attempt; 0 is treated as 1). `jitter` returns values in `0..1`; it is called once per
/// retry of the default schedule and never otherwise. See the module doc for the rules.
pub fn decide(
    policy: &RetryPolicy,
    attempts_made: u32,
    result: &AttemptResult,
    now_ms: i64,
    jitter: &mut impl FnMut() -> f64,
    bounds: &RetryBounds,
) -> Decision {
    let retry_after = match result {
        AttemptResult::Response {
            status: 200..=299, ..
        } => return Decision::Succeeded,
        AttemptResult::Response { status: 410, .. } => {
            return Decision::GiveUp {
                disable_webhook: true,
                reason: "receiver answered 410 Gone: the endpoint no longer exists".to_string(),
            };
        }
        AttemptResult::Plugin { .. }
        | AttemptResult::Refused { .. }
        | AttemptResult::Invalid { .. } => {
            return Decision::GiveUp {
                disable_webhook: false,
                reason: format!("{result} (permanent; not retried)"),
            };
        }
        AttemptResult::Local { .. } => return local_retry(policy, attempts_made, result, now_ms),
        AttemptResult::Response { retry_after, .. } => *retry_after,
        AttemptResult::Transport { .. } | AttemptResult::Timeout => None,
    };

    let attempts_made = attempts_made.max(1);
    let Some(delay_secs) = retry_delay_secs(policy, attempts_made) else {
        return Decision::GiveUp {
            disable_webhook: false,
            reason: format!("retries exhausted after {attempts_made} attempts; last: {result}"),
        };
    };

    let mut delay_ms = i64::try_from(delay_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    if matches!(policy, RetryPolicy::Default) && bounds.jitter > 0.0 {
        let j = jitter().clamp(0.0, 1.0);
        let factor = 1.0 + bounds.jitter * (2.0 * j - 1.0);
        // Delays are at most hours, far inside f64's exact integer range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let jittered = (delay_ms as f64 * factor).round() as i64;
        delay_ms = jittered.max(0);
    }
    if let Some(ra) = retry_after {
        let asked = ra
            .delay_ms(now_ms)
            .clamp(bounds.retry_after_min_ms, bounds.retry_after_max_ms);
        delay_ms = delay_ms.max(asked);
    }
    Decision::RetryAt(now_ms.saturating_add(delay_ms))
}

/// Longest wait before retrying after a gateway-side failure, in seconds.
pub const LOCAL_RETRY_MAX_SECS: i64 = 60;
/// Attempts beyond the policy's a delivery may spend on gateway-side failures before it gives up
/// (about eight hours at [`LOCAL_RETRY_MAX_SECS`]): a gateway that stays broken does not retry
/// forever.
pub const LOCAL_RETRY_EXTRA_ATTEMPTS: u32 = 500;

/// A gateway-side failure: retried after 1, 2, 4 ... seconds (at most a minute), whatever the
/// webhook's policy; the attempt counter grows, so a delivery that keeps failing this way
/// eventually gives up (never disabling the webhook).
fn local_retry(
    policy: &RetryPolicy,
    attempts_made: u32,
    result: &AttemptResult,
    now_ms: i64,
) -> Decision {
    let attempts_made = attempts_made.max(1);
    if attempts_made >= max_attempts(policy).saturating_add(LOCAL_RETRY_EXTRA_ATTEMPTS) {
        return Decision::GiveUp {
            disable_webhook: false,
            reason: format!("retries exhausted after {attempts_made} attempts; last: {result}"),
        };
    }
    let secs = 1i64
        .checked_shl((attempts_made - 1).min(6))
        .unwrap_or(LOCAL_RETRY_MAX_SECS)
        .min(LOCAL_RETRY_MAX_SECS);
    Decision::RetryAt(now_ms.saturating_add(secs * 1000))
}

/// Whether a failing webhook should now be disabled, and why.
///
/// `health` counts failed *deliveries* (a delivery fails when its retries are exhausted or it
/// gives up), not attempts, as Callgoose's "failed consecutively for 6 times" and incident.io's
/// "repeatedly fail over 5 days" describe. A limit of `Some(0)` is treated as off: it would
/// disable webhooks that never failed.
pub fn should_disable(health: &WebhookHealth, auto: &AutoDisable, now_ms: i64) -> Option<String> {
    if let Some(n) = auto.after_failures.filter(|n| *n > 0)
        && health.consecutive_failures >= n
    {
        return Some(format!(
            "disabled after {} consecutive failed deliveries",
            health.consecutive_failures
        ));
    }
    if let (Some(days), Some(since)) = (auto.after_days.filter(|d| *d > 0), health.failing_since)
        && now_ms.saturating_sub(since) >= i64::from(days).saturating_mul(DAY_MS)
    {
        return Some(format!(
            "disabled after failing for {days} days without a success"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn status(code: u16) -> AttemptResult {
        AttemptResult::Response {
            status: code,
            retry_after: None,
        }
    }

    /// Runs failures until the decision is no longer a retry; returns the delays (ms) between
    /// attempts and the final decision.
    fn walk(policy: &RetryPolicy, result: &AttemptResult, jitter: f64) -> (Vec<i64>, Decision) {
        let bounds = RetryBounds::default();
        let mut now = T0;
        let mut delays = vec![];
        for attempts in 1..100 {
            match decide(policy, attempts, result, now, &mut || jitter, &bounds) {
                Decision::RetryAt(at) => {
                    delays.push(at - now);
                    now = at;
                }
                other => return (delays, other),
            }
        }
        panic!("schedule never ended");
    }

    fn exhausted(d: &Decision) -> bool {
        matches!(d, Decision::GiveUp { disable_webhook: false, reason } if reason.contains("exhausted"))
    }

    #[test]
    fn default_schedule_is_svix_with_eight_attempts() {
        // jitter 0.5 => factor 1.0: the exact schedule.
        let (delays, end) = walk(&RetryPolicy::Default, &status(500), 0.5);
        assert_eq!(
            delays,
            vec![
                5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000
            ]
        );
        assert_eq!(delays.len() + 1, 8);
        assert_eq!(max_attempts(&RetryPolicy::Default), 8);
        assert!(exhausted(&end), "{end:?}");
    }

    #[test]
    fn default_schedule_jitter_is_plus_minus_twenty_percent() {
        let (low, _) = walk(&RetryPolicy::Default, &AttemptResult::Timeout, 0.0);
        let (high, _) = walk(&RetryPolicy::Default, &AttemptResult::Timeout, 1.0);
        assert_eq!(low[0], 4_000);
        assert_eq!(high[0], 6_000);
        assert_eq!(low[6], 28_800_000);
        assert_eq!(high[6], 43_200_000);
    }

    #[test]
    fn fixed_policy_is_exact_and_counts_retries() {
        let policy = RetryPolicy::Fixed {
            count: 4,
            interval_secs: 300,
        };
        let (delays, end) = walk(&policy, &status(503), 0.0);
        assert_eq!(delays, vec![300_000; 4]);
        assert!(exhausted(&end));
        assert_eq!(max_attempts(&policy), 5);

        let none = RetryPolicy::Fixed {
            count: 0,
            interval_secs: 60,
        };
        let (delays, end) = walk(&none, &status(500), 0.0);
        assert!(delays.is_empty());
        assert!(exhausted(&end));
    }

    #[test]
    fn schedule_policy_follows_its_delays() {
        let policy = RetryPolicy::Schedule {
            delays_secs: vec![1, 10, 100],
        };
        let (delays, end) = walk(
            &policy,
            &AttemptResult::Transport {
                message: "reset".into(),
            },
            0.9,
        );
        assert_eq!(delays, vec![1_000, 10_000, 100_000]);
        assert!(exhausted(&end));
    }

    #[test]
    fn status_classes() {
        let b = RetryBounds::default();
        let p = RetryPolicy::Default;
        let mut j = || 0.5;
        for code in [200, 201, 204, 299] {
            assert_eq!(
                decide(&p, 1, &status(code), T0, &mut j, &b),
                Decision::Succeeded
            );
        }
        for code in [301, 302, 307, 400, 401, 404, 429, 500, 502, 503, 100] {
            assert_eq!(
                decide(&p, 1, &status(code), T0, &mut j, &b),
                Decision::RetryAt(T0 + 5_000),
                "{code}"
            );
        }
        match decide(&p, 1, &status(410), T0, &mut j, &b) {
            Decision::GiveUp {
                disable_webhook: true,
                reason,
            } => assert!(reason.contains("410")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn permanent_errors_give_up_without_disabling() {
        let b = RetryBounds::default();
        for r in [
            AttemptResult::Plugin {
                message: "trap: unreachable".into(),
            },
            AttemptResult::Refused {
                message: "127.0.0.1 is loopback".into(),
            },
            AttemptResult::Invalid {
                message: "body over 20000 characters".into(),
            },
        ] {
            match decide(&RetryPolicy::Default, 1, &r, T0, &mut || 0.5, &b) {
                Decision::GiveUp {
                    disable_webhook: false,
                    reason,
                } => assert!(reason.contains("permanent")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_only_delays_and_is_clamped() {
        let b = RetryBounds::default();
        let p = RetryPolicy::Default;
        let ra = |r| AttemptResult::Response {
            status: 429,
            retry_after: Some(r),
        };
        // Longer than the policy's 5 s: honoured.
        assert_eq!(
            decide(&p, 1, &ra(RetryAfter::Seconds(120)), T0, &mut || 0.5, &b),
            Decision::RetryAt(T0 + 120_000)
        );
        // Shorter than the policy's 5 min: the policy wins.
        assert_eq!(
            decide(&p, 2, &ra(RetryAfter::Seconds(1)), T0, &mut || 0.5, &b),
            Decision::RetryAt(T0 + 300_000)
        );
        // A day is cut to the 1 h bound.
        assert_eq!(
            decide(&p, 1, &ra(RetryAfter::Seconds(86_400)), T0, &mut || 0.5, &b),
            Decision::RetryAt(T0 + 3_600_000)
        );
        // An HTTP-date 10 minutes ahead.
        assert_eq!(
            decide(
                &p,
                1,
                &ra(RetryAfter::At(T0 + 600_000)),
                T0,
                &mut || 0.5,
                &b
            ),
            Decision::RetryAt(T0 + 600_000)
        );
        // Zero or a past date is raised to the 1 s minimum (but a 0 s fixed policy still waits 1 s).
        let zero = RetryPolicy::Fixed {
            count: 1,
            interval_secs: 0,
        };
        assert_eq!(
            decide(
                &zero,
                1,
                &ra(RetryAfter::At(T0 - 5_000)),
                T0,
                &mut || 0.5,
                &b
            ),
            Decision::RetryAt(T0 + 1_000)
        );
        // Retry-After never adds attempts.
        let once = RetryPolicy::Fixed {
            count: 1,
            interval_secs: 60,
        };
        assert!(exhausted(&decide(
            &once,
            2,
            &ra(RetryAfter::Seconds(5)),
            T0,
            &mut || 0.5,
            &b
        )));
    }

    #[test]
    fn local_failures_retry_within_seconds_whatever_the_policy() {
        let local = AttemptResult::Local {
            message: "EMFILE".into(),
        };
        let b = RetryBounds::default();
        let none = RetryPolicy::Fixed {
            count: 0,
            interval_secs: 600,
        };
        let mut j = || 0.5;
        assert_eq!(
            decide(&none, 1, &local, 0, &mut j, &b),
            Decision::RetryAt(1_000)
        );
        assert_eq!(
            decide(&none, 3, &local, 0, &mut j, &b),
            Decision::RetryAt(4_000)
        );
        assert_eq!(
            decide(&none, 40, &local, 0, &mut j, &b),
            Decision::RetryAt(60_000)
        );
        assert!(matches!(
            decide(&none, 1 + LOCAL_RETRY_EXTRA_ATTEMPTS, &local, 0, &mut j, &b),
            Decision::GiveUp {
                disable_webhook: false,
                ..
            }
        ));
        // The same policy gives up at once on a receiver's failure.
        let transport = AttemptResult::Transport {
            message: "connection refused".into(),
        };
        assert!(matches!(
            decide(&none, 1, &transport, 0, &mut j, &b),
            Decision::GiveUp { .. }
        ));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(RetryAfter::parse(" 120 "), Some(RetryAfter::Seconds(120)));
        let at = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            RetryAfter::parse("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(RetryAfter::At(at))
        );
        assert_eq!(
            RetryAfter::parse("Wednesday, 21-Oct-15 07:28:00 GMT"),
            Some(RetryAfter::At(at))
        );
        assert_eq!(
            RetryAfter::parse("Wed Oct 21 07:28:00 2015"),
            Some(RetryAfter::At(at))
        );
        assert_eq!(RetryAfter::parse("soon"), None);
        assert_eq!(RetryAfter::parse("-5"), None);
        assert_eq!(RetryAfter::parse(""), None);
    }

    #[test]
    fn auto_disable_after_consecutive_failures_or_days() {
        let auto = AutoDisable::default();
        let healthy = WebhookHealth::default();
        assert_eq!(should_disable(&healthy, &auto, T0), None);

        let five = WebhookHealth {
            consecutive_failures: 5,
            failing_since: Some(T0),
        };
        assert_eq!(should_disable(&five, &auto, T0 + 1_000), None);
        let six = WebhookHealth {
            consecutive_failures: 6,
            failing_since: Some(T0),
        };
        assert!(
            should_disable(&six, &auto, T0 + 1_000)
                .unwrap()
                .contains("6 consecutive")
        );

        let slow = WebhookHealth {
            consecutive_failures: 2,
            failing_since: Some(T0),
        };
        assert_eq!(should_disable(&slow, &auto, T0 + 5 * DAY_MS - 1), None);
        assert!(
            should_disable(&slow, &auto, T0 + 5 * DAY_MS)
                .unwrap()
                .contains("5 days")
        );

        let off = AutoDisable {
            after_failures: None,
            after_days: None,
        };
        assert_eq!(should_disable(&six, &off, T0 + 100 * DAY_MS), None);
        let zero = AutoDisable {
            after_failures: Some(0),
            after_days: Some(0),
        };
        assert_eq!(should_disable(&healthy, &zero, T0), None);
    }
}
