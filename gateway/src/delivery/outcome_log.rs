//! One structured info-level line per attempt outcome, so an operator reading the log (or a log
//! pipeline reading its JSON form) sees every send: delivery, webhook, url (credentials and
//! secret query values masked), status, duration and the kind of error.

use super::retry::AttemptResult;
use crate::model::Attempt;

/// A stable, machine-readable name for why an attempt failed; `None` for a 2xx answer.
pub fn error_kind(result: &AttemptResult) -> Option<&'static str> {
    Some(match result {
        AttemptResult::Response { status, .. } if (200..300).contains(status) => return None,
        AttemptResult::Response { .. } => "http_status",
        AttemptResult::Transport { .. } => "transport",
        AttemptResult::Timeout => "timeout",
        AttemptResult::Local { .. } => "gateway_local",
        AttemptResult::Plugin { .. } => "plugin",
        AttemptResult::Refused { .. } => "destination_refused",
        AttemptResult::Invalid { .. } => "invalid_request",
    })
}

/// Logs `attempt` (already masked) with its error kind.
pub fn log_attempt(attempt: &Attempt, error_kind: Option<&str>) {
    tracing::info!(
        target: "webhook_gateway::attempt",
        delivery = %attempt.delivery_id,
        webhook = %attempt.webhook_id,
        event = %attempt.event_id,
        attempt = attempt.attempt_no,
        method = %attempt.method,
        url = %attempt.url,
        status = attempt.status_code.map(i64::from).unwrap_or(0),
        duration_ms = attempt.duration_ms,
        outcome = %attempt.outcome.as_str(),
        error_kind = %error_kind.unwrap_or("none"),
        "attempt"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_the_cause_and_success_has_none() {
        let ok = AttemptResult::Response {
            status: 204,
            retry_after: None,
        };
        assert_eq!(error_kind(&ok), None);
        let gone = AttemptResult::Response {
            status: 410,
            retry_after: None,
        };
        assert_eq!(error_kind(&gone), Some("http_status"));
        assert_eq!(error_kind(&AttemptResult::Timeout), Some("timeout"));
        let refused = AttemptResult::Refused {
            message: "loopback".into(),
        };
        assert_eq!(error_kind(&refused), Some("destination_refused"));
    }
}
