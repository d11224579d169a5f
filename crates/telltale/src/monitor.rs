//! `telltale monitor`: URL monitors. `monitor check URL` makes one check without a
//! processor and prints its result line; `add`, `list` and `remove` manage the scheduled
//! monitors of a running server (`crate::monitor_client`).

use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

use telltale_monitor::{CheckSettings, Checker};

#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    pub command: MonitorCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum MonitorCommand {
    /// Check URL once and print the result line (JSON): status, phase times (dns,
    /// connect, TLS, time to first byte, transfer), redirects, body size, certificate
    /// expiry, and the error class when it failed. Exits 1 when the URL is not up (no
    /// answer, or a status outside 2xx/3xx).
    Check(CheckArgs),
    /// Add a scheduled monitor to a running server (POST /api/v1/monitors): checked at
    /// once, then every --every. Needs the admin token once the server has tokens.
    Add(crate::monitor_client::AddArgs),
    /// The server's monitors with their last result and availability (a table).
    List(crate::monitor_client::ListArgs),
    /// Remove a scheduled monitor by its id (DELETE /api/v1/monitors/ID).
    Remove(crate::monitor_client::RemoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The http:// or https:// URL.
    pub url: String,
    /// The whole check, redirects included.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Redirects followed at most.
    #[arg(long, default_value_t = 10)]
    pub max_redirects: u32,
    /// Extra CA certificates (PEM) trusted besides the system's.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
}

pub fn run(args: MonitorArgs) -> anyhow::Result<()> {
    match args.command {
        MonitorCommand::Check(a) => check(a),
        MonitorCommand::Add(a) => crate::monitor_client::add(a),
        MonitorCommand::List(a) => crate::monitor_client::list(a),
        MonitorCommand::Remove(a) => crate::monitor_client::remove(a),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let settings = CheckSettings {
        timeout: args.timeout,
        max_redirects: args.max_redirects,
        ..CheckSettings::default()
    };
    let checker = Checker::new(settings, args.tls_ca.as_deref()).context("--tls-ca")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(checker.check(&args.url));
    println!("{}", serde_json::to_string(&result)?);
    if result.is_up() {
        return Ok(());
    }
    match (&result.error_message, result.status_code) {
        (Some(m), _) => anyhow::bail!("{} is down: {m}", args.url),
        (None, Some(s)) => anyhow::bail!("{} is down: HTTP {s}", args.url),
        (None, None) => anyhow::bail!("{} is down", args.url),
    }
}
