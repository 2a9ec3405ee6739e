//! The SMTP side: a lettre transport built from `[smtp]` (smtp://, smtps://, STARTTLS), and one
//! outbox mail turned into a message and sent. One connection per send (no pool): a server that
//! went away is noticed at the next mail, not by a stale pooled connection.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpConfig;
use crate::model::OutboxMail;

/// Why a mail did not go out.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (server down, timeout, a 4xx answer).
    #[error("{0}")]
    Transient(String),
    /// Refused for good (a 5xx answer, an address that cannot be parsed).
    #[error("{0}")]
    Permanent(String),
}

/// Sends outbox mails through the configured server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// The transport `smtp` describes, checked at start (see `notify::validate`).
fn transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
        .map_err(|e| format!("not a usable SMTP url ({e})"))?
        .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
    if !smtp.username.is_empty() {
        b = b.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
    }
    Ok(b.build())
}

impl Mailer {
    pub fn new(smtp: &SmtpConfig) -> Result<Self, String> {
        let from = smtp
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("not a mail address ({e})"))?;
        Ok(Mailer {
            transport: transport(smtp)?,
            from,
        })
    }

    /// Checks what `Mailer::new` would refuse, naming the key.
    pub fn check(smtp: &SmtpConfig) -> Result<(), (&'static str, String)> {
        transport(smtp).map_err(|e| ("smtp.url", e))?;
        smtp.from
            .parse::<Mailbox>()
            .map_err(|e| ("smtp.from", format!("not a mail address ({e})")))?;
        Ok(())
    }

    /// Sends `mail`. The Message-ID is derived from the outbox id, so a mail sent again after an
    /// unknown outcome can be recognised as the same one.
    pub async fn send(&self, mail: &OutboxMail) -> Result<(), SendError> {
        let to = mail
            .recipient
            .parse::<Mailbox>()
            .map_err(|e| SendError::Permanent(format!("recipient {:?}: {e}", mail.recipient)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@webhook-gateway>", mail.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| SendError::Permanent(format!("building the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}
