//! `telltale query` and `telltale compact`: reading and tidying the lake.
//!
//! `telltale query` runs the `telltale-query` binary (crate `telltale-query`, DataFusion)
//! with the same arguments: DataFusion stays out of this binary, the ingest path, whose
//! first release build it would otherwise dominate (issue #11).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::ValueEnum;

/// The binary that answers `telltale query`.
const QUERY_BIN: &str = "telltale-query";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// SQL over the tables `events`, `rollups` and `probes`, e.g.
    /// "SELECT service, count(*) FROM events WHERE date = '2025-04-30' GROUP BY service".
    pub sql: String,
    /// Root of the Parquet lake.
    #[arg(long, env = "TELLTALE_DATA_DIR", default_value = "data", value_parser = crate::config_load::data_dir)]
    pub data_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Where `telltale-query` is: in `here` (this executable's directory, where `cargo build`
/// and the image put it), else on `PATH`.
fn query_binary(here: &Path) -> Option<PathBuf> {
    let name = format!("{QUERY_BIN}{}", std::env::consts::EXE_SUFFIX);
    let beside = here.join(&name);
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(&name))
            .find(|p| p.is_file())
    })
}

/// Runs `telltale-query`; its exit status becomes this process's.
pub fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let Some(bin) = query_binary(&here) else {
        anyhow::bail!(
            "telltale query runs the {QUERY_BIN} binary (DataFusion), which is neither in {} \
             nor on PATH; build it once with `cargo build --release -p {QUERY_BIN}` \
             (or `cargo run --release -p {QUERY_BIN} -- <sql>`), or use datafusion-cli or \
             DuckDB on the lake (README \"Query the lake\")",
            here.display()
        );
    };
    let status = Command::new(&bin)
        .arg("--data-dir")
        .arg(&args.data_dir)
        .arg("--format")
        .arg(
            args.format
                .to_possible_value()
                .expect("every format has a name")
                .get_name(),
        )
        .arg("--")
        .arg(&args.sql)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    if status.success() {
        return Ok(());
    }
    // The query binary has already said what went wrong on stderr.
    std::process::exit(status.code().unwrap_or(1));
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TableArg {
    Events,
    Rollups,
    Probes,
    Monitors,
    All,
}

#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// Root of the Parquet lake.
    #[arg(long, env = "TELLTALE_DATA_DIR", default_value = "data", value_parser = crate::config_load::data_dir)]
    pub data_dir: PathBuf,
    /// Which table to compact.
    #[arg(long, value_enum, default_value = "all")]
    pub table: TableArg,
    /// zstd level of the merged files.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,
}

pub fn run_compact(args: CompactArgs) -> anyhow::Result<()> {
    use telltale_lake::layout::Table;
    let store = std::sync::Arc::new(telltale_lake::store::LocalDisk::new(&args.data_dir));
    let table = match args.table {
        TableArg::Events => Some(Table::Events),
        TableArg::Rollups => Some(Table::Rollups),
        TableArg::Probes => Some(Table::Probes),
        TableArg::Monitors => Some(Table::Monitors),
        TableArg::All => None,
    };
    let opts = telltale_lake::compact::CompactOptions {
        zstd_level: args.zstd_level,
        replay_covered_upto: replay_covered_upto(&args.data_dir)?,
        ..Default::default()
    };
    let outcomes = telltale_lake::compact::compact_all(store.as_ref(), table, &opts)?;
    let (mut files_in, mut rows, mut held_back) = (0usize, 0u64, 0usize);
    for o in &outcomes {
        files_in += o.files_in;
        rows += o.rows;
        held_back += o.held_back;
    }
    eprintln!(
        "compacted {} partitions: {} files merged, {} rows rewritten",
        outcomes.len(),
        files_in,
        rows
    );
    if held_back > 0 {
        eprintln!(
            "left {held_back} files written after the write-ahead log's last checkpoint; \
             they are merged by a later run, once a checkpoint covers them"
        );
    }
    Ok(())
}

/// The write-ahead log position the lake's last checkpoint covers, when the lake is
/// written through a log (`<data-dir>/wal`, as `telltale process` and `telltale run`
/// keep it): 0 when the log has no checkpoint yet, `None` when there is no log.
fn replay_covered_upto(data_dir: &std::path::Path) -> anyhow::Result<Option<u64>> {
    let wal_dir = data_dir.join("wal");
    if !wal_dir.is_dir() {
        return Ok(None);
    }
    let checkpoint = telltale_processor::wal::read_checkpoint(&wal_dir)
        .with_context(|| format!("reading the checkpoint in {}", wal_dir.display()))?;
    Ok(Some(checkpoint.map_or(0, |c| c.lsn)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use telltale_core::Rollups;
    use telltale_processor::wal::{Checkpoint, write_checkpoint};

    /// `telltale compact` holds back exactly what a replay could rewrite: nothing without
    /// a log, everything positioned before the first checkpoint, then what follows it.
    #[test]
    fn compaction_bound_follows_the_wal_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(replay_covered_upto(dir.path()).unwrap(), None, "no log");
        let wal = dir.path().join("wal");
        std::fs::create_dir(&wal).unwrap();
        assert_eq!(
            replay_covered_upto(dir.path()).unwrap(),
            Some(0),
            "no checkpoint"
        );
        let rollups = Rollups::new(Duration::from_secs(10), Duration::from_secs(5)).snapshot();
        write_checkpoint(
            &wal,
            &Checkpoint {
                lsn: 42,
                rollups,
                services: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(replay_covered_upto(dir.path()).unwrap(), Some(42));
    }
}
