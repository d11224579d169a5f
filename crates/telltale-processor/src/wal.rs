//! The write-ahead log: every ingested batch is appended here (and, with
//! `sync = "always"`, fsynced) before it is acknowledged, and replayed at start.
//!
//! ```text
//!  ingest callers ──Submit──▶ sequencer thread ──WriterMsg (in log order)──▶ writer thread
//!                             assigns positions (LSNs),                     applies records,
//!                             writes a group, one fsync,                    names lake files
//!                             then acks every caller in it                  by LSN, checkpoints
//! ```
//!
//! The log is the order of truth: the writer applies records strictly in log order, and
//! every decision that changes the lake but does not follow from the records themselves
//! (a time-based flush, emitting rollup windows when input goes quiet, end of input) is a
//! *marker* record in the log too. So applying the log is deterministic: a replay after a
//! crash rebuilds the same buffers and writes the same files under the same names
//! (`part-<lsn>-wal.parquet`), and a file that already exists was committed before the
//! crash and is skipped. That is what makes a replay never duplicate a row.
//!
//! A checkpoint (a marker) flushes every buffer, saves the open rollup windows to
//! `checkpoint.json`, and lets segments wholly at or before it be deleted. A replay starts
//! from the last checkpoint. Lake files are never written ahead of the log: the store the
//! writer uses fsyncs the log first (see [`WalOrderedStore`]), in every sync mode.
//!
//! On disk: `<data_dir>/wal/<first lsn, 20 digits>.wal` segments, each an 8-byte magic
//! followed by frames `len u32 | crc32 u32 | lsn u64 | kind u8 | payload`, little endian,
//! the CRC covering lsn, kind and payload. A batch with lines its source refused (kind
//! [`KIND_BATCH_REJECTS`]) carries them after the cut lines, so their dead letters
//! survive a crash like the lines do. A torn or corrupt frame ends the log: the
//! segment is cut there on start and any later segments are renamed `*.corrupt`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use telltale_core::config::WalSync;
use telltale_core::rollup::RollupsSnapshot;
use telltale_lake::error::LakeError;
use telltale_lake::store::{LakeStore, StoredFile};

use crate::batch::{OversizeLine, SourceRejection};

const MAGIC: &[u8; 8] = b"TTWAL01\n";
const SEGMENT_EXT: &str = ".wal";
const CHECKPOINT_FILE: &str = "checkpoint.json";
/// Largest frame accepted when reading; anything larger is corruption.
const MAX_FRAME: usize = 1 << 30;
const HEADER: usize = 4 + 4;

/// A write-ahead log failure.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation on the log failed.
    #[error("write-ahead log: {op} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// Which file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The checkpoint file is not valid.
    #[error(
        "write-ahead log checkpoint {path} is not valid ({message}); move it away to replay \
         the whole log",
        path = path.display()
    )]
    BadCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A decision of the writer that is logged so that a replay makes it at the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Flush every buffer and save a checkpoint.
    Checkpoint = 1,
    /// Input went quiet: emit every open rollup window.
    Idle = 2,
    /// End of input or shutdown: emit every window, flush everything, checkpoint.
    Final = 3,
}

impl Marker {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Checkpoint),
            2 => Some(Self::Idle),
            3 => Some(Self::Final),
            _ => None,
        }
    }
}

const KIND_BATCH: u8 = 0;
/// A batch followed by the lines its source refused (an access log line its format
/// cannot map): `count u32`, then per line `line u64 | reason u8+bytes | field u8+bytes |
/// message u32+bytes | raw u32+bytes`. Batches without such lines keep [`KIND_BATCH`], so
/// logs written before it replay unchanged.
const KIND_BATCH_REJECTS: u8 = 16;

/// A batch as logged: the raw lines and everything their parse depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedBatch {
    /// Arrival time; also the "now" of validation, so a replay parses identically.
    pub received_at_us: i64,
    /// Source label (`http`, `file:…`).
    pub source: String,
    /// Line number of the first line.
    pub first_line: u64,
    /// Lines the source cut for being too long.
    pub oversize: Vec<OversizeLine>,
    /// Lines the source refused itself.
    pub rejected: Vec<SourceRejection>,
    /// The lines.
    pub data: bytes::Bytes,
}

/// A record of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordBody {
    /// Ingested lines.
    Batch(LoggedBatch),
    /// A writer decision.
    Marker(Marker),
}

fn encode_frame(out: &mut Vec<u8>, lsn: u64, body: &RecordBody) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&lsn.to_le_bytes());
    match body {
        RecordBody::Marker(m) => out.push(*m as u8),
        RecordBody::Batch(b) => {
            out.push(if b.rejected.is_empty() {
                KIND_BATCH
            } else {
                KIND_BATCH_REJECTS
            });
            out.extend_from_slice(&b.received_at_us.to_le_bytes());
            out.extend_from_slice(&b.first_line.to_le_bytes());
            let src = b.source.as_bytes();
            let src = &src[..src.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(src.len() as u16).to_le_bytes());
            out.extend_from_slice(src);
            out.extend_from_slice(&(b.oversize.len() as u32).to_le_bytes());
            for o in &b.oversize {
                out.extend_from_slice(&o.line.to_le_bytes());
                out.extend_from_slice(&(o.len as u64).to_le_bytes());
                out.extend_from_slice(&(o.prefix.len() as u32).to_le_bytes());
                out.extend_from_slice(&o.prefix);
            }
            if !b.rejected.is_empty() {
                encode_rejected(out, &b.rejected);
            }
            out.extend_from_slice(&b.data);
        }
    }
    let body_len = out.len() - start - HEADER;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads little-endian fields off a slice; `None` when it runs out (a corrupt frame).
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode_body(frame: &[u8]) -> Option<(u64, RecordBody)> {
    let mut c = Cursor(frame);
    let lsn = c.u64()?;
    let kind = c.take(1)?[0];
    if kind != KIND_BATCH && kind != KIND_BATCH_REJECTS {
        return Some((lsn, RecordBody::Marker(Marker::from_u8(kind)?)));
    }
    let received_at_us = c.u64()? as i64;
    let first_line = c.u64()?;
    let src_len = c.u16()? as usize;
    let source = String::from_utf8(c.take(src_len)?.to_vec()).ok()?;
    let n = c.u32()? as usize;
    let mut oversize = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let line = c.u64()?;
        let len = c.u64()? as usize;
        let plen = c.u32()? as usize;
        let prefix = c.take(plen)?.to_vec();
        oversize.push(OversizeLine { line, len, prefix });
    }
    let rejected = if kind == KIND_BATCH_REJECTS {
        decode_rejected(&mut c)?
    } else {
        Vec::new()
    };
    let data = bytes::Bytes::copy_from_slice(c.0);
    Some((
        lsn,
        RecordBody::Batch(LoggedBatch {
            received_at_us,
            source,
            first_line,
            oversize,
            rejected,
            data,
        }),
    ))
}

fn encode_rejected(out: &mut Vec<u8>, rejected: &[SourceRejection]) {
    let short = |out: &mut Vec<u8>, s: &str| {
        let s = &s.as_bytes()[..s.len().min(u8::MAX as usize)];
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    };
    let long = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    };
    out.extend_from_slice(&(rejected.len() as u32).to_le_bytes());
    for r in rejected {
        out.extend_from_slice(&r.rejection.line.to_le_bytes());
        short(out, r.rejection.reason.as_str());
        short(out, r.rejection.field.unwrap_or(""));
        long(out, r.rejection.message.as_bytes());
        long(out, &r.raw);
    }
}

fn decode_rejected(c: &mut Cursor<'_>) -> Option<Vec<SourceRejection>> {
    use telltale_core::parse::{RejectReason, Rejection};
    let n = c.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let line = c.u64()?;
        let len = c.take(1)?[0] as usize;
        let reason = std::str::from_utf8(c.take(len)?).ok()?;
        let reason = *RejectReason::ALL.iter().find(|r| r.as_str() == reason)?;
        let len = c.take(1)?[0] as usize;
        let field = telltale_core::access_log::field_name(std::str::from_utf8(c.take(len)?).ok()?);
        let len = c.u32()? as usize;
        let message = String::from_utf8(c.take(len)?.to_vec()).ok()?;
        let len = c.u32()? as usize;
        let raw = c.take(len)?.to_vec();
        out.push(SourceRejection {
            rejection: Rejection {
                line,
                field,
                reason,
                message,
            },
            raw,
        });
    }
    Some(out)
}

fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SEGMENT_EXT}")
}

/// Segments in the directory, by first LSN.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SEGMENT_EXT)
            && let Ok(first) = stem.parse::<u64>()
        {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync dir", dir))
}

/// What was saved at the last checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every record at or before this position is wholly in the lake, except the open
    /// rollup windows below.
    pub lsn: u64,
    /// The open rollup windows at that position.
    pub rollups: RollupsSnapshot,
    /// The services tracked under `limits.max_services` at that position (absent in
    /// checkpoints written before the limit existed).
    #[serde(default)]
    pub services: Vec<String>,
}

/// Reads the checkpoint, if any.
pub fn read_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, WalError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| WalError::BadCheckpoint {
            path,
            message: e.to_string(),
        })
}

/// Saves a checkpoint atomically (temp file, fsync, rename, fsync of the directory), then
/// deletes the segments that hold only records at or before it.
pub fn write_checkpoint(dir: &Path, cp: &Checkpoint) -> Result<usize, WalError> {
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join(".checkpoint.json.tmp");
    let bytes = serde_json::to_vec(cp).map_err(|e| WalError::BadCheckpoint {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
    sync_dir(dir)?;
    // A segment can go when the next one starts at or before `lsn + 1`: all of its
    // records are then covered. The last segment is never deleted (it is being written).
    let segs = segments(dir)?;
    let mut deleted = 0;
    for pair in segs.windows(2) {
        if pair[1].0 <= cp.lsn + 1 {
            fs::remove_file(&pair[0].1).map_err(io_err("delete", &pair[0].1))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The records of the log after `after_lsn`, in order, and where the log ends.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Records with an LSN above the checkpoint.
    pub records: Vec<(u64, RecordBody)>,
    /// Last LSN in the log (0: empty).
    pub last_lsn: u64,
    /// Bytes cut off a torn or corrupt tail.
    pub truncated_bytes: u64,
}

/// Reads every segment, cuts a torn tail, and returns the records after `after_lsn`.
/// Records are read fully into memory: the log holds at most one checkpoint interval
/// (`lake.flush_age`) of input in normal operation.
pub fn recover(dir: &Path, after_lsn: u64) -> Result<Recovered, WalError> {
    let segs = segments(dir)?;
    let mut out = Recovered {
        last_lsn: after_lsn,
        ..Recovered::default()
    };
    let mut broken_at: Option<usize> = None;
    for (i, (_, path)) in segs.iter().enumerate() {
        let file = File::open(path).map_err(io_err("open", path))?;
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        let mut r = BufReader::new(file);
        let mut magic = [0u8; 8];
        let mut offset = 0u64;
        let mut good = r.read_exact(&mut magic).is_ok() && &magic == MAGIC;
        if good {
            offset = MAGIC.len() as u64;
        }
        while good && offset < len {
            let mut header = [0u8; HEADER];
            if r.read_exact(&mut header).is_err() {
                good = false;
                break;
            }
            let body_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let body_len = body_len as usize;
            if body_len > MAX_FRAME || offset + (HEADER + body_len) as u64 > len {
                good = false;
                break;
            }
            let mut body = vec![0u8; body_len];
            if r.read_exact(&mut body).is_err() || crc32fast::hash(&body) != crc {
                good = false;
                break;
            }
            let Some((lsn, rec)) = decode_body(&body) else {
                good = false;
                break;
            };
            offset += (HEADER + body_len) as u64;
            out.last_lsn = out.last_lsn.max(lsn);
            if lsn > after_lsn {
                out.records.push((lsn, rec));
            }
        }
        if !good {
            out.truncated_bytes = len - offset;
            tracing::error!(
                segment = %path.display(),
                offset,
                cut_bytes = len - offset,
                "write-ahead log ends in a torn or corrupt record; cutting it there"
            );
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err("open", path))?;
            if offset == 0 {
                fs::remove_file(path).map_err(io_err("delete", path))?;
            } else {
                f.set_len(offset)
                    .and_then(|()| f.sync_all())
                    .map_err(io_err("truncate", path))?;
            }
            broken_at = Some(i);
            break;
        }
    }
    if let Some(i) = broken_at {
        for (_, later) in &segs[i + 1..] {
            let aside = later.with_extension("wal.corrupt");
            tracing::error!(
                segment = %later.display(),
                "write-ahead log segment after a corrupt one is set aside, not replayed"
            );
            fs::rename(later, &aside).map_err(io_err("rename", later))?;
        }
    }
    Ok(out)
}

/// State shared by the sequencer (which writes the log) and the lake store (which must
/// not write a file before the log records it comes from are durable).
#[derive(Debug)]
pub struct WalShared {
    /// Highest LSN written to the OS.
    written: AtomicU64,
    /// Highest LSN fsynced.
    durable: AtomicU64,
    /// The segment being written, for fsync from other threads.
    current: Mutex<Option<File>>,
    /// fsync calls, for metrics.
    pub fsyncs: AtomicU64,
}

impl WalShared {
    /// Fsyncs what has been written, unless it already is durable.
    pub fn sync_written(&self) -> std::io::Result<()> {
        let written = self.written.load(Ordering::Acquire);
        if self.durable.load(Ordering::Acquire) >= written {
            return Ok(());
        }
        let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_ref() {
            f.sync_data()?;
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        self.durable.fetch_max(written, Ordering::AcqRel);
        Ok(())
    }
}

/// Appends records to segment files.
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    size: u64,
    segment_bytes: u64,
    next_lsn: u64,
    /// First LSN of the pending group (= `next_lsn` when nothing is pending).
    group_first_lsn: u64,
    buf: Vec<u8>,
    shared: Arc<WalShared>,
    /// Segment files on disk (metrics).
    pub segments_on_disk: usize,
}

impl WalWriter {
    /// Starts a new segment at `next_lsn` in `dir`.
    pub fn open(dir: &Path, next_lsn: u64, segment_bytes: u64) -> Result<Self, WalError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let shared = Arc::new(WalShared {
            written: AtomicU64::new(next_lsn.saturating_sub(1)),
            durable: AtomicU64::new(next_lsn.saturating_sub(1)),
            current: Mutex::new(None),
            fsyncs: AtomicU64::new(0),
        });
        let (file, path) = Self::new_segment(dir, next_lsn)?;
        *shared.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(file.try_clone().map_err(io_err("clone", &path))?);
        Ok(Self {
            dir: dir.to_owned(),
            file,
            path,
            size: MAGIC.len() as u64,
            segment_bytes,
            next_lsn,
            group_first_lsn: next_lsn,
            buf: Vec::new(),
            shared,
            segments_on_disk: segments(dir)?.len(),
        })
    }

    fn new_segment(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf), WalError> {
        let path = dir.join(segment_name(first_lsn));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &path))?;
        sync_dir(dir)?;
        Ok((file, path))
    }

    /// The state other threads use to make the log durable.
    pub fn shared(&self) -> Arc<WalShared> {
        Arc::clone(&self.shared)
    }

    /// Encodes a record into the pending group and returns its LSN.
    pub fn append(&mut self, body: &RecordBody) -> u64 {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        encode_frame(&mut self.buf, lsn, body);
        lsn
    }

    /// Writes the pending group to the OS (one `write`), and fsyncs it if `sync`.
    /// Returns the bytes written. On an error nothing of the group counts: call
    /// [`rollback`](Self::rollback) before the next group.
    pub fn commit(&mut self, sync: bool) -> Result<usize, WalError> {
        let n = self.buf.len();
        if n > 0 {
            self.file
                .write_all(&self.buf)
                .map_err(io_err("write", &self.path))?;
        }
        if sync && n > 0 {
            // Before `written` moves, so that the group counts only once it is durable.
            self.file.sync_data().map_err(io_err("fsync", &self.path))?;
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        } else if sync {
            self.shared
                .sync_written()
                .map_err(io_err("fsync", &self.path))?;
        }
        if n > 0 {
            self.size += n as u64;
            self.buf.clear();
            self.group_first_lsn = self.next_lsn;
            self.shared
                .written
                .store(self.next_lsn - 1, Ordering::Release);
            if sync {
                self.shared
                    .durable
                    .fetch_max(self.next_lsn - 1, Ordering::AcqRel);
            }
        }
        if self.size >= self.segment_bytes
            && let Err(e) = self.roll()
        {
            // The group is written (and synced if asked): it stands. The next commit tries
            // to roll again; until then the segment grows past its size.
            tracing::warn!(error = %e, "write-ahead log: starting a new segment failed; continuing in the current one");
        }
        Ok(n)
    }

    /// Undoes a failed [`commit`](Self::commit): cuts the segment back to its last
    /// complete group and forgets the group's records (they were not acknowledged, so their
    /// positions are given out again). After a full disk this is what lets ingest resume
    /// without a restart. An error means the cut failed too: call it again later.
    pub fn rollback(&mut self) -> Result<(), WalError> {
        self.buf.clear();
        self.next_lsn = self.group_first_lsn;
        self.file
            .set_len(self.size)
            .and_then(|()| {
                self.file
                    .seek(std::io::SeekFrom::Start(self.size))
                    .map(drop)
            })
            .map_err(io_err("truncate", &self.path))
    }

    /// Fsyncs what has been written (the `interval` timer, shutdown).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.shared
            .sync_written()
            .map_err(io_err("fsync", &self.path))
    }

    fn roll(&mut self) -> Result<(), WalError> {
        // The full segment must be durable before records move on to the next one.
        self.sync()?;
        let (file, path) = Self::new_segment(&self.dir, self.next_lsn)?;
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            Some(file.try_clone().map_err(io_err("clone", &path))?);
        self.file = file;
        self.path = path;
        self.size = MAGIC.len() as u64;
        self.segments_on_disk = segments(&self.dir)?.len();
        Ok(())
    }

    /// Whether `mode` makes every commit fsync.
    pub fn sync_each_commit(mode: WalSync) -> bool {
        mode == WalSync::Always
    }
}

/// The lake store as the writer sees it when a log is on: before any file is written, the
/// log records it comes from are made durable ("log before data"), whatever the sync mode.
/// Otherwise a crash could leave lake rows from records the log lost, and the replay would
/// re-use their positions for other rows.
#[derive(Debug)]
pub struct WalOrderedStore {
    inner: Arc<dyn LakeStore>,
    wal: Arc<WalShared>,
}

impl WalOrderedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LakeStore>, wal: Arc<WalShared>) -> Self {
        Self { inner, wal }
    }
}

impl LakeStore for WalOrderedStore {
    fn put_atomic(&self, rel_path: &str, bytes: &[u8]) -> telltale_lake::error::Result<()> {
        self.wal
            .sync_written()
            .map_err(|e| LakeError::io("fsync the write-ahead log before", rel_path, e))?;
        self.inner.put_atomic(rel_path, bytes)
    }
    fn list(&self, rel_prefix: &str) -> telltale_lake::error::Result<Vec<StoredFile>> {
        self.inner.list(rel_prefix)
    }
    fn read(&self, rel_path: &str) -> telltale_lake::error::Result<Vec<u8>> {
        self.inner.read(rel_path)
    }
    fn delete(&self, rel_path: &str) -> telltale_lake::error::Result<()> {
        self.inner.delete(rel_path)
    }
    fn root(&self) -> String {
        self.inner.root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u8) -> RecordBody {
        RecordBody::Batch(LoggedBatch {
            received_at_us: 1_700_000_000_000_000 + i64::from(n),
            source: "http".into(),
            first_line: 1,
            oversize: vec![OversizeLine {
                line: 3,
                len: 99_999,
                prefix: vec![b'x'; 5],
            }],
            rejected: if n.is_multiple_of(2) {
                Vec::new()
            } else {
                vec![SourceRejection {
                    rejection: telltale_core::parse::Rejection {
                        line: 2,
                        field: Some("status_code"),
                        reason: telltale_core::RejectReason::MissingField,
                        message: "no `status`".into(),
                    },
                    raw: b"{\"x\":1}".to_vec(),
                }]
            },
            data: bytes::Bytes::from(format!("line {n}\nline {n}b\n")),
        })
    }

    #[test]
    fn records_round_trip_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, 64).unwrap();
        for n in 0..5 {
            assert_eq!(w.append(&batch(n)), u64::from(n) + 1);
            w.commit(true).unwrap();
        }
        w.append(&RecordBody::Marker(Marker::Checkpoint));
        w.commit(false).unwrap();
        assert!(
            segments(dir.path()).unwrap().len() > 1,
            "tiny segments roll"
        );
        let r = recover(dir.path(), 2).unwrap();
        assert_eq!(r.last_lsn, 6);
        assert_eq!(r.truncated_bytes, 0);
        let lsns: Vec<u64> = r.records.iter().map(|(l, _)| *l).collect();
        assert_eq!(lsns, vec![3, 4, 5, 6]);
        assert_eq!(r.records[0].1, batch(2));
        assert_eq!(r.records[3].1, RecordBody::Marker(Marker::Checkpoint));
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_log_goes_on_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, 1 << 20).unwrap();
        w.append(&batch(1));
        w.append(&batch(2));
        w.commit(true).unwrap();
        let path = segments(dir.path()).unwrap()[0].1.clone();
        let len = fs::metadata(&path).unwrap().len();
        // A crash in the middle of the second frame.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        let r = recover(dir.path(), 0).unwrap();
        assert_eq!(r.records.len(), 1);
        assert_eq!(r.last_lsn, 1);
        assert!(r.truncated_bytes > 0);
        // The cut is permanent: reading again finds a clean log.
        assert_eq!(recover(dir.path(), 0).unwrap().truncated_bytes, 0);
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum_and_later_segments_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, 64).unwrap();
        for n in 0..3 {
            w.append(&batch(n));
            w.commit(true).unwrap();
        }
        let segs = segments(dir.path()).unwrap();
        let mut bytes = fs::read(&segs[1].1).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&segs[1].1, bytes).unwrap();
        let r = recover(dir.path(), 0).unwrap();
        assert_eq!(r.last_lsn, 1);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().any(|n| n.ends_with(".wal.corrupt")),
            "{names:?}"
        );
    }

    #[test]
    fn a_checkpoint_deletes_the_segments_it_covers_but_never_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, 64).unwrap();
        for n in 0..4 {
            w.append(&batch(n));
            w.commit(true).unwrap();
        }
        let before = segments(dir.path()).unwrap().len();
        let cp = Checkpoint {
            lsn: 4,
            rollups: telltale_core::rollup::Rollups::new(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(1),
            )
            .snapshot(),
            services: Vec::new(),
        };
        let deleted = write_checkpoint(dir.path(), &cp).unwrap();
        assert_eq!(deleted, before - 1);
        assert_eq!(read_checkpoint(dir.path()).unwrap().unwrap().lsn, 4);
        assert!(recover(dir.path(), 4).unwrap().records.is_empty());
    }
}
