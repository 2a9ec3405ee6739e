//! `run()`: opens the store, bootstraps keys, builds the matcher, starts the delivery workers and
//! serves the API until `shutdown` resolves. `main` is a thin shim over this; tests call it on
//! port 0.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::api::{self, AppState, MatcherHandle, auth};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::model::Role;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// Opens the store the configuration names (SQLite in `data_dir` unless `database_url` is set).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if !config.database_url.is_empty() {
        anyhow::bail!("database_url: PostgreSQL support is not built yet; leave it empty to use SQLite");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let path = config.sqlite_path();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path)).await??;
    Ok(Arc::new(store))
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
        Ok(Parts { config, store, clock: Arc::new(SystemClock) })
    }
}

/// Serves until `shutdown` resolves, then drains in-flight requests and stops the workers.
pub async fn run(parts: Parts, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let Parts { config, store, clock } = parts;
    if !config.admin_token.is_empty() {
        auth::create_key(store.as_ref(), "bootstrap admin (GATEWAY_ADMIN_TOKEN)", Role::Admin, None, Some(config.admin_token.clone()))
            .await
            .context("storing the admin token")?;
    }
    let matcher = MatcherHandle::new(store.all_webhooks().await.context("loading webhooks")?);
    let state = AppState {
        store,
        config: Arc::new(config),
        clock,
        keys: auth::KeyCache::default(),
        matcher,
        deliveries_ready: Arc::new(Notify::new()),
    };
    let app = api::router(state.clone()).layer(tower_http::trace::TraceLayer::new_for_http());
    tracing::info!(addr = %listener.local_addr()?, "webhook-gateway listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("serving")?;
    tracing::info!("webhook-gateway stopped");
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
