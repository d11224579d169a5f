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

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use telltale_core::config::PipelineConfig;
use telltale_core::event::MICROS_PER_SEC;
use telltale_core::parse::{Limits, RejectReason, Rejection, lines, parse_line};
use telltale_core::rollup::{Recorded, Rollups};
use telltale_core::{FlaggedEvent, ProbeEvent, Record, ServiceCatalog};
use telltale_lake::deadletter::DeadLetter;
use telltale_lake::error::LakeError;
use telltale_lake::store::LakeStore;
use telltale_lake::writer::{LakeWriter, WriterOptions, WriterStats};

use crate::metrics::Metrics;
use crate::outputs::Outputs;

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
}

/// A line that was too long to even buffer whole; the source cut it and kept a prefix.
#[derive(Debug, Clone)]
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

enum WriterMsg {
    Batch {
        events: Vec<FlaggedEvent>,
        probes: Vec<ProbeEvent>,
        dead: Vec<DeadLetter>,
    },
    /// Close every rollup window and write every buffer, then answer.
    Flush(SyncSender<Result<(), LakeError>>),
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
    /// Batches that may wait for the writer before `ingest` blocks.
    pub queue_capacity: usize,
    /// How often the writer closes windows and flushes aged partitions.
    pub tick: Duration,
}

impl PipelineSettings {
    /// Settings from the config files.
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
    tx: std::sync::Mutex<Option<SyncSender<WriterMsg>>>,
    thread: std::sync::Mutex<Option<JoinHandle<Result<WriterStats, LakeError>>>>,
}

impl std::fmt::Debug for WriterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterMsg::Batch {
                events,
                probes,
                dead,
            } => {
                write!(
                    f,
                    "Batch({} events, {} probes, {} dead)",
                    events.len(),
                    probes.len(),
                    dead.len()
                )
            }
            WriterMsg::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Pipeline {
    /// Starts the writer thread over `store`.
    /// `outputs` receives every emitted rollup row and probe (SLO engine, InfluxDB, alerts).
    pub fn start(
        settings: PipelineSettings,
        store: Arc<dyn LakeStore>,
        metrics: Arc<Metrics>,
        outputs: Option<Outputs>,
    ) -> Result<Self, PipelineError> {
        let (tx, rx) = sync_channel(settings.queue_capacity.max(1));
        let writer = LakeWriter::new(store, settings.writer)?;
        let rollups = Rollups::new(settings.rollup_window, settings.allowed_lateness);
        let worker = WriterLoop {
            rx,
            writer,
            rollups,
            metrics: Arc::clone(&metrics),
            tick: settings.tick,
            idle_after: settings.allowed_lateness.max(Duration::from_secs(1)),
            last_event: Instant::now(),
            reported: WriterStats::default(),
            outputs,
        };
        let thread = std::thread::Builder::new()
            .name("telltale-writer".into())
            .spawn(move || worker.run())
            .map_err(PipelineError::Spawn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                catalog: settings.catalog,
                limits: settings.limits,
                metrics,
                tx: std::sync::Mutex::new(Some(tx)),
                thread: std::sync::Mutex::new(Some(thread)),
            }),
        })
    }

    /// The metrics this pipeline updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The service catalogue.
    pub fn catalog(&self) -> &Arc<ServiceCatalog> {
        &self.inner.catalog
    }

    fn sender(&self) -> Result<SyncSender<WriterMsg>, PipelineError> {
        let guard = self
            .inner
            .tx
            .lock()
            .map_err(|_| PipelineError::WriterGone)?;
        guard.clone().ok_or(PipelineError::WriterGone)
    }

    /// Validates, flags and queues a batch. Blocking (parsing is CPU work and the queue
    /// may push back): call it from a blocking thread, not an async task.
    pub fn ingest(&self, batch: IngestBatch) -> Result<BatchOutcome, PipelineError> {
        let now_us = chrono::Utc::now().timestamp_micros();
        let m = &self.inner.metrics;
        let mut outcome = BatchOutcome::default();
        let mut events = Vec::new();
        let mut probes = Vec::new();
        let mut dead = Vec::new();
        let mut received = 0u64;
        let mut reject = |rejection: Rejection, raw: Vec<u8>, outcome: &mut BatchOutcome| {
            m.reject(rejection.reason);
            outcome.rejected += 1;
            if outcome.errors.len() < MAX_REPORTED_ERRORS {
                outcome.errors.push(rejection.clone());
            }
            dead.push(DeadLetter {
                received_at_us: now_us,
                source: batch.source.to_string(),
                rejection,
                raw,
            });
        };
        for o in &batch.oversize {
            received += 1;
            let rejection = Rejection {
                line: o.line,
                field: None,
                reason: RejectReason::LineTooLong,
                message: format!(
                    "line is {} bytes, over the limit of {} bytes",
                    o.len, self.inner.limits.max_line_bytes
                ),
            };
            reject(rejection, o.prefix.clone(), &mut outcome);
        }
        for (n, raw) in lines(&batch.data) {
            received += 1;
            let line_no = batch.first_line + n - 1;
            match parse_line(raw, line_no, now_us, &self.inner.limits) {
                Ok(Record::Service(ev)) => {
                    let (flagged, known) = self.inner.catalog.flag(ev);
                    if !known {
                        m.unknown_service_events.inc();
                    }
                    events.push(flagged);
                }
                Ok(Record::Probe(p)) => probes.push(p),
                Err(rejection) => reject(rejection, raw.to_vec(), &mut outcome),
            }
        }
        outcome.errors.sort_by_key(|r| r.line);
        outcome.accepted = (events.len() + probes.len()) as u64;
        m.lines_received
            .get_or_create(&crate::metrics::SourceLabel {
                source: source_kind(&batch.source).to_owned(),
            })
            .inc_by(received);
        m.ingested
            .get_or_create(&crate::metrics::KindLabel {
                kind: "service".into(),
            })
            .inc_by(events.len() as u64);
        m.ingested
            .get_or_create(&crate::metrics::KindLabel {
                kind: "probe".into(),
            })
            .inc_by(probes.len() as u64);
        if !(events.is_empty() && probes.is_empty() && dead.is_empty()) {
            let tx = self.sender()?;
            m.queue_delta(1);
            if tx
                .send(WriterMsg::Batch {
                    events,
                    probes,
                    dead,
                })
                .is_err()
            {
                m.queue_delta(-1);
                return Err(PipelineError::WriterGone);
            }
        }
        Ok(outcome)
    }

    /// Closes every open rollup window and writes every buffered row to the lake, then
    /// returns. Blocking. Used at the end of an input and before shutdown.
    pub fn flush(&self) -> Result<(), PipelineError> {
        let (reply_tx, reply_rx) = sync_channel(1);
        self.sender()?
            .send(WriterMsg::Flush(reply_tx))
            .map_err(|_| PipelineError::WriterGone)?;
        match reply_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PipelineError::Lake(e)),
            Err(_) => Err(PipelineError::WriterGone),
        }
    }

    /// Flushes everything and stops the writer thread. Further `ingest` calls fail with
    /// [`PipelineError::WriterGone`]. Blocking.
    pub fn shutdown(&self) -> Result<WriterStats, PipelineError> {
        // Dropping the last sender makes the writer drain, flush and exit.
        if let Ok(mut tx) = self.inner.tx.lock() {
            tx.take();
        }
        let handle = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        match handle {
            Some(h) => match h.join() {
                Ok(Ok(stats)) => Ok(stats),
                Ok(Err(e)) => Err(PipelineError::Lake(e)),
                Err(_) => Err(PipelineError::WriterGone),
            },
            None => Err(PipelineError::WriterGone),
        }
    }
}

fn source_kind(source: &str) -> &str {
    source.split(':').next().unwrap_or(source)
}

struct WriterLoop {
    rx: Receiver<WriterMsg>,
    writer: LakeWriter,
    rollups: Rollups,
    metrics: Arc<Metrics>,
    tick: Duration,
    idle_after: Duration,
    last_event: Instant,
    reported: WriterStats,
    outputs: Option<Outputs>,
}

impl WriterLoop {
    fn run(mut self) -> Result<WriterStats, LakeError> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(WriterMsg::Batch {
                    events,
                    probes,
                    dead,
                }) => {
                    self.metrics.queue_delta(-1);
                    self.apply(events, probes, dead);
                }
                Ok(WriterMsg::Flush(reply)) => {
                    let r = self.flush_everything();
                    let _ = reply.send(r);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let r = self.flush_everything();
                    return r.map(|()| self.writer.stats());
                }
            }
            if Instant::now() >= next_tick {
                self.housekeeping();
                next_tick = Instant::now() + self.tick;
            }
        }
    }

    fn apply(&mut self, events: Vec<FlaggedEvent>, probes: Vec<ProbeEvent>, dead: Vec<DeadLetter>) {
        let now = Instant::now();
        if !events.is_empty() {
            self.last_event = now;
        }
        for e in &events {
            if self.rollups.record(e) == Recorded::TooLate {
                self.metrics.rollup_late_events.inc();
            }
        }
        if let Some(o) = &mut self.outputs
            && !probes.is_empty()
        {
            o.on_probes(&probes);
        }
        let results = [
            self.writer.append_events(events, now),
            self.writer.append_probes(probes, now),
            self.writer.append_dead_letters(dead, now),
        ];
        for r in results {
            self.note_write_result(r);
        }
        self.report();
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        let mut rows = self.rollups.drain_closed();
        if now.duration_since(self.last_event) >= self.idle_after {
            // Input went quiet: nothing more will arrive for the open windows soon, so
            // emit them rather than hold them until traffic resumes.
            rows.extend(self.rollups.drain_all());
        }
        self.emit_rollups(rows, now);
        let r = self.writer.flush_due(now);
        self.note_write_result(r);
        self.report();
    }

    fn emit_rollups(&mut self, rows: Vec<telltale_core::RollupRow>, now: Instant) {
        if rows.is_empty() {
            return;
        }
        self.metrics.rollup_rows.inc_by(rows.len() as u64);
        if let Some(o) = &mut self.outputs {
            o.on_rollups(&rows);
        }
        let r = self.writer.append_rollups(rows, now);
        self.note_write_result(r);
    }

    fn flush_everything(&mut self) -> Result<(), LakeError> {
        let rows = self.rollups.drain_all();
        self.emit_rollups(rows, Instant::now());
        if let Some(o) = &mut self.outputs {
            o.finish();
        }
        let r = self.writer.flush_all();
        self.report();
        if r.is_err() {
            self.metrics.write_errors.inc();
        }
        r
    }

    fn note_write_result(&mut self, r: Result<(), LakeError>) {
        if let Err(e) = r {
            // Rows stay buffered in the writer and are retried on the next flush.
            self.metrics.write_errors.inc();
            tracing::error!(error = %e, "lake write failed; rows kept in memory and retried");
        }
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
