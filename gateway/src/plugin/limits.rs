//! [`PluginLimits`] (all configurable, with the design's defaults) and the per-call memory
//! limiter that enforces the memory cap and records the peak.

use serde::{Deserialize, Serialize};

/// Limits applied to every plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginLimits {
    /// CPU time a call may use before it is interrupted (epoch ticks of 1 ms).
    pub cpu_deadline_ms: u64,
    /// Largest linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Largest event + config + context a call accepts.
    pub max_input_bytes: usize,
    /// Largest request (url + query + headers + body) a call may return.
    pub max_output_bytes: usize,
    /// Log lines kept per call; later lines are counted and dropped.
    pub max_log_lines: usize,
    /// Longest log line kept; longer lines are cut.
    pub max_log_line_bytes: usize,
    /// Instances that may run at once (pool slots). A call beyond it gets `PluginError::Busy`.
    pub max_concurrency: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            cpu_deadline_ms: 100,
            memory_bytes: 32 << 20,
            max_input_bytes: 1 << 20,
            max_output_bytes: 1 << 20,
            max_log_lines: 100,
            max_log_line_bytes: 1024,
            max_concurrency: 64,
        }
    }
}

/// Caps linear memory growth for one store and remembers the peak.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub max_bytes: usize,
    pub peak_bytes: usize,
    /// Set when a growth past `max_bytes` was refused (the call then traps).
    pub exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            peak_bytes: 0,
            exceeded: false,
        }
    }
}

/// Tables hold function references; this many is far beyond what a plugin needs.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            // An error (not `Ok(false)`) makes the growth a trap, like StoreLimits'
            // trap_on_grow_failure: a plugin cannot limp on after a refused allocation.
            wasmtime::bail!(
                "memory growth to {desired} bytes refused (limit {} bytes)",
                self.max_bytes
            );
        }
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            wasmtime::bail!("table growth to {desired} elements refused");
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn growth_past_the_cap_is_refused_and_peak_recorded() {
        let mut l = MemoryLimiter::new(16 << 20);
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert!(l.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert_eq!(l.peak_bytes, 2 << 20);
        assert!(l.memory_growing(2 << 20, 17 << 20, None).is_err());
        assert!(l.exceeded);
        assert_eq!(l.peak_bytes, 2 << 20);
    }
}
