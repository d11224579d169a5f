//! The writer thread: the single owner of everything stateful on the ingest path — the
//! open rollup windows and the lake's per-partition buffers — so the hot path takes no
//! locks. It applies batches and markers in log order, emits closed windows to the lake and
//! the outputs, and makes the clock-driven decisions (idle input, checkpoints, aged
//! partitions) as markers, so a replay makes them at the same place.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use telltale_core::event::MICROS_PER_SEC;
use telltale_core::rollup::Rollups;
use telltale_lake::chunk::EventChunk;
use telltale_lake::deadletter::DeadLetter;
use telltale_lake::error::LakeError;
use telltale_lake::writer::{LakeWriter, WriterStats};

use super::error::PipelineError;
use super::messages::{Control, WriterMsg};
use super::prepare::{CheckBatch, FirstSeen, ParsedBatch, PendingService, ProbeSli};
use super::service_limit::ServiceLimit;
use crate::metrics::Metrics;
use crate::outputs::Outputs;
use crate::wal::{self, Marker};

pub(super) struct WriterLoop {
    pub(super) rx: Receiver<WriterMsg>,
    pub(super) writer: LakeWriter,
    pub(super) rollups: Rollups,
    pub(super) metrics: Arc<Metrics>,
    pub(super) tick: Duration,
    pub(super) idle_after: Duration,
    pub(super) flush_age: Duration,
    pub(super) last_event: Instant,
    pub(super) last_checkpoint: Instant,
    /// Something was applied since the last checkpoint.
    pub(super) dirty: bool,
    /// A marker this loop asked for has not come back yet.
    pub(super) marker_pending: bool,
    pub(super) max_buffered_rows: usize,
    pub(super) reported: WriterStats,
    pub(super) outputs: Option<Outputs>,
    /// Which services are tracked (`limits.max_services`).
    pub(super) service_limit: ServiceLimit,
    /// When the service limit was last reported in the log.
    pub(super) over_limit_logged: Option<Instant>,
    /// The log's directory, when there is a log (checkpoints go there).
    pub(super) wal_dir: Option<PathBuf>,
    pub(super) markers: Sender<Control>,
}

/// Longest pause between two attempts of a failed lake write.
const WRITE_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(5);

impl WriterLoop {
    pub(super) fn run(mut self) -> Result<WriterStats, PipelineError> {
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
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u64;
        loop {
            match op(&mut self.writer) {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "lake write succeeded again; writing resumes");
                    }
                    return Ok(());
                }
                Err(e) => {
                    self.metrics.write_errors.inc();
                    failures += 1;
                    if self.wal_dir.is_none() {
                        // No log: rows stay buffered and go with a later flush.
                        tracing::error!(error = %e, "lake write failed; rows kept in memory and retried");
                        return Ok(());
                    }
                    // A full disk gets space back, a failing one is replaced: retry until
                    // it works (ingest backs up meanwhile and is answered 429/503).
                    tracing::error!(error = %e, failures, retry_in = ?backoff, "lake write failed; retrying at the same log position");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(WRITE_RETRY_MAX_BACKOFF);
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
    pub(super) fn apply(&mut self, lsn: u64, parsed: ParsedBatch) -> Result<(), PipelineError> {
        self.position(lsn);
        let now = Instant::now();
        let ParsedBatch {
            mut events,
            pending,
            first_seen,
            event_count,
            probes,
            probe_slis,
            checks,
            mut dead,
            received_at_us,
            source,
        } = parsed;
        let CheckBatch {
            results: checks,
            slis: check_slis,
        } = checks.map(|c| *c).unwrap_or_default();
        // Probe echoes and check results are rollup events too: a probes-only or
        // checks-only input is not idle.
        if event_count > 0 || !probe_slis.is_empty() || !check_slis.is_empty() {
            self.last_event = now;
        }
        self.set_aside_over_limit(
            &mut events,
            pending,
            first_seen,
            &mut dead,
            received_at_us,
            &source,
        );
        let mut late = 0;
        for chunk in &events {
            late += self.rollups.record_service_events(
                &chunk.service,
                &chunk.team,
                chunk.rollup_inputs(),
            );
        }
        for sli in probe_slis {
            late += self
                .rollups
                .record_service_events(&sli.target, &sli.team, sli.events);
        }
        self.record_check_slis(check_slis, &mut late);
        if late > 0 {
            self.metrics.rollup_late_events.inc_by(late);
        }
        if let Some(o) = &mut self.outputs
            && !probes.is_empty()
        {
            o.on_probes(&probes);
        }
        if let Some(o) = &mut self.outputs
            && !checks.is_empty()
        {
            o.on_checks(&checks);
        }
        let closed = self.rollups.drain_closed();
        let results = [
            self.writer.append_event_chunks(events, now),
            self.writer.append_probes(probes, now),
            self.writer.append_checks(checks, now),
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

    /// Records the SLI events of check results in the rollups under their monitor's URL,
    /// which counts towards `limits.max_services` like a service (decided here, in log
    /// order; a `[monitors."<url>"]` table is always admitted). A URL past the limit gets
    /// no rollups or SLOs; its results are still stored (lake, sinks) and its events
    /// counted in `telltale_events_over_service_limit_total`.
    fn record_check_slis(&mut self, slis: Vec<ProbeSli>, late: &mut u64) {
        let mut over = 0;
        for sli in slis {
            let url: Arc<str> = Arc::from(sli.target.as_str());
            if !self.service_limit.admit(&url) {
                over += sli.events.len() as u64;
                continue;
            }
            *late += self
                .rollups
                .record_service_events(&sli.target, &sli.team, sli.events);
        }
        self.service_limit.publish();
        Metrics::gauge_set(&self.metrics.tracked_services, self.service_limit.tracked());
        if over > 0 {
            self.metrics.events_over_service_limit.inc_by(over);
        }
    }

    /// Moves the events of services past `limits.max_services` into `dead`, whole and
    /// with the reason, and gives admitted held-back lines their chunks (see
    /// `service_limit`).
    fn set_aside_over_limit(
        &mut self,
        events: &mut Vec<EventChunk>,
        pending: Vec<PendingService>,
        first_seen: Vec<FirstSeen>,
        dead: &mut Vec<DeadLetter>,
        received_at_us: i64,
        source: &str,
    ) {
        let set_aside =
            self.service_limit
                .sort_batch(events, pending, first_seen, received_at_us, source);
        self.service_limit.publish();
        Metrics::gauge_set(&self.metrics.tracked_services, self.service_limit.tracked());
        for letter in &set_aside.unparsed {
            self.metrics.reject(letter.rejection.reason);
            tracing::error!(line = letter.rejection.line, reason = %letter.rejection.message,
                "a held-back line did not parse again; kept in the dead letter (a bug: please report)");
        }
        dead.extend(set_aside.unparsed);
        if set_aside.events == 0 {
            return;
        }
        dead.extend(set_aside.dead);
        self.metrics
            .events_over_service_limit
            .inc_by(set_aside.events);
        // One line a minute at most: an attack of new names must not flood the log.
        let due = self
            .over_limit_logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
        if due {
            self.over_limit_logged = Some(Instant::now());
            tracing::warn!(
                tracked = self.service_limit.tracked(),
                max_services = self.service_limit.max(),
                example = set_aside.first.as_deref().unwrap_or_default(),
                "events of services past limits.max_services go to the dead letter \
                 (telltale_events_over_service_limit_total counts them)"
            );
        }
    }

    /// Carries out a logged decision.
    pub(super) fn execute(&mut self, lsn: u64, marker: Marker) -> Result<(), PipelineError> {
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
                services: self.service_limit.snapshot(),
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
                "monitors",
                f.monitors - pf.monitors,
                r.monitors - pr.monitors,
            ),
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
