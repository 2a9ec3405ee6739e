//! The per-attempt half of a send: the authenticator (fresh `now`), the secrets the transformer
//! asked for (the stored request keeps the placeholders), built-in auth and the signature, then
//! the request itself. When the receiver answers 401 to a request that carried a cached OAuth 2.0
//! token, the token is dropped and the request is sent once more at once with a fresh one (one
//! attempt in the log; a host line says so).

use std::time::Duration;

use super::Engine;
use crate::delivery::attempt::{self, Sent};
use crate::delivery::fill;
use crate::delivery::retry::AttemptResult;
use crate::model::{Delivery, PluginLogLine, PreparedRequest, Webhook};

/// What one authenticated send produced.
pub(super) struct Authed {
    pub sent: Sent,
    /// Header names whose values hold secrets (masked in the attempt log).
    pub secret_names: Vec<String>,
    pub logs: Vec<PluginLogLine>,
}

/// Why nothing was sent (the authenticator or a placeholder failed), with the lines so far.
pub(super) type NotSent = (AttemptResult, Vec<PluginLogLine>);

impl Engine {
    /// Authenticates and sends `prepared`; re-sends once with a fresh token after a 401.
    pub(super) async fn send_authed(
        &self,
        webhook: &Webhook,
        d: &Delivery,
        prepared: &PreparedRequest,
        now: i64,
    ) -> Result<Authed, NotSent> {
        let (first, token_keys) = self.send_authed_once(webhook, d, prepared, now).await?;
        let unauthorized = matches!(
            first.sent.result,
            AttemptResult::Response { status: 401, .. }
        );
        if !unauthorized || token_keys.is_empty() {
            return Ok(first);
        }
        self.0.plugins.forget_tokens(&token_keys);
        let mut logs = first.logs;
        logs.push(PluginLogLine::parse(
            "[host] the receiver answered 401 to a cached oauth2 token: fetched a new token and sent again",
            "authenticator",
            &[],
        ));
        let now = self.0.clock.now_ms();
        match self.send_authed_once(webhook, d, prepared, now).await {
            Ok((mut again, _)) => {
                logs.append(&mut again.logs);
                again.logs = logs;
                Ok(again)
            }
            Err((result, mut more)) => {
                logs.append(&mut more);
                Err((result, logs))
            }
        }
    }

    async fn send_authed_once(
        &self,
        webhook: &Webhook,
        d: &Delivery,
        prepared: &PreparedRequest,
        now: i64,
    ) -> Result<(Authed, Vec<String>), NotSent> {
        let e = &self.0;
        let mut req = prepared.clone();
        let added = e
            .plugins
            .authenticate(webhook, d, &mut req, now)
            .await
            .map_err(|r| (r, Vec::new()))?;
        let (filled_headers, placeholder_body) = match fill::for_attempt(webhook, &mut req) {
            Ok(f) => f,
            Err(result) => return Err((result, added.logs)),
        };
        let mut secret_names = added.secret_names;
        secret_names.extend(filled_headers);
        let mut sent = match attempt::finalize(webhook, &d.id, &req, now) {
            Ok(req) => match e.client.for_webhook(webhook) {
                Ok(clients) => {
                    let timeout = Duration::from_secs(webhook.timeout_secs.max(1));
                    attempt::send(
                        &clients,
                        &e.guard,
                        &req,
                        timeout,
                        e.config.delivery.max_response_bytes,
                        now,
                    )
                    .await
                }
                Err(message) => attempt::not_sent(
                    webhook,
                    &d.url,
                    crate::delivery::retry::AttemptResult::Invalid { message },
                    now,
                ),
            },
            Err(result) => attempt::not_sent(webhook, &d.url, result, now),
        };
        if let (Some(body), true) = (placeholder_body, sent.body.is_some()) {
            sent.body = body;
        }
        let authed = Authed {
            sent,
            secret_names,
            logs: added.logs,
        };
        Ok((authed, added.token_keys))
    }
}
