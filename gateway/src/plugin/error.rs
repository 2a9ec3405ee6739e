//! [`PluginError`]: every way a plugin call or upload can fail, one variant per cause, so the
//! delivery worker and the API can tell a plugin bug from back-pressure from a bad upload.

use std::fmt;

/// An expected failure the plugin itself reported (the WIT `plugin-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    InvalidConfig(String),
    InvalidEvent(String),
    Unsupported(String),
    Other(String),
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            GuestError::InvalidEvent(m) => write!(f, "invalid event: {m}"),
            GuestError::Unsupported(m) => write!(f, "unsupported: {m}"),
            GuestError::Other(m) => f.write_str(m),
        }
    }
}

/// Why a plugin could not be prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The upload is not a component of the transformer or authenticator world (or does not
    /// compile). The message says which check failed.
    #[error("invalid plugin: {0}")]
    Invalid(String),
    /// No plugin with this sha256 is loaded; call `load` (or `prepare`) first.
    #[error("plugin {0} is not loaded")]
    NotLoaded(String),
    /// A transformer was called as an authenticator or the reverse.
    #[error("plugin is a {actual}, not a {expected}")]
    WrongKind {
        expected: &'static str,
        actual: &'static str,
    },
    /// Every instance slot is in use: back-pressure, try again later. Not the plugin's fault.
    #[error("plugin host is busy (all {0} instance slots in use); retry later")]
    Busy(usize),
    /// The inputs (event + config + context) exceed `max_input_bytes`.
    #[error("plugin input is {size} bytes, over the {limit} byte limit")]
    InputTooLarge { size: usize, limit: usize },
    /// The plugin ran past its CPU deadline and was interrupted.
    #[error("plugin timed out after {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    /// The plugin tried to grow its memory past the limit.
    #[error("plugin exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit { limit_bytes: usize },
    /// The plugin crashed: a panic, `unreachable`, an out-of-bounds access, a stack overflow.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin returned something the gateway cannot send (bad header name, url, method,
    /// text that is not UTF-8, ...).
    #[error("plugin returned invalid output: {0}")]
    InvalidOutput(String),
    /// The plugin's output exceeds `max_output_bytes`.
    #[error("plugin output is {size} bytes, over the {limit} byte limit")]
    OutputTooLarge { size: usize, limit: usize },
    /// The plugin declined with its own error.
    #[error("plugin error: {0}")]
    Guest(GuestError),
    /// A host-side failure (I/O on the artifact cache, a worker thread that died).
    #[error("plugin host error: {0}")]
    Internal(String),
}

impl PluginError {
    /// A short stable code for attempt logs and API problems.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::Invalid(_) => "invalid_plugin",
            PluginError::NotLoaded(_) => "plugin_not_loaded",
            PluginError::WrongKind { .. } => "wrong_plugin_kind",
            PluginError::Busy(_) => "plugin_host_busy",
            PluginError::InputTooLarge { .. } => "plugin_input_too_large",
            PluginError::Timeout { .. } => "plugin_timeout",
            PluginError::MemoryLimit { .. } => "plugin_memory_limit",
            PluginError::Trap(_) => "plugin_trap",
            PluginError::InvalidOutput(_) => "plugin_invalid_output",
            PluginError::OutputTooLarge { .. } => "plugin_output_too_large",
            PluginError::Guest(_) => "plugin_error",
            PluginError::Internal(_) => "plugin_host_error",
        }
    }

    /// True when the same call may succeed later without any change (back-pressure, host
    /// trouble); false when the plugin, its config or the event must change first.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PluginError::Busy(_) | PluginError::Internal(_) | PluginError::NotLoaded(_)
        )
    }
}
