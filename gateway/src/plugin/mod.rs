//! The sandboxed WebAssembly plugin host.
//!
//! Plugins are components of the `webhook-gateway:plugin@0.1.0` WIT package in `sdk/wit`:
//! a *transformer* shapes an event into a request (once per delivery), an *authenticator* adds
//! headers/query parameters to each attempt using secrets it can use but not read.
//!
//! Files:
//! - `bindings`: the `bindgen!` output, one per world.
//! - `engine`: the pooled, epoch-interrupted engine, its ticker thread and the artifact cache.
//! - `limits`: [`PluginLimits`] and the memory limiter.
//! - `host_state`: per-call state and the `log`, `config` and `secrets` imports.
//! - `types`: the public inputs and outputs of calls.
//! - `calls`: [`PluginHost::transform`], [`PluginHost::transform_chain`] and
//!   [`PluginHost::authenticate`], and turning their results into gateway types.
//! - `output`: checks on what plugins return.
//! - `error`: [`PluginError`].
//! - `builtin`: the first-party plugins embedded at build time ([`builtin_plugins`]).
//! - `cli`: [`run_cli`], behind `webhook-gateway plugin run`.
//! - `new`: the project templates behind `webhook-gateway plugin new`.
//!
//! # How a call runs, and why this way
//! Every call gets a fresh `Store` and instance from a cached `InstancePre` (pooling allocator),
//! so nothing leaks between events; an instance is called at most once and its store is dropped
//! afterwards, also after a trap. Creating and tearing down an instance costs about as much as
//! a short call itself, so both happen *beside* the call where they can: after a call, a
//! **recycling task** (spawned on the same runtime; it runs once the calling task waits, e.g. on
//! the delivery's HTTP request) drops the used store (resetting its pool slot) and prepares one
//! fresh, never-called instance of the plugin; the next call of that plugin takes it, arms it
//! with its own config, secrets and CPU budget, and only runs the guest function. A call that finds no prepared
//! instance (first call, concurrent calls, a plugin whose instantiation failed before)
//! instantiates inline as before. Prepared instances hold at most half of the pool slots and give
//! them back at once when a call needs a slot. Calls are **async on the tokio workers** rather than `spawn_blocking`: the epoch
//! callback fires every 1 ms tick of guest execution and *yields* to the executor, so a guest
//! never holds a worker for more than about a millisecond, and a normal call (50-200 us) avoids
//! the hand-off to the blocking pool and its thread growth under load. After `cpu_deadline_ms`
//! ticks of execution the callback interrupts the guest ([`PluginError::Timeout`]). Compiling a
//! component (0.1-1 s of CPU) is the one blocking step: [`PluginHost::load`] runs it on the
//! blocking pool; [`PluginHost::prepare`] is synchronous for callers that are already off the
//! async workers.
//!
//! Concurrency is bounded by `max_concurrency` pool slots. A call that finds none free takes the
//! slot of a prepared instance, or waits for one a recycling task is about to free; when running
//! calls hold them all it returns [`PluginError::Busy`] at once (back-pressure: the delivery is
//! retried later, the plugin is not blamed).

mod bindings;
mod builtin;
mod calls;
mod cli;
mod engine;
mod error;
mod host_state;
mod limits;
pub mod new;
mod output;
mod types;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

pub use builtin::{BuiltinPlugin, builtin_plugins};
pub use cli::{RunOptions, run_cli, run_file, run_with};
pub use engine::sha256_hex;
pub use error::{GuestError, PluginError};
pub use limits::PluginLimits;
pub use types::{
    AuthInput, AuthOutput, ChainStep, PluginContext, PluginKind, PreparedPlugin, TokenRequest,
    TokenSource, Tokens, TransformInput, TransformOutput, Transformed,
};

use bindings::authenticator::{Authenticator, AuthenticatorPre};
use bindings::transformer::{Transformer, TransformerPre};
use calls::classify;
use engine::{ArtifactCache, Ticker};
use host_state::HostState;

#[derive(Clone)]
enum Loaded {
    Transformer(TransformerPre<HostState>),
    Authenticator(AuthenticatorPre<HostState>),
}

impl Loaded {
    fn kind(&self) -> PluginKind {
        match self {
            Loaded::Transformer(_) => PluginKind::Transformer,
            Loaded::Authenticator(_) => PluginKind::Authenticator,
        }
    }
}

impl Loaded {
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Loaded::Transformer(pre) => Instance::Transformer(pre.instantiate_async(store).await?),
            Loaded::Authenticator(pre) => {
                Instance::Authenticator(pre.instantiate_async(store).await?)
            }
        })
    }
}

enum Instance {
    Transformer(Transformer),
    Authenticator(Authenticator),
}

/// A fresh instance in its own store, holding one pool slot. Field order matters: the store (and
/// with it the pool's instance) is dropped before the slot is given back.
struct Fresh {
    store: Store<HostState>,
    instance: Instance,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Prepared, never-called instances, at most one per plugin.
#[derive(Default)]
struct ReadyState {
    by_sha: HashMap<String, Fresh>,
    /// Plugins whose instantiation failed while preparing: they are instantiated per call only.
    no_prepare: HashSet<String>,
}

struct Inner {
    engine: Engine,
    limits: PluginLimits,
    cache: ArtifactCache,
    transformer_linker: Linker<HostState>,
    authenticator_linker: Linker<HostState>,
    loaded: RwLock<HashMap<String, Loaded>>,
    slots: Arc<Semaphore>,
    ready: Mutex<ReadyState>,
    /// Recycling tasks not finished yet (each first drops a used store, giving its slot back).
    recycling: AtomicUsize,
    /// Notified when `recycling` drops to zero.
    settled: tokio::sync::Notify,
    ticker: Ticker,
    /// The engine meters fuel (see [`PluginHost::counting_fuel`]).
    count_fuel: bool,
}

/// The plugin host. Cheap to clone (an `Arc` inside); share one per process.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Builds the engine, the linkers and the epoch ticker; precompiled artifacts are cached in
    /// `cache_dir` (created if missing).
    pub fn new(limits: PluginLimits, cache_dir: &Path) -> anyhow::Result<PluginHost> {
        Self::build(limits, cache_dir, false)
    }

    /// Like [`PluginHost::new`], with every call's guest work counted in fuel
    /// ([`TransformOutput::fuel`], [`AuthOutput::fuel`]): a repeatable cost for `plugin run`.
    /// Metering slows calls, so the server never uses it.
    pub fn counting_fuel(limits: PluginLimits, cache_dir: &Path) -> anyhow::Result<PluginHost> {
        Self::build(limits, cache_dir, true)
    }

    fn build(
        limits: PluginLimits,
        cache_dir: &Path,
        count_fuel: bool,
    ) -> anyhow::Result<PluginHost> {
        let engine = engine::build_engine(&limits, count_fuel)?;
        let cache = ArtifactCache::new(cache_dir, &engine)?;

        let mut transformer_linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut transformer_linker)?;
        Transformer::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut transformer_linker,
            |s| s,
        )?;
        let mut authenticator_linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut authenticator_linker)?;
        Authenticator::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut authenticator_linker,
            |s| s,
        )?;

        let ticker = Ticker::start(&engine)?;
        let slots = Arc::new(Semaphore::new(limits.max_concurrency.max(1)));
        let inner = Arc::new(Inner {
            engine,
            limits,
            cache,
            transformer_linker,
            authenticator_linker,
            loaded: RwLock::new(HashMap::new()),
            slots,
            ready: Mutex::new(ReadyState::default()),
            recycling: AtomicUsize::new(0),
            settled: tokio::sync::Notify::new(),
            ticker,
            count_fuel,
        });
        Ok(PluginHost { inner })
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.inner.limits
    }

    /// Validates that `bytes` is a component of the transformer or authenticator world,
    /// compiles it (or loads this host's cached artifact), caches it on disk and in memory.
    /// CPU-heavy (up to ~1 s): call it off the async workers, or use [`PluginHost::load`].
    pub fn prepare(&self, bytes: &[u8]) -> Result<PreparedPlugin, PluginError> {
        let sha256 = sha256_hex(bytes);
        if let Some(kind) = self.loaded_kind(&sha256) {
            return Ok(PreparedPlugin { kind, sha256 });
        }
        let inner = &self.inner;
        let (component, from_cache) = match inner.cache.get(&inner.engine, &sha256) {
            Some(c) => (c, true),
            None => (compile(&inner.engine, bytes)?, false),
        };
        let loaded = self.instantiate_pre(&component)?;
        if !from_cache {
            inner.cache.put(&sha256, &component);
        }
        let kind = loaded.kind();
        inner.loaded.write().insert(sha256.clone(), loaded);
        Ok(PreparedPlugin { kind, sha256 })
    }

    /// Makes the plugin `sha256` ready: from memory, else from this host's artifact cache, else
    /// from the bytes `loader` fetches (checked against `sha256`, then compiled on the blocking
    /// pool).
    pub async fn load<F, Fut>(&self, sha256: &str, loader: F) -> Result<PluginKind, PluginError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, PluginError>>,
    {
        if let Some(kind) = self.loaded_kind(sha256) {
            return Ok(kind);
        }
        let host = self.clone();
        let sha = sha256.to_string();
        let cached = tokio::task::spawn_blocking(move || {
            let component = host.inner.cache.get(&host.inner.engine, &sha)?;
            Some(host.instantiate_pre(&component).map(|l| {
                let kind = l.kind();
                host.inner.loaded.write().insert(sha, l);
                kind
            }))
        })
        .await
        .map_err(|e| PluginError::Internal(format!("plugin loader task failed: {e}")))?;
        if let Some(result) = cached {
            return result;
        }
        let bytes = loader().await?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(PluginError::Invalid(format!(
                "bytes have sha256 {actual}, expected {sha256}"
            )));
        }
        let host = self.clone();
        tokio::task::spawn_blocking(move || host.prepare(&bytes).map(|p| p.kind))
            .await
            .map_err(|e| PluginError::Internal(format!("plugin compile task failed: {e}")))?
    }

    /// The kind of a loaded plugin; `None` when not loaded.
    pub fn loaded_kind(&self, sha256: &str) -> Option<PluginKind> {
        self.inner.loaded.read().get(sha256).map(Loaded::kind)
    }

    /// Forgets a loaded plugin (its disk artifact stays for a later `load`).
    pub fn unload(&self, sha256: &str) {
        self.inner.loaded.write().remove(sha256);
        let prepared = self.inner.ready.lock().by_sha.remove(sha256);
        drop(prepared);
    }

    /// Pool slots not used by a running call (free, or held by a prepared instance that gives
    /// its slot back on demand). Stores of finished calls are dropped by recycling tasks:
    /// [`PluginHost::settle`] first for an exact count.
    pub fn available_slots(&self) -> usize {
        self.inner.slots.available_permits() + self.inner.ready.lock().by_sha.len()
    }

    /// Prepared, never-called instances waiting for their plugin's next call.
    pub fn prepared_instances(&self) -> usize {
        self.inner.ready.lock().by_sha.len()
    }

    /// Waits until every used store has been dropped and the replacements prepared (for tests
    /// and orderly shutdown).
    pub async fn settle(&self) {
        loop {
            let settled = self.inner.settled.notified();
            if self.inner.recycling.load(Ordering::Acquire) == 0 {
                return;
            }
            settled.await;
        }
    }

    fn instantiate_pre(&self, component: &Component) -> Result<Loaded, PluginError> {
        let inner = &self.inner;
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&inner.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let (linker, kind) = if exports.iter().any(|e| e == "transform") {
            (&inner.transformer_linker, PluginKind::Transformer)
        } else if exports.iter().any(|e| e == "authenticate") {
            (&inner.authenticator_linker, PluginKind::Authenticator)
        } else {
            return Err(PluginError::Invalid(format!(
                "the component exports [{}], not `transform` (transformer world) or `authenticate` \
                 (authenticator world) of webhook-gateway:plugin@0.1.0",
                exports.join(", ")
            )));
        };
        let pre = linker.instantiate_pre(component).map_err(|e| {
            PluginError::Invalid(format!(
                "the component's imports do not fit the {} world: {e:#}",
                kind.as_str()
            ))
        })?;
        let wrong = |e: wasmtime::Error| {
            PluginError::Invalid(format!(
                "the component does not match the {} world: {e:#}",
                kind.as_str()
            ))
        };
        Ok(match kind {
            PluginKind::Transformer => {
                Loaded::Transformer(TransformerPre::new(pre).map_err(wrong)?)
            }
            PluginKind::Authenticator => {
                Loaded::Authenticator(AuthenticatorPre::new(pre).map_err(wrong)?)
            }
        })
    }

    fn get(&self, sha256: &str, expected: PluginKind) -> Result<Loaded, PluginError> {
        let loaded = self
            .inner
            .loaded
            .read()
            .get(sha256)
            .cloned()
            .ok_or_else(|| PluginError::NotLoaded(sha256.to_string()))?;
        if loaded.kind() != expected {
            return Err(PluginError::WrongKind {
                expected: expected.as_str(),
                actual: loaded.kind().as_str(),
            });
        }
        Ok(loaded)
    }

    /// A fresh store with the memory limiter and the CPU deadline callback; [`HostState::arm`]
    /// gives it a call's config and secrets.
    fn store(&self) -> Store<HostState> {
        let mut store = Store::new(
            &self.inner.engine,
            HostState::new(&self.inner.limits, String::new(), Vec::new()),
        );
        store.limiter(|s| &mut s.limiter);
        if self.inner.count_fuel {
            // Instantiation runs guest code too; each call is re-armed before it runs.
            let _ = store.set_fuel(u64::MAX);
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            state.ticks += 1;
            if state.ticks > state.max_ticks {
                state.timed_out = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// A pool slot. When none is free, a prepared instance gives its slot back; when the
    /// recycling tasks are about to give slots back (each drops a used store first), the call
    /// waits for one. Only slots held by running calls make the pool busy.
    async fn acquire(&self) -> Result<tokio::sync::OwnedSemaphorePermit, PluginError> {
        let inner = &self.inner;
        if let Ok(slot) = inner.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let evicted = {
            let mut ready = inner.ready.lock();
            let sha = ready.by_sha.keys().next().cloned();
            sha.and_then(|sha| ready.by_sha.remove(&sha))
        };
        drop(evicted);
        if let Ok(slot) = inner.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        if inner.recycling.load(Ordering::Acquire) > 0
            && let Ok(slot) = inner.slots.clone().acquire_owned().await
        {
            return Ok(slot);
        }
        Err(PluginError::Busy(inner.limits.max_concurrency))
    }

    /// A fresh instance of `sha256`, armed for one call: the prepared one if there is one, else
    /// instantiated here.
    async fn fresh(
        &self,
        sha256: &str,
        loaded: &Loaded,
        config_json: String,
        secrets: Vec<(String, String)>,
    ) -> Result<Fresh, PluginError> {
        let prepared = self.inner.ready.lock().by_sha.remove(sha256);
        let mut fresh = match prepared {
            Some(fresh) => fresh,
            None => {
                let slot = self.acquire().await?;
                let mut store = self.store();
                match loaded.instantiate(&mut store).await {
                    Ok(instance) => Fresh {
                        store,
                        instance,
                        _slot: slot,
                    },
                    Err(e) => return Err(classify(e, store.data_mut(), &self.inner.limits)),
                }
            }
        };
        fresh.store.data_mut().arm(config_json, secrets);
        fresh.store.set_epoch_deadline(1);
        Ok(fresh)
    }

    /// Drops a used instance and prepares the next one in a task of its own, off the caller's
    /// path: on a tokio worker it runs when the calling task next waits (typically on the
    /// delivery's HTTP request), on the same core. Outside a runtime it is dropped here.
    fn recycle(&self, sha256: &str, fresh: Fresh) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(fresh);
            return;
        };
        self.inner.recycling.fetch_add(1, Ordering::AcqRel);
        let host = self.clone();
        let sha256 = sha256.to_string();
        runtime.spawn(async move {
            drop(fresh);
            host.prepare_next(&sha256).await;
            if host.inner.recycling.fetch_sub(1, Ordering::AcqRel) == 1 {
                host.inner.settled.notify_waiters();
            }
        });
    }

    /// Prepares a fresh instance of `sha256` for its next call, if the plugin is loaded, has
    /// none yet, and more than half of the pool slots are free (prepared instances never take
    /// the last slots from calls).
    async fn prepare_next(&self, sha256: &str) {
        let inner = &self.inner;
        let max = inner.limits.max_concurrency;
        {
            let ready = inner.ready.lock();
            if ready.by_sha.contains_key(sha256)
                || ready.no_prepare.contains(sha256)
                || ready.by_sha.len() >= max / 2
                || inner.slots.available_permits() * 2 <= max
            {
                return;
            }
        }
        let Some(loaded) = inner.loaded.read().get(sha256).cloned() else {
            return;
        };
        let Ok(slot) = inner.slots.clone().try_acquire_owned() else {
            return;
        };
        let mut store = self.store();
        let running = inner.ticker.running();
        let instantiated = loaded.instantiate(&mut store).await;
        drop(running);
        match instantiated {
            Ok(instance) => {
                let fresh = Fresh {
                    store,
                    instance,
                    _slot: slot,
                };
                let mut ready = inner.ready.lock();
                if !ready.by_sha.contains_key(sha256) {
                    ready.by_sha.insert(sha256.to_string(), fresh);
                }
            }
            Err(e) => {
                tracing::debug!(sha256, error = %e, "plugin instantiation failed; it will be instantiated per call");
                inner.ready.lock().no_prepare.insert(sha256.to_string());
            }
        }
    }
}

/// Compiles uploaded bytes, refusing anything but a component.
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, PluginError> {
    if Engine::detect_precompiled(bytes).is_some() {
        return Err(PluginError::Invalid(
            "precompiled artifacts are not accepted; upload the .wasm component".into(),
        ));
    }
    if !is_component_binary(bytes) {
        return Err(PluginError::Invalid(
            "not a WebAssembly component (a core module or other bytes); build with `--target wasm32-wasip2`".into(),
        ));
    }
    Component::new(engine, bytes)
        .map_err(|e| PluginError::Invalid(format!("the component does not compile: {e:#}")))
}

/// A component starts with `\0asm`, then version 0x0d and layer 1; a core module has layer 0.
fn is_component_binary(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}
