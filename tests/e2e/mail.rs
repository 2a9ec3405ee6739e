//! Failure emails against a real SMTP server on 127.0.0.1 (aiosmtpd, see `support::smtp`): a
//! digest per webhook per window, a notice at once when a webhook is disabled, mails that wait
//! out a dead SMTP server without holding up deliveries, and no secret or payload in any mail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use gateway::clock::{ManualClock, SharedClock};
use gateway::config::Config;
use serde_json::{Value, json};

use crate::support::smtp::SmtpSink;
use crate::support::{Receiver, TestGateway};

const WAIT: Duration = Duration::from_secs(20);
const OPS: &str = "ops@example.com";

/// A gateway that mails through `sink`, retrying a mail after 1 s (at most 2 s apart).
async fn gateway(
    sink: &SmtpSink,
    clock: Option<SharedClock>,
    change: impl FnOnce(&mut Config),
) -> TestGateway {
    let url = sink.url();
    TestGateway::start_with(
        move |c| {
            c.smtp.url = url;
            c.smtp.from = "Webhook Gateway <gateway@example.com>".into();
            c.smtp.timeout_secs = 5;
            c.notifications.retry_min_secs = 1;
            c.notifications.retry_max_secs = 2;
            c.public_url = "https://gw.example".into();
            change(c);
        },
        clock,
    )
    .await
}

fn manual_clock() -> ManualClock {
    ManualClock::new(chrono::Utc::now().timestamp_millis())
}

/// Waits until the webhook has `n` failed attempts recorded.
async fn failed_attempts(gw: &TestGateway, id: &str, n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, page) = gw
            .admin(
                Method::GET,
                &format!("/api/v1/webhooks/{id}/attempts?status=failed"),
                None,
            )
            .await;
        if page["count"].as_u64() == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} failed attempts never recorded: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(mail: &Value, key: &str) -> String {
    mail[key].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_failed_deliveries_in_a_window_make_one_digest_with_the_count_and_last_error() {
    let Some(sink) = SmtpSink::start("the digest test").await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.set_fallback(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "upstream exploded: body-marker-3391x",
        )
            .into_response()
    });
    let clock = manual_clock();
    let gw = gateway(&sink, Some(Arc::new(clock.clone())), |_| {}).await;
    let w = gw
        .create_webhook(
            json!({"name": "pager", "url": rx.url("/hook"), "trigger_events": ["*"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 1}, "failure_email": OPS,
            "auto_disable": {"after_failures": null, "after_days": null}}),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    for i in 0..10 {
        gw.post_event(&json!({"event_type": "incident.triggered", "n": i}))
            .await;
    }
    assert_eq!(rx.wait_for(10, WAIT).await.len(), 10);
    failed_attempts(&gw, &id, 10).await;
    // The window (digest_window_secs, one hour by default) is still open: nothing yet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sink.mails().is_empty(), "{:?}", sink.mails());

    clock.advance_ms(3_601_000);
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    // Still one a little later: one mail per webhook per window.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert_eq!(m["rcpt_tos"], json!([OPS]));
    assert_eq!(m["mail_from"], "gateway@example.com");
    let (subject, body) = (text(m, "subject"), text(m, "body"));
    assert!(subject.contains("10 deliveries failed"), "{subject}");
    assert!(subject.contains("pager"), "{subject}");
    assert!(body.contains("Failed deliveries: 10"), "{body}");
    assert!(body.contains(&id), "{body}");
    let last_error = body
        .lines()
        .find(|l| l.starts_with("Last error: "))
        .unwrap_or_default();
    assert!(last_error.contains("HTTP 500"), "{body}");
    assert!(body.contains("Last status: 500"), "{body}");
    assert!(
        body.contains(&format!("https://gw.example/console/webhooks/{id}")),
        "{body}"
    );
    assert!(!m.to_string().contains("body-marker-3391x"), "{m}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_disable_and_410_each_mail_at_once_with_the_reason_and_how_to_re_enable() {
    let Some(sink) = SmtpSink::start("the disable notice test").await else {
        return;
    };
    let failing = Receiver::start().await;
    failing.set_fallback(|_| StatusCode::BAD_GATEWAY.into_response());
    let gone = Receiver::start().await;
    gone.set_fallback(|_| StatusCode::GONE.into_response());
    let ops = Receiver::start().await;
    let gw = gateway(&sink, None, |_| {}).await;
    // The operational event stays beside the mail: operators subscribed to it still get it.
    gw.create_webhook(
        json!({"name": "ops", "url": ops.url("/ops"), "trigger_events": ["webhook.disabled"]}),
    )
    .await;
    let counted = gw
        .create_webhook(json!({"name": "counted", "url": failing.url("/c"), "trigger_events": ["incident.triggered"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 1}, "failure_email": OPS,
            "auto_disable": {"after_failures": 3, "after_days": null}}))
        .await;
    let counted = counted["id"].as_str().unwrap().to_string();
    let ended = gw
        .create_webhook(
            json!({"name": "ended", "url": gone.url("/g"), "trigger_events": ["incident.resolved"],
            "failure_email": "owner@example.com"}),
        )
        .await;
    let ended = ended["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        gw.post_event(&json!({"event_type": "incident.triggered", "n": i}))
            .await;
        failing.wait_for(i + 1, WAIT).await;
    }
    gw.post_event(&json!({"event_type": "incident.resolved"}))
        .await;
    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let events = ops.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sink.mails().len(), 2, "one notice per disable");
    assert_eq!(ops.count(), 2, "one webhook.disabled event per disable");
    let mut disabled: Vec<(String, String)> = events
        .iter()
        .map(|r| {
            let ev = r.json();
            assert_eq!(ev["event_type"], "webhook.disabled", "{ev}");
            assert!(ev["reason"].as_str().is_some_and(|r| !r.is_empty()), "{ev}");
            (
                text(&ev["webhook"], "id"),
                text(&ev["webhook"], "failure_email"),
            )
        })
        .collect();
    disabled.sort();
    let mut want = vec![
        (counted.clone(), OPS.to_string()),
        (ended.clone(), "owner@example.com".to_string()),
    ];
    want.sort();
    assert_eq!(disabled, want, "the event names each disabled webhook");

    for (id, to, why) in [
        (&counted, OPS, "consecutive"),
        (&ended, "owner@example.com", "410"),
    ] {
        let m = mails
            .iter()
            .find(|m| m["rcpt_tos"] == json!([to]))
            .unwrap_or_else(|| panic!("no mail to {to}: {mails:?}"));
        let (subject, body) = (text(m, "subject"), text(m, "body"));
        assert!(subject.contains("was disabled"), "{subject}");
        let (_, w) = gw
            .admin(Method::GET, &format!("/api/v1/webhooks/{id}/"), None)
            .await;
        assert_eq!(w["is_webhook_enabled"], false);
        let reason = w["disabled_reason"].as_str().unwrap();
        assert!(reason.contains(why), "{reason}");
        assert!(body.contains(&format!("Reason: {reason}")), "{body}");
        let patch = format!(
            "PATCH https://gw.example/api/v1/webhooks/{id}/ with the body {{\"is_webhook_enabled\": true}}"
        );
        assert!(body.contains(&patch), "{body}");
        assert!(
            body.contains(&format!("https://gw.example/console/webhooks/{id}")),
            "{body}"
        );
        // The instructions work.
        let (s, w) = gw
            .admin(
                Method::PATCH,
                &format!("/api/v1/webhooks/{id}/"),
                Some(&json!({"is_webhook_enabled": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{w}");
        assert_eq!(w["is_webhook_enabled"], true);
    }
    gw.stop().await;
}

/// The counter of mail sends that the SMTP server did not take.
async fn mail_retries(gw: &TestGateway) -> u64 {
    let text = gw
        .client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("gateway_failure_mails_total{outcome=\"retry\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_smtp_server_down_deliveries_go_on_and_the_mails_arrive_once_it_is_back() {
    let Some(mut sink) = SmtpSink::start("the SMTP outage test").await else {
        return;
    };
    sink.pause().await;
    let rx = Receiver::start().await;
    rx.set_fallback(|r| {
        if r.path == "/ok" {
            StatusCode::OK.into_response()
        } else {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    });
    let gw = gateway(&sink, None, |c| c.notifications.digest_window_secs = 1).await;
    let digest = gw
        .create_webhook(json!({"name": "digest", "url": rx.url("/fail"), "trigger_events": ["incident.triggered"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 1}, "failure_email": OPS,
            "auto_disable": {"after_failures": null, "after_days": null}}))
        .await;
    let digest = digest["id"].as_str().unwrap().to_string();
    gw.create_webhook(json!({"name": "disabled", "url": rx.url("/fail2"), "trigger_events": ["incident.acknowledged"],
            "retry": {"type": "fixed", "count": 0, "interval_secs": 1}, "failure_email": "owner@example.com",
            "auto_disable": {"after_failures": 1, "after_days": null}}))
        .await;
    gw.create_webhook(
        json!({"name": "healthy", "url": rx.url("/ok"), "trigger_events": ["incident.triggered"]}),
    )
    .await;
    gw.post_event(&json!({"event_type": "incident.acknowledged"}))
        .await;
    for i in 0..4 {
        gw.post_event(&json!({"event_type": "incident.triggered", "n": i}))
            .await;
    }
    // Deliveries go on while mail cannot: 1 + 4 failing, 4 healthy.
    assert_eq!(rx.wait_for(9, WAIT).await.len(), 9);
    failed_attempts(&gw, &digest, 4).await;
    // The gateway tried (and failed) to hand the mails over, more than once.
    let deadline = Instant::now() + WAIT;
    while mail_retries(&gw).await < 3 {
        assert!(Instant::now() < deadline, "no failed mail sends counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // More events are delivered at once meanwhile.
    gw.post_event(&json!({"event_type": "incident.triggered", "n": 4}))
        .await;
    assert_eq!(rx.wait_for(11, WAIT).await.len(), 11);
    failed_attempts(&gw, &digest, 5).await;
    assert!(sink.mails().is_empty());

    sink.resume().await;
    let mails = sink.wait_for(2, WAIT).await;
    assert!(mails.len() >= 2, "{mails:?}");
    // The disable notice, and digests of each webhook's failures (the window is 1 s here).
    let deadline = Instant::now() + WAIT;
    while !sink.mails().iter().any(|m| {
        m["rcpt_tos"] == json!(["owner@example.com"]) && text(m, "subject").contains("was disabled")
    }) {
        assert!(
            Instant::now() < deadline,
            "no disable notice: {:?}",
            sink.mails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every failure of the digest webhook is in some digest, none counted twice.
    let deadline = Instant::now() + WAIT;
    loop {
        let counted: u64 = sink
            .mails()
            .iter()
            .filter(|m| m["rcpt_tos"] == json!([OPS]))
            .map(|m| {
                let body = text(m, "body");
                body.lines()
                    .find_map(|l| l.strip_prefix("Failed deliveries: "))
                    .and_then(|n| n.parse::<u64>().ok())
                    .expect("a count")
            })
            .sum();
        if counted == 5 {
            break;
        }
        assert!(counted < 5, "failures counted twice: {:?}", sink.mails());
        assert!(Instant::now() < deadline, "digests never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_and_no_payload_in_any_mail() {
    let Some(sink) = SmtpSink::start("the mail secrets test").await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.set_fallback(|r| {
        // A receiver that echoes what it got into its error answer.
        let echo = format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body));
        (StatusCode::INTERNAL_SERVER_ERROR, echo).into_response()
    });
    let clock = manual_clock();
    let gw = gateway(&sink, Some(Arc::new(clock.clone())), |_| {}).await;
    let common = json!({"trigger_events": ["*"], "failure_email": OPS,
        "retry": {"type": "fixed", "count": 0, "interval_secs": 1},
        "auto_disable": {"after_failures": 1, "after_days": null}});
    let with = |extra: Value| {
        let mut b = common.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let userinfo =
        rx.url("/a?token=querytok-7781x&x=1")
            .replacen("http://", "http://user1:urlpw-7731x@", 1);
    for body in [
        with(
            json!({"name": "basic", "url": userinfo, "auth": {"type": "basic", "username": "carol", "password": "basicpw-3381x"}}),
        ),
        with(
            json!({"name": "signed", "url": rx.url("/b"), "signing": {"type": "standard_webhooks", "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTQ0NTEtYWJjZGVmZ2g="}}),
        ),
        with(
            json!({"name": "bearer", "url": rx.url("/c"), "auth": {"type": "bearer", "token": "bearertok-4411x"},
                "headers": "{\"X-Custom\": \"customhdr-9931x\"}", "secret_headers": ["X-Custom"]}),
        ),
    ] {
        gw.create_webhook(body).await;
    }
    gw.post_event(&json!({"event_type": "incident.triggered", "message": "payload-marker-5521x"}))
        .await;
    rx.wait_for(3, WAIT).await;
    // Each webhook is disabled after its one failure: three notices at once...
    assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
    // ...and three digests once the window closes.
    clock.advance_ms(3_601_000);
    let mails = sink.wait_for(6, WAIT).await;
    assert_eq!(mails.len(), 6, "{mails:?}");
    for m in &mails {
        let all = m.to_string();
        for secret in [
            "urlpw-7731x",
            "querytok-7781x",
            "basicpw-3381x",
            // The basic credentials as they travel (base64 of carol:basicpw-3381x).
            "Y2Fyb2w6YmFzaWNwdy0zMzgxeA",
            "c2VjcmV0LXNpZ25pbmcta2V5LTQ0NTEtYWJjZGVmZ2g",
            "secret-signing-key-4451",
            "bearertok-4411x",
            "customhdr-9931x",
            "payload-marker-5521x",
        ] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
    }
    // The masked url is still there to recognise the endpoint by.
    assert!(
        mails
            .iter()
            .any(|m| text(m, "body").contains("/a?token=****************&x=1")),
        "{mails:?}"
    );
    gw.stop().await;
}
