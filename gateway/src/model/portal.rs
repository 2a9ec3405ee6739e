//! Team portal links: short-lived, single-use links that open a console session limited to one
//! team (or one webhook of it), minted by an admin, the platform's publisher key or the team's
//! manager. Only the sha256 of the link's token is stored.

use serde::{Deserialize, Serialize};

/// A stored portal link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalLink {
    pub id: String,
    /// Hex sha256 of the token in the link's url.
    pub token_hash: String,
    pub team_id: String,
    /// The one webhook the session may see; `None`: every webhook of the team.
    pub webhook_id: Option<String>,
    /// The key that minted it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was opened; a link opens once.
    pub used_at: Option<i64>,
}

/// What opening a link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalRedeem {
    /// It was unused and unexpired, and is now used (the returned link has `used_at` set).
    Opened(PortalLink),
    /// Opened before.
    Used,
    /// Past its `expires_at`.
    Expired,
    /// No link has this token.
    Unknown,
}
