//! The wasmtime engine (pooling allocator tuned as measured in `wasm-facts.md`, epoch
//! interruption driven by a 1 ms ticker thread) and the on-disk cache of precompiled artifacts.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::PluginLimits;

/// One epoch tick. The CPU deadline is counted in ticks.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Core instances, memories and tables one plugin component may use: a `wasm32-wasip2` guest is
/// the main module plus the WASI adapter and its shims.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;

/// Builds the engine: cranelift, async calls, epoch interruption, and a pooling allocator with
/// `max_concurrency` slots whose memories stay resident (1 MiB) and are reset with pagemap_scan.
/// `count_fuel` makes the engine meter guest work in fuel (about one unit per instruction); only
/// `plugin run` asks for it, as metering slows every call.
pub(crate) fn build_engine(limits: &PluginLimits, count_fuel: bool) -> anyhow::Result<Engine> {
    let slots = u32::try_from(limits.max_concurrency.max(1)).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(limits.memory_bytes)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(count_fuel)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

/// Increments the engine's epoch every [`TICK`] while guest code may run, until dropped.
///
/// The thread parks while no call or instantiation is running ([`Ticker::running`] counts
/// them), so an idle gateway does not wake a thread a thousand times a second. Epoch deadlines
/// count ticks of guest execution only, so a parked ticker changes no call's budget.
pub(crate) struct Ticker {
    shared: Arc<TickerShared>,
    thread: std::thread::Thread,
}

struct TickerShared {
    stop: AtomicBool,
    running: AtomicUsize,
}

/// Keeps the ticker going while held (guest code may be running).
pub(crate) struct Running<'a>(&'a Ticker);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticker {
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let shared = Arc::new(TickerShared {
            stop: AtomicBool::new(false),
            running: AtomicUsize::new(0),
        });
        let weak = engine.weak();
        let state = shared.clone();
        let handle = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !state.stop.load(Ordering::Acquire) {
                    if state.running.load(Ordering::Acquire) == 0 {
                        // `unpark` before `park` is not lost: the token makes this return.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Ticker {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// Marks guest code as (possibly) running until the guard drops.
    pub fn running(&self) -> Running<'_> {
        if self.shared.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Running(self)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Feeds `Hash` output into sha256, so the settings hash is stable across Rust versions.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Identifies the engine settings an artifact was compiled with (wasmtime version, target,
/// tunables, this host's cache format).
pub(crate) fn settings_hash(engine: &Engine) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.write(b"webhook-gateway plugin cache v1");
    hex::encode(&h.0.finalize()[..8])
}

/// Hex sha256 of component bytes (the plugin's identity).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Precompiled artifacts on disk: `<dir>/<sha256>-<settings>.cwasm`. Only this cache writes
/// there, and only artifacts it compiled itself from validated components.
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    settings: String,
}

impl ArtifactCache {
    pub fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(ArtifactCache {
            dir: dir.to_path_buf(),
            settings: settings_hash(engine),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.settings))
    }

    /// The cached component for this sha256, if a usable artifact is on disk.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        if !is_sha256(sha256) {
            return None;
        }
        let path = self.path(sha256);
        if !path.is_file() {
            return None;
        }
        #[allow(unsafe_code)]
        // SAFETY: `deserialize_file` trusts the file to be an artifact wasmtime produced. The path
        // is in the gateway's own cache directory and named by the component's sha256 and this
        // engine's settings hash; only `put` below writes there (atomically, via rename), always
        // with `Component::serialize` output of a component this host compiled and validated.
        // Uploaded bytes never reach this path: uploads go through `Component::new`.
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable plugin artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component; failures are logged, the cache is only an optimisation.
    pub fn put(&self, sha256: &str, component: &Component) {
        let write = || -> anyhow::Result<()> {
            let bytes = component.serialize()?;
            let tmp = self
                .dir
                .join(format!(".{sha256}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, self.path(sha256))?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(sha256, error = %e, "could not cache plugin artifact");
        }
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}
