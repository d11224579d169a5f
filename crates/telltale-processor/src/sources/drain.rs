//! Draining a pull source through the pipeline: read ahead on one thread, parse on many,
//! submit in input order, then flush.

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use super::pull::BatchSource;
use crate::batch::{BatchOutcome, IngestBatch};
use crate::pipeline::{Pipeline, PipelineError, PreparedBatch};

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
/// `on_batch` sees each outcome (progress bars, logs), in input order.
///
/// ```text
///  reader thread ──batches──▶ parse_threads × prepare ──▶ this thread: reorder ▸ submit
/// ```
///
/// Batches are parsed on `parse_threads` threads at once and submitted in input order, so
/// the lake and the rollups are the same as from one thread, only sooner.
pub fn drain_source(
    pipeline: &Pipeline,
    source: &mut dyn BatchSource,
    parse_threads: usize,
    mut on_batch: impl FnMut(&BatchOutcome, usize),
) -> Result<DrainSummary, DrainError> {
    let parse_threads = parse_threads.max(1);
    let source_name = source.name().to_owned();
    let mut summary = DrainSummary::default();
    let result = std::thread::scope(|scope| -> Result<(), DrainError> {
        // Bounded both ways: at most a few batches read ahead or parsed ahead.
        let (batch_tx, batch_rx) = sync_channel::<(u64, IngestBatch)>(parse_threads);
        let (done_tx, done_rx) = sync_channel::<Parsed>(parse_threads * 2);
        let batch_rx = Arc::new(Mutex::new(batch_rx));
        for _ in 0..parse_threads {
            let (batch_rx, done_tx) = (Arc::clone(&batch_rx), done_tx.clone());
            scope.spawn(move || {
                loop {
                    // The lock is held only while waiting for the next batch.
                    let next = batch_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, batch))) = next else { return };
                    let len =
                        batch.data.len() + batch.oversize.iter().map(|o| o.len + 1).sum::<usize>();
                    if done_tx
                        .send(Parsed::Batch(seq, Box::new(pipeline.prepare(batch)), len))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        scope.spawn(move || {
            let mut seq = 0;
            loop {
                match source.next_batch() {
                    Ok(Some(batch)) => {
                        if batch_tx.send((seq, batch)).is_err() {
                            return;
                        }
                        seq += 1;
                    }
                    Ok(None) => {
                        let _ = done_tx.send(Parsed::End(seq));
                        return;
                    }
                    Err(e) => {
                        let _ = done_tx.send(Parsed::ReadFailed(seq, e));
                        return;
                    }
                }
            }
        });
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        let mut end: Option<(u64, Option<io::Error>)> = None;
        // Dropping `done_rx` on an early return stops the workers and then the reader.
        for msg in done_rx.iter() {
            match msg {
                Parsed::Batch(seq, prepared, len) => {
                    waiting.insert(seq, (prepared, len));
                }
                Parsed::End(count) => end = Some((count, None)),
                Parsed::ReadFailed(count, e) => end = Some((count, Some(e))),
            }
            while let Some((prepared, len)) = waiting.remove(&next) {
                let outcome = pipeline.submit(*prepared)?;
                summary.add(&outcome, len);
                on_batch(&outcome, len);
                next += 1;
            }
            if let Some((count, _)) = &end
                && next == *count
            {
                break;
            }
        }
        match end {
            Some((_, Some(error))) => Err(DrainError::Read { source_name, error }),
            _ => Ok(()),
        }
    });
    result?;
    pipeline.flush()?;
    Ok(summary)
}

/// What a parse worker or the reader hands to the submitting thread.
enum Parsed {
    /// Batch number, the batch, its size in bytes.
    Batch(u64, Box<PreparedBatch>, usize),
    /// The source ended after this many batches.
    End(u64),
    /// Reading failed after this many batches.
    ReadFailed(u64, io::Error),
}

impl DrainSummary {
    fn add(&mut self, outcome: &BatchOutcome, len: usize) {
        self.accepted += outcome.accepted;
        self.rejected += outcome.rejected;
        self.bytes += len as u64;
        for e in &outcome.errors {
            if self.first_errors.len() < 20 {
                self.first_errors.push(e.clone());
            }
        }
    }
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
