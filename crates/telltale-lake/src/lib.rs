//! # telltale-lake
//!
//! The end of the data flow: where flagged events, rollups, probe measurements and
//! rejected lines are kept, and where SQL reads them back.
//!
//! ```text
//! core ──FlaggedEvent / RollupRow / ProbeEvent──▶ [writer] ──▶ <data>/events|rollups|probes/<key>=<v>/date=<d>/part-*.parquet
//! processor ──DeadLetter──────────────────────────▶ [writer] ──▶ <data>/deadletter/date=<d>/dl-*.ndjson
//!                                                  [compact] merges a partition's small files
//! telltale query / datafusion-cli ◀──[query]── DataFusion over the hive-partitioned tree
//! ```
//!
//! - [`layout`]: directory names and Hive-style escaping of partition values.
//! - [`schema`]: the Arrow schemas and core rows → record batches.
//! - [`store`]: the storage trait ([`LakeStore`]) and its local-disk implementation.
//! - [`writer`]: per-partition buffering and atomic file writes ([`LakeWriter`]).
//! - [`parquet_io`]: the Parquet encoding (zstd, page statistics) every file is written with.
//! - [`deadletter`]: the NDJSON format of rejected lines.
//! - [`compact`]: crash-safe merging of small files.
//! - [`query`]: DataFusion tables and output formats ([`QueryEngine`]).
//!
//! Writing is synchronous (the processor runs the writer on one blocking thread);
//! querying is async because DataFusion is.

pub mod chunk;
pub mod compact;
pub mod deadletter;
pub mod error;
pub mod layout;
pub mod parquet_io;
pub mod query;
pub mod schema;
pub mod store;
pub mod writer;

pub use chunk::{EventChunk, EventChunks, EventRow};
pub use compact::{CompactOptions, CompactOutcome, compact_all, compact_partition};
pub use deadletter::DeadLetter;
pub use error::{LakeError, Result};
pub use layout::{PartitionKey, Table};
pub use parquet_io::{COMPACTED_FROM_KEY, WRITER_KEY};
pub use query::{OutputFormat, QueryEngine, format_batches};
pub use store::{LakeStore, LocalDisk, StoredFile};
pub use writer::{KindCounts, LakeWriter, WriterOptions, WriterStats};
