//! The two mails, as plain text: a failure digest and a disable notice. They name the webhook and
//! its urls (masked), counts, the last error and status, times, and how to re-enable; never a
//! payload body, a header value or a secret.

use std::fmt::Write;

use crate::model::{MailDigest, Webhook};
use crate::secrets::mask::SecretSet;

/// Where the API and the console are, from `public_url` (empty: API paths only, no console link).
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
}

impl Links {
    pub fn new(public_url: &str) -> Self {
        Links {
            base: public_url.trim_end_matches('/').to_string(),
        }
    }

    fn api(&self, webhook_id: &str) -> String {
        format!("{}/api/v1/webhooks/{webhook_id}/", self.base)
    }

    fn console(&self, webhook_id: &str) -> Option<String> {
        (!self.base.is_empty()).then(|| format!("{}/console/webhooks/{webhook_id}", self.base))
    }
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// RFC 3339 to the second (a mail is read by people).
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One line, without control characters (a name must not start a new header or paragraph).
fn line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `"name" (id)` or just the id when the webhook is gone.
fn title(webhook: Option<&Webhook>, id: &str) -> String {
    match webhook {
        Some(w) if !w.name.is_empty() => format!("\"{}\" ({id})", line(&w.name)),
        _ => id.to_string(),
    }
}

fn endpoints(out: &mut String, webhook: &Webhook) {
    let masks = SecretSet::of(webhook);
    let _ = writeln!(
        out,
        "Endpoint{}:",
        if webhook.urls.len() == 1 { "" } else { "s" }
    );
    for url in &webhook.urls {
        let _ = writeln!(out, "  {}", line(&masks.url(url)));
    }
}

/// The digest of a window's failed deliveries. `webhook` is `None` when it was deleted since.
pub fn digest(webhook: Option<&Webhook>, d: &MailDigest, links: &Links) -> Rendered {
    let id = &d.webhook_id;
    let who = title(webhook, id);
    let n = d.failures;
    let deliveries = if n == 1 { "delivery" } else { "deliveries" };
    let subject = line(&format!(
        "[webhook-gateway] {n} {deliveries} failed: webhook {who}"
    ));
    let masks = webhook.map(SecretSet::of).unwrap_or_default();
    let mut b = String::new();
    let _ = writeln!(
        b,
        "{n} {deliveries} of the webhook {who} failed for good (retries used up or not retryable)."
    );
    let _ = writeln!(b);
    let _ = writeln!(b, "Failed deliveries: {n}");
    let _ = writeln!(b, "Window: {} to {}", time(d.window_start), time(d.due_at));
    let _ = writeln!(b, "Last failure: {}", time(d.last_failed_at));
    let last_error = d.last_error.as_deref().map(|e| line(&masks.text(e)));
    let _ = writeln!(b, "Last error: {}", last_error.as_deref().unwrap_or("-"));
    let status = d.last_status.map_or("-".to_string(), |s| s.to_string());
    let _ = writeln!(b, "Last status: {status}");
    match webhook {
        Some(w) => {
            endpoints(&mut b, w);
            let _ = writeln!(
                b,
                "State: {}",
                if w.is_webhook_enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            );
        }
        None => {
            let _ = writeln!(b, "The webhook has been deleted since.");
        }
    }
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "Each attempt (request, response status, error) is in the attempt log: GET {}attempts",
        links.api(id)
    );
    if let Some(c) = links.console(id) {
        let _ = writeln!(b, "Console: {c}");
    }
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "At most one such mail is sent per webhook per window; failures after this window are counted in the next one."
    );
    Rendered { subject, body: b }
}

/// The notice that the gateway disabled a webhook, with why and how to re-enable it.
pub fn disabled(webhook: &Webhook, reason: &str, at: i64, links: &Links) -> Rendered {
    let id = &webhook.id;
    let who = title(Some(webhook), id);
    let masks = SecretSet::of(webhook);
    let subject = line(&format!("[webhook-gateway] webhook {who} was disabled"));
    let mut b = String::new();
    let _ = writeln!(b, "The gateway disabled the webhook {who}.");
    let _ = writeln!(b);
    let _ = writeln!(b, "Reason: {}", line(&masks.text(reason)));
    let _ = writeln!(b, "Disabled at: {}", time(at));
    endpoints(&mut b, webhook);
    let _ = writeln!(
        b,
        "No events are delivered to it until it is enabled again; its pending deliveries were marked failed."
    );
    let _ = writeln!(b);
    let _ = writeln!(b, "To re-enable it once the endpoint works again:");
    let _ = writeln!(
        b,
        "  PATCH {} with the body {{\"is_webhook_enabled\": true}}",
        links.api(id)
    );
    if let Some(c) = links.console(id) {
        let _ = writeln!(b, "  or in the console: {c}");
    }
    let _ = writeln!(
        b,
        "Deliveries that failed meanwhile can be sent again with POST {}recover {{\"since\": \"<time>\"}}.",
        links.api(id)
    );
    Rendered { subject, body: b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Auth, Signing};

    fn hook() -> Webhook {
        Webhook {
            id: "wh_1".into(),
            name: "Pager\r\nBcc: evil@example.com".into(),
            urls: vec!["https://user:pa55word@r.example/hook?token=tok_q_1&x=1".into()],
            auth: Auth::Bearer {
                token: "tok_bearer_1".into(),
            },
            signing: Signing::StandardWebhooks {
                secret: "whsec_sign_1".into(),
                previous: vec![],
            },
            is_webhook_enabled: true,
            ..Webhook::default()
        }
    }

    fn digest_of(n: u64) -> MailDigest {
        MailDigest {
            webhook_id: "wh_1".into(),
            recipient: "ops@example.com".into(),
            window_start: 0,
            due_at: 3_600_000,
            failures: n,
            last_error: Some("retries exhausted; receiver said tok_bearer_1".into()),
            last_status: Some(503),
            last_failed_at: 1_000,
        }
    }

    fn no_secret(text: &str) {
        for s in ["pa55word", "tok_q_1", "tok_bearer_1", "whsec_sign_1"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
    }

    #[test]
    fn a_digest_counts_and_names_the_last_error_and_status_without_secrets() {
        let w = hook();
        let r = digest(Some(&w), &digest_of(10), &Links::new("https://gw.example/"));
        assert!(r.subject.contains("10 deliveries failed"), "{}", r.subject);
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
        assert!(r.body.contains("Failed deliveries: 10"), "{}", r.body);
        assert!(r.body.contains("Last status: 503"), "{}", r.body);
        assert!(
            r.body.contains("Last error: retries exhausted"),
            "{}",
            r.body
        );
        assert!(
            r.body
                .contains("@r.example/hook?token=****************&x=1"),
            "{}",
            r.body
        );
        assert!(r.body.contains("https://gw.example/console/webhooks/wh_1"));
        assert!(
            r.body
                .contains("https://gw.example/api/v1/webhooks/wh_1/attempts")
        );
        no_secret(&r.subject);
        no_secret(&r.body);
        let one = digest(None, &digest_of(1), &Links::new(""));
        assert!(one.subject.contains("1 delivery failed"), "{}", one.subject);
        assert!(one.body.contains("deleted"), "{}", one.body);
        assert!(!one.body.contains("console"), "{}", one.body);
    }

    #[test]
    fn a_disable_notice_says_why_and_how_to_re_enable() {
        let w = hook();
        let r = disabled(
            &w,
            "6 consecutive deliveries failed",
            0,
            &Links::new("https://gw.example"),
        );
        assert!(r.subject.contains("was disabled"), "{}", r.subject);
        assert!(!r.subject.contains('\n'));
        assert!(r.body.contains("Reason: 6 consecutive deliveries failed"));
        assert!(r.body.contains(
            "PATCH https://gw.example/api/v1/webhooks/wh_1/ with the body {\"is_webhook_enabled\": true}"
        ));
        assert!(
            r.body
                .contains("console: https://gw.example/console/webhooks/wh_1")
        );
        no_secret(&r.body);
        let relative = disabled(&w, "x", 0, &Links::new(""));
        assert!(relative.body.contains("PATCH /api/v1/webhooks/wh_1/"));
    }
}
