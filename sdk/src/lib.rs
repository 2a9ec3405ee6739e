//! # webhook-gateway-sdk
//!
//! Write [webhook-gateway](../../docs/plugins.md) plugins in Rust. A plugin is a WebAssembly
//! component built for `wasm32-wasip2` that plays one of two roles:
//!
//! - a **transformer** turns an event into the HTTP request a webhook sends (or skips it);
//! - an **authenticator** adds headers or query parameters to the final request of an attempt,
//!   using secrets it can use (HMAC, place in a header) but never read.
//!
//! Implement the role's trait and name your type in the entry macro ([`transformer!`] or
//! [`authenticator!`], once per crate); the macro picks the WIT world the component targets:
//!
//! ```
//! use gateway_sdk::{Context, Event, Outcome, Request, Transformer};
//!
//! pub struct Hello;
//!
//! impl Transformer for Hello {
//!     fn transform(event: &Event, ctx: &Context, _config: &serde_json::Value) -> gateway_sdk::Result<Outcome> {
//!         let text = format!("{}: {}", ctx.event_type, event.str("message").unwrap_or("?"));
//!         Ok(Outcome::Send(Request::post(&ctx.url).json(&serde_json::json!({ "text": text }))?))
//!     }
//! }
//!
//! gateway_sdk::transformer!(Hello);
//! ```
//!
//! Plugins are deterministic and closed: there is no clock, randomness, file or socket access; the
//! host passes `now` and ids in [`Context`]. Keep the logic in plain functions and test it natively
//! with `cargo test --target x86_64-unknown-linux-gnu`: on native targets the WebAssembly bindings
//! are not compiled, [`log`] prints to stderr, and [`config`] and [`secrets`] read values a test
//! set with their `testing` helpers.
//!
//! Module map:
//! - [`event`]: the incoming event with dotted-path and typed (serde) access.
//! - [`request`]: [`Request`] builder, [`Outcome`], [`Context`], [`Attempt`], [`Additions`].
//! - [`error`]: [`Error`] (the WIT `plugin-error`) and the [`Result`] alias.
//! - [`log`], [`config`], [`secrets`], [`oauth2`]: the host imports.
//! - [`encoding`]: hex and base64 for signatures.
//! - [`time`]: the UTC date and time of the `now_ms` the host passes.

pub mod config;
pub mod encoding;
pub mod error;
pub mod event;
pub mod log;
pub mod oauth2;
pub mod request;
pub mod secrets;
pub mod time;

mod entry;

pub use error::{Error, Result};
pub use event::Event;
pub use request::{Additions, Attempt, Context, Outcome, Request};

/// Re-exported so plugins need no direct dependency on them.
pub use serde_json;

/// A plugin that shapes events into requests. Export it with [`transformer!`].
pub trait Transformer {
    /// Called once per delivery. `config` is the JSON attached to the plugin on the webhook
    /// (`null` when none).
    fn transform(event: &Event, ctx: &Context, config: &serde_json::Value) -> Result<Outcome>;
}

/// A plugin that adds credentials to each attempt. Export it with [`authenticator!`].
pub trait Authenticator {
    /// Called once per attempt with the final request. Read the plugin's config with
    /// [`config::get_json`] and secrets with [`secrets::open`].
    fn authenticate(request: &Request, attempt: &Attempt) -> Result<Additions>;
}

/// The generated bindings. Not a stable API: use the wrappers.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "wit",
        inline: "
            package webhook-gateway:sdk;
            world guest-imports {
                import webhook-gateway:plugin/types@0.1.0;
                import webhook-gateway:plugin/log@0.1.0;
                import webhook-gateway:plugin/config@0.1.0;
                import webhook-gateway:plugin/secrets@0.1.0;
                import webhook-gateway:plugin/oauth2@0.1.0;
            }
        ",
        world: "webhook-gateway:sdk/guest-imports",
        generate_all,
        generate_unused_types: true,
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen;
}

#[doc(hidden)]
pub mod __private {
    pub use crate::entry::*;
}

#[cfg(target_arch = "wasm32")]
include!(concat!(env!("OUT_DIR"), "/entry_bindings.rs"));
