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

/// Everything one store (one call) owns.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub logs: LogSink,
    config_json: String,
    config: Option<serde_json::Value>,
    /// Secret values by handle (the index). Never handed to the guest.
    secrets: Vec<(String, String)>,
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
            secrets,
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
        self.secrets = secrets;
        self.ticks = 0;
        self.timed_out = false;
    }

    fn secret(&self, handle: u32) -> Result<&str, String> {
        self.secrets
            .get(handle as usize)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("unknown secret handle {handle}"))
    }

    fn place(
        &mut self,
        handle: u32,
        name: String,
        prefix: String,
        query: bool,
    ) -> Result<(), String> {
        let value = format!("{prefix}{}", self.secret(handle)?);
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
            .position(|(n, _)| *n == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    fn hmac_sha256(&mut self, secret: u32, data: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.secret(secret)?.as_bytes())
            .map_err(|e| e.to_string())?;
        mac.update(&data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn hmac_sha512(&mut self, secret: u32, data: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(self.secret(secret)?.as_bytes())
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
}
