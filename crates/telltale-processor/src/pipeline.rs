//! The ingest pipeline: batches of raw lines in; validated, flagged events, probes, dead
//! letters and rollups out to the lake.
//!
//! ```text
//!  caller thread (HTTP handler via spawn_blocking, file/stdin reader)      writer thread
//!  ─────────────────────────────────────────────────────────────────      ─────────────
//!  ingest(batch): parse ▸ flag ▸ count ──bounded queue (WriterMsg)──▶  rollups.record
//!                                                                       LakeWriter.append
//!                                                                       every tick: close windows,
//!                                                                       flush due partitions
//! ```
//!
//! Parsing runs on the caller's thread, so several batches parse in parallel; everything
//! stateful (open rollup windows, partition buffers) has exactly one owner, the writer
//! thread, so there are no locks on the hot path. The queue is bounded: when the writer
//! falls behind, `ingest` blocks, which pushes back on the sender.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use telltale_core::config::{PipelineConfig, WalConfig, WalSync};
use telltale_core::event::MICROS_PER_SEC;
use telltale_core::parse::{
    Limits, ParsedLine, RejectReason, Rejection, lines, parse_line_borrowed,
};
use telltale_core::rollup::Rollups;
use telltale_core::{ProbeEvent, Record, ServiceCatalog};
use telltale_lake::chunk::{EventChunk, EventChunks, EventRow};
use telltale_lake::deadletter::DeadLetter;
use telltale_lake::error::LakeError;
use telltale_lake::store::LakeStore;
use telltale_lake::writer::{LakeWriter, WriterOptions, WriterStats};

use crate::metrics::Metrics;
use crate::outputs::Outputs;
use crate::wal::{self, LoggedBatch, Marker, RecordBody, WalError, WalOrderedStore, WalWriter};

/// How many per-line errors a batch outcome carries (the rest are only counted).
pub const MAX_REPORTED_ERRORS: usize = 100;

/// A processor failure that is not about one line.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The writer thread has stopped (after shutdown, or it panicked).
    #[error("the lake writer has stopped; the processor is shutting down")]
    WriterGone,
    /// Writing the lake failed on a flush, so buffered rows could not be saved.
    #[error("writing the lake failed: {0}")]
    Lake(#[from] LakeError),
    /// Starting the writer thread failed.
    #[error("could not start the writer thread: {0}")]
    Spawn(std::io::Error),
    /// The write-ahead log could not be read or written.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// An earlier write to the write-ahead log failed; its tail is unknown, so nothing more
    /// is acknowledged until a restart replays it.
    #[error("the write-ahead log failed earlier; restart the processor")]
    WalFailed,
    /// Replaying the write-ahead log failed.
    #[error("replaying the write-ahead log: {0}")]
    Replay(String),
    /// The writer failed carrying out a flush or checkpoint (the message of the cause,
    /// passed on to a waiting caller).
    #[error("{0}")]
    Writer(String),
}

impl PipelineError {
    /// The same kind of error, for telling several waiting callers (the payloads of I/O
    /// errors cannot be cloned).
    fn clone_kind(&self) -> Self {
        match self {
            PipelineError::WriterGone => PipelineError::WriterGone,
            PipelineError::WalFailed => PipelineError::WalFailed,
            other => PipelineError::Writer(other.to_string()),
        }
    }
}

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
}

impl IngestBatch {
    /// A batch that is a whole body on its own (line numbers start at 1).
    pub fn whole(data: impl Into<bytes::Bytes>, source: &str) -> Self {
        Self {
            data: data.into(),
            source: Arc::from(source),
            first_line: 1,
            oversize: Vec::new(),
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

/// A batch after parsing: what the writer applies.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Service events, columnar, one chunk per partition.
    events: Vec<EventChunk>,
    /// Number of events in `events`.
    event_count: usize,
    probes: Vec<ProbeEvent>,
    dead: Vec<DeadLetter>,
}

impl ParsedBatch {
    fn is_empty(&self) -> bool {
        self.event_count == 0 && self.probes.is_empty() && self.dead.is_empty()
    }
}

enum WriterMsg {
    /// A batch at log position `lsn`.
    Batch { lsn: u64, parsed: ParsedBatch },
    /// A logged decision at position `lsn`; `reply` is told when it has been carried out.
    Marker {
        lsn: u64,
        marker: Marker,
        reply: Option<SyncSender<Result<(), PipelineError>>>,
    },
    /// Start sending rollups and probes to the outputs (after a replay).
    AttachOutputs(Box<Outputs>),
}

/// A batch on its way to the sequencer.
struct Submit {
    logged: LoggedBatch,
    parsed: ParsedBatch,
    reply: SyncSender<Result<(), PipelineError>>,
}

/// A request to the sequencer from outside the ingest path.
enum Control {
    /// Log a writer decision and carry it out; `reply` is told when done.
    Marker {
        marker: Marker,
        reply: Option<SyncSender<Result<(), PipelineError>>>,
    },
    /// Hand the outputs to the writer (not logged: outputs are not lake state).
    Attach(Box<Outputs>),
}

/// Write-ahead log settings of a pipeline.
#[derive(Debug, Clone)]
pub struct WalSettings {
    /// Directory of the segments and the checkpoint (`<data_dir>/wal`).
    pub dir: PathBuf,
    /// When to fsync.
    pub sync: WalSync,
    /// With [`WalSync::Interval`]: how often.
    pub sync_interval: Duration,
    /// Segment size.
    pub segment_bytes: u64,
}

impl WalSettings {
    /// From `[wal]`, with the log in `dir`; `None` when the log is off.
    pub fn from_config(cfg: &WalConfig, dir: PathBuf) -> Option<Self> {
        cfg.enabled.then_some(Self {
            dir,
            sync: cfg.sync,
            sync_interval: cfg.sync_interval,
            segment_bytes: cfg.segment_bytes,
        })
    }
}

/// Settings of a pipeline, from `telltale.toml` and the catalogue.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Service catalogue used for flagging.
    pub catalog: Arc<ServiceCatalog>,
    /// Per-line limits.
    pub limits: Limits,
    /// Lake flush policy.
    pub writer: WriterOptions,
    /// Rollup window width.
    pub rollup_window: Duration,
    /// Rollup allowed lateness.
    pub allowed_lateness: Duration,
    /// Batches that may wait for the log and for the writer before `ingest` blocks.
    pub queue_capacity: usize,
    /// How often the writer looks at the clock (idle input, checkpoints, aged partitions).
    pub tick: Duration,
    /// Rows buffered over all partitions above which everything is written at once.
    pub max_buffered_rows: usize,
    /// The write-ahead log; `None`: batches are acknowledged from memory.
    pub wal: Option<WalSettings>,
}

impl PipelineSettings {
    /// Settings from the config files (the write-ahead log is set by the caller, who
    /// knows the data directory: [`WalSettings::from_config`]).
    pub fn from_config(cfg: &PipelineConfig, catalog: Arc<ServiceCatalog>) -> Self {
        Self {
            catalog,
            limits: Limits::from(&cfg.validation),
            writer: WriterOptions {
                flush_rows: cfg.lake.flush_rows,
                flush_age: cfg.lake.flush_age,
                zstd_level: cfg.lake.zstd_level,
                row_group_rows: cfg.lake.row_group_rows,
            },
            rollup_window: cfg.rollup.window,
            allowed_lateness: cfg.rollup.allowed_lateness,
            queue_capacity: 64,
            tick: Duration::from_millis(200),
            max_buffered_rows: cfg.lake.flush_rows.saturating_mul(10).max(1_000_000),
            wal: None,
        }
    }
}

/// Handle to a running pipeline; cheap to clone, safe to share across threads.
#[derive(Debug, Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<ServiceCatalog>,
    limits: Limits,
    metrics: Arc<Metrics>,
    submit: std::sync::Mutex<Option<SyncSender<Submit>>>,
    markers: Sender<Control>,
    threads: std::sync::Mutex<Vec<JoinHandle<Result<WriterStats, PipelineError>>>>,
}

impl std::fmt::Debug for WriterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterMsg::Batch { lsn, parsed } => write!(
                f,
                "Batch(@{lsn}: {} events, {} probes, {} dead)",
                parsed.event_count,
                parsed.probes.len(),
                parsed.dead.len()
            ),
            WriterMsg::Marker { lsn, marker, .. } => write!(f, "Marker(@{lsn}: {marker:?})"),
            WriterMsg::AttachOutputs(_) => f.write_str("AttachOutputs"),
        }
    }
}

impl std::fmt::Debug for Submit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Submit({} bytes)", self.logged.data.len())
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Marker { marker, .. } => write!(f, "Marker({marker:?})"),
            Control::Attach(_) => f.write_str("Attach"),
        }
    }
}

/// A batch validated and flagged by [`Pipeline::prepare`], waiting to be
/// [submitted](Pipeline::submit).
#[derive(Debug)]
pub struct PreparedBatch {
    logged: LoggedBatch,
    parsed: ParsedBatch,
    outcome: BatchOutcome,
}

/// Parses and flags a logged batch. Deterministic: validation's "now" is the arrival time
/// stored with the batch, so a replay gives exactly what the first run gave.
fn parse_batch(
    batch: &LoggedBatch,
    catalog: &ServiceCatalog,
    limits: &Limits,
    metrics: Option<&Metrics>,
) -> (ParsedBatch, BatchOutcome) {
    let now_us = batch.received_at_us;
    let mut outcome = BatchOutcome::default();
    let mut parsed = ParsedBatch::default();
    let mut reject = |rejection: Rejection, raw: Vec<u8>, outcome: &mut BatchOutcome| {
        if let Some(m) = metrics {
            m.reject(rejection.reason);
        }
        outcome.rejected += 1;
        if outcome.errors.len() < MAX_REPORTED_ERRORS {
            outcome.errors.push(rejection.clone());
        }
        parsed.dead.push(DeadLetter {
            received_at_us: now_us,
            source: batch.source.clone(),
            rejection,
            raw,
        });
    };
    for o in &batch.oversize {
        let rejection = Rejection {
            line: o.line,
            field: None,
            reason: RejectReason::LineTooLong,
            message: format!(
                "line is {} bytes, over the limit of {} bytes",
                o.len, limits.max_line_bytes
            ),
        };
        reject(rejection, o.prefix.clone(), &mut outcome);
    }
    let mut events = EventChunks::new();
    let mut probes = Vec::new();
    let mut unknown = 0;
    for (n, raw) in lines(&batch.data) {
        let line_no = batch.first_line + n - 1;
        match parse_line_borrowed(raw, line_no, now_us, limits) {
            // The common case: straight from the line's bytes into Arrow builders.
            Ok(ParsedLine::Service(ev)) => {
                let f = catalog.flags(&ev.service, ev.status_code, ev.latency_ms, ev.error);
                unknown += u64::from(!f.known);
                events.push(&EventRow {
                    service: &ev.service,
                    team: f.team,
                    timestamp_us: ev.timestamp_us,
                    status_code: ev.status_code,
                    latency_ms: ev.latency_ms,
                    error: ev.error,
                    is_error: f.is_error,
                    is_slow: f.is_slow,
                    endpoint: ev.endpoint.as_deref(),
                    method: ev.method.as_deref(),
                    region: ev.region.as_deref(),
                    instance: ev.instance.as_deref(),
                    trace_id: ev.trace_id.as_deref(),
                    attributes: None,
                });
            }
            Ok(ParsedLine::Record(Record::Service(ev))) => {
                let (flagged, known) = catalog.flag(ev);
                unknown += u64::from(!known);
                events.push(&EventRow::from(&flagged));
            }
            Ok(ParsedLine::Record(Record::Probe(p))) => probes.push(p),
            Err(rejection) => reject(rejection, raw.to_vec(), &mut outcome),
        }
    }
    if unknown > 0
        && let Some(m) = metrics
    {
        m.unknown_service_events.inc_by(unknown);
    }
    parsed.event_count = events.len();
    // Building a chunk only fails on a schema mismatch, a programming error.
    parsed.events = events
        .finish()
        .expect("event chunks match the events schema");
    parsed.probes = probes;
    outcome.errors.sort_by_key(|r| r.line);
    outcome.accepted = (parsed.event_count + parsed.probes.len()) as u64;
    (parsed, outcome)
}

impl Pipeline {
    /// Starts the pipeline over `store`: replays the write-ahead log (if configured) into
    /// the lake, then starts the sequencer and writer threads. `outputs` receives every
    /// emitted rollup row and probe (SLO engine, InfluxDB, alerts) from then on; replayed
    /// ones are not sent (pass `None` and [`Pipeline::attach_outputs`] after priming them
    /// from the lake).
    pub fn start(
        settings: PipelineSettings,
        store: Arc<dyn LakeStore>,
        metrics: Arc<Metrics>,
        outputs: Option<Outputs>,
    ) -> Result<Self, PipelineError> {
        let capacity = settings.queue_capacity.max(1);
        let (writer_tx, writer_rx) = sync_channel(capacity);
        let (submit_tx, submit_rx) = sync_channel::<Submit>(capacity);
        let (marker_tx, marker_rx) = channel::<Control>();
        let mut rollups = Rollups::new(settings.rollup_window, settings.allowed_lateness);
        let (wal, store, checkpoint_lsn, recovered) = match &settings.wal {
            Some(w) => {
                let cp = wal::read_checkpoint(&w.dir)?;
                let after = cp.as_ref().map_or(0, |c| c.lsn);
                if let Some(cp) = &cp {
                    rollups
                        .restore(&cp.rollups)
                        .map_err(|e| PipelineError::Replay(e.to_string()))?;
                }
                let recovered = wal::recover(&w.dir, after)?;
                let writer = WalWriter::open(&w.dir, recovered.last_lsn + 1, w.segment_bytes)?;
                let ordered: Arc<dyn LakeStore> =
                    Arc::new(WalOrderedStore::new(store, writer.shared()));
                (Some(writer), ordered, after, recovered.records)
            }
            None => (None, store, 0, Vec::new()),
        };
        let writer = LakeWriter::new(store, settings.writer)?;
        let mut worker = WriterLoop {
            rx: writer_rx,
            writer,
            rollups,
            metrics: Arc::clone(&metrics),
            tick: settings.tick,
            idle_after: settings.allowed_lateness.max(Duration::from_secs(1)),
            flush_age: settings.writer.flush_age,
            last_event: Instant::now(),
            last_checkpoint: Instant::now(),
            dirty: false,
            marker_pending: false,
            max_buffered_rows: settings.max_buffered_rows,
            reported: WriterStats::default(),
            outputs: None,
            wal_dir: settings.wal.as_ref().map(|w| w.dir.clone()),
            markers: marker_tx.clone(),
        };
        let mut wal = wal;
        if let Some(wal) = wal.as_mut() {
            // Replay: what the log holds past the checkpoint, applied exactly as the first
            // time, then a checkpoint so that the lake holds all of it before outputs start.
            let replayed = recovered.len();
            for (lsn, body) in recovered {
                match body {
                    RecordBody::Batch(b) => {
                        let (parsed, _) =
                            parse_batch(&b, &settings.catalog, &settings.limits, None);
                        worker.apply(lsn, parsed)?;
                    }
                    RecordBody::Marker(m) => worker.execute(lsn, m)?,
                }
            }
            metrics.wal_replayed_records.inc_by(replayed as u64);
            if replayed > 0 || checkpoint_lsn == 0 {
                let lsn = wal.append(&RecordBody::Marker(Marker::Checkpoint));
                wal.commit(true)?;
                worker.execute(lsn, Marker::Checkpoint)?;
            }
            if replayed > 0 {
                let s = worker.writer.stats();
                tracing::info!(
                    records = replayed,
                    files_written = s.files_written.total(),
                    files_already_committed = s.files_already_committed,
                    "write-ahead log replayed into the lake"
                );
            }
            Metrics::gauge_set(&metrics.wal_segments, wal.segments_on_disk);
        }
        worker.outputs = outputs;
        let writer_thread = std::thread::Builder::new()
            .name("telltale-writer".into())
            .spawn(move || worker.run())
            .map_err(PipelineError::Spawn)?;
        let sequencer = Sequencer {
            wal,
            sync: settings.wal.as_ref().map(|w| (w.sync, w.sync_interval)),
            next_lsn: 1,
            submits: submit_rx,
            markers: marker_rx,
            writer: writer_tx,
            metrics: Arc::clone(&metrics),
            failed: false,
        };
        let sequencer_thread = std::thread::Builder::new()
            .name("telltale-wal".into())
            .spawn(move || sequencer.run())
            .map_err(PipelineError::Spawn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                catalog: settings.catalog,
                limits: settings.limits,
                metrics,
                submit: std::sync::Mutex::new(Some(submit_tx)),
                markers: marker_tx,
                threads: std::sync::Mutex::new(vec![sequencer_thread, writer_thread]),
            }),
        })
    }

    /// Starts delivering rollups and probes to `outputs` (after a replay, once the
    /// outputs are primed from the lake).
    pub fn attach_outputs(&self, outputs: Outputs) -> Result<(), PipelineError> {
        self.inner
            .markers
            .send(Control::Attach(Box::new(outputs)))
            .map_err(|_| PipelineError::WriterGone)
    }

    /// The metrics this pipeline updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The service catalogue.
    pub fn catalog(&self) -> &Arc<ServiceCatalog> {
        &self.inner.catalog
    }

    fn submitter(&self) -> Result<SyncSender<Submit>, PipelineError> {
        let guard = self
            .inner
            .submit
            .lock()
            .map_err(|_| PipelineError::WriterGone)?;
        guard.clone().ok_or(PipelineError::WriterGone)
    }

    /// Validates, flags and logs a batch; returns once it is acknowledged (durable, with
    /// a write-ahead log and `sync = "always"`). Blocking (parsing is CPU work and the
    /// queues may push back): call it from a blocking thread, not an async task.
    pub fn ingest(&self, batch: IngestBatch) -> Result<BatchOutcome, PipelineError> {
        self.submit(self.prepare(batch))
    }

    /// The CPU half of [`Pipeline::ingest`]: validates and flags a batch. Safe to run on
    /// many threads at once; batches enter the log in the order they are
    /// [submitted](Pipeline::submit), not prepared.
    pub fn prepare(&self, batch: IngestBatch) -> PreparedBatch {
        let logged = LoggedBatch {
            received_at_us: chrono::Utc::now().timestamp_micros(),
            source: batch.source.to_string(),
            first_line: batch.first_line,
            oversize: batch.oversize,
            data: batch.data,
        };
        let m = &self.inner.metrics;
        let (parsed, outcome) =
            parse_batch(&logged, &self.inner.catalog, &self.inner.limits, Some(m));
        m.lines_received
            .get_or_create(&crate::metrics::SourceLabel {
                source: source_kind(&logged.source).to_owned(),
            })
            .inc_by(outcome.accepted + outcome.rejected);
        PreparedBatch {
            logged,
            parsed,
            outcome,
        }
    }

    /// The ordering half of [`Pipeline::ingest`]: logs a prepared batch and waits for its
    /// acknowledgement.
    pub fn submit(&self, prepared: PreparedBatch) -> Result<BatchOutcome, PipelineError> {
        let PreparedBatch {
            logged,
            parsed,
            outcome,
        } = prepared;
        let m = &self.inner.metrics;
        let (events, probes) = (parsed.event_count as u64, parsed.probes.len() as u64);
        if !parsed.is_empty() {
            let (reply_tx, reply_rx) = sync_channel(1);
            m.queue_delta(1);
            let sent = self.submitter()?.send(Submit {
                logged,
                parsed,
                reply: reply_tx,
            });
            if sent.is_err() {
                m.queue_delta(-1);
                return Err(PipelineError::WriterGone);
            }
            match reply_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(PipelineError::WriterGone),
            }
        }
        // Counted once acknowledged, so the counters never include a batch that failed.
        for (kind, n) in [("service", events), ("probe", probes)] {
            m.ingested
                .get_or_create(&crate::metrics::KindLabel { kind: kind.into() })
                .inc_by(n);
        }
        Ok(outcome)
    }

    fn marker(&self, marker: Marker) -> Result<(), PipelineError> {
        let (reply_tx, reply_rx) = sync_channel(1);
        self.inner
            .markers
            .send(Control::Marker {
                marker,
                reply: Some(reply_tx),
            })
            .map_err(|_| PipelineError::WriterGone)?;
        match reply_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PipelineError::WriterGone),
        }
    }

    /// Closes every open rollup window and writes every buffered row to the lake, then
    /// returns. Blocking. Used at the end of an input and before shutdown.
    pub fn flush(&self) -> Result<(), PipelineError> {
        self.marker(Marker::Final)
    }

    /// Flushes everything and stops the threads. Further `ingest` calls fail with
    /// [`PipelineError::WriterGone`]. Blocking.
    pub fn shutdown(&self) -> Result<WriterStats, PipelineError> {
        let flushed = self.flush();
        // Dropping the last submitter makes the sequencer finish, then the writer.
        if let Ok(mut tx) = self.inner.submit.lock() {
            tx.take();
        }
        let handles: Vec<_> = self
            .inner
            .threads
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        if handles.is_empty() {
            return Err(PipelineError::WriterGone);
        }
        let mut stats = WriterStats::default();
        let mut first_err = flushed.err();
        for h in handles {
            match h.join() {
                Ok(Ok(s)) => stats = s,
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(PipelineError::WriterGone);
                }
            }
        }
        first_err.map_or(Ok(stats), Err)
    }
}

fn source_kind(source: &str) -> &str {
    source.split(':').next().unwrap_or(source)
}

/// Gives every batch and marker its log position, in one order for all: appends them to
/// the write-ahead log in groups (one write, one fsync for the group), then hands them to
/// the writer in that order and acknowledges the batches. Without a log it only numbers
/// and forwards.
struct Sequencer {
    wal: Option<WalWriter>,
    sync: Option<(WalSync, Duration)>,
    /// Next position when there is no log.
    next_lsn: u64,
    submits: Receiver<Submit>,
    markers: Receiver<Control>,
    writer: SyncSender<WriterMsg>,
    metrics: Arc<Metrics>,
    /// A log write failed: the log's tail is unknown, so nothing more is accepted.
    failed: bool,
}

/// Most bytes of batches logged as one group (one write, one fsync).
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

impl Sequencer {
    fn run(mut self) -> Result<WriterStats, PipelineError> {
        let mut last_sync = Instant::now();
        loop {
            let mut group = Vec::new();
            let mut disconnected = false;
            match self.submits.recv_timeout(Duration::from_millis(20)) {
                Ok(s) => group.push(s),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
            let mut bytes = group.first().map_or(0, |s| s.logged.data.len());
            while bytes < MAX_GROUP_BYTES {
                match self.submits.try_recv() {
                    Ok(s) => {
                        bytes += s.logged.data.len();
                        group.push(s);
                    }
                    Err(_) => break,
                }
            }
            let controls: Vec<Control> = self.markers.try_iter().collect();
            if group.is_empty() && controls.is_empty() {
                if let (Some(wal), Some((WalSync::Interval, every))) = (&mut self.wal, self.sync)
                    && last_sync.elapsed() >= every
                {
                    if let Err(e) = wal.sync() {
                        tracing::error!(error = %e, "write-ahead log fsync failed");
                    }
                    last_sync = Instant::now();
                }
                if disconnected {
                    return Ok(WriterStats::default());
                }
                continue;
            }
            self.metrics.queue_delta(-(group.len() as i64));
            self.sequence(group, controls, &mut last_sync);
            if disconnected {
                // Carry out markers sent just before the last submitter went away.
                let rest: Vec<Control> = self.markers.try_iter().collect();
                self.sequence(Vec::new(), rest, &mut last_sync);
                return Ok(WriterStats::default());
            }
        }
    }

    fn sequence(&mut self, group: Vec<Submit>, controls: Vec<Control>, last_sync: &mut Instant) {
        let mut lsns = Vec::with_capacity(group.len() + controls.len());
        let mut logged = Ok(());
        if self.failed {
            logged = Err(PipelineError::WalFailed);
        } else if let Some(wal) = &mut self.wal {
            for s in &group {
                // The logged form owns only refcounted bytes; no copy of the lines.
                lsns.push(wal.append(&RecordBody::Batch(s.logged.clone())));
            }
            for c in &controls {
                if let Control::Marker { marker, .. } = c {
                    lsns.push(wal.append(&RecordBody::Marker(*marker)));
                }
            }
            let always = matches!(self.sync, Some((WalSync::Always, _)));
            match wal.commit(always) {
                Ok(n) => {
                    self.metrics.wal_records.inc_by(lsns.len() as u64);
                    self.metrics.wal_bytes.inc_by(n as u64);
                    if always {
                        *last_sync = Instant::now();
                    }
                    Metrics::gauge_set(&self.metrics.wal_segments, wal.segments_on_disk);
                    let fsyncs = wal
                        .shared()
                        .fsyncs
                        .load(std::sync::atomic::Ordering::Relaxed);
                    let seen = self.metrics.wal_fsyncs.get();
                    self.metrics.wal_fsyncs.inc_by(fsyncs.saturating_sub(seen));
                }
                Err(e) => {
                    tracing::error!(error = %e, "write-ahead log write failed; refusing ingest until restart");
                    self.failed = true;
                    logged = Err(PipelineError::WalFailed);
                }
            }
        } else {
            for _ in 0..group.len() + controls.len() {
                lsns.push(self.next_lsn);
                self.next_lsn += 1;
            }
        }
        if let Err(e) = logged {
            for s in group {
                let _ = s.reply.send(Err(e.clone_kind()));
            }
            for c in controls {
                if let Control::Marker {
                    reply: Some(reply), ..
                } = c
                {
                    let _ = reply.send(Err(e.clone_kind()));
                }
            }
            return;
        }
        let mut lsns = lsns.into_iter();
        for s in group {
            let lsn = lsns.next().unwrap_or_default();
            let forwarded = self.writer.send(WriterMsg::Batch {
                lsn,
                parsed: s.parsed,
            });
            let _ = s
                .reply
                .send(forwarded.map_err(|_| PipelineError::WriterGone));
        }
        for c in controls {
            let msg = match c {
                Control::Marker { marker, reply } => WriterMsg::Marker {
                    lsn: lsns.next().unwrap_or_default(),
                    marker,
                    reply,
                },
                Control::Attach(o) => WriterMsg::AttachOutputs(o),
            };
            let _ = self.writer.send(msg);
        }
    }
}

struct WriterLoop {
    rx: Receiver<WriterMsg>,
    writer: LakeWriter,
    rollups: Rollups,
    metrics: Arc<Metrics>,
    tick: Duration,
    idle_after: Duration,
    flush_age: Duration,
    last_event: Instant,
    last_checkpoint: Instant,
    /// Something was applied since the last checkpoint.
    dirty: bool,
    /// A marker this loop asked for has not come back yet.
    marker_pending: bool,
    max_buffered_rows: usize,
    reported: WriterStats,
    outputs: Option<Outputs>,
    /// The log's directory, when there is a log (checkpoints go there).
    wal_dir: Option<PathBuf>,
    markers: Sender<Control>,
}

/// How long a lake write is retried at the same log position before the writer gives up
/// (and the processor stops acknowledging; a restart replays the log).
const WRITE_RETRY_FOR: Duration = Duration::from_secs(60);

impl WriterLoop {
    fn run(mut self) -> Result<WriterStats, PipelineError> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(WriterMsg::Batch { lsn, parsed }) => self.apply(lsn, parsed)?,
                Ok(WriterMsg::Marker { lsn, marker, reply }) => {
                    let r = self.execute(lsn, marker);
                    if let Some(reply) = reply {
                        let _ = reply.send(r.as_ref().map_err(PipelineError::clone_kind).copied());
                    }
                    r?;
                }
                Ok(WriterMsg::AttachOutputs(o)) => self.outputs = Some(*o),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.wal_dir.is_none() {
                        self.writer.flush_all()?;
                    }
                    self.report();
                    return Ok(self.writer.stats());
                }
            }
            if Instant::now() >= next_tick {
                self.housekeeping();
                next_tick = Instant::now() + self.tick;
            }
        }
    }

    /// Retries `op` (a flush at the current log position) until it succeeds: writing the
    /// same rows later under another position would break the replay's determinism.
    fn retry(
        &mut self,
        mut op: impl FnMut(&mut LakeWriter) -> Result<(), LakeError>,
    ) -> Result<(), PipelineError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match op(&mut self.writer) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.metrics.write_errors.inc();
                    if self.wal_dir.is_none() {
                        // No log: rows stay buffered and go with a later flush.
                        tracing::error!(error = %e, "lake write failed; rows kept in memory and retried");
                        return Ok(());
                    }
                    if started.elapsed() >= WRITE_RETRY_FOR {
                        return Err(PipelineError::Lake(e));
                    }
                    tracing::error!(error = %e, retry_in = ?backoff, "lake write failed; retrying at the same log position");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn position(&mut self, lsn: u64) {
        if self.wal_dir.is_some() {
            self.writer.set_position(lsn);
        }
    }

    /// Applies a batch. Everything here follows from the batch and the state alone (no
    /// clock), so a replay does exactly the same.
    fn apply(&mut self, lsn: u64, parsed: ParsedBatch) -> Result<(), PipelineError> {
        self.position(lsn);
        let now = Instant::now();
        let ParsedBatch {
            events,
            event_count,
            probes,
            dead,
        } = parsed;
        if event_count > 0 {
            self.last_event = now;
        }
        let mut late = 0;
        for chunk in &events {
            late += self.rollups.record_service_events(
                &chunk.service,
                &chunk.team,
                chunk.rollup_inputs(),
            );
        }
        if late > 0 {
            self.metrics.rollup_late_events.inc_by(late);
        }
        if let Some(o) = &mut self.outputs
            && !probes.is_empty()
        {
            o.on_probes(&probes);
        }
        let closed = self.rollups.drain_closed();
        let results = [
            self.writer.append_event_chunks(events, now),
            self.writer.append_probes(probes, now),
            self.writer.append_dead_letters(dead, now),
        ];
        if results.iter().any(Result::is_err) {
            self.retry(LakeWriter::flush_full)?;
        }
        self.emit_rollups(closed, now)?;
        if self.writer.buffered_rows() > self.max_buffered_rows {
            self.retry(LakeWriter::flush_all)?;
        }
        self.dirty = true;
        self.report();
        Ok(())
    }

    /// Carries out a logged decision.
    fn execute(&mut self, lsn: u64, marker: Marker) -> Result<(), PipelineError> {
        self.marker_pending = false;
        self.position(lsn);
        let now = Instant::now();
        match marker {
            Marker::Idle => {
                let rows = self.rollups.drain_all();
                self.dirty |= !rows.is_empty();
                self.emit_rollups(rows, now)?;
            }
            Marker::Checkpoint => self.checkpoint(lsn)?,
            Marker::Final => {
                let rows = self.rollups.drain_all();
                self.emit_rollups(rows, now)?;
                if let Some(o) = &mut self.outputs {
                    o.finish();
                }
                self.checkpoint(lsn)?;
            }
        }
        self.report();
        Ok(())
    }

    /// Writes every buffer and, with a log, saves the open windows as of `lsn` and lets
    /// the log segments before it go.
    fn checkpoint(&mut self, lsn: u64) -> Result<(), PipelineError> {
        self.retry(LakeWriter::flush_all)?;
        if let Some(dir) = &self.wal_dir {
            let cp = wal::Checkpoint {
                lsn,
                rollups: self.rollups.snapshot(),
            };
            let deleted = wal::write_checkpoint(dir, &cp)?;
            if deleted > 0 {
                self.metrics.wal_segments.inner().fetch_sub(
                    i64::try_from(deleted).unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        self.dirty = false;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Clock-driven decisions. With a log they are asked of the sequencer as markers, so
    /// they take a log position and a replay makes them at the same place; without one
    /// they are made on the spot.
    fn housekeeping(&mut self) {
        let now = Instant::now();
        let idle = now.duration_since(self.last_event) >= self.idle_after
            && self.rollups.open_windows() > 0;
        if self.wal_dir.is_some() {
            let marker = if idle {
                Some(Marker::Idle)
            } else if self.dirty && now.duration_since(self.last_checkpoint) >= self.flush_age {
                Some(Marker::Checkpoint)
            } else {
                None
            };
            if let Some(marker) = marker
                && !self.marker_pending
            {
                self.marker_pending = self
                    .markers
                    .send(Control::Marker {
                        marker,
                        reply: None,
                    })
                    .is_ok();
            }
        } else {
            if idle {
                // Input went quiet: nothing more will arrive for the open windows soon, so
                // emit them rather than hold them until traffic resumes.
                let rows = self.rollups.drain_all();
                let _ = self.emit_rollups(rows, now);
            }
            let r = self.writer.flush_due(now);
            if let Err(e) = r {
                self.metrics.write_errors.inc();
                tracing::error!(error = %e, "lake write failed; rows kept in memory and retried");
            }
        }
        self.report();
    }

    fn emit_rollups(
        &mut self,
        rows: Vec<telltale_core::RollupRow>,
        now: Instant,
    ) -> Result<(), PipelineError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.metrics.rollup_rows.inc_by(rows.len() as u64);
        if let Some(o) = &mut self.outputs {
            o.on_rollups(&rows);
        }
        if self.writer.append_rollups(rows, now).is_err() {
            self.retry(LakeWriter::flush_full)?;
        }
        Ok(())
    }

    /// Publishes the writer's cumulative stats as metric increments.
    fn report(&mut self) {
        let s = self.writer.stats();
        let (f, r) = (&s.files_written, &s.rows_written);
        let (pf, pr) = (&self.reported.files_written, &self.reported.rows_written);
        for (table, files, rows) in [
            ("events", f.events - pf.events, r.events - pr.events),
            ("rollups", f.rollups - pf.rollups, r.rollups - pr.rollups),
            ("probes", f.probes - pf.probes, r.probes - pr.probes),
            (
                "deadletter",
                f.dead_letters - pf.dead_letters,
                r.dead_letters - pr.dead_letters,
            ),
        ] {
            self.metrics.add_files(table, files, rows);
        }
        self.metrics
            .bytes_written
            .inc_by(s.bytes_written - self.reported.bytes_written);
        self.reported = s;
        Metrics::gauge_set(&self.metrics.buffered_rows, self.writer.buffered_rows());
        Metrics::gauge_set(&self.metrics.open_windows, self.rollups.open_windows());
        if let Some(max) = self.rollups.max_event_us() {
            let lag = (chrono::Utc::now().timestamp_micros() - max) as f64 / MICROS_PER_SEC as f64;
            self.metrics.event_lag_seconds.set(lag);
        }
    }
}
