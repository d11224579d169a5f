//! # telltale-lake
//!
//! The end of the data flow: where flagged events, rollups, probe measurements and
//! rejected lines are kept, and where SQL reads them back.
//!
//! ```text
//! core ──FlaggedEvent / RollupRow / ProbeEvent──▶ [writer] ──▶ <data>/events|rollups|probes/<key>=<v>/date=<d>/part-*.parquet
//! processor ──DeadLetter──────────────────────────▶ [writer] ──▶ <data>/deadletter/date=<d>/dl-*.ndjson
//!                                                  [compact] merges a partition's small files
//! processor start-up ◀──[history]── per-minute rollup counts (parquet crate, no SQL)
//! telltale query (telltale-query), datafusion-cli, DuckDB ◀── the hive-partitioned tree
//! ```
//!
//! - [`layout`]: directory names and Hive-style escaping of partition values.
//! - [`schema`]: the Arrow schemas and core rows → record batches.
//! - [`store`]: the storage trait ([`LakeStore`]) and its local-disk implementation.
//! - [`writer`]: per-partition buffering and atomic file writes ([`LakeWriter`]).
//! - [`parquet_io`]: the Parquet encoding (zstd, page statistics) every file is written with.
//! - [`deadletter`]: the NDJSON format of rejected lines.
//! - [`compact`]: crash-safe merging of small files.
//! - [`history`]: rollup counts per minute read back to prime the SLO engine.
//! - [`checks`]: the `monitors` table's recent results read back, for the PostgreSQL
//!   sink to catch up after a crash.
//!
//! Everything here is synchronous (the processor runs the writer on one blocking thread).
//! SQL lives in `telltale-query`, which only the binary links, so DataFusion stays off the
//! ingest path and out of the processor's tests.

pub mod checks;
pub mod chunk;
pub mod compact;
pub mod deadletter;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod history;
pub mod layout;
pub mod parquet_io;
pub mod schema;
pub mod store;
pub mod writer;

pub use chunk::{EventChunk, EventChunks, EventRow};
pub use compact::{CompactOptions, CompactOutcome, compact_all, compact_partition};
pub use deadletter::DeadLetter;
pub use error::{LakeError, Result};
pub use layout::{PartitionKey, Table};
pub use parquet_io::{COMPACTED_FROM_KEY, WRITER_KEY};
pub use store::{LakeStore, LocalDisk, StoredFile};
pub use writer::{KindCounts, LakeWriter, WriterOptions, WriterStats};
