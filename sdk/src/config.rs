//! The plugin's config as attached to the webhook (`"plugins": [{"name": .., "config": {..}}]`).
//! Transformers also receive it as an argument; authenticators read it here.
//! On native targets the config comes from [`testing::set`].

use serde_json::Value;

/// The whole config (`Value::Null` when none was set).
pub fn get_json() -> Value {
    serde_json::from_str(&imp::get_json()).unwrap_or(Value::Null)
}

/// One top-level key of the config object.
pub fn get(key: &str) -> Option<Value> {
    imp::get(key).and_then(|text| serde_json::from_str(&text).ok())
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::__bindings::webhook_gateway::plugin::config as wit;
    pub fn get_json() -> String {
        wit::get_json()
    }
    pub fn get(key: &str) -> Option<String> {
        wit::get(key)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use serde_json::Value;
    use std::cell::RefCell;

    thread_local! {
        pub static CONFIG: RefCell<Value> = const { RefCell::new(Value::Null) };
    }
    pub fn get_json() -> String {
        CONFIG.with(|c| c.borrow().to_string())
    }
    pub fn get(key: &str) -> Option<String> {
        CONFIG.with(|c| c.borrow().get(key).map(Value::to_string))
    }
}

/// Native stand-ins for unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    /// Sets the config [`super::get_json`] returns on this thread.
    pub fn set(config: serde_json::Value) {
        super::imp::CONFIG.with(|c| *c.borrow_mut() = config);
    }
}
