//! Delivery: workers, request shaping, auth, signing, retry decisions and the outbound guard.

pub mod attempt;
pub mod auth;
pub mod cause;
pub mod clients;
pub mod engine;
pub mod fill;
pub mod guard;
pub mod outcome_log;
pub mod plugins;
pub mod retry;
pub mod shaping;
pub mod signing;

pub use engine::Engine;
