//! The command line: `serve` (a thin shim over [`crate::server::run`]) and operator commands.
//! Both the `webhook-gateway` binary and the end-to-end tests' copy of it call [`main`].

use std::path::PathBuf;

use crate::config::{Config, Overrides};
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "webhook-gateway",
    version,
    about = "WebAssembly-extensible outgoing webhook gateway"
)]
struct Cli {
    /// TOML configuration file (layered over the embedded defaults; GATEWAY_* env vars win).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Folder for the SQLite database and plugin cache.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Storage operations.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Print the default configuration, every key commented.
    Config,
    /// Master key of the stored secrets: generate one, or re-seal everything under a new one.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Plugin tooling.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run a plugin file on an event file: prints the request it produces, the time and
    /// memory used, and its log lines. Paths are relative to the current folder.
    Run {
        #[arg(long)]
        plugin: PathBuf,
        #[arg(long)]
        event: PathBuf,
        /// The plugin's config (JSON file).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Call it N times and print p50 / p99 per call.
        #[arg(long, value_name = "N")]
        repeat: Option<u32>,
        /// Memory limit of the instance (default 32).
        #[arg(long)]
        memory_mib: Option<usize>,
        /// CPU deadline per call (default 100).
        #[arg(long)]
        cpu_ms: Option<u64>,
        /// Context: the event type (default: the event's `event_type`, made canonical).
        #[arg(long)]
        event_type: Option<String>,
        /// Context: the webhook's name (default `plugin run`).
        #[arg(long)]
        webhook_name: Option<String>,
        /// Context: the webhook's url (default https://receiver.example/webhook).
        #[arg(long)]
        url: Option<String>,
        /// Context: the webhook's method (default POST).
        #[arg(long)]
        method: Option<String>,
        /// Context: the attempt number (default 1).
        #[arg(long)]
        attempt: Option<u32>,
        /// Context: the host's time, Unix milliseconds (default now).
        #[arg(long)]
        now_ms: Option<i64>,
    },
    /// Write a new plugin project (source, WIT, sample test, fixtures, README) into DIR/NAME.
    New {
        /// The plugin's name: lower-case letters, digits and `-`.
        name: String,
        #[arg(long, value_enum)]
        lang: crate::plugin::new::Lang,
        #[arg(long, value_enum)]
        role: crate::plugin::new::Role,
        /// The folder to create the project in (default: the current folder).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Re-run a stored delivery's transform with its exact input (secrets masked).
    Replay {
        /// The delivery id (`msg_...`).
        delivery: String,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Prints a fresh master key (base64 of 32 random bytes) for `secrets_key`.
    GenerateKey,
    /// Re-seals every stored secret under a new master key, then moves the database's key check
    /// to it. Stop every node first; restart them with the new key afterwards. Re-running after
    /// an interruption finishes the job.
    Rotate {
        /// The new key, base64 of 32 bytes.
        #[arg(
            long,
            required_unless_present = "new_key_file",
            conflicts_with = "new_key_file"
        )]
        new_key: Option<String>,
        /// A file holding the new key.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its token is printed once and stored hashed.
    Create {
        #[arg(long, value_parser = ["admin", "manager", "publisher"])]
        role: String,
        /// The team a manager key manages.
        #[arg(long)]
        team: Option<String>,
        #[arg(long, default_value = "cli")]
        name: String,
        /// RFC 3339 time after which the key is refused.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List keys (never their tokens).
    List,
    /// Revoke a key (kept listed for the audit). Other nodes refuse it within
    /// `auth.key_cache_secs`.
    Revoke {
        /// The key's id (`key_...`).
        id: String,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a SQLite store into PostgreSQL: webhooks (with health), API keys, plugins, events still
    /// owed a delivery, recent attempts. Safe to re-run: existing rows are kept.
    Copy {
        /// The SQLite database file (e.g. <data_dir>/gateway.db).
        #[arg(long)]
        from: PathBuf,
        /// postgres:// URL (a `?options=-csearch_path%3Dschema` selects a schema).
        #[arg(long)]
        to: String,
        /// Copy attempts and idempotency keys of this many past days.
        #[arg(long, default_value_t = 7)]
        attempts_days: u32,
    },
    /// Prune old events and attempt logs now, as the background pruner does (deliveries still
    /// owed are kept), and print what was removed. Safe beside running gateways.
    Prune {
        /// Keep events of this many days (0 = forever); default `retention.events_days`.
        #[arg(long)]
        events_days: Option<u64>,
        /// Keep attempts of this many days (0 = forever); default `retention.attempts_days`.
        #[arg(long)]
        attempts_days: Option<u64>,
        /// SQLite: first switch a database created before retention to incremental auto-vacuum
        /// (one full VACUUM: needs free disk as large as the database; writers wait meanwhile).
        #[arg(long)]
        vacuum: bool,
    },
}

/// An API refusal as a command-line message (`--team: ...`).
fn cli_problem(e: &crate::api::error::ApiError) -> String {
    match e {
        crate::api::error::ApiError::Invalid {
            field: Some(f),
            message,
        } => {
            let flag = match f.as_str() {
                "team_id" => "team",
                "expires_at" => "expires-at",
                other => other,
            };
            format!("--{flag}: {message}")
        }
        other => other.to_string(),
    }
}

/// The log (text or JSON on stderr, filtered by `log`) and, when `otlp.endpoint` is set, the
/// trace exporter (which sees only the gateway's trace spans, so the log is the same either way).
fn init_tracing(config: &Config, traces: bool) -> anyhow::Result<()> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{},{}=off",
        config.log,
        crate::telemetry::TARGET
    ))
    .unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if config.log_format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let otel = match traces {
        true => crate::telemetry::layer(&config.otlp)?,
        false => None,
    };
    tracing_subscriber::registry()
        .with(otel)
        .with(fmt.with_filter(filter))
        .init();
    Ok(())
}

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve { listen } => *listen,
        _ => None,
    };
    let overrides = Overrides {
        listen,
        data_dir: cli.data_dir.clone(),
    };
    if let Command::Config = cli.command {
        print!("{}", crate::config::DEFAULTS);
        return Ok(());
    }
    if let Command::Plugin {
        command:
            PluginCommand::Run {
                plugin,
                event,
                config,
                repeat,
                memory_mib,
                cpu_ms,
                event_type,
                webhook_name,
                url,
                method,
                attempt,
                now_ms,
            },
    } = &cli.command
    {
        let options = crate::plugin::RunOptions {
            repeat: *repeat,
            memory_mib: *memory_mib,
            cpu_ms: *cpu_ms,
            event_type: event_type.clone(),
            webhook_name: webhook_name.clone(),
            url: url.clone(),
            method: method.clone(),
            attempt: *attempt,
            now_ms: *now_ms,
        };
        let report = crate::plugin::run_with(plugin, event, config.as_deref(), &options).await?;
        print!("{report}");
        return Ok(());
    }
    if let Command::Plugin {
        command:
            PluginCommand::New {
                name,
                lang,
                role,
                dir,
            },
    } = &cli.command
    {
        let made = crate::plugin::new::new_project(name, *lang, *role, dir)?;
        let (build, test, wasm) = crate::plugin::new::commands(*lang, *role, name);
        println!("created {}", made.display());
        println!("test:  (cd {} && {test})", made.display());
        println!("build: (cd {} && {build})", made.display());
        println!(
            "then:  webhook-gateway plugin run --plugin {}/{wasm} --event {}/fixtures/incident_triggered.json",
            made.display(),
            made.display()
        );
        return Ok(());
    }
    if let Command::Secrets {
        command: SecretsCommand::GenerateKey,
    } = cli.command
    {
        println!("{}", crate::secrets::MasterKey::generate().to_base64());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    init_tracing(&config, matches!(cli.command, Command::Serve { .. }))?;
    for var in Config::unknown_env() {
        tracing::warn!(%var, "environment variable names no configuration key; ignored");
    }
    match cli.command {
        Command::Serve { .. } => {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let parts = crate::server::Parts::new(config).await?;
            let served =
                crate::server::run(parts, listener, crate::server::shutdown_signal()).await;
            crate::telemetry::flush();
            served
        }
        Command::Migrate => {
            crate::server::open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keys { command } => {
            let store = crate::server::open_store(&config).await?;
            match command {
                KeysCommand::Create {
                    role,
                    team,
                    name,
                    expires_at,
                } => {
                    let now = chrono::Utc::now().timestamp_millis();
                    let spec =
                        crate::api::keys::key_spec(&name, &role, team, expires_at.as_deref(), now)
                            .map_err(|e| anyhow::anyhow!("{}", cli_problem(&e)))?;
                    let (key, token) = crate::api::auth::create_key(store.as_ref(), spec).await?;
                    eprintln!(
                        "created key {} ({}); the token is shown only once:",
                        key.id,
                        key.role.as_str()
                    );
                    println!("{token}");
                }
                KeysCommand::List => {
                    let now = chrono::Utc::now().timestamp_millis();
                    println!("id\trole\tteam\tstate\tlast_used_at\tname");
                    for k in store.list_api_keys().await? {
                        let state = match (k.revoked_at, k.is_active(now)) {
                            (Some(_), _) => "revoked",
                            (None, false) => "expired",
                            (None, true) => "active",
                        };
                        println!(
                            "{}\t{}\t{}\t{state}\t{}\t{}",
                            k.id,
                            k.role.as_str(),
                            k.team_id.unwrap_or_else(|| "-".into()),
                            k.last_used_at
                                .map(crate::api::rfc3339)
                                .unwrap_or_else(|| "-".into()),
                            k.name
                        );
                    }
                }
                KeysCommand::Revoke { id } => {
                    let now = chrono::Utc::now().timestamp_millis();
                    store
                        .revoke_api_key(&id, now)
                        .await?
                        .with_context(|| format!("no key {id}"))?;
                    eprintln!(
                        "revoked key {id}; running nodes refuse it within auth.key_cache_secs ({} s)",
                        config.auth.key_cache_secs
                    );
                }
            }
            Ok(())
        }
        Command::Store {
            command:
                StoreCommand::Copy {
                    from,
                    to,
                    attempts_days,
                },
        } => {
            let target = crate::store::postgres::PostgresStore::connect(&to)
                .await
                .context("--to: connecting to PostgreSQL")?;
            let options = crate::store::copy::CopyOptions::last_days(attempts_days);
            let report = crate::store::copy::sqlite_to_postgres(&from, &target, options).await?;
            print!("{report}");
            Ok(())
        }
        Command::Store {
            command:
                StoreCommand::Prune {
                    events_days,
                    attempts_days,
                    vacuum,
                },
        } => {
            let mut retention = config.retention.clone();
            if let Some(d) = events_days {
                (retention.events_days, retention.events_secs) = (d, 0);
            }
            if let Some(d) = attempts_days {
                (retention.attempts_days, retention.attempts_secs) = (d, 0);
            }
            if vacuum && config.database_url.is_empty() {
                let path = config.sqlite_path();
                tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                    let c = rusqlite::Connection::open(&path)?;
                    c.busy_timeout(std::time::Duration::from_secs(30))?;
                    crate::store::sqlite::retention::convert_to_incremental(&c)?;
                    Ok(())
                })
                .await?
                .context("--vacuum: switching to incremental auto-vacuum")?;
                eprintln!("the database gives pruned space back from now on");
            }
            // No secrets are read or written: the master key is not needed.
            let (store, _) = crate::server::open_raw_store(&config).await?;
            let now = chrono::Utc::now().timestamp_millis();
            let report = crate::retention::prune(
                store.as_ref(),
                retention.cutoffs(now),
                retention.batch_size,
                None,
            )
            .await
            .context("pruning")?;
            println!("{report}");
            Ok(())
        }
        Command::Plugin {
            command: PluginCommand::Replay { delivery },
        } => {
            let store = crate::server::open_store(&config).await?;
            let d = store
                .get_delivery(&delivery)
                .await?
                .with_context(|| format!("no delivery {delivery}"))?;
            let w = store
                .get_webhook(&d.webhook_id)
                .await?
                .with_context(|| format!("webhook {} is gone", d.webhook_id))?;
            let e = store
                .get_event(&d.event_id)
                .await?
                .with_context(|| format!("event {} is gone", d.event_id))?;
            let host = crate::plugin::PluginHost::new(
                config.plugins.limits(),
                &config.data_dir.join("plugin-cache"),
            )?;
            let stage = crate::delivery::plugins::PluginStage::new(host, store);
            let caps = crate::delivery::shaping::SizeCaps {
                body_chars: config.delivery.max_body_chars,
                query_chars: config.delivery.max_query_chars,
            };
            print!("{}", stage.replay(&w, &e, &d, &caps).await);
            Ok(())
        }
        Command::Secrets {
            command:
                SecretsCommand::Rotate {
                    new_key,
                    new_key_file,
                },
        } => rotate_secrets(&config, new_key, new_key_file).await,
        Command::Config
        | Command::Secrets {
            command: SecretsCommand::GenerateKey,
        }
        | Command::Plugin {
            command: PluginCommand::Run { .. } | PluginCommand::New { .. },
        } => unreachable!("handled above"),
    }
}

/// `secrets rotate`: re-seals under the new key and says what the operator does next.
async fn rotate_secrets(
    config: &Config,
    new_key: Option<String>,
    new_key_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    use crate::secrets::MasterKey;
    let new = match (new_key, new_key_file) {
        (Some(k), _) => MasterKey::from_base64(&k, "--new-key")?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("--new-key-file {}", path.display()))?;
            MasterKey::from_base64(&text, &format!("--new-key-file {}", path.display()))?
        }
        (None, None) => anyhow::bail!("--new-key or --new-key-file is required"),
    };
    let (_, db) = crate::server::open_raw_store(config).await?;
    let report = crate::secrets::rotate(config, &db, &new)
        .await
        .context("rotating the master key")?;
    eprintln!(
        "re-sealed {} rows: master key {} -> {}",
        report.rows_resealed, report.old_id, report.new_id
    );
    match report.key_file_replaced {
        Some(path) => eprintln!(
            "{} now holds the new key; restart the gateway",
            path.display()
        ),
        None => eprintln!(
            "restart every node with the new key (secrets_key / GATEWAY_SECRETS_KEY or secrets_key_file)"
        ),
    }
    Ok(())
}
