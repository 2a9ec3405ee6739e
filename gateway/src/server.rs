//! `run()`: opens the store, bootstraps keys, builds the matcher, starts the delivery workers and
//! serves the API until `shutdown` resolves. `main` is a thin shim over this; tests call it on
//! port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::api::{self, AppState, auth};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::delivery::Engine;
use crate::delivery::plugins::PluginStage;
use crate::metrics::Metrics;
use crate::model::PluginRecord;
use crate::plugin::{PluginHost, builtin_plugins, sha256_hex};
use crate::secrets::RawDb;
use crate::store::Store;
use crate::store::observed::ObservedStore;
use crate::store::postgres::PostgresStore;
use crate::store::sealed::SealedStore;
use crate::store::sqlite::SqliteStore;
use crate::subscriptions::Subscriptions;

/// Opens the store the configuration names (SQLite in `data_dir` unless `database_url` is set),
/// unlocks its secrets with the master key (see `secrets`) and wraps it so secrets are sealed at
/// rest. A wrong or missing master key stops here with a message saying which key is needed.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let (raw, db) = open_raw_store(config).await?;
    let ring = crate::secrets::unlock(config, &db)
        .await
        .context("unlocking stored secrets")?;
    Ok(Arc::new(SealedStore::new(raw, ring)))
}

/// The backend as it is, secrets sealed, plus direct access to its database (for the key check
/// and `secrets rotate`). The data dir is made 0700, the SQLite file 0600.
pub async fn open_raw_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, RawDb)> {
    if !config.database_url.is_empty() {
        // Connecting applies migrations, as opening SQLite does.
        let pg = &config.postgres;
        let store = PostgresStore::builder(&config.database_url)
            .max_connections(pg.max_connections)
            .connect_timeout(Duration::from_secs(pg.connect_timeout_secs))
            .operation_timeout(Duration::from_secs(pg.operation_timeout_secs))
            .connect()
            .await
            .context("database_url: connecting to PostgreSQL")?;
        let db = RawDb::Postgres(store.pool().clone());
        return Ok((Arc::new(store), db));
    }
    crate::secrets::key::create_private_dir(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let path = config.sqlite_path();
    crate::secrets::key::private_db_file(&path)
        .with_context(|| format!("making {} private (mode 0600)", path.display()))?;
    let p = path.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&p)).await??;
    Ok((Arc::new(store), RawDb::Sqlite(path)))
}

/// Everything `run` needs besides the listener; tests build it to inject a clock.
pub struct Parts {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
}

impl Parts {
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        Ok(Parts {
            config,
            store,
            clock: Arc::new(SystemClock),
        })
    }
}

/// Serves until `shutdown` resolves, then drains in-flight requests and stops the workers.
pub async fn run(
    parts: Parts,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Parts {
        config,
        store,
        clock,
    } = parts;
    // GATEWAY_ADMIN_TOKEN set: it is the bootstrap admin key, and a previous bootstrap key with
    // another token is revoked. Unset: the stored keys stay as they are.
    if !config.admin_token.is_empty() {
        let usable = auth::bootstrap_admin(store.as_ref(), &config.admin_token, clock.now_ms())
            .await
            .context("storing the admin token")?;
        if !usable {
            tracing::warn!(
                "GATEWAY_ADMIN_TOKEN names a key that was revoked or has expired; it stays refused: choose a new token"
            );
        }
    }
    let subs = Subscriptions::new(store.all_webhooks().await.context("loading webhooks")?);
    let config = Arc::new(config);
    let ready = Arc::new(Notify::new());
    let metrics = Metrics::shared();
    // Every write is watched from here on, so `/readyz` sees a store that rejects writes.
    let store: Arc<dyn Store> = Arc::new(ObservedStore::new(store, metrics.clone()));
    let host = PluginHost::new(
        config.plugins.limits(),
        &config.data_dir.join("plugin-cache"),
    )
    .context("starting the plugin host")?;
    install_builtins(store.as_ref())
        .await
        .context("installing the first-party plugins")?;
    let plugins = PluginStage::new(host, store.clone());
    for w in subs.get().by_id.values() {
        plugins.preload(w);
    }
    let engine = Engine::new(
        store.clone(),
        clock.clone(),
        config.clone(),
        subs.clone(),
        ready.clone(),
        metrics.clone(),
        plugins.clone(),
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = config
        .delivery
        .enabled
        .then(|| engine.spawn(stop_rx.clone()));
    // Every node prunes; on a shared PostgreSQL database concurrent passes take disjoint rows.
    let pruner = crate::retention::spawn(
        store.clone(),
        config.retention.clone(),
        clock.clone(),
        metrics.clone(),
        stop_rx.clone(),
    );
    // Failure mails: their own task, so a slow or dead SMTP server never holds up delivery.
    let notifier =
        match crate::notify::Notifier::new(store.clone(), clock.clone(), &config, metrics.clone())?
        {
            Some(n) if config.delivery.enabled => Some(n.spawn(stop_rx.clone())),
            _ => None,
        };
    if !config.database_url.is_empty() {
        // Other nodes change webhooks too; see their changes within a few seconds.
        tokio::spawn(refresh_webhooks(
            subs.clone(),
            store.clone(),
            config.postgres.webhooks_refresh_secs,
            stop_rx,
        ));
    }
    let keys = auth::KeyCache::new(Duration::from_secs(config.auth.key_cache_secs));
    let state = AppState {
        store,
        config,
        clock,
        keys,
        subs,
        deliveries_ready: ready,
        engine,
        metrics,
        plugins,
    };
    let fd_limit = crate::listen::raise_fd_limit();
    let limits = state.config.server_limits(fd_limit);
    if let Some(fds) = fd_limit
        && limits.max_connections as u64 >= fds
    {
        tracing::warn!(
            max_connections = limits.max_connections,
            open_files_limit = fds,
            "server.max_connections is not below the open-files limit: a flood of connections can leave none for deliveries"
        );
    }
    // Logged first: tools read the first `addr=` as the API address.
    tracing::info!(addr = %listener.local_addr()?, max_connections = limits.max_connections, "webhook-gateway listening");
    let installed = state.store.list_plugins().await.unwrap_or_default();
    crate::banner::announce(&state.config, listener.local_addr()?, &installed);
    // Both listeners stop on the one shutdown signal.
    let (quit_tx, quit_rx) = watch::channel(false);
    let metrics_server = match state.config.metrics_addr() {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics_listen: binding {addr}"))?;
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            let app = api::metrics_router(state.clone());
            Some(tokio::spawn(crate::listen::serve(
                l,
                app,
                limits,
                stopped(quit_rx.clone()),
            )))
        }
        None => None,
    };
    let app = api::router(state.clone()).layer(tower_http::trace::TraceLayer::new_for_http());
    let served = crate::listen::serve(listener, app, limits, async move {
        shutdown.await;
        let _ = quit_tx.send(true);
    })
    .await
    .context("serving");
    if let Some(m) = metrics_server {
        let _ = m.await;
    }
    // Stop claiming, finish what is in flight, record it: within the engine's bound (attempt
    // timeout + 2 s), never waiting on a store that stays down.
    let _ = stop_tx.send(true);
    if let Some(w) = workers {
        let bound = Engine::stop_bound(&state.config) + Duration::from_secs(1);
        if tokio::time::timeout(bound, w).await.is_err() {
            tracing::warn!(
                ?bound,
                "delivery workers did not stop in time; exiting anyway"
            );
        }
    }
    if let Some(p) = pruner {
        // It stops at the signal, abandoning at most one (atomic) batch.
        let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
    }
    if let Some(n) = notifier {
        let bound = Duration::from_secs(state.config.smtp.timeout_secs + 1);
        if tokio::time::timeout(bound, n).await.is_err() {
            tracing::warn!(
                ?bound,
                "the mail sender did not stop in time; exiting anyway"
            );
        }
    }
    tracing::info!("webhook-gateway stopped");
    served
}

/// Resolves once `quit` turns true (or its sender is gone).
async fn stopped(mut quit: watch::Receiver<bool>) {
    let _ = quit.wait_for(|q| *q).await;
}

/// Re-reads the webhooks every `secs` until `stop` turns true (a failed read is retried on the next
/// tick: the snapshot in hand stays valid meanwhile).
async fn refresh_webhooks(
    subs: Subscriptions,
    store: Arc<dyn Store>,
    secs: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = subs.reload(store.as_ref()).await {
            tracing::debug!(error = %e, "re-reading webhooks failed; keeping the current set");
        }
    }
}

/// Registers the first-party plugins embedded in the binary (compiled lazily, on first use, and
/// cached on disk), so webhooks can name them with no extra step.
pub async fn install_builtins(store: &dyn Store) -> anyhow::Result<()> {
    for b in builtin_plugins() {
        let sha256 = sha256_hex(b.bytes);
        if store
            .get_plugin(b.name, b.version)
            .await?
            .is_some_and(|p| p.sha256 == sha256)
        {
            continue;
        }
        let record = PluginRecord {
            name: b.name.to_string(),
            version: b.version.to_string(),
            kind: b.kind.as_str().to_string(),
            sha256,
            size: b.bytes.len() as u64,
            description: Some(b.description.to_string()),
            builtin: true,
            created_at: chrono::Utc::now().timestamp_millis(),
        };
        store.put_plugin(&record, b.bytes).await?;
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
