//! A pipeline's settings, built from the config files by `from_config` (the convention
//! every component follows: config structs in `telltale_core::config`, runtime settings
//! next to the component that uses them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use telltale_core::ServiceCatalog;
use telltale_core::config::{PipelineConfig, WalConfig, WalSync};
use telltale_core::parse::Limits;
use telltale_lake::writer::WriterOptions;

/// Write-ahead log settings of a pipeline.
#[derive(Debug, Clone)]
pub struct WalSettings {
    /// Directory of the segments and the checkpoint (`<data_dir>/wal`).
    pub dir: PathBuf,
    /// When to fsync.
    pub sync: WalSync,
    /// With [`WalSync::Interval`]: how often.
    pub sync_interval: Duration,
    /// Segment size.
    pub segment_bytes: u64,
}

impl WalSettings {
    /// From `[wal]`, with the log in `dir`; `None` when the log is off.
    pub fn from_config(cfg: &WalConfig, dir: PathBuf) -> Option<Self> {
        cfg.enabled.then_some(Self {
            dir,
            sync: cfg.sync,
            sync_interval: cfg.sync_interval,
            segment_bytes: cfg.segment_bytes,
        })
    }
}

/// Settings of a pipeline, from `telltale.toml` and the catalogue.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Service catalogue used for flagging.
    pub catalog: Arc<ServiceCatalog>,
    /// Per-line limits.
    pub limits: Limits,
    /// Lake flush policy.
    pub writer: WriterOptions,
    /// Rollup window width.
    pub rollup_window: Duration,
    /// Rollup allowed lateness.
    pub allowed_lateness: Duration,
    /// Batches that may wait for the log and for the writer before `ingest` blocks.
    pub queue_capacity: usize,
    /// How often the writer looks at the clock (idle input, checkpoints, aged partitions).
    pub tick: Duration,
    /// Rows buffered over all partitions above which everything is written at once.
    pub max_buffered_rows: usize,
    /// The write-ahead log; `None`: batches are acknowledged from memory.
    pub wal: Option<WalSettings>,
    /// Most services tracked at once (`limits.max_services`).
    pub max_services: usize,
}

impl PipelineSettings {
    /// Settings from the config files (the write-ahead log is set by the caller, who
    /// knows the data directory: [`WalSettings::from_config`]).
    pub fn from_config(cfg: &PipelineConfig, catalog: Arc<ServiceCatalog>) -> Self {
        Self {
            catalog,
            limits: Limits::from(&cfg.validation),
            writer: WriterOptions {
                flush_rows: cfg.lake.flush_rows,
                flush_age: cfg.lake.flush_age,
                zstd_level: cfg.lake.zstd_level,
                row_group_rows: cfg.lake.row_group_rows,
            },
            rollup_window: cfg.rollup.window,
            allowed_lateness: cfg.rollup.allowed_lateness,
            queue_capacity: 64,
            tick: Duration::from_millis(200),
            max_buffered_rows: cfg.lake.flush_rows.saturating_mul(10).max(1_000_000),
            wal: None,
            max_services: cfg.limits.max_services,
        }
    }
}
