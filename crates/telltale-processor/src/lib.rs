//! # telltale-processor
//!
//! The processor, between the sources and the lake:
//!
//! ```text
//! sources/ (http, file, stdin) ──IngestBatch──▶ pipeline: prepare (parse ▸ validate ▸ flag)
//!                                                   ▼
//!                                 sequencer: write-ahead log, group commit ▸ ack to the source
//!                                                   ▼
//!                                 writer thread: rollups ▸ lake (telltale-lake), dead letters
//!                                                   ▼ closed windows, probes
//!                                 outputs: SLO engine ▸ live view (api/) and sinks/ (influxdb, alertmanager)
//! ```
//!
//! - [`batch`]: the batch types sources, the log and the pipeline share (a leaf).
//! - [`sources`]: everything that brings lines in, one folder each, and their contract.
//! - [`pipeline`]: the ingest handle, the sequencer and writer threads, replay.
//! - [`wal`]: the write-ahead log's on-disk format, recovery and checkpoints.
//! - [`outputs`]: the SLO engine driven by emitted rollups, and the live view.
//! - [`sinks`]: where rollups, probes and evaluations go besides the lake, one folder each.
//! - [`api`]: the HTTP server: sources' routes, status page, `/api/v1/slo`, `/metrics`.
//! - [`drain`]: shutdown of the HTTP server (503 for new ingest while requests in flight finish).
//! - [`pool`]: the autoscaled processing workers of the push sources.
//! - [`metrics`], [`summary`]: Prometheus metrics and the periodic one-line summary.

pub mod api;
pub mod batch;
pub mod drain;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod pool;
pub mod sinks;
pub mod sources;
pub mod summary;
pub mod wal;

pub use batch::{BatchOutcome, IngestBatch};
pub use metrics::Metrics;
pub use pipeline::{Pipeline, PipelineError, PipelineSettings};
