//! The entry macros and the glue they call: parse the inputs, run the plugin's trait method,
//! convert the answer to the WIT types, and route panics to the log import.

/// Exports a [`Transformer`](crate::Transformer) as the component's `transform` function.
///
/// Use once per crate, with the `transformer` feature of the SDK enabled. On native targets it
/// expands to nothing, so the same crate runs its unit tests with `cargo test`.
#[macro_export]
macro_rules! transformer {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __gateway_sdk_transformer {
            #[allow(unused_imports)]
            use super::*;
            $crate::__transformer_bindings!();
            struct __Export;
            impl Guest for __Export {
                fn transform(
                    event: ::std::string::String,
                    context: WebhookContext,
                    config: ::std::string::String,
                ) -> ::std::result::Result<TransformOutcome, PluginError> {
                    $crate::__private::run_transform::<$t>(event, context, config)
                }
            }
            export!(__Export with_types_in self);
        }
    };
}

/// Exports an [`Authenticator`](crate::Authenticator) as the component's `authenticate` function.
#[macro_export]
macro_rules! authenticator {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __gateway_sdk_authenticator {
            #[allow(unused_imports)]
            use super::*;
            $crate::__authenticator_bindings!();
            struct __Export;
            impl Guest for __Export {
                fn authenticate(
                    request: Request,
                    attempt: AttemptInfo,
                ) -> ::std::result::Result<AuthAdditions, PluginError> {
                    $crate::__private::run_authenticate::<$t>(request, attempt)
                }
            }
            export!(__Export with_types_in self);
        }
    };
}

/// Sends panic messages to the log import before the (abort) trap, so they reach the delivery log.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| crate::log::error(&format!("plugin panicked: {info}"))));
    });
}

/// Parses the config argument of `transform`.
pub fn parse_config(config: &str) -> crate::Result<serde_json::Value> {
    if config.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(config).map_err(|e| crate::Error::invalid_config(format!("config is not JSON: {e}")))
}

#[cfg(target_arch = "wasm32")]
pub use wasm::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::__bindings::webhook_gateway::plugin::types as wit;
    use crate::{Additions, Attempt, Authenticator, Context, Error, Event, Outcome, Request, Transformer};

    pub fn run_transform<T: Transformer>(
        event: String,
        context: wit::WebhookContext,
        config: String,
    ) -> Result<wit::TransformOutcome, wit::PluginError> {
        super::install_panic_hook();
        let run = || -> crate::Result<Outcome> {
            let event = Event::from_json_unchecked(event);
            let config = super::parse_config(&config)?;
            T::transform(&event, &context_from(context), &config)
        };
        match run() {
            Ok(Outcome::Send(r)) => Ok(wit::TransformOutcome::Send(request_to(r))),
            Ok(Outcome::Skip(reason)) => Ok(wit::TransformOutcome::Skip(reason)),
            Err(e) => Err(error_to(e)),
        }
    }

    pub fn run_authenticate<T: Authenticator>(
        request: wit::Request,
        attempt: wit::AttemptInfo,
    ) -> Result<wit::AuthAdditions, wit::PluginError> {
        super::install_panic_hook();
        let attempt = Attempt { delivery_id: attempt.delivery_id, attempt: attempt.attempt, now_ms: attempt.now_ms };
        match T::authenticate(&request_from(request), &attempt) {
            Ok(Additions { headers, query }) => Ok(wit::AuthAdditions { headers, query }),
            Err(e) => Err(error_to(e)),
        }
    }

    fn request_from(r: wit::Request) -> Request {
        Request { method: r.method, url: r.url, query: r.query, headers: r.headers, body: r.body }
    }

    fn request_to(r: Request) -> wit::Request {
        wit::Request { method: r.method, url: r.url, query: r.query, headers: r.headers, body: r.body }
    }

    fn context_from(c: wit::WebhookContext) -> Context {
        Context {
            webhook_id: c.webhook_id,
            webhook_name: c.webhook_name,
            event_type: c.event_type,
            delivery_id: c.delivery_id,
            url: c.url,
            method: c.method,
            now_ms: c.now_ms,
            attempt: c.attempt,
            previous: c.previous.map(request_from),
        }
    }

    fn error_to(e: Error) -> wit::PluginError {
        match e {
            Error::InvalidConfig(m) => wit::PluginError::InvalidConfig(m),
            Error::InvalidEvent(m) => wit::PluginError::InvalidEvent(m),
            Error::Unsupported(m) => wit::PluginError::Unsupported(m),
            Error::Other(m) => wit::PluginError::Other(m),
        }
    }
}
