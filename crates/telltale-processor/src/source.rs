//! Pull sources: anything that yields batches of whole lines (a file, stdin; later a Kafka
//! partition). HTTP ingest is push-based and calls [`Pipeline::ingest`] directly.
//!
//! A source cuts its input at line boundaries and numbers lines from 1, so a rejection
//! names the line in the file the user has. A line longer than the limit is not buffered
//! whole: the source keeps a prefix for the dead letter and skips to the next newline.

use std::io::{self, Read};
use std::sync::Arc;

use crate::pipeline::{BatchOutcome, IngestBatch, OversizeLine, Pipeline, PipelineError};

/// A source of newline-delimited lines, read in batches.
pub trait BatchSource: Send {
    /// Name used in logs and dead letters: `stdin`, `file:<path>`.
    fn name(&self) -> &str;
    /// The next batch of whole lines, or `None` at the end of input.
    fn next_batch(&mut self) -> io::Result<Option<IngestBatch>>;
}

/// Reads lines from any [`Read`] (a file, stdin) in batches of about `batch_bytes`.
#[derive(Debug)]
pub struct ReaderSource<R> {
    reader: R,
    name: Arc<str>,
    batch_bytes: usize,
    max_line_bytes: usize,
    /// Bytes of an incomplete last line carried into the next batch.
    carry: Vec<u8>,
    /// Number of the first line in `carry`.
    next_line: u64,
    /// Set while skipping the rest of an over-long line.
    skipping: Option<OversizeLine>,
    eof: bool,
}

impl<R: Read + Send> ReaderSource<R> {
    /// A source named `name` (e.g. `file:events.ndjson`).
    pub fn new(reader: R, name: &str, max_line_bytes: usize) -> Self {
        Self {
            reader,
            name: Arc::from(name),
            batch_bytes: 1 << 20,
            max_line_bytes,
            carry: Vec::new(),
            next_line: 1,
            skipping: None,
            eof: false,
        }
    }

    /// Sets the target batch size in bytes.
    pub fn with_batch_bytes(mut self, n: usize) -> Self {
        self.batch_bytes = n.max(1);
        self
    }
}

impl<R: Read + Send> BatchSource for ReaderSource<R> {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_batch(&mut self) -> io::Result<Option<IngestBatch>> {
        let mut oversize = Vec::new();
        let mut buf = vec![0u8; self.batch_bytes.max(self.max_line_bytes + 1)];
        loop {
            if self.eof {
                if let Some(o) = self.skipping.take() {
                    oversize.push(o);
                    self.next_line += 1;
                }
                if self.carry.is_empty() && oversize.is_empty() {
                    return Ok(None);
                }
                let data = std::mem::take(&mut self.carry);
                let first_line = self.next_line;
                self.next_line += 1;
                return Ok(Some(IngestBatch {
                    data: data.into(),
                    source: Arc::clone(&self.name),
                    first_line,
                    oversize,
                }));
            }
            let n = match self.reader.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut chunk = &buf[..n];
            if let Some(mut skip) = self.skipping.take() {
                match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        skip.len += i;
                        oversize.push(skip);
                        self.next_line += 1;
                        chunk = &chunk[i + 1..];
                    }
                    None => {
                        skip.len += chunk.len();
                        self.skipping = Some(skip);
                        continue;
                    }
                }
            }
            self.carry.extend_from_slice(chunk);
            match self.carry.iter().rposition(|&b| b == b'\n') {
                Some(last_nl) => {
                    let rest = self.carry.split_off(last_nl + 1);
                    let data = std::mem::replace(&mut self.carry, rest);
                    let first_line = self.next_line;
                    self.next_line += data.iter().filter(|&&b| b == b'\n').count() as u64;
                    self.cut_if_oversize();
                    return Ok(Some(IngestBatch {
                        data: data.into(),
                        source: Arc::clone(&self.name),
                        first_line,
                        oversize,
                    }));
                }
                None => {
                    self.cut_if_oversize();
                    if !oversize.is_empty() {
                        return Ok(Some(IngestBatch {
                            data: bytes::Bytes::new(),
                            source: Arc::clone(&self.name),
                            first_line: self.next_line,
                            oversize,
                        }));
                    }
                }
            }
        }
    }
}

impl<R> ReaderSource<R> {
    /// When the incomplete line in `carry` is already over the limit, stop buffering it.
    fn cut_if_oversize(&mut self) {
        if self.carry.len() > self.max_line_bytes && !self.carry.contains(&b'\n') {
            let len = self.carry.len();
            let mut prefix = std::mem::take(&mut self.carry);
            prefix.truncate(self.max_line_bytes);
            self.skipping = Some(OversizeLine {
                line: self.next_line,
                len,
                prefix,
            });
        }
    }
}

/// Totals of a drained source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainSummary {
    /// Lines accepted.
    pub accepted: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The first rejections, for the user's terminal.
    pub first_errors: Vec<telltale_core::Rejection>,
}

/// Reads `source` to its end through the pipeline, then flushes the lake. Blocking.
/// `on_batch` sees each outcome (progress bars, logs).
pub fn drain_source(
    pipeline: &Pipeline,
    source: &mut dyn BatchSource,
    mut on_batch: impl FnMut(&BatchOutcome, usize),
) -> Result<DrainSummary, DrainError> {
    let mut summary = DrainSummary::default();
    while let Some(batch) = source.next_batch().map_err(|e| DrainError::Read {
        source_name: source.name().to_owned(),
        error: e,
    })? {
        let len = batch.data.len() + batch.oversize.iter().map(|o| o.len + 1).sum::<usize>();
        let outcome = pipeline.ingest(batch)?;
        summary.accepted += outcome.accepted;
        summary.rejected += outcome.rejected;
        summary.bytes += len as u64;
        for e in &outcome.errors {
            if summary.first_errors.len() < 20 {
                summary.first_errors.push(e.clone());
            }
        }
        on_batch(&outcome, len);
    }
    pipeline.flush()?;
    Ok(summary)
}

/// Failure while draining a source.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// Reading the input failed.
    #[error("reading {source_name}: {error}")]
    Read {
        /// The source.
        source_name: String,
        /// The I/O error.
        error: io::Error,
    },
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(input: &[u8], batch_bytes: usize, max_line: usize) -> Vec<IngestBatch> {
        let mut s = ReaderSource::new(input, "test", max_line).with_batch_bytes(batch_bytes);
        let mut out = Vec::new();
        while let Some(b) = s.next_batch().unwrap() {
            out.push(b);
        }
        out
    }

    /// Every line comes out exactly once with its number in the input, whatever the
    /// batch size.
    #[test]
    fn lines_keep_their_numbers_across_batch_boundaries() {
        let input: Vec<u8> = (1..=50)
            .flat_map(|i| format!("line{i}\n").into_bytes())
            .collect();
        for batch_bytes in [1, 7, 64, 1 << 20] {
            let mut seen = Vec::new();
            for b in batches(&input, batch_bytes, 300) {
                for (n, l) in telltale_core::parse::lines(&b.data) {
                    seen.push((b.first_line + n - 1, String::from_utf8(l.to_vec()).unwrap()));
                }
            }
            let want: Vec<_> = (1..=50).map(|i| (i as u64, format!("line{i}"))).collect();
            assert_eq!(seen, want, "batch_bytes={batch_bytes}");
        }
    }

    #[test]
    fn last_line_without_newline_is_kept() {
        let b = batches(b"a\nb", 1 << 20, 300);
        let all: Vec<_> = b
            .iter()
            .flat_map(|b| {
                telltale_core::parse::lines(&b.data)
                    .map(move |(n, l)| (b.first_line + n - 1, l.to_vec()))
            })
            .collect();
        assert_eq!(all, vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
    }

    #[test]
    fn over_long_line_is_cut_and_reported_with_its_true_length() {
        let mut input = b"first\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1000));
        input.extend(b"\nthird\n");
        let out = batches(&input, 64, 300);
        let oversize: Vec<_> = out.iter().flat_map(|b| b.oversize.clone()).collect();
        assert_eq!(oversize.len(), 1);
        assert_eq!(
            (oversize[0].line, oversize[0].len, oversize[0].prefix.len()),
            (2, 1000, 300)
        );
        let lines: Vec<_> = out
            .iter()
            .flat_map(|b| {
                telltale_core::parse::lines(&b.data)
                    .map(move |(n, l)| (b.first_line + n - 1, l.to_vec()))
            })
            .collect();
        assert_eq!(lines, vec![(1, b"first".to_vec()), (3, b"third".to_vec())]);
    }
}
