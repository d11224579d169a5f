//! The byte stream of a followed path, like `tail -F`: a [`Read`] that waits at the end
//! of the file for more, and moves on when the file is rotated.
//!
//! - **rename + new file** (logrotate's default, `mv` then nginx `USR1`): when the path
//!   names another file (device and inode) than the one open, the open one is read to its
//!   end once more (what its writer wrote before reopening), then the new one from its
//!   start.
//! - **copytruncate**: when the open file is shorter than the position read, it was
//!   truncated: reading starts again at its beginning. (Lines written between the copy
//!   and the truncation are lost by copytruncate itself; prefer rename rotation.)
//!
//! Each file the stream passes through is a [`Segment`], so a position in the stream
//! (what the pipeline acknowledged) maps back to a file and an offset for the checkpoint.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::checkpoint::{Checkpoint, FileId};

/// A stretch of the stream read from one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Stream position where it starts.
    pub stream_start: u64,
    /// The file.
    pub file: FileId,
    /// Offset in the file at `stream_start`.
    pub file_start: u64,
}

/// The segments read so far, oldest first.
pub type Segments = Arc<Mutex<Vec<Segment>>>;

/// The followed path as one stream of bytes.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    file: File,
    id: FileId,
    /// Offset in `file`.
    pos: u64,
    /// Bytes handed out in all.
    stream: u64,
    segments: Segments,
    poll: Duration,
    stop: Arc<AtomicBool>,
}

/// What the path is now, compared with the open file.
enum Change {
    None,
    NewFile(File, FileId),
    Truncated,
}

impl Tail {
    /// Opens `path`, resuming from `checkpoint` when it has one: in the same file at its
    /// offset, or, when the file was rotated away meanwhile, in the rotated file (found by
    /// its identity beside `path`) to its end first. `poll` is how often the end of the
    /// file is looked at again; `stop` ends the stream once everything there is to read
    /// (including a rotation already done) has been read.
    pub fn open(
        path: &Path,
        checkpoint: Option<&Checkpoint>,
        poll: Duration,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let (mut file, id, pos) = match checkpoint {
            Some(c) => resume(path, c)?,
            None => {
                let file = File::open(path)?;
                let id = FileId::of(&file.metadata()?);
                (file, id, 0)
            }
        };
        file.seek(SeekFrom::Start(pos))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            id,
            pos,
            stream: 0,
            segments: Arc::new(Mutex::new(vec![Segment {
                stream_start: 0,
                file: id,
                file_start: pos,
            }])),
            poll,
            stop,
        })
    }

    /// The segments, shared with the checkpointer.
    pub fn segments(&self) -> Segments {
        Arc::clone(&self.segments)
    }

    fn change(&self) -> io::Result<Change> {
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            // Between the rename and the new file: wait for it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Change::None),
            Err(e) => return Err(e),
        };
        let id = FileId::of(&meta);
        if id != self.id {
            // Open now: the path may change again before the old file is finished.
            return match File::open(&self.path) {
                Ok(f) => {
                    let id = FileId::of(&f.metadata()?);
                    Ok(Change::NewFile(f, id))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Change::None),
                Err(e) => Err(e),
            };
        }
        let len = self.file.metadata()?.len();
        Ok(if len < self.pos {
            Change::Truncated
        } else {
            Change::None
        })
    }

    fn start_segment(&mut self) {
        if let Ok(mut s) = self.segments.lock() {
            s.push(Segment {
                stream_start: self.stream,
                file: self.id,
                file_start: self.pos,
            });
        }
    }
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 {
                self.pos += n as u64;
                self.stream += n as u64;
                return Ok(n);
            }
            match self.change()? {
                Change::NewFile(file, id) => {
                    // What the old file's writer wrote before it reopened comes first.
                    let n = self.file.read(buf)?;
                    if n > 0 {
                        self.pos += n as u64;
                        self.stream += n as u64;
                        return Ok(n);
                    }
                    tracing::info!(path = %self.path.display(), "followed file was rotated: reading the new one from its start");
                    (self.file, self.id, self.pos) = (file, id, 0);
                    self.start_segment();
                }
                Change::Truncated => {
                    tracing::info!(path = %self.path.display(), "followed file was truncated (copytruncate): reading it from its start");
                    self.file.seek(SeekFrom::Start(0))?;
                    self.pos = 0;
                    self.start_segment();
                }
                // Stopping ends the stream only where nothing more is to be read.
                Change::None if self.stop.load(Ordering::Acquire) => return Ok(0),
                Change::None => std::thread::sleep(self.poll),
            }
        }
    }
}

/// Where to start again from a checkpoint.
fn resume(path: &Path, c: &Checkpoint) -> io::Result<(File, FileId, u64)> {
    if let Ok(file) = File::open(path) {
        let meta = file.metadata()?;
        let id = FileId::of(&meta);
        if id == c.file {
            if meta.len() >= c.offset {
                return Ok((file, id, c.offset));
            }
            tracing::warn!(path = %path.display(), offset = c.offset, len = meta.len(), "followed file is shorter than the checkpoint (truncated while stopped): reading it from its start");
            return Ok((file, id, 0));
        }
    }
    // Rotated while stopped: finish the old file (now under another name beside it).
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Ok(entries) = fs::read_dir(dir.unwrap_or(Path::new("."))) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && FileId::of(&meta) == c.file && meta.len() >= c.offset {
                tracing::info!(path = %path.display(), rotated = %entry.path().display(), "followed file was rotated while stopped: finishing the rotated file first");
                return Ok((File::open(entry.path())?, c.file, c.offset));
            }
        }
    }
    let file = File::open(path)?;
    let id = FileId::of(&file.metadata()?);
    tracing::warn!(path = %path.display(), "the file of the follow checkpoint is gone: reading the current file from its start (lines written to the old one after the checkpoint were not read)");
    Ok((file, id, 0))
}
