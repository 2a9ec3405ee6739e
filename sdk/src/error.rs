//! The error a plugin returns for an expected failure (the WIT `plugin-error`).
//!
//! Return an [`Error`] for bad config or an event the plugin cannot handle: the delivery fails with
//! that message. Panics are bugs: the host records them as traps (the panic message reaches the
//! delivery log through [`crate::log`]).

use std::fmt;

/// `Result` with the plugin [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An expected plugin failure. New cases may be added (hence `non_exhaustive`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The config attached to the webhook is not what the plugin needs.
    InvalidConfig(String),
    /// The event lacks something the plugin needs.
    InvalidEvent(String),
    /// The plugin does not handle this case.
    Unsupported(String),
    /// Anything else.
    Other(String),
}

impl Error {
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Error::InvalidConfig(msg.into())
    }
    pub fn invalid_event(msg: impl Into<String>) -> Self {
        Error::InvalidEvent(msg.into())
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
    pub fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            Error::InvalidEvent(m) => write!(f, "invalid event: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Other(format!("json: {e}"))
    }
}
