//! The batch types every source and the write-ahead log share: a batch of raw lines as a
//! source hands it over ([`IngestBatch`]), the lines it had to cut ([`OversizeLine`]), and
//! what became of it ([`BatchOutcome`], the acknowledgement a source passes on).
//!
//! A leaf module: it imports nothing of this crate, so the log format ([`crate::wal`]) and
//! the sources can use it without depending on the pipeline above them.

use std::sync::Arc;

use serde::Serialize;
use telltale_core::parse::Rejection;

/// How many per-line errors a batch outcome carries (the rest are only counted).
pub const MAX_REPORTED_ERRORS: usize = 100;

/// A line that was too long to even buffer whole; the source cut it and kept a prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct OversizeLine {
    /// Line number within the source.
    pub line: u64,
    /// Full length of the line in bytes.
    pub len: usize,
    /// The first bytes of the line, kept for the dead letter.
    pub prefix: Vec<u8>,
}

/// A line the source itself refused: an access log line its format cannot map. The
/// source leaves an empty line in its place (so the numbers of the lines after it stay
/// right) and hands the line here, for the dead letter with the source's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRejection {
    /// Why, with the line's number within the source.
    pub rejection: Rejection,
    /// The line as it was read.
    pub raw: Vec<u8>,
}

/// One batch of raw lines from a source.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    /// Whole lines, newline-separated.
    pub data: bytes::Bytes,
    /// Where they came from: `http`, `stdin`, `file:<path>`, `embedded`.
    pub source: Arc<str>,
    /// Line number of the first line of `data` within its source (1 for an HTTP body).
    pub first_line: u64,
    /// Lines the source had to cut because they exceeded the line limit.
    pub oversize: Vec<OversizeLine>,
    /// Lines the source refused itself (see [`SourceRejection`]).
    pub rejected: Vec<SourceRejection>,
}

impl IngestBatch {
    /// A batch that is a whole body on its own (line numbers start at 1).
    pub fn whole(data: impl Into<bytes::Bytes>, source: &str) -> Self {
        Self {
            data: data.into(),
            source: Arc::from(source),
            first_line: 1,
            oversize: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

/// What became of a batch: the HTTP response body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchOutcome {
    /// Lines accepted (service events and probes).
    pub accepted: u64,
    /// Lines rejected (each kept in the dead letter with its reason).
    pub rejected: u64,
    /// The first [`MAX_REPORTED_ERRORS`] rejections.
    pub errors: Vec<Rejection>,
}
