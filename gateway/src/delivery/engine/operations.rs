//! What the rest of the gateway asks of the engine besides delivering: disabling a webhook it
//! gave up on (with the `webhook.disabled` event and the failure mail), and test sends.

use super::*;

impl Engine {
    /// Disables a webhook the gateway gave up on, fails its pending deliveries and raises the
    /// `webhook.disabled` operational event (delivered to webhooks subscribed to it).
    ///
    /// The disable and its notice mail are one store write, made only by the call that turns the
    /// webhook from enabled to disabled: no crash in between can lose the notice, and two nodes
    /// giving up on the same webhook at once send one notice and raise one event.
    pub async fn disable_webhook(&self, webhook_id: &str, reason: &str) {
        let e = &self.0;
        let Some(w) = e.subs.webhook(webhook_id) else {
            return;
        };
        if !w.is_webhook_enabled {
            return;
        }
        let now = e.clock.now_ms();
        // The notice goes to the outbox; sending it is the notifier's job, never this one's.
        let notice = crate::notify::disabled_mail(e.mail.as_ref(), &w, reason, now, &e.config);
        let changed = match e
            .store
            .disable_webhook(webhook_id, reason, now, notice.as_ref())
            .await
        {
            Ok(changed) => changed,
            Err(err) => {
                tracing::error!(error = %err, webhook = %webhook_id, "could not disable webhook");
                return;
            }
        };
        let _ = e
            .store
            .fail_pending_for_webhook(webhook_id, &format!("webhook disabled: {reason}"), now)
            .await;
        if !changed {
            // Another node (or an earlier call) disabled it and raised the event.
            let _ = e.subs.reload(e.store.as_ref()).await;
            return;
        }
        tracing::warn!(webhook = %webhook_id, %reason, notice = notice.is_some(), "webhook disabled");
        let _ = e.subs.reload(e.store.as_ref()).await;
        let body = json!({
            "event_type": WEBHOOK_DISABLED,
            "webhook": {"id": w.id, "name": w.name, "url": w.urls.first(), "failure_email": w.failure_email},
            "reason": reason,
            "disabled_at": crate::api::rfc3339(now),
        });
        match Event::from_body(new_id("evt"), body, now) {
            Ok(event) => {
                match crate::intake::accept(e.store.as_ref(), &e.subs, event, None).await {
                    Ok(_) => e.ready.notify_waiters(),
                    Err(err) => {
                        tracing::error!(error = %err, "could not store the webhook.disabled event")
                    }
                }
            }
            Err(err) => tracing::error!(error = %err, "could not build the webhook.disabled event"),
        }
    }

    /// Sends a sample event to the webhook's first url now and returns the attempt (Callgoose's
    /// Test button). The send is logged like any other, but never retried and never counts
    /// towards auto-disable.
    pub async fn test_send(
        &self,
        webhook: &Webhook,
        sample: serde_json::Value,
    ) -> Result<Attempt, TestSendError> {
        let e = &self.0;
        let now = e.clock.now_ms();
        let event =
            Event::from_body(new_id("evt"), sample, now).expect("the sample event is valid");
        let url = webhook.urls.first().cloned().unwrap_or_default();
        let mut d = Delivery::new(&event.id, &webhook.id, &url, now);
        // Parked far in the future so no dispatcher picks it up while we send it here.
        d.next_attempt_at = i64::MAX / 2;
        d.status = DeliveryStatus::InFlight;
        e.store
            .ingest(NewEvent {
                event,
                deliveries: vec![d.clone()],
                idempotency_key: None,
            })
            .await?;
        let f = self.attempt(d, None, true).await;
        let attempt = f.record.attempt.clone();
        e.store.record_attempts(vec![f.record]).await?;
        e.metrics.attempt(attempt.outcome.as_str());
        Ok(attempt)
    }
}
