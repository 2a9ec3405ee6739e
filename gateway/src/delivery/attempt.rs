//! One attempt, as typed steps: [`prepare`] (the request a delivery sends, computed once and
//! stored), [`send`] (auth, signature, HTTP), and [`conclude`] (the attempt log and the retry
//! decision, a pure function of policy, attempt, response and clock).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::auth::apply_auth;
use super::cause::{is_stale_connection, local_cause};
use super::guard::{OutboundGuard, find_refusal};
use super::retry::{self, AttemptResult, Decision, RetryAfter, RetryBounds};
use super::shaping::{SizeCaps, shape_request};
use super::signing::signature_headers;
use crate::matching::PayloadView;
use crate::model::{
    Attempt, AttemptOutcome, Delivery, DeliveryStatus, Event, PreparedRequest, Webhook, new_id,
};
use crate::secrets::mask::{mask_headers, mask_url};
use crate::store::{AttemptRecord, HealthChange};

/// The request a delivery sends, before per-attempt auth and signature (no plugins here; the
/// plugin layer wraps this). A failure is permanent and logged as the attempt.
pub fn prepare(
    webhook: &Webhook,
    event: &Event,
    url: &str,
    caps: &SizeCaps,
) -> Result<PreparedRequest, AttemptResult> {
    let payload = PayloadView::for_event(event, webhook);
    shape_request(webhook, url, &payload.body(event), caps).map_err(|e| AttemptResult::Invalid {
        message: e.to_string(),
    })
}

/// What went over the wire and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub started_at: i64,
    pub duration: Duration,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub result: AttemptResult,
    pub response_body: Option<String>,
}

/// Adds auth and the signature (over the exact bytes sent) to a prepared request.
pub fn finalize(
    webhook: &Webhook,
    delivery_id: &str,
    prepared: &PreparedRequest,
    now_ms: i64,
) -> Result<PreparedRequest, AttemptResult> {
    let mut req = prepared.clone();
    apply_auth(webhook, &mut req);
    let body = req.body.as_deref().unwrap_or("").as_bytes();
    let sig = signature_headers(&webhook.signing, delivery_id, now_ms, body).map_err(|e| {
        AttemptResult::Invalid {
            message: format!("signing: {e}"),
        }
    })?;
    // The gateway's own headers win over same-named custom ones.
    req.headers
        .retain(|(k, _)| !sig.iter().any(|(s, _)| s.eq_ignore_ascii_case(k)));
    req.headers.extend(sig);
    Ok(req)
}

fn full_url(req: &PreparedRequest) -> Result<url::Url, AttemptResult> {
    let mut url = url::Url::parse(&req.url).map_err(|e| AttemptResult::Invalid {
        message: format!("url: {e}"),
    })?;
    if !req.query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in &req.query {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

/// Reads at most `cap` bytes of the response body.
async fn capped_body(mut resp: reqwest::Response, cap: usize) -> Option<String> {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(cap - buf.len())]),
            _ => break,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The two HTTP clients of the engine: the pooled one, and one that never reuses a connection
/// (for the single retry after the keep-alive race; see [`super::cause::is_stale_connection`]).
#[derive(Clone)]
pub struct Clients {
    pub pooled: reqwest::Client,
    pub fresh: reqwest::Client,
}

/// Sends a finished request. Never follows redirects (the clients are built that way).
pub async fn send(
    clients: &Clients,
    guard: &OutboundGuard,
    req: &PreparedRequest,
    timeout: Duration,
    max_response_bytes: usize,
    started_at: i64,
) -> Sent {
    let t0 = Instant::now();
    let mut sent = Sent {
        started_at,
        duration: Duration::ZERO,
        method: req.method.clone(),
        url: req.url.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
        result: AttemptResult::Timeout,
        response_body: None,
    };
    let url = match full_url(req) {
        Ok(u) => u,
        Err(r) => {
            sent.result = r;
            return sent;
        }
    };
    sent.url = url.to_string();
    if let Err(e) = guard.check_url(&url) {
        sent.result = AttemptResult::Refused {
            message: e.to_string(),
        };
        return sent;
    }
    let method = match reqwest::Method::from_bytes(req.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            sent.result = AttemptResult::Invalid {
                message: format!("method {}", req.method),
            };
            return sent;
        }
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len() + 2);
    for (k, v) in &req.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => {
                sent.result = AttemptResult::Invalid {
                    message: format!("header {k:?} is not a valid header"),
                };
                return sent;
            }
        }
    }
    let request = |client: &reqwest::Client| {
        let mut builder = client
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .timeout(timeout);
        if let Some(b) = &req.body {
            builder = builder.body(b.clone());
        }
        builder.send()
    };
    let mut outcome = request(&clients.pooled).await;
    if let Err(e) = &outcome
        && is_stale_connection(e)
    {
        // The receiver closed a kept-alive connection under us: once more, on a new connection,
        // within what is left of the attempt's timeout.
        tracing::debug!(error = %e, "pooled connection was closed by the receiver; retrying on a fresh one");
        let left = timeout.saturating_sub(t0.elapsed());
        if !left.is_zero() {
            outcome = request(&clients.fresh).await;
        }
    }
    match outcome {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(RetryAfter::parse);
            sent.response_body = capped_body(resp, max_response_bytes).await;
            sent.result = AttemptResult::Response {
                status,
                retry_after,
            };
        }
        Err(e) => {
            sent.result = if let Some(refusal) = find_refusal(&e) {
                AttemptResult::Refused {
                    message: refusal.to_string(),
                }
            } else if e.is_timeout() {
                AttemptResult::Timeout
            } else {
                // reqwest names the url in its message: drop it, it may carry credentials (the
                // attempt log shows the masked url beside the error anyway).
                let e = e.without_url();
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                match local_cause(&e) {
                    Some(cause) => AttemptResult::Local {
                        message: format!("{cause}; {msg}"),
                    },
                    None => AttemptResult::Transport { message: msg },
                }
            };
        }
    }
    sent.duration = t0.elapsed();
    sent
}

/// A sent (or failed-before-sending) attempt turned into its log record and the delivery's next
/// state. Pure: time comes in as `now_ms`, jitter as a function.
#[allow(clippy::too_many_arguments)]
pub fn conclude(
    webhook: &Webhook,
    delivery: &Delivery,
    sent: Sent,
    newly_prepared: Option<PreparedRequest>,
    now_ms: i64,
    bounds: &RetryBounds,
    jitter: &mut impl FnMut() -> f64,
    final_attempt: bool,
) -> (AttemptRecord, Decision) {
    let attempt_no = delivery.attempts + 1;
    let mut decision = retry::decide(
        &webhook.retry,
        attempt_no,
        &sent.result,
        now_ms,
        jitter,
        bounds,
    );
    if final_attempt && matches!(decision, Decision::RetryAt(_)) {
        decision = Decision::GiveUp {
            disable_webhook: false,
            // The real cause first (the console's Test button shows it as it is).
            reason: format!("{} (test send: not retried)", sent.result),
        };
    }
    let (status, next, outcome, health) = match &decision {
        Decision::Succeeded => (
            DeliveryStatus::Succeeded,
            now_ms,
            AttemptOutcome::Success,
            HealthChange::Success,
        ),
        Decision::RetryAt(t) => (
            DeliveryStatus::Pending,
            *t,
            AttemptOutcome::Retry,
            HealthChange::AttemptFailed,
        ),
        Decision::GiveUp { .. } => (
            DeliveryStatus::Failed,
            now_ms,
            AttemptOutcome::Failed,
            HealthChange::DeliveryFailed,
        ),
    };
    // A test send, or a failure that is the gateway's own, says nothing about the receiver.
    let health = if final_attempt || matches!(sent.result, AttemptResult::Local { .. }) {
        HealthChange::None
    } else {
        health
    };
    let (status_code, error) = match &sent.result {
        AttemptResult::Response { status, .. } if (200..300).contains(status) => {
            (Some(*status), None)
        }
        AttemptResult::Response { status, .. } => (Some(*status), Some(format!("HTTP {status}"))),
        other => (None, Some(other.to_string())),
    };
    let error = match (&decision, error) {
        (Decision::GiveUp { reason, .. }, _) => Some(reason.clone()),
        (_, e) => e,
    };
    let attempt = Attempt {
        id: new_id("att"),
        delivery_id: delivery.id.clone(),
        webhook_id: delivery.webhook_id.clone(),
        event_id: delivery.event_id.clone(),
        attempt_no,
        started_at: sent.started_at,
        duration_ms: sent.duration.as_millis() as u64,
        method: sent.method,
        url: mask_url(&sent.url, webhook),
        request_headers: mask_headers(&sent.headers, webhook),
        request_body: sent.body,
        status_code,
        response_body: sent.response_body,
        error,
        outcome,
        plugin_logs: Vec::new(),
    };
    let record = AttemptRecord {
        attempt,
        delivery_id: delivery.id.clone(),
        status,
        next_attempt_at: next,
        request: newly_prepared,
        health,
        claimed_lease: delivery.lease_until,
        failure_note: None,
    };
    (record, decision)
}

/// A failure before anything was sent, as a `Sent` for [`conclude`].
pub fn not_sent(webhook: &Webhook, url: &str, result: AttemptResult, started_at: i64) -> Sent {
    Sent {
        started_at,
        duration: Duration::ZERO,
        method: webhook.http_method.clone(),
        url: url.to_string(),
        headers: Vec::new(),
        body: None,
        result,
        response_body: None,
    }
}
