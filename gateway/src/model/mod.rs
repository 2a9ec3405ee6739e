//! Domain types shared by every part: events, webhooks, deliveries and API keys.

pub mod client_cert;
pub mod delivery;
pub mod event;
pub mod mail;
pub mod portal;
pub mod session;
pub mod webhook;

pub use client_cert::ClientCertificate;
pub use delivery::*;
pub use event::{Event, EventScope};
pub use mail::{FailureNote, MailDigest, MailKind, MailOutcome, OutboxMail};
pub use portal::{PortalLink, PortalRedeem};
pub use session::ConsoleSession;
pub use webhook::*;

/// A new identifier: `prefix` + `_` + a ULID (sortable by creation time).
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}
