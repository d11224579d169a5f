//! The follow source: `telltale process --input FILE --follow`. Reads a file that keeps
//! growing, like `tail -F`: through rotations (rename + new file, copytruncate), and from
//! where it stopped after a restart.
//!
//! ```text
//! access.log ──▶ [Tail] bytes ──▶ [ReaderSource] whole lines ──▶ batches ──▶ pipeline
//!                  └─ segments ─┐                                              │ ack
//!                               └──▶ [Checkpointer] ◀── stream end of batch ───┘
//!                                     <data_dir>/follow/<path>.json
//! ```
//!
//! A batch's position is saved only once the pipeline acknowledged it (durable in the
//! write-ahead log), so a crash reads again what was not acknowledged, and nothing
//! acknowledged is read twice. Lines are numbered from the first line ever followed,
//! across rotations and restarts.

pub mod checkpoint;
pub mod tail;

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::checkpoint::Checkpoint;
use self::tail::{Segments, Tail};
use super::pull::BatchSource;
use super::reader::ReaderSource;
use crate::batch::IngestBatch;

/// How a path is followed.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// Where checkpoints are kept (`<data_dir>/follow`).
    pub checkpoint_dir: PathBuf,
    /// How often the end of the file is looked at again.
    pub poll_interval: Duration,
    /// Longest line kept whole.
    pub max_line_bytes: usize,
}

/// Batches handed out and not yet acknowledged: the stream position after each, and the
/// number of the line after it.
type Pending = Arc<Mutex<VecDeque<(u64, u64)>>>;

/// A followed file as a pull source.
pub struct FollowSource {
    inner: ReaderSource<Tail>,
    /// Stream bytes handed out in batches.
    handed: u64,
    pending: Pending,
}

impl std::fmt::Debug for FollowSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowSource")
            .field("name", &self.inner.name())
            .field("handed", &self.handed)
            .finish_non_exhaustive()
    }
}

/// Saves the position of each acknowledged batch.
#[derive(Debug)]
pub struct Checkpointer {
    file: PathBuf,
    followed: PathBuf,
    segments: Segments,
    pending: Pending,
}

/// Follows `path` until `stop` turns true, resuming from its checkpoint in
/// `settings.checkpoint_dir`.
pub fn open(
    path: &Path,
    settings: &FollowSettings,
    stop: Arc<AtomicBool>,
) -> io::Result<(FollowSource, Checkpointer)> {
    let file = checkpoint::path_for(&settings.checkpoint_dir, path);
    let saved = checkpoint::load(&file)?;
    let tail = Tail::open(path, saved.as_ref(), settings.poll_interval, stop)?;
    let segments = tail.segments();
    let name = format!("file:{}", path.display());
    let inner = ReaderSource::new(tail, &name, settings.max_line_bytes)
        .live()
        .whole_lines_only()
        .starting_at_line(saved.as_ref().map_or(1, |c| c.next_line));
    let pending = Pending::default();
    Ok((
        FollowSource {
            inner,
            handed: 0,
            pending: Arc::clone(&pending),
        },
        Checkpointer {
            file,
            followed: path.to_owned(),
            segments,
            pending,
        },
    ))
}

impl BatchSource for FollowSource {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn next_batch(&mut self) -> io::Result<Option<IngestBatch>> {
        let Some(batch) = self.inner.next_batch()? else {
            return Ok(None);
        };
        // Whole lines: the batch's bytes plus each cut line and its newline.
        self.handed +=
            batch.data.len() as u64 + batch.oversize.iter().map(|o| o.len as u64 + 1).sum::<u64>();
        if let Ok(mut p) = self.pending.lock() {
            p.push_back((self.handed, self.inner.next_line()));
        }
        Ok(Some(batch))
    }
}

impl Checkpointer {
    /// The oldest batch not yet acknowledged is now acknowledged: saves the position after
    /// it. Call once per batch, in order (as `drain_source`'s `on_batch` is).
    pub fn acked(&self) -> io::Result<()> {
        let Some((stream, next_line)) = self.pending.lock().ok().and_then(|mut p| p.pop_front())
        else {
            return Ok(());
        };
        let segment = {
            let Ok(mut segments) = self.segments.lock() else {
                return Ok(());
            };
            // The last segment starting at or before the position; older ones are done.
            let i = segments
                .iter()
                .rposition(|s| s.stream_start <= stream)
                .unwrap_or(0);
            segments.drain(..i);
            segments[0]
        };
        checkpoint::save(
            &self.file,
            &Checkpoint {
                path: self.followed.clone(),
                file: segment.file,
                offset: segment.file_start + (stream - segment.stream_start),
                next_line,
            },
        )
    }
}

#[cfg(test)]
mod tests;
