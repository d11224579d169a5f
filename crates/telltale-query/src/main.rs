//! # telltale-query (binary)
//!
//! Ad-hoc SQL over the lake, at the reading end of the data flow:
//!
//! ```text
//! lake (hive-partitioned Parquet) ──▶ telltale-query "SELECT …" ──▶ stdout (table, CSV, JSON lines)
//! ```
//!
//! A binary of its own so that DataFusion, the heaviest dependency of the workspace, is
//! not compiled into `telltale` (the ingest path): a newcomer's first `cargo run --release
//! -- run` builds without it (issue #11). `telltale query …` runs this binary when it is
//! installed beside `telltale` (both land in `target/release/`), with the same arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use telltale_query::{OutputFormat, QueryEngine, format_batches};

/// SQL over the telltale lake (tables `events`, `rollups`, `probes`) with DataFusion.
#[derive(Debug, Parser)]
#[command(name = "telltale-query", version, about, long_about = None)]
struct Args {
    /// SQL over the tables `events`, `rollups` and `probes`, e.g.
    /// "SELECT service, count(*) FROM events WHERE date = '2025-04-30' GROUP BY service".
    sql: String,
    /// Root of the Parquet lake.
    #[arg(long, env = "TELLTALE_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let out = runtime.block_on(async {
        let engine = QueryEngine::open(&args.data_dir)
            .await
            .with_context(|| format!("opening the lake at {}", args.data_dir.display()))?;
        let batches = engine.sql(&args.sql).await?;
        let format = match args.format {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
        };
        anyhow::Ok(format_batches(&batches, format)?)
    })?;
    print!("{out}");
    if !out.ends_with('\n') && !out.is_empty() {
        println!();
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
