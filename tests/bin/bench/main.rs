//! External benchmark: drives any running gateway (or, through an adapter, another webhook
//! system) over HTTP with its own receiver, and reports throughput, ingest and lag percentiles,
//! and the measured processes' CPU per event and peak RSS from /proc.
//!
//! ```text
//! bench --url http://127.0.0.1:8080 --token T --pid P [--template on] [--repeat 3] closed --events N --concurrency C
//! bench ... rate --rate R --seconds S
//! bench ... drain --events N --concurrency C
//! bench idle --pid P --seconds 30
//! ```
//! `--url` and `--pid` take comma-separated lists (several nodes: events go round-robin, CPU
//! and RSS are summed). The token may come from BENCH_TOKEN instead; it is never printed.

mod adapter;
mod drive;
mod procfs;
mod receiver;
mod report;

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "External benchmark for a running webhook gateway"
)]
struct Cli {
    /// Ingest base URL(s), comma-separated; events go round-robin over them.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    url: Vec<String>,
    /// API token (admin key) of the system under test.
    #[arg(
        long,
        global = true,
        env = "BENCH_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    token: String,
    /// PID(s) of the system's processes whose CPU and memory are measured.
    #[arg(long, visible_alias = "pids", global = true, value_delimiter = ',')]
    pid: Vec<u32>,
    /// How to talk to the system under test.
    #[arg(long, global = true, default_value = "gateway")]
    adapter: String,
    /// `on`: shape every delivery with the system's templating (the gateway's `template` plugin).
    #[arg(long, global = true, default_value = "off", value_parser = ["on", "off"])]
    template: String,
    /// Runs to make; with more than one, the median and min-max are printed too.
    #[arg(long, global = true, default_value_t = 1)]
    repeat: usize,
    /// Stop waiting for deliveries after this many seconds without a new one.
    #[arg(long, global = true, default_value_t = 30)]
    wait_secs: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Clone, Copy)]
enum Mode {
    /// Closed loop: `concurrency` clients post back to back.
    Closed {
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Open loop: `rate` events/s for `seconds`, whatever the answers.
    Rate {
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Backlog drain: post `events` as fast as possible while the receiver holds every delivery
    /// unanswered, then release it and time until the backlog is delivered.
    Drain {
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// CPU % of one core used by the idle processes over `seconds`.
    Idle {
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

/// The command line as run, with the token's value masked.
fn command_line() -> String {
    let mut out = Vec::new();
    let mut mask = false;
    for a in std::env::args().skip(1) {
        if mask {
            out.push("***".to_string());
            mask = false;
        } else if a == "--token" {
            out.push(a);
            mask = true;
        } else if a.starts_with("--token=") {
            out.push("--token=***".into());
        } else {
            out.push(a);
        }
    }
    format!("bench {}", out.join(" "))
}

fn idle(pids: &[u32], seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(!pids.is_empty(), "idle needs --pid");
    let load = procfs::load1();
    let cpu0 = procfs::cpu_ms(pids)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = procfs::cpu_ms(pids)? - cpu0;
    let pct = cpu / (seconds as f64 * 1000.0) * 100.0;
    println!(
        "idle: {pct:.2}% of a core over {seconds} s ({cpu:.0} ms CPU, {} ticks/s), RSS {:.0} MB, load {load:.2}",
        procfs::clk_tck(),
        procfs::sum_mb(pids, "VmRSS"),
    );
    println!("| `{}` | {pct:.2}% of a core | {load:.2} |", command_line());
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = command_line();
    println!("{command}");
    let load = match cli.mode {
        Mode::Idle { seconds } => return idle(&cli.pid, seconds),
        Mode::Closed {
            events,
            concurrency,
        } => drive::Load::Closed {
            events,
            concurrency,
        },
        Mode::Rate { rate, seconds } => drive::Load::Rate { rate, seconds },
        Mode::Drain {
            events,
            concurrency,
        } => drive::Load::Drain {
            events,
            concurrency,
        },
    };
    if cli.pid.is_empty() {
        println!("(no --pid: CPU and RSS are not measured)");
    }
    let adapter: Arc<dyn adapter::Adapter> =
        adapter::by_name(&cli.adapter, &cli.url, &cli.token)?.into();
    let receiver = receiver::Receiver::start(adapter.clone()).await?;
    let id = adapter
        .subscribe(&receiver.url, cli.template == "on")
        .await?;
    let ctx = Arc::new(drive::Ctx {
        adapter: adapter.clone(),
        receiver,
        pids: cli.pid.clone(),
        wait: Duration::from_secs(cli.wait_secs),
        sample: Arc::new(adapter::sample()),
    });
    let result = async {
        drive::warm_up(&ctx).await?;
        let mut runs = Vec::new();
        for r in 0..cli.repeat.max(1) {
            let m = drive::run_once(ctx.clone(), load, (r as u64 + 1) << 32).await?;
            println!("run {}/{}: {}", r + 1, cli.repeat.max(1), report::line(&m));
            runs.push(m);
        }
        report::print_summary(&command, &runs);
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = adapter.unsubscribe(&id).await {
        eprintln!("could not remove the benchmark's subscription {id}: {e:#}");
    }
    result
}
