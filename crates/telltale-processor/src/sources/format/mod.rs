//! Access log formats on any pull source: `--format nginx|envoy|traefik|<name>` maps each
//! line of the source's batches to a telltale line before the pipeline sees it.
//!
//! ```text
//! file / follow / stdin ──batch of access log lines──▶ [MappedSource] ──telltale lines──▶ pipeline
//!                                                        └─ refused lines ─▶ batch.rejected ─▶ dead letter
//! ```
//!
//! A line the format cannot map leaves an empty line in its place (so every later line
//! keeps its number) and goes with the batch as a [`SourceRejection`], whose reason names
//! the access log's field; the pipeline dead-letters it with the original line, and the
//! write-ahead log keeps it with the batch.

use std::io;

use telltale_core::access_log::Mapper;
use telltale_core::parse::lines;

use super::pull::BatchSource;
use crate::batch::{IngestBatch, SourceRejection};

/// A pull source whose lines are mapped by an access log format.
pub struct MappedSource<S> {
    inner: S,
    mapper: Mapper,
    /// Reused output buffer capacity.
    buf_hint: usize,
}

impl<S: BatchSource> std::fmt::Debug for MappedSource<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedSource")
            .field("source", &self.inner.name())
            .field("format", &self.mapper.name())
            .finish()
    }
}

impl<S: BatchSource> MappedSource<S> {
    /// `inner`'s lines, mapped by `mapper`.
    pub fn new(inner: S, mapper: Mapper) -> Self {
        Self {
            inner,
            mapper,
            buf_hint: 0,
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

/// Maps every line of `batch` with `mapper` (the same for any source).
pub fn map_batch(mapper: &Mapper, mut batch: IngestBatch, buf_hint: usize) -> IngestBatch {
    let mut out = Vec::with_capacity(buf_hint.max(batch.data.len() + batch.data.len() / 4));
    let mut expected = 1;
    for (n, raw) in lines(&batch.data) {
        // Blank lines (skipped by `lines`) keep their place.
        out.extend(std::iter::repeat_n(b'\n', (n - expected) as usize));
        expected = n + 1;
        let line = batch.first_line + n - 1;
        if let Err(rejection) = mapper.map_line(raw, line, &mut out) {
            batch.rejected.push(SourceRejection {
                rejection,
                raw: raw.to_vec(),
            });
        }
        out.push(b'\n');
    }
    batch.data = out.into();
    batch
}

impl<S: BatchSource> BatchSource for MappedSource<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn next_batch(&mut self) -> io::Result<Option<IngestBatch>> {
        let Some(batch) = self.inner.next_batch()? else {
            return Ok(None);
        };
        let batch = map_batch(&self.mapper, batch, self.buf_hint);
        self.buf_hint = self.buf_hint.max(batch.data.len());
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use telltale_core::config::AccessLogFormat;

    use super::*;

    #[test]
    fn a_bad_line_keeps_the_numbers_of_the_lines_after_it() {
        let mapper = Mapper::new(AccessLogFormat::preset("envoy").unwrap(), "envoy", None);
        let good = r#"{"start_time":"2026-12-03T14:00:00Z","response_code":200,"duration":5,"upstream_cluster":"a"}"#;
        let data = format!("{good}\n\nnot json\n{good}\n");
        let mut batch = IngestBatch::whole(data, "file:x");
        batch.first_line = 10;
        let mapped = map_batch(&mapper, batch, 0);
        let got: Vec<u64> = lines(&mapped.data).map(|(n, _)| n).collect();
        // Lines 1 and 4 of the batch (10 and 13 of the file) are mapped in place.
        assert_eq!(got, vec![1, 4]);
        assert_eq!(mapped.rejected.len(), 1);
        assert_eq!(mapped.rejected[0].rejection.line, 12);
        assert_eq!(mapped.rejected[0].raw, b"not json");
    }
}
