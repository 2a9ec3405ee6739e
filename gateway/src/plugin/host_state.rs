//! Per-call host state: what one fresh store holds (an empty WASI context, the memory limiter,
//! the capped log, the config, the secrets) and the imports implemented over it.

use hmac::{Hmac, Mac};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{authenticator, transformer};
use super::limits::{MemoryLimiter, PluginLimits};

type LogLevel = transformer::webhook_gateway::plugin::log::Level;

/// Log lines of one call, capped in number and length.
#[derive(Debug, Default)]
pub(crate) struct LogSink {
    pub lines: Vec<String>,
    pub dropped: usize,
    max_lines: usize,
    max_line_bytes: usize,
}

impl LogSink {
    pub fn new(limits: &PluginLimits) -> Self {
        LogSink {
            lines: Vec::new(),
            dropped: 0,
            max_lines: limits.max_log_lines,
            max_line_bytes: limits.max_log_line_bytes,
        }
    }

    pub fn push(&mut self, level: &str, message: &str) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        let mut end = message.len().min(self.max_line_bytes);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let cut = if end < message.len() { " [cut]" } else { "" };
        self.lines
            .push(format!("[{level}] {}{cut}", &message[..end]));
    }

    /// The lines, with a last line counting the dropped ones.
    pub fn finish(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.lines);
        if self.dropped > 0 {
            lines.push(format!(
                "[host] {} more log lines dropped (limit {})",
                self.dropped, self.max_lines
            ));
        }
        lines
    }

    /// The last line a panic hook wrote, if any (to explain a trap).
    pub fn panic_message(&self) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.contains("plugin panicked"))
            .map(String::as_str)
    }
}

/// A secret the guest holds a handle to.
struct Slot {
    /// The webhook secret's name; `None` for a derived key or a token.
    name: Option<String>,
    value: Vec<u8>,
    /// A derived key (from `derive-hmac-sha256`): HMAC only, never placed.
    derived: bool,
}

impl Slot {
    fn named(secrets: Vec<(String, String)>) -> Vec<Slot> {
        secrets
            .into_iter()
            .map(|(name, value)| Slot {
                name: Some(name),
                value: value.into_bytes(),
                derived: false,
            })
            .collect()
    }
}

/// HMAC-SHA256 of `data` keyed with `key`.
fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Everything one store (one call) owns.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub logs: LogSink,
    config_json: String,
    config: Option<serde_json::Value>,
    /// Secret values by handle (the index): the webhook's, then derived keys and tokens as the
    /// guest makes them. Never handed to the guest.
    secrets: Vec<Slot>,
    /// Where `oauth2` tokens come from (set per call).
    pub tokens: Option<super::Tokens>,
    /// Cache keys of the tokens this call used.
    pub token_keys: Vec<String>,
    /// Headers and query parameters placed by `secrets.place-in-*`.
    pub placed_headers: Vec<(String, String)>,
    pub placed_query: Vec<(String, String)>,
    /// Epoch callbacks seen (each is about 1 ms of running guest code).
    pub ticks: u64,
    pub max_ticks: u64,
    pub timed_out: bool,
}

impl HostState {
    pub fn new(limits: &PluginLimits, config_json: String, secrets: Vec<(String, String)>) -> Self {
        HostState {
            // No env, args, preopens, network; stdio discarded; clocks and random are WASI's
            // defaults (Rust's std needs random for HashMap seeds). The WIT contract offers no
            // clock: `now` comes from the context.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            logs: LogSink::new(limits),
            config_json,
            config: None,
            secrets: Slot::named(secrets),
            tokens: None,
            token_keys: Vec::new(),
            placed_headers: Vec::new(),
            placed_query: Vec::new(),
            ticks: 0,
            max_ticks: limits.cpu_deadline_ms.max(1),
            timed_out: false,
        }
    }

    /// Gives the store of a prepared instance this call's config and secrets, and restarts the
    /// CPU budget (ticks spent instantiating do not count against the call).
    pub fn arm(&mut self, config_json: String, secrets: Vec<(String, String)>) {
        self.config_json = config_json;
        self.config = None;
        self.secrets = Slot::named(secrets);
        self.tokens = None;
        self.token_keys.clear();
        self.ticks = 0;
        self.timed_out = false;
    }

    fn slot(&self, handle: u32) -> Result<&Slot, String> {
        self.secrets
            .get(handle as usize)
            .ok_or_else(|| format!("unknown secret handle {handle}"))
    }

    fn secret(&self, handle: u32) -> Result<&[u8], String> {
        self.slot(handle).map(|s| s.value.as_slice())
    }

    /// A placeable secret's text (a derived key is refused).
    fn text(&self, handle: u32) -> Result<String, String> {
        let slot = self.slot(handle)?;
        if slot.derived {
            return Err(format!(
                "secret handle {handle} is a derived key: it can only be used for HMAC"
            ));
        }
        String::from_utf8(slot.value.clone()).map_err(|_| "the secret is not UTF-8".to_string())
    }

    /// Adds a value the guest may use by handle; returns the handle.
    fn add(&mut self, value: Vec<u8>, derived: bool) -> Result<u32, String> {
        const MAX_HANDLES: usize = 1024;
        if self.secrets.len() >= MAX_HANDLES {
            return Err(format!(
                "more than {MAX_HANDLES} secret handles in one call"
            ));
        }
        self.secrets.push(Slot {
            name: None,
            value,
            derived,
        });
        Ok((self.secrets.len() - 1) as u32)
    }

    fn place(
        &mut self,
        handle: u32,
        name: String,
        prefix: String,
        query: bool,
    ) -> Result<(), String> {
        let value = format!("{prefix}{}", self.text(handle)?);
        if query {
            self.placed_query.push((name, value))
        } else {
            self.placed_headers.push((name, value))
        }
        Ok(())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl transformer::webhook_gateway::plugin::types::Host for HostState {}

impl transformer::webhook_gateway::plugin::log::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        self.logs.push(level, &message);
    }
}

impl transformer::webhook_gateway::plugin::config::Host for HostState {
    fn get_json(&mut self) -> String {
        if self.config_json.trim().is_empty() {
            "null".to_string()
        } else {
            self.config_json.clone()
        }
    }

    fn get(&mut self, key: String) -> Option<String> {
        if self.config.is_none() {
            self.config =
                Some(serde_json::from_str(&self.config_json).unwrap_or(serde_json::Value::Null));
        }
        self.config.as_ref()?.get(&key).map(|v| v.to_string())
    }
}

impl authenticator::webhook_gateway::plugin::secrets::Host for HostState {
    fn open(&mut self, name: String) -> Option<u32> {
        self.secrets
            .iter()
            .position(|s| s.name.as_deref() == Some(name.as_str()))
            .and_then(|i| u32::try_from(i).ok())
    }

    fn hmac_sha256(&mut self, secret: u32, data: Vec<u8>) -> Result<Vec<u8>, String> {
        hmac_sha256(self.secret(secret)?, &data)
    }

    fn derive_hmac_sha256(
        &mut self,
        key: u32,
        data: Vec<u8>,
        key_prefix: String,
    ) -> Result<u32, String> {
        let key = [key_prefix.as_bytes(), self.secret(key)?].concat();
        let derived = hmac_sha256(&key, &data)?;
        self.add(derived, true)
    }

    fn hmac_sha512(&mut self, secret: u32, data: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(self.secret(secret)?)
            .map_err(|e| e.to_string())?;
        mac.update(&data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn place_in_header(&mut self, secret: u32, name: String, prefix: String) -> Result<(), String> {
        self.place(secret, name, prefix, false)
    }

    fn place_in_query(&mut self, secret: u32, name: String, prefix: String) -> Result<(), String> {
        self.place(secret, name, prefix, true)
    }
}

impl authenticator::webhook_gateway::plugin::oauth2::Host for HostState {
    async fn client_credentials_token(
        &mut self,
        token_url: String,
        client_id: u32,
        client_secret: u32,
        params: Vec<(String, String)>,
    ) -> Result<u32, String> {
        let tokens = self.tokens.clone().ok_or_else(|| {
            "oauth2 tokens are fetched for deliveries only (not in this call)".to_string()
        })?;
        let req = super::TokenRequest {
            token_url,
            client_id: self.text(client_id)?,
            client_secret: self.text(client_secret)?,
            params,
        };
        let (token, key) = tokens.0.client_credentials(req).await?;
        if !self.token_keys.contains(&key) {
            self.token_keys.push(key);
        }
        self.add(token.into_bytes(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sink_caps_lines_and_length_on_char_boundaries() {
        let limits = PluginLimits {
            max_log_lines: 2,
            max_log_line_bytes: 4,
            ..Default::default()
        };
        let mut sink = LogSink::new(&limits);
        sink.push("info", "héllo");
        sink.push("warn", "ok");
        sink.push("info", "dropped");
        assert_eq!(
            sink.finish(),
            vec![
                "[info] hél [cut]",
                "[warn] ok",
                "[host] 1 more log lines dropped (limit 2)"
            ]
        );
    }

    #[test]
    fn secrets_are_used_by_handle_never_returned() {
        use authenticator::webhook_gateway::plugin::secrets::Host;
        let mut s = HostState::new(
            &PluginLimits::default(),
            "null".into(),
            vec![("k".into(), "Jefe".into())],
        );
        let h = s.open("k".into()).unwrap();
        assert_eq!(s.open("nope".into()), None);
        let mac = s
            .hmac_sha256(h, b"what do ya want for nothing?".to_vec())
            .unwrap();
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(s.hmac_sha512(7, vec![]).is_err());
        s.place_in_header(h, "Authorization".into(), "Bearer ".into())
            .unwrap();
        assert_eq!(
            s.placed_headers,
            vec![("Authorization".to_string(), "Bearer Jefe".to_string())]
        );
    }

    /// The SigV4 signing key of AWS's documentation example ("Derive a signing key",
    /// secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 20120215 / us-east-1 / iam), derived
    /// through handles only, and a derived key refused for placement.
    #[test]
    fn derived_keys_follow_the_sigv4_chain_and_are_never_placed() {
        use authenticator::webhook_gateway::plugin::secrets::Host;
        let mut s = HostState::new(
            &PluginLimits::default(),
            "null".into(),
            vec![(
                "aws".into(),
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            )],
        );
        let secret = s.open("aws".into()).unwrap();
        let k_date = s
            .derive_hmac_sha256(secret, b"20120215".to_vec(), "AWS4".into())
            .unwrap();
        let k_region = s
            .derive_hmac_sha256(k_date, b"us-east-1".to_vec(), String::new())
            .unwrap();
        let k_service = s
            .derive_hmac_sha256(k_region, b"iam".to_vec(), String::new())
            .unwrap();
        let k_signing = s
            .derive_hmac_sha256(k_service, b"aws4_request".to_vec(), String::new())
            .unwrap();
        assert_eq!(
            hex::encode(s.secret(k_signing).unwrap()),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        // HMAC with the derived key is HMAC with those bytes.
        let sig = s.hmac_sha256(k_signing, b"x".to_vec()).unwrap();
        let expected = hmac_sha256(
            &hex::decode("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
                .unwrap(),
            b"x",
        )
        .unwrap();
        assert_eq!(sig, expected);
        // A derived handle is not a name, and cannot be placed anywhere.
        assert_eq!(s.open(String::new()), None);
        let err = s
            .place_in_header(k_date, "Authorization".into(), String::new())
            .unwrap_err();
        assert!(err.contains("derived key"), "{err}");
        assert!(
            s.place_in_query(k_signing, "sig".into(), String::new())
                .is_err()
        );
        assert!(s.placed_headers.is_empty() && s.placed_query.is_empty());
        assert!(s.derive_hmac_sha256(99, vec![], String::new()).is_err());
    }
}
