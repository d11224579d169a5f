//! Start-up replay: what the write-ahead log holds past its checkpoint is applied to the
//! writer exactly as the first time (the same parse, the same positions), then a
//! checkpoint, so the lake holds everything acknowledged before a crash before any output
//! starts. Lake files are named after log positions, so a replay never writes a row twice.

use telltale_lake::writer::LakeWriter;

use super::error::PipelineError;
use super::prepare::parse_batch;
use super::settings::PipelineSettings;
use super::writer::WriterLoop;
use crate::metrics::Metrics;
use crate::wal::{Marker, RecordBody, WalWriter};

/// Replays `recovered` (the records after the checkpoint at `checkpoint_lsn`) into
/// `worker`, then checkpoints when anything was replayed or there was no checkpoint yet.
pub(super) fn replay(
    worker: &mut WriterLoop,
    wal: &mut WalWriter,
    recovered: Vec<(u64, RecordBody)>,
    checkpoint_lsn: u64,
    settings: &PipelineSettings,
    metrics: &Metrics,
) -> Result<(), PipelineError> {
    let replayed = recovered.len();
    for (lsn, body) in recovered {
        match body {
            RecordBody::Batch(b) => {
                let tracked = worker.service_limit.view();
                let (parsed, _) =
                    parse_batch(&b, &settings.catalog, &settings.limits, &tracked, None);
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
        let s = LakeWriter::stats(&worker.writer);
        tracing::info!(
            records = replayed,
            files_written = s.files_written.total(),
            files_already_committed = s.files_already_committed,
            "write-ahead log replayed into the lake"
        );
    }
    Metrics::gauge_set(&metrics.wal_segments, wal.segments_on_disk);
    Ok(())
}
