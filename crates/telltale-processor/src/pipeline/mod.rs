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

mod error;
mod messages;
mod prepare;
mod replay;
mod sequencer;
mod service_limit;
mod settings;
#[cfg(test)]
mod tests;
mod tracked;
mod writer;

use std::sync::Arc;
use std::sync::mpsc::{Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use telltale_core::ServiceCatalog;
use telltale_core::parse::Limits;
use telltale_core::rollup::Rollups;
use telltale_lake::store::LakeStore;
use telltale_lake::writer::{LakeWriter, WriterStats};

pub use crate::batch::{BatchOutcome, IngestBatch, MAX_REPORTED_ERRORS, OversizeLine};
pub use error::PipelineError;
pub use prepare::PreparedBatch;
pub use settings::{PipelineSettings, WalSettings};

use crate::metrics::Metrics;
use crate::outputs::Outputs;
use crate::wal::{self, LoggedBatch, Marker, WalOrderedStore, WalWriter};
use messages::{Control, Submit};
use prepare::parse_batch;
use sequencer::Sequencer;
use writer::WriterLoop;

/// Handle to a running pipeline; cheap to clone, safe to share across threads.
#[derive(Debug, Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<ServiceCatalog>,
    limits: Limits,
    /// The writer's tracked services, as it last published them (`service_limit`).
    tracked: tracked::SharedView,
    metrics: Arc<Metrics>,
    submit: std::sync::Mutex<Option<SyncSender<Submit>>>,
    markers: Sender<Control>,
    threads: std::sync::Mutex<Vec<JoinHandle<Result<WriterStats, PipelineError>>>>,
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
        let mut service_limit = service_limit::ServiceLimit::new(
            settings.max_services,
            Arc::clone(&settings.catalog),
            settings.limits.clone(),
        );
        let (wal, store, checkpoint_lsn, recovered) = match &settings.wal {
            Some(w) => {
                let cp = wal::read_checkpoint(&w.dir)?;
                let after = cp.as_ref().map_or(0, |c| c.lsn);
                if let Some(cp) = &cp {
                    rollups
                        .restore(&cp.rollups)
                        .map_err(|e| PipelineError::Replay(e.to_string()))?;
                    service_limit.restore(&cp.services);
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
        let tracked = service_limit.shared_view();
        let mut worker = WriterLoop {
            rx: writer_rx,
            writer,
            rollups,
            service_limit,
            over_limit_logged: None,
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
            replay::replay(
                &mut worker,
                wal,
                recovered,
                checkpoint_lsn,
                &settings,
                &metrics,
            )?;
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
                tracked,
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
            rejected: batch.rejected,
            data: batch.data,
        };
        let m = &self.inner.metrics;
        let tracked = Arc::clone(&self.inner.tracked.read().unwrap_or_else(|e| e.into_inner()));
        let (parsed, outcome) = parse_batch(
            &logged,
            &self.inner.catalog,
            &self.inner.limits,
            &tracked,
            Some(m),
        );
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
        let checks = parsed.check_count() as u64;
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
        for (kind, n) in [("service", events), ("probe", probes), ("http", checks)] {
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
