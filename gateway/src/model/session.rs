//! A console session as stored: the sha256 of its cookie, who it acts as (an API key, or a portal
//! link's team and webhook) and its CSRF token. `console::session` mints and checks them.

use super::Role;

/// One signed-in browser (table `console_sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Hex sha256 of the cookie value; the clear value exists only in the browser.
    pub id_hash: String,
    /// The API key the session acts as, or `portal:<link id>` for a portal session.
    pub key_id: String,
    pub role: Role,
    pub team_id: Option<String>,
    /// A portal link for one webhook: the session sees only that webhook.
    pub only_webhook: Option<String>,
    /// Opened through a portal link (no API key behind it).
    pub portal: bool,
    /// What unsafe requests must send in `X-CSRF-Token` (or a form's `csrf` field).
    pub csrf: String,
    /// Unix ms.
    pub created_at: i64,
    /// Absolute end (unix ms): `created_at + console.session_max_secs`.
    pub expires_at: i64,
    /// Last request seen (unix ms; written at most once a minute), for the idle expiry.
    pub last_seen_at: i64,
}
