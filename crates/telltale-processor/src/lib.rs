//! # telltale-processor
//!
//! The processor, between the sources and the lake:
//!
//! ```text
//! HTTP POST /v1/events ─┐
//! file / stdin ─────────┼─▶ Pipeline::ingest ─▶ (parse, flag) ─▶ writer thread ─▶ telltale-lake
//! embedded simulator ───┘        │                                  └─ rollups ─▶ telltale-lake
//!                                └─▶ dead letters (with reasons) ─▶ telltale-lake
//! ```
//!
//! [`pipeline`] holds the ingest path and the single-owner writer thread, [`source`] the
//! pull sources (file, stdin), [`http`] the HTTP edge, [`metrics`] the Prometheus metrics
//! and [`summary`] the periodic one-line progress log.

pub mod alertmanager;
pub mod http;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod pool;
pub mod source;
pub mod summary;
pub mod wal;

pub use metrics::Metrics;
pub use pipeline::{BatchOutcome, IngestBatch, Pipeline, PipelineError, PipelineSettings};
