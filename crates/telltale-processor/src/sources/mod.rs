//! Sources: everything that brings events into the pipeline. Each is a folder named after
//! it (`file/`, `follow/`, `stdin/`, `http/`); adding one (Kafka, OTLP, a followed log) is a new folder
//! here and one line below, not an edit across the pipeline.
//!
//! # The contract every source keeps
//!
//! - **What it hands over**: an [`IngestBatch`] of whole, newline-separated lines, numbered
//!   from the batch's `first_line` within the source, plus the lines it had to cut for
//!   being over the line limit ([`OversizeLine`]). A source whose input is not telltale's
//!   JSON lines (OTLP, access logs) maps its records to those lines first: the lines are
//!   what the write-ahead log keeps and what a replay parses again, so every source gets
//!   the same durability and the same validation and dead letters for free.
//! - **The acknowledgement**: [`Pipeline::ingest`] (or [`Pipeline::prepare`] then
//!   [`Pipeline::submit`]) returns a [`BatchOutcome`] once the batch is acknowledged —
//!   durable in the write-ahead log when the pipeline has one, with `[wal] sync =
//!   "always"`. Only then may a source acknowledge to its sender (an HTTP 200, a Kafka
//!   offset commit, a file checkpoint).
//! - **Backpressure**: the pipeline's queues are bounded. `ingest` blocks while the writer
//!   is behind. A pull source ([`BatchSource`], drained by [`drain_source`]) simply waits,
//!   which slows its reads. A push source must not hold a sender's data in memory while it
//!   waits: it hands the work to [`crate::pool::IngestPool::try_submit`], which refuses at
//!   once when the queue is full ([`crate::pool::Refused`]), and answers its sender with
//!   "retry later" (HTTP 429 with `Retry-After`).
//!
//! [`Pipeline::ingest`]: crate::pipeline::Pipeline::ingest
//! [`Pipeline::prepare`]: crate::pipeline::Pipeline::prepare
//! [`Pipeline::submit`]: crate::pipeline::Pipeline::submit

pub use crate::batch::{BatchOutcome, IngestBatch, OversizeLine};

pub mod drain;
pub mod file;
pub mod follow;
pub mod format;
pub mod http;
pub mod otlp;
pub mod pull;
pub mod reader;
pub mod stdin;

pub use drain::{DrainError, DrainSummary, drain_source};
pub use pull::BatchSource;
pub use reader::ReaderSource;
