//! Buffers rows per partition and writes them as Parquet (or NDJSON for dead letters)
//! files once a partition is big enough or old enough.
//!
//! Single owner, `&mut self`, no locks: the processor runs one `LakeWriter` on a dedicated
//! blocking thread and feeds it through a channel. Time is passed in as `Instant`s so the
//! flush policy is tested without sleeping.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use telltale_core::event::{MICROS_PER_DAY, utc_date};
use telltale_core::{FlaggedEvent, HttpCheckEvent, ProbeEvent, RollupRow};

use crate::chunk::{EventChunk, EventChunks};
use crate::deadletter::{self, DeadLetter};
use crate::error::{LakeError, Result};
use crate::layout::{self, NDJSON_EXT, PARQUET_EXT, PartitionKey, Table};
use crate::parquet_io::{self, EncodeOptions};
use crate::schema;
use crate::store::LakeStore;

/// When and how the writer writes files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// A partition buffering this many rows is written at once.
    pub flush_rows: usize,
    /// A partition whose oldest buffered row is this old is written by [`LakeWriter::flush_due`].
    pub flush_age: Duration,
    /// zstd level, 1–22.
    pub zstd_level: i32,
    /// Most rows in one Parquet row group.
    pub row_group_rows: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            flush_rows: 100_000,
            flush_age: Duration::from_secs(60),
            zstd_level: 1,
            row_group_rows: 128 * 1024,
        }
    }
}

impl WriterOptions {
    fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            zstd_level: self.zstd_level,
            row_group_rows: self.row_group_rows,
        }
    }
}

/// Counts per kind of file the writer writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// `events` table.
    pub events: u64,
    /// `rollups` table.
    pub rollups: u64,
    /// `probes` table.
    pub probes: u64,
    /// `monitors` table.
    pub monitors: u64,
    /// Dead-letter files.
    pub dead_letters: u64,
}

impl KindCounts {
    /// Sum over every kind.
    pub fn total(&self) -> u64 {
        self.events + self.rollups + self.probes + self.monitors + self.dead_letters
    }

    fn get_mut(&mut self, kind: Kind) -> &mut u64 {
        match kind {
            Kind::Table(Table::Events) => &mut self.events,
            Kind::Table(Table::Rollups) => &mut self.rollups,
            Kind::Table(Table::Probes) => &mut self.probes,
            Kind::Table(Table::Monitors) => &mut self.monitors,
            Kind::DeadLetters => &mut self.dead_letters,
        }
    }
}

/// What a writer has written since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Files written, per kind.
    pub files_written: KindCounts,
    /// Rows (dead letters: lines) written, per kind.
    pub rows_written: KindCounts,
    /// Bytes written, all kinds.
    pub bytes_written: u64,
    /// Files not written because a file of the same log position was already there (a
    /// replay after a crash re-creating what the earlier run committed).
    pub files_already_committed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Table(Table),
    DeadLetters,
}

/// A kind of row the writer buffers.
trait Row: Sized {
    const KIND: Kind;
    /// The partition key value (`""` for dead letters, which are partitioned by date only).
    fn key(&self) -> &str;
    /// The time that picks the date partition.
    fn time_us(&self) -> i64;
    /// Rows this item holds (a chunk holds many).
    fn len(&self) -> usize {
        1
    }
    /// A file's bytes for one partition's rows.
    fn encode(rows: &[Self], opts: &EncodeOptions, context: &str) -> Result<Vec<u8>>;
}

impl Row for FlaggedEvent {
    const KIND: Kind = Kind::Table(Table::Events);
    fn key(&self) -> &str {
        &self.event.service
    }
    fn time_us(&self) -> i64 {
        self.event.timestamp_us
    }
    fn encode(rows: &[Self], opts: &EncodeOptions, context: &str) -> Result<Vec<u8>> {
        parquet_io::encode(&schema::events_batch(rows)?, opts, Vec::new(), context)
    }
}

impl Row for EventChunk {
    const KIND: Kind = Kind::Table(Table::Events);
    fn key(&self) -> &str {
        &self.service
    }
    fn time_us(&self) -> i64 {
        self.day * MICROS_PER_DAY
    }
    fn len(&self) -> usize {
        self.batch.num_rows()
    }
    fn encode(rows: &[Self], opts: &EncodeOptions, context: &str) -> Result<Vec<u8>> {
        // Files are sorted by time. Input in time order (the usual case) is written chunk
        // by chunk; otherwise the chunks are concatenated and sorted first.
        let ranges: Vec<_> = rows.iter().map(EventChunk::sorted_time_range).collect();
        let in_order = ranges.iter().all(Option::is_some)
            && ranges
                .windows(2)
                .all(|w| matches!(w, [Some((_, last)), Some((first, _))] if last <= first));
        let sorted;
        let batches: Vec<&RecordBatch> = if in_order {
            rows.iter().map(|c| &c.batch).collect()
        } else {
            sorted = schema::concat_events(rows.iter().map(|c| &c.batch))?;
            vec![&sorted]
        };
        parquet_io::encode_all_parallel(
            schema::events_schema(),
            &batches,
            opts,
            Vec::new(),
            context,
            encode_threads(),
        )
    }
}

/// Threads that encode one events file's columns: one per core (see
/// [`parquet_io::encode_all_parallel`]).
fn encode_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
}

impl Row for RollupRow {
    const KIND: Kind = Kind::Table(Table::Rollups);
    fn key(&self) -> &str {
        &self.service
    }
    fn time_us(&self) -> i64 {
        self.window_start_us
    }
    fn encode(rows: &[Self], opts: &EncodeOptions, context: &str) -> Result<Vec<u8>> {
        parquet_io::encode(&schema::rollups_batch(rows)?, opts, Vec::new(), context)
    }
}

impl Row for ProbeEvent {
    const KIND: Kind = Kind::Table(Table::Probes);
    fn key(&self) -> &str {
        &self.target
    }
    fn time_us(&self) -> i64 {
        self.timestamp_us
    }
    fn encode(rows: &[Self], opts: &EncodeOptions, context: &str) -> Result<Vec<u8>> {
        parquet_io::encode(&schema::probes_batch(rows)?, opts, Vec::new(), context)
    }
}

impl Row for HttpCheckEvent {
    const KIND: Kind = Kind::Table(Table::Monitors);
    fn key(&self) -> &str {
        self.partition_key()
    }
    fn time_us(&self) -> i64 {
        self.timestamp_us
    }
    fn encode(rows: &[Self], opts: &EncodeOptions, context: &str) -> Result<Vec<u8>> {
        parquet_io::encode(&schema::monitors_batch(rows)?, opts, Vec::new(), context)
    }
}

impl Row for DeadLetter {
    const KIND: Kind = Kind::DeadLetters;
    fn key(&self) -> &str {
        ""
    }
    fn time_us(&self) -> i64 {
        self.received_at_us
    }
    fn encode(rows: &[Self], _: &EncodeOptions, _: &str) -> Result<Vec<u8>> {
        // Arrival order: line numbers read naturally.
        deadletter::to_ndjson(rows)
    }
}

/// Rows of one partition waiting to be written.
#[derive(Debug)]
struct Pending<T> {
    rows: Vec<T>,
    /// Rows in `rows` (items can be chunks of many).
    len: usize,
    /// When the oldest buffered row arrived.
    since: Instant,
}

/// Buffered rows of one kind: key value → UTC day number → rows.
#[derive(Debug)]
struct Buffers<T> {
    parts: HashMap<String, BTreeMap<i64, Pending<T>>>,
    rows: usize,
}

impl<T> Default for Buffers<T> {
    fn default() -> Self {
        Self {
            parts: HashMap::new(),
            rows: 0,
        }
    }
}

type PartId = (String, i64);

impl<T: Row> Buffers<T> {
    /// Routes rows to their partitions; returns the partitions that reached `flush_rows`.
    fn push(&mut self, rows: Vec<T>, now: Instant, flush_rows: usize) -> Vec<PartId> {
        for row in rows {
            let len = row.len();
            self.rows += len;
            let day = row.time_us().div_euclid(MICROS_PER_DAY);
            // Look up by &str first: no allocation for partitions we already have.
            let days = match self.parts.get_mut(row.key()) {
                Some(days) => days,
                None => self.parts.entry(row.key().to_owned()).or_default(),
            };
            let pending = days.entry(day).or_insert_with(|| Pending {
                rows: Vec::new(),
                len: 0,
                since: now,
            });
            pending.rows.push(row);
            pending.len += len;
        }
        // `>=`, not `==`: a partition kept after a failed write is already past the limit.
        self.ids(|p| p.len >= flush_rows)
    }

    fn ids(&self, due: impl Fn(&Pending<T>) -> bool) -> Vec<PartId> {
        let mut ids: Vec<PartId> = self
            .parts
            .iter()
            .flat_map(|(key, days)| {
                days.iter()
                    .filter(|(_, p)| due(p))
                    .map(|(day, _)| (key.clone(), *day))
            })
            .collect();
        // Deterministic file order: by key, then date.
        ids.sort();
        ids
    }

    fn take(&mut self, (key, day): &PartId) -> Option<Pending<T>> {
        let days = self.parts.get_mut(key.as_str())?;
        let pending = days.remove(day)?;
        if days.is_empty() {
            self.parts.remove(key.as_str());
        }
        self.rows -= pending.len;
        Some(pending)
    }

    fn put_back(&mut self, (key, day): PartId, pending: Pending<T>) {
        self.rows += pending.len;
        self.parts.entry(key).or_default().insert(day, pending);
    }
}

/// Everything but the buffers, so buffers and writing state are borrowed separately.
#[derive(Debug)]
struct Core {
    store: Arc<dyn LakeStore>,
    opts: WriterOptions,
    writer_id: String,
    seq: u64,
    /// Write-ahead log position of the record being applied; when set, file names come
    /// from it, so a replay re-creates exactly the names of the run before the crash.
    position: Option<u64>,
    stats: WriterStats,
}

impl Core {
    fn partition_dir(kind: Kind, key: &str, date: &str) -> String {
        match kind {
            Kind::Table(table) => PartitionKey::new(table, key, date).rel_dir(),
            Kind::DeadLetters => layout::deadletter_dir(date),
        }
    }

    fn file_name(&mut self, kind: Kind) -> String {
        let (prefix, ext) = match kind {
            Kind::Table(_) => ("part", PARQUET_EXT),
            Kind::DeadLetters => ("dl", NDJSON_EXT),
        };
        if let Some(lsn) = self.position {
            // At most one file per partition per log position (see `LakeWriter::set_position`).
            return format!("{prefix}-{lsn:020}-wal{ext}");
        }
        self.seq += 1;
        // Micros first so names sort by write time; the writer id keeps two processes (or
        // a restarted one) from ever choosing the same name.
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        format!("{prefix}-{micros}-{}-{:06}{ext}", self.writer_id, self.seq)
    }

    /// Writes one partition's rows; on failure the caller keeps them.
    fn write<T: Row>(&mut self, key: &str, day: i64, rows: &[T]) -> Result<()> {
        let row_count: usize = rows.iter().map(Row::len).sum();
        let date = utc_date(day * MICROS_PER_DAY);
        let dir = Self::partition_dir(T::KIND, key, &date);
        let wrap = |source| LakeError::WritePartition {
            partition: dir.clone(),
            rows: row_count,
            source: Box::new(source),
        };
        let bytes = T::encode(rows, &self.opts.encode_options(), &dir).map_err(wrap)?;
        let path = format!("{dir}/{}", self.file_name(T::KIND));
        match self.store.put_atomic(&path, &bytes) {
            Ok(()) => {}
            // Same log position, same rows: committed before a crash. Idempotent.
            Err(LakeError::AlreadyExists { .. }) if self.position.is_some() => {
                tracing::debug!(path, "lake file already committed before a restart");
                self.stats.files_already_committed += 1;
                return Ok(());
            }
            Err(e) => return Err(wrap(e)),
        }
        tracing::debug!(
            path,
            rows = row_count,
            bytes = bytes.len(),
            "lake file written"
        );
        *self.stats.files_written.get_mut(T::KIND) += 1;
        *self.stats.rows_written.get_mut(T::KIND) += row_count as u64;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the given partitions. A failing partition stays buffered and the others are
    /// still attempted, so one bad partition does not hold up the rest; the first error is
    /// returned.
    fn flush<T: Row>(&mut self, buf: &mut Buffers<T>, ids: Vec<PartId>) -> Result<()> {
        let mut first_err = None;
        for id in ids {
            let Some(pending) = buf.take(&id) else {
                continue;
            };
            if let Err(e) = self.write(&id.0, id.1, &pending.rows) {
                buf.put_back(id, pending);
                match first_err {
                    None => first_err = Some(e),
                    Some(_) => tracing::warn!(error = %e, "lake write failed"),
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Writes the lake's files: buffers rows per partition, flushes by size and age.
#[derive(Debug)]
pub struct LakeWriter {
    core: Core,
    events: Buffers<EventChunk>,
    rollups: Buffers<RollupRow>,
    probes: Buffers<ProbeEvent>,
    monitors: Buffers<HttpCheckEvent>,
    dead_letters: Buffers<DeadLetter>,
}

impl LakeWriter {
    /// A writer into `store`, with a fresh random writer id. Fails on options no file
    /// could be written with (zero rows, a zstd level outside 1–22).
    pub fn new(store: Arc<dyn LakeStore>, opts: WriterOptions) -> Result<Self> {
        opts.encode_options().validate()?;
        if opts.flush_rows == 0 {
            return Err(LakeError::InvalidOption {
                option: "flush_rows",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            core: Core {
                store,
                opts,
                writer_id: format!("{:08x}", rand::random::<u32>()),
                seq: 0,
                position: None,
                stats: WriterStats::default(),
            },
            events: Buffers::default(),
            rollups: Buffers::default(),
            probes: Buffers::default(),
            monitors: Buffers::default(),
            dead_letters: Buffers::default(),
        })
    }

    /// Names the files written from now on after write-ahead log position `lsn`
    /// (`part-<lsn>-wal.parquet`), and treats an existing file of that name as already
    /// committed. The caller applies log records in order and calls this before each, so
    /// a partition gets at most one file per position and a replay writes the same names.
    pub fn set_position(&mut self, lsn: u64) {
        self.core.position = Some(lsn);
    }

    /// Writes the partitions that reached `flush_rows` (to retry a failed size flush at
    /// the same log position before applying anything else).
    pub fn flush_full(&mut self) -> Result<()> {
        let n = self.core.opts.flush_rows;
        let results = [
            {
                let ids = self.events.ids(|p| p.len >= n);
                self.core.flush(&mut self.events, ids)
            },
            {
                let ids = self.rollups.ids(|p| p.len >= n);
                self.core.flush(&mut self.rollups, ids)
            },
            {
                let ids = self.probes.ids(|p| p.len >= n);
                self.core.flush(&mut self.probes, ids)
            },
            {
                let ids = self.monitors.ids(|p| p.len >= n);
                self.core.flush(&mut self.monitors, ids)
            },
            {
                let ids = self.dead_letters.ids(|p| p.len >= n);
                self.core.flush(&mut self.dead_letters, ids)
            },
        ];
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// The 8 hex digits in this writer's file names.
    pub fn writer_id(&self) -> &str {
        &self.core.writer_id
    }

    /// Buffers events by service and UTC date; writes partitions that reach `flush_rows`.
    pub fn append_events(&mut self, events: Vec<FlaggedEvent>, now: Instant) -> Result<()> {
        self.append_event_chunks(EventChunks::from_events(&events)?, now)
    }

    /// Buffers columnar events (see [`EventChunks`]) by partition.
    pub fn append_event_chunks(&mut self, chunks: Vec<EventChunk>, now: Instant) -> Result<()> {
        let full = self.events.push(chunks, now, self.core.opts.flush_rows);
        self.core.flush(&mut self.events, full)
    }

    /// Buffers rollup rows by service and UTC date of the window start.
    pub fn append_rollups(&mut self, rows: Vec<RollupRow>, now: Instant) -> Result<()> {
        let full = self.rollups.push(rows, now, self.core.opts.flush_rows);
        self.core.flush(&mut self.rollups, full)
    }

    /// Buffers probe measurements by target and UTC date.
    pub fn append_probes(&mut self, probes: Vec<ProbeEvent>, now: Instant) -> Result<()> {
        let full = self.probes.push(probes, now, self.core.opts.flush_rows);
        self.core.flush(&mut self.probes, full)
    }

    /// Buffers URL check results by monitor id and UTC date.
    pub fn append_checks(&mut self, checks: Vec<HttpCheckEvent>, now: Instant) -> Result<()> {
        let full = self.monitors.push(checks, now, self.core.opts.flush_rows);
        self.core.flush(&mut self.monitors, full)
    }

    /// Buffers dead letters by UTC date received.
    pub fn append_dead_letters(&mut self, letters: Vec<DeadLetter>, now: Instant) -> Result<()> {
        let full = self
            .dead_letters
            .push(letters, now, self.core.opts.flush_rows);
        self.core.flush(&mut self.dead_letters, full)
    }

    /// Writes every partition whose oldest buffered row arrived `flush_age` or more before
    /// `now`. Failed partitions stay buffered; the first error is returned.
    pub fn flush_due(&mut self, now: Instant) -> Result<()> {
        let age = self.core.opts.flush_age;
        let due = |since: Instant| now.saturating_duration_since(since) >= age;
        self.flush_where(due)
    }

    /// Writes every buffered row (shutdown, end of input).
    pub fn flush_all(&mut self) -> Result<()> {
        self.flush_where(|_| true)
    }

    fn flush_where(&mut self, due: impl Fn(Instant) -> bool) -> Result<()> {
        let events = self.events.ids(|p| due(p.since));
        let rollups = self.rollups.ids(|p| due(p.since));
        let probes = self.probes.ids(|p| due(p.since));
        let monitors = self.monitors.ids(|p| due(p.since));
        let dead_letters = self.dead_letters.ids(|p| due(p.since));
        let results = [
            self.core.flush(&mut self.events, events),
            self.core.flush(&mut self.rollups, rollups),
            self.core.flush(&mut self.probes, probes),
            self.core.flush(&mut self.monitors, monitors),
            self.core.flush(&mut self.dead_letters, dead_letters),
        ];
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// Rows (and dead letters) buffered, not yet written.
    pub fn buffered_rows(&self) -> usize {
        self.events.rows
            + self.rollups.rows
            + self.probes.rows
            + self.monitors.rows
            + self.dead_letters.rows
    }

    /// What has been written so far.
    pub fn stats(&self) -> WriterStats {
        self.core.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::mixed_letters;
    use crate::fixtures::{DAY0, check, event, probe, rollup};
    use crate::parquet_io::{WRITER_KEY, WRITER_VERSION, decode};
    use crate::store::LocalDisk;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use std::path::Path;

    const HOUR: i64 = 3_600_000_000;

    fn opts(flush_rows: usize) -> WriterOptions {
        WriterOptions {
            flush_rows,
            flush_age: Duration::from_secs(30),
            zstd_level: 3,
            row_group_rows: 1000,
        }
    }

    fn writer(root: &Path, flush_rows: usize) -> LakeWriter {
        LakeWriter::new(Arc::new(LocalDisk::new(root)), opts(flush_rows)).unwrap()
    }

    fn files(root: &Path) -> Vec<String> {
        LocalDisk::new(root)
            .list("")
            .unwrap()
            .into_iter()
            .map(|f| f.rel_path)
            .collect()
    }

    /// Relative paths with the time and writer id of file names replaced.
    fn redacted(root: &Path) -> Vec<String> {
        let mut out: Vec<String> = files(root)
            .into_iter()
            .map(|p| {
                let (dir, name) = p.rsplit_once('/').unwrap();
                let mut parts = name.splitn(4, '-');
                let (prefix, _micros, _id, rest) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                format!("{dir}/{prefix}-<micros>-<writer>-{rest}")
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn positioned_files_are_named_by_log_position_and_rewriting_one_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let rows = || vec![event("a", DAY0, 1.0), event("b", DAY0, 2.0)];
        let mut w = writer(dir.path(), 1000);
        w.set_position(42);
        w.append_events(rows(), Instant::now()).unwrap();
        w.flush_all().unwrap();
        let first = files(dir.path());
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .all(|f| f.ends_with("/part-00000000000000000042-wal.parquet")),
            "{first:?}"
        );
        // A second writer replaying the same position: same names, nothing rewritten.
        let mut again = writer(dir.path(), 1000);
        again.set_position(42);
        again.append_events(rows(), Instant::now()).unwrap();
        again.flush_all().unwrap();
        assert_eq!(files(dir.path()), first);
        let s = again.stats();
        assert_eq!((s.files_already_committed, s.files_written.events), (2, 0));
    }

    #[test]
    fn a_partition_reaching_flush_rows_is_written_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 3);
        let t0 = Instant::now();
        w.append_events(
            vec![
                event("a", DAY0, 1.0),
                event("a", DAY0 + 1, 2.0),
                event("b", DAY0, 3.0),
            ],
            t0,
        )
        .unwrap();
        assert!(files(dir.path()).is_empty());
        assert_eq!(w.buffered_rows(), 3);
        w.append_events(vec![event("a", DAY0 + 2, 4.0)], t0)
            .unwrap();
        assert_eq!(files(dir.path()).len(), 1);
        assert_eq!(w.buffered_rows(), 1, "b is still buffered");
        let s = w.stats();
        assert_eq!((s.files_written.events, s.rows_written.events), (1, 3));
        assert!(s.bytes_written > 0);
    }

    #[test]
    fn partitions_are_flushed_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1000);
        let t0 = Instant::now();
        w.append_events(vec![event("a", DAY0, 1.0)], t0).unwrap();
        w.append_events(vec![event("b", DAY0, 1.0)], t0 + Duration::from_secs(20))
            .unwrap();
        // A later row does not make a partition younger.
        w.append_events(
            vec![event("a", DAY0 + 1, 1.0)],
            t0 + Duration::from_secs(25),
        )
        .unwrap();
        w.flush_due(t0 + Duration::from_secs(29)).unwrap();
        assert!(files(dir.path()).is_empty());
        w.flush_due(t0 + Duration::from_secs(30)).unwrap();
        assert_eq!(files(dir.path()).len(), 1, "only a is 30 s old");
        assert_eq!(w.buffered_rows(), 1);
        w.flush_due(t0 + Duration::from_secs(50)).unwrap();
        assert_eq!(w.buffered_rows(), 0);
        assert_eq!(w.stats().files_written.events, 2);
    }

    #[test]
    fn partition_layout() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1000);
        let now = Instant::now();
        w.append_events(
            vec![
                event("checkout", DAY0 + 23 * HOUR, 1.0),
                event("checkout", DAY0 + 25 * HOUR, 1.0),
                event("a/b", DAY0, 1.0),
                event("..", DAY0, 1.0),
            ],
            now,
        )
        .unwrap();
        w.append_rollups(vec![rollup("checkout", DAY0, 5)], now)
            .unwrap();
        w.append_probes(vec![probe("10.0.0.1:443", DAY0, 2)], now)
            .unwrap();
        w.append_dead_letters(mixed_letters(), now).unwrap();
        w.flush_all().unwrap();
        insta::assert_debug_snapshot!(redacted(dir.path()));
        assert_eq!(w.stats().files_written.total(), 7);
    }

    #[test]
    fn files_read_back_with_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1000);
        let rows: Vec<_> = (0..50)
            .rev()
            .map(|i| event("svc", DAY0 + i * 1000, i as f64))
            .collect();
        w.append_events(rows.clone(), Instant::now()).unwrap();
        w.flush_all().unwrap();
        let [path] = files(dir.path()).try_into().unwrap();
        assert!(
            path.starts_with("events/service=svc/date=2025-04-30/part-"),
            "{path}"
        );
        assert!(
            path.contains(&format!("-{}-000001.parquet", w.writer_id())),
            "{path}"
        );

        let bytes = LocalDisk::new(dir.path()).read(&path).unwrap();
        let file = decode(bytes.clone(), true, &path).unwrap();
        assert_eq!(file.metadata_value(WRITER_KEY), Some(WRITER_VERSION));
        assert_eq!(file.schema.fields(), schema::events_schema().fields());
        assert_eq!(
            file.schema.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let batch = arrow::compute::concat_batches(&file.schema, &file.batches).unwrap();
        assert_eq!(batch.num_rows(), 50);
        let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        let lat = batch.column(2).as_primitive::<Float64Type>();
        for i in 0..50 {
            assert_eq!(ts.value(i), DAY0 + i as i64 * 1000, "sorted by time");
            assert_eq!(lat.value(i), i as f64);
        }
        assert_eq!(
            batch
                .column_by_name("team")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "payments"
        );
        assert!(batch.column_by_name("instance").unwrap().is_null(0));

        // zstd and page statistics, as configured.
        let with_page_index = parquet::file::serialized_reader::ReadOptionsBuilder::new()
            .with_page_index()
            .build();
        let reader =
            SerializedFileReader::new_with_options(bytes::Bytes::from(bytes), with_page_index)
                .unwrap();
        let col = reader.metadata().row_group(0).column(0);
        assert!(matches!(
            col.compression(),
            parquet::basic::Compression::ZSTD(_)
        ));
        assert!(
            reader.metadata().column_index().is_some(),
            "page-level statistics written"
        );
        assert!(col.statistics().is_some());
        // Statistics on what a filter can prune by, none on per-event context strings.
        let row_group = reader.metadata().row_group(0);
        for column in row_group.columns() {
            let name = column.column_path().string();
            let unprunable = parquet_io::UNPRUNABLE_TEXT_COLUMNS.contains(&name.as_str());
            assert_eq!(
                column.statistics().is_none(),
                unprunable,
                "statistics of `{name}`"
            );
            // Dictionaries only where values repeat; sorted times delta-encoded.
            if ["timestamp", "latency_ms", "trace_id"].contains(&name.as_str()) {
                assert!(
                    column.dictionary_page_offset().is_none(),
                    "`{name}` has a dictionary"
                );
            }
            if ["team", "status_code"].contains(&name.as_str()) {
                assert!(
                    column.dictionary_page_offset().is_some(),
                    "`{name}` has none"
                );
            }
        }
        let timestamp = row_group.column(0);
        assert!(
            timestamp
                .encodings()
                .any(|e| e == parquet::basic::Encoding::DELTA_BINARY_PACKED),
            "timestamp encodings: {:?}",
            timestamp.encodings().collect::<Vec<_>>()
        );
    }

    #[test]
    fn row_groups_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDisk::new(dir.path()));
        let mut w = LakeWriter::new(
            store.clone(),
            WriterOptions {
                row_group_rows: 10,
                ..opts(1000)
            },
        )
        .unwrap();
        w.append_events(
            (0..25).map(|i| event("s", DAY0 + i, 1.0)).collect(),
            Instant::now(),
        )
        .unwrap();
        w.flush_all().unwrap();
        let [path] = files(dir.path()).try_into().unwrap();
        let reader =
            SerializedFileReader::new(bytes::Bytes::from(store.read(&path).unwrap())).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
    }

    #[test]
    fn a_second_writer_adds_files_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = writer(dir.path(), 1);
        first
            .append_events(vec![event("a", DAY0, 1.0)], Instant::now())
            .unwrap();
        let before = files(dir.path());
        let mut second = writer(dir.path(), 1);
        assert_ne!(first.writer_id(), second.writer_id());
        second
            .append_events(vec![event("a", DAY0, 2.0)], Instant::now())
            .unwrap();
        let after = files(dir.path());
        assert_eq!(after.len(), 2);
        assert!(before.iter().all(|f| after.contains(f)));
    }

    #[derive(Debug)]
    struct FailingStore;

    impl LakeStore for FailingStore {
        fn put_atomic(&self, rel_path: &str, _: &[u8]) -> Result<()> {
            Err(LakeError::io(
                "write",
                rel_path,
                std::io::Error::other("disk full"),
            ))
        }
        fn list(&self, _: &str) -> Result<Vec<crate::store::StoredFile>> {
            Ok(Vec::new())
        }
        fn read(&self, rel_path: &str) -> Result<Vec<u8>> {
            Err(LakeError::io(
                "read",
                rel_path,
                std::io::ErrorKind::NotFound.into(),
            ))
        }
        fn delete(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn root(&self) -> String {
            "failing".into()
        }
    }

    #[test]
    fn a_failed_write_keeps_the_rows_and_names_the_partition() {
        let mut w = LakeWriter::new(Arc::new(FailingStore), opts(2)).unwrap();
        let err = w
            .append_events(
                vec![event("a", DAY0, 1.0), event("a", DAY0 + 1, 1.0)],
                Instant::now(),
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("events/service=a/date=2025-04-30") && msg.contains("disk full"),
            "{msg}"
        );
        assert_eq!(w.buffered_rows(), 2);
        assert!(w.flush_all().is_err());
        assert_eq!(w.buffered_rows(), 2);
        assert_eq!(w.stats(), WriterStats::default());
    }

    #[test]
    fn bad_options_are_rejected() {
        let store: Arc<dyn LakeStore> = Arc::new(FailingStore);
        for bad in [
            opts(0),
            WriterOptions {
                zstd_level: 99,
                ..opts(1)
            },
            WriterOptions {
                row_group_rows: 0,
                ..opts(1)
            },
        ] {
            assert!(matches!(
                LakeWriter::new(store.clone(), bad),
                Err(LakeError::InvalidOption { .. })
            ));
        }
    }

    #[test]
    fn probes_checks_and_rollups_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1000);
        let mut adhoc = check("x", DAY0 + 3, Some(200));
        adhoc.monitor_id = None;
        w.append_checks(
            vec![
                check("m1", DAY0 + 2, None),
                check("m1", DAY0 + 1, Some(200)),
                adhoc.clone(),
                adhoc,
            ],
            Instant::now(),
        )
        .unwrap();
        w.append_probes(
            vec![probe("t", DAY0 + 2, 3), probe("t", DAY0 + 1, 1)],
            Instant::now(),
        )
        .unwrap();
        w.append_rollups(
            vec![rollup("s", DAY0 + 60_000_000, 8), rollup("s", DAY0, 4)],
            Instant::now(),
        )
        .unwrap();
        w.flush_all().unwrap();
        let store = LocalDisk::new(dir.path());
        let written = files(dir.path());
        for dir in [
            "monitors/monitor_id=m1/date=2025-04-30/",
            "monitors/monitor_id=adhoc/date=",
        ] {
            assert!(
                written.iter().any(|f| f.starts_with(dir)),
                "{dir} in {written:?}"
            );
        }
        for f in written {
            let decoded = decode(store.read(&f).unwrap(), true, &f).unwrap();
            let table = Table::from_dir(f.split('/').next().unwrap()).unwrap();
            assert_eq!(
                decoded.schema.fields(),
                schema::table_schema(table).fields(),
                "{f}"
            );
            let ts = decoded.batches[0]
                .column(0)
                .as_primitive::<TimestampMicrosecondType>();
            assert!(ts.values().is_sorted(), "{f}");
            assert_eq!(
                decoded.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                2
            );
        }
    }
}
