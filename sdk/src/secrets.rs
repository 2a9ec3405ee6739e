//! Secrets of the webhook for authenticators: open one by name and use it (HMAC, or place it in a
//! header or query parameter); its value never enters the plugin. Handles last for one call.
//! On native targets secrets come from [`testing::set`] and placements land in
//! [`testing::take_placed`].

use crate::{Error, Result};

/// A handle to a secret the plugin can use but not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secret(u32);

/// Opens the secret with this name; `None` when the webhook has none by that name.
pub fn open(name: &str) -> Option<Secret> {
    imp::open(name).map(Secret)
}

/// Opens a secret that must exist.
pub fn require(name: &str) -> Result<Secret> {
    open(name).ok_or_else(|| Error::invalid_config(format!("no secret named `{name}`")))
}

impl Secret {
    /// HMAC-SHA256 of `data` keyed with the secret.
    pub fn hmac_sha256(&self, data: &[u8]) -> Result<Vec<u8>> {
        imp::hmac(self.0, data, false).map_err(Error::Other)
    }
    /// HMAC-SHA512 of `data` keyed with the secret.
    pub fn hmac_sha512(&self, data: &[u8]) -> Result<Vec<u8>> {
        imp::hmac(self.0, data, true).map_err(Error::Other)
    }
    /// A derived key held by the host: HMAC-SHA256 keyed with `key_prefix` then this secret's
    /// bytes, over `data` (one step of a keyed HMAC chain such as AWS Signature V4's). The new
    /// handle can be used like a secret but never placed in a header or query parameter.
    pub fn derive_hmac_sha256(&self, data: &[u8], key_prefix: &str) -> Result<Secret> {
        imp::derive(self.0, data, key_prefix).map(Secret).map_err(Error::Other)
    }
    /// The raw handle (for other host imports that take secrets, such as [`crate::oauth2`]).
    pub fn handle(&self) -> u32 {
        self.0
    }
    /// A secret from a raw handle another host import returned.
    pub fn from_handle(handle: u32) -> Secret {
        Secret(handle)
    }
    /// Adds the header `name: <prefix><secret>` to the request (e.g. prefix `Bearer `).
    pub fn place_in_header(&self, name: &str, prefix: &str) -> Result<()> {
        imp::place(self.0, name, prefix, false).map_err(Error::Other)
    }
    /// Adds the query parameter `name=<prefix><secret>` to the request.
    pub fn place_in_query(&self, name: &str, prefix: &str) -> Result<()> {
        imp::place(self.0, name, prefix, true).map_err(Error::Other)
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::__bindings::webhook_gateway::plugin::secrets as wit;
    pub fn open(name: &str) -> Option<u32> {
        wit::open(name)
    }
    pub fn hmac(h: u32, data: &[u8], sha512: bool) -> Result<Vec<u8>, String> {
        if sha512 { wit::hmac_sha512(h, data) } else { wit::hmac_sha256(h, data) }
    }
    pub fn derive(h: u32, data: &[u8], key_prefix: &str) -> Result<u32, String> {
        wit::derive_hmac_sha256(h, data, key_prefix)
    }
    pub fn place(h: u32, name: &str, prefix: &str, query: bool) -> Result<(), String> {
        if query { wit::place_in_query(h, name, prefix) } else { wit::place_in_header(h, name, prefix) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use hmac::{Hmac, Mac};
    use std::cell::RefCell;

    #[derive(Default)]
    pub struct State {
        /// (name, value, derived): derived keys are bytes, named "" and never placed.
        pub secrets: Vec<(String, Vec<u8>, bool)>,
        /// (is_query, name, value)
        pub placed: Vec<(bool, String, String)>,
    }

    thread_local! {
        pub static STATE: RefCell<State> = RefCell::new(State::default());
    }

    fn value(h: u32) -> Result<(Vec<u8>, bool), String> {
        STATE
            .with(|s| s.borrow().secrets.get(h as usize).map(|(_, v, d)| (v.clone(), *d)))
            .ok_or_else(|| format!("unknown secret handle {h}"))
    }
    pub fn open(name: &str) -> Option<u32> {
        STATE.with(|s| s.borrow().secrets.iter().position(|(n, _, d)| n == name && !d).map(|i| i as u32))
    }
    pub fn hmac(h: u32, data: &[u8], sha512: bool) -> Result<Vec<u8>, String> {
        let (key, _) = value(h)?;
        Ok(if sha512 {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(&key).map_err(|e| e.to_string())?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        })
    }
    pub fn derive(h: u32, data: &[u8], key_prefix: &str) -> Result<u32, String> {
        let (key, _) = value(h)?;
        let mut m =
            Hmac::<sha2::Sha256>::new_from_slice(&[key_prefix.as_bytes(), &key].concat()).map_err(|e| e.to_string())?;
        m.update(data);
        let derived = m.finalize().into_bytes().to_vec();
        Ok(add(String::new(), derived, true))
    }
    /// Adds a value (a token another import fetched, or a derived key); returns its handle.
    pub fn add(name: String, value: Vec<u8>, derived: bool) -> u32 {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.secrets.push((name, value, derived));
            (s.secrets.len() - 1) as u32
        })
    }
    pub fn place(h: u32, name: &str, prefix: &str, query: bool) -> Result<(), String> {
        let (v, derived) = value(h)?;
        if derived {
            return Err("a derived key cannot be placed in a request".into());
        }
        let v = String::from_utf8_lossy(&v);
        STATE.with(|s| s.borrow_mut().placed.push((query, name.to_string(), format!("{prefix}{v}"))));
        Ok(())
    }
}

/// Native stand-ins for unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    /// Sets the secrets [`super::open`] finds on this thread, as (name, value) pairs.
    pub fn set(secrets: &[(&str, &str)]) {
        super::imp::STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.secrets = secrets.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), false)).collect();
            s.placed.clear();
        });
    }
    /// Headers and query parameters placed so far as (is_query, name, value), emptying the list.
    pub fn take_placed() -> Vec<(bool, String, String)> {
        super::imp::STATE.with(|s| std::mem::take(&mut s.borrow_mut().placed))
    }
}

/// A token handle for the native stand-in of [`crate::oauth2`].
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn add_native(token: String) -> u32 {
    imp::add(String::new(), token.into_bytes(), false)
}
