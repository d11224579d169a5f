//! # telltale
//!
//! The command-line front of the whole pipeline: it loads the config files and wires the
//! simulator (`telltale-sim`), the processor (`telltale-processor`) and the lake
//! (`telltale-lake`) together. `telltale run` is all of them in one process.

mod check;
mod client_tls;
mod config_load;
mod guard;
mod input;
mod listen;
mod loadtest;
mod monitor;
mod monitor_client;
mod monitor_service;
mod monitor_store_pg;
mod otlp_listen;
mod probe;
mod process;
mod query;
mod run;
mod sim;
mod spike;
mod sso;

use clap::{Parser, Subcommand, ValueEnum};

// The ingest path allocates and frees Arrow buffers across threads (built on a parsing
// thread, freed on the writer thread); mimalloc did that with less CPU and less resident
// memory than glibc malloc in the batch benchmark (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// telltale: service and network-probe telemetry into SLI/SLO answers.
#[derive(Debug, Parser)]
#[command(name = "telltale", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "TELLTALE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `telltale_processor=debug`.
    #[arg(long, global = true, default_value = "info", env = "TELLTALE_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulator and processor in one process: writes ./data, serves HTTP, logs a summary.
    Run(run::RunArgs),
    /// The simulator alone: JSON lines to stdout, a file or a processor's HTTP ingest.
    Sim(sim::SimArgs),
    /// Real probes of the network path to each target (CAP_NET_RAW, or for ICMP on Linux a group in net.ipv4.ping_group_range): probe lines.
    Probe(probe::ProbeArgs),
    /// The processor alone: HTTP ingest and/or a file or stdin, into the lake.
    Process(process::ProcessArgs),
    /// SQL over the lake (tables `events`, `rollups`, `probes`): runs `telltale-query`.
    Query(query::QueryArgs),
    /// Merge each partition's small files into one (atomic, idempotent).
    Compact(query::CompactArgs),
    /// Validate the config files and print what they mean.
    CheckConfig(check::CheckArgs),
    /// Load `POST /v1/events` of a running processor, then check its lake (loopback only).
    Loadtest(loadtest::LoadtestArgs),
    /// Start a load spike or an incident in a running simulator, or print its plan.
    Spike(spike::SpikeArgs),
    /// URL monitors: `monitor check URL` checks one URL and prints the result; `add`,
    /// `list`, `remove` manage a running server's scheduled monitors.
    Monitor(monitor::MonitorArgs),
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("--log {filter:?} is not a valid log filter: {e}"))?;
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_format, &cli.log) {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let result = match cli.command {
        Command::CheckConfig(args) => check::run(args),
        Command::Query(args) => query::run_query(args),
        Command::Compact(args) => query::run_compact(args),
        Command::Sim(args) => sim::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Process(args) => process::run(args),
        Command::Run(args) => run::run(args),
        Command::Loadtest(args) => loadtest::run(args),
        Command::Spike(args) => spike::run(args),
        Command::Monitor(args) => monitor::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
