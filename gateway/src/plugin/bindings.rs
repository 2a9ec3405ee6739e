//! Host bindings generated from the one WIT copy in `sdk/wit` (one `bindgen!` per world).
//! Exports are async (called with `*_async` so the epoch callback can yield); imports are plain
//! functions that only touch per-call state, except `oauth2.client-credentials-token` (async: it
//! may fetch a token over the network).

/// The `transformer` world; also owns the shared interfaces (types, log, config).
pub mod transformer {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "transformer",
        exports: { default: async },
    });
}

/// The `authenticator` world, reusing the transformer world's shared interfaces.
pub mod authenticator {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "authenticator",
        exports: { default: async },
        // The token fetch is network I/O: the guest waits, the worker does not.
        imports: { "webhook-gateway:plugin/oauth2.client-credentials-token": async },
        with: {
            "webhook-gateway:plugin/types": super::transformer::webhook_gateway::plugin::types,
            "webhook-gateway:plugin/log": super::transformer::webhook_gateway::plugin::log,
            "webhook-gateway:plugin/config": super::transformer::webhook_gateway::plugin::config,
        },
    });
}

pub use transformer::webhook_gateway::plugin::types as wit;
