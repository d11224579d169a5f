//! The sequencer thread: gives every batch and marker its log position, in one order for
//! all, logs them in groups (one write and one fsync per group: group commit), then hands
//! them to the writer in that order and acknowledges the batches.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use telltale_core::config::WalSync;
use telltale_lake::writer::WriterStats;

use super::error::PipelineError;
use super::messages::{Control, Submit, WriterMsg};
use crate::metrics::Metrics;
use crate::wal::{RecordBody, WalWriter};

/// Gives every batch and marker its log position, in one order for all: appends them to
/// the write-ahead log in groups (one write, one fsync for the group), then hands them to
/// the writer in that order and acknowledges the batches. Without a log it only numbers
/// and forwards.
pub(super) struct Sequencer {
    pub(super) wal: Option<WalWriter>,
    pub(super) sync: Option<(WalSync, Duration)>,
    /// Next position when there is no log.
    pub(super) next_lsn: u64,
    pub(super) submits: Receiver<Submit>,
    pub(super) markers: Receiver<Control>,
    pub(super) writer: SyncSender<WriterMsg>,
    pub(super) metrics: Arc<Metrics>,
    /// A log write failed and cutting the log back failed too: the tail is unknown, so
    /// nothing is logged until a cut succeeds (tried before every group).
    pub(super) failed: bool,
}

/// Most bytes of batches logged as one group (one write, one fsync).
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

impl Sequencer {
    pub(super) fn run(mut self) -> Result<WriterStats, PipelineError> {
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
        // Outputs go to the writer before anything that arrived with them: they were
        // attached before those batches were submitted (regression: issue #12, item 2,
        // the rollups of a fast input's first batches never reached InfluxDB or the SLO
        // engine). They are not logged, so a failed log does not hold them back either.
        let mut markers = Vec::with_capacity(controls.len());
        for c in controls {
            match c {
                Control::Attach(o) => {
                    let _ = self.writer.send(WriterMsg::AttachOutputs(o));
                }
                Control::Marker { marker, reply } => markers.push((marker, reply)),
            }
        }
        let mut lsns = Vec::with_capacity(group.len() + markers.len());
        let mut logged = Ok(());
        if self.failed
            && let Some(wal) = &mut self.wal
        {
            // The last group's write failed (a full disk, say): cut the log back to its
            // last complete group and try again with this one.
            match wal.rollback() {
                Ok(()) => {
                    tracing::info!(
                        "write-ahead log cut back to its last complete group; logging again"
                    );
                    self.failed = false;
                }
                Err(e) => tracing::error!(error = %e, "write-ahead log still cannot be cut back"),
            }
        }
        if self.failed {
            logged = Err(PipelineError::WalFailed);
        } else if let Some(wal) = &mut self.wal {
            for s in &group {
                // The logged form owns only refcounted bytes; no copy of the lines.
                lsns.push(wal.append(&RecordBody::Batch(s.logged.clone())));
            }
            for (marker, _) in &markers {
                lsns.push(wal.append(&RecordBody::Marker(*marker)));
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
                    tracing::error!(error = %e, batches = group.len(), "write-ahead log write failed; these batches are refused (503), the next are tried again");
                    self.metrics.wal_write_errors.inc();
                    // Cut back now, so that the space the failed write took is free
                    // again; if that fails too, the next group tries first.
                    self.failed = wal.rollback().is_err();
                    logged = Err(PipelineError::WalFailed);
                }
            }
        } else {
            for _ in 0..group.len() + markers.len() {
                lsns.push(self.next_lsn);
                self.next_lsn += 1;
            }
        }
        if let Err(e) = logged {
            for s in group {
                let _ = s.reply.send(Err(e.clone_kind()));
            }
            for reply in markers.into_iter().filter_map(|(_, reply)| reply) {
                let _ = reply.send(Err(e.clone_kind()));
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
        for (marker, reply) in markers {
            let _ = self.writer.send(WriterMsg::Marker {
                lsn: lsns.next().unwrap_or_default(),
                marker,
                reply,
            });
        }
    }
}
