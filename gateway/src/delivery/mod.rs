//! Delivery: workers, request shaping, auth, signing, retry decisions and the outbound guard.

pub mod attempt;
pub mod auth;
pub mod cause;
pub mod clients;
pub mod engine;
pub mod fill;
pub mod guard;
pub mod oauth2;
pub mod outcome_log;
pub mod plugin_refs;
pub mod plugins;
pub mod retry;
pub mod shaping;
pub mod signing;

pub use engine::Engine;
