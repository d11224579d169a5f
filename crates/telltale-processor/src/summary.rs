//! The periodic one-line summary: events/s, accepted, rejected, files written, buffered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// Totals at one instant, for computing rates between two summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Accepted records.
    pub accepted: u64,
    /// Rejected lines.
    pub rejected: u64,
    /// Files written.
    pub files: u64,
}

impl Snapshot {
    /// Reads the metrics now.
    pub fn take(m: &Metrics) -> Self {
        Self {
            accepted: m.ingested_total(),
            rejected: m.rejected_total(),
            files: m.files_written_total(),
        }
    }
}

/// One summary line from two snapshots `elapsed` apart.
pub fn line(prev: Snapshot, now: Snapshot, elapsed: Duration, buffered: i64) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{:.0} events/s, {} accepted, {} rejected (+{}), {} files written, {} rows buffered",
        (now.accepted - prev.accepted) as f64 / secs,
        now.accepted,
        now.rejected,
        now.rejected - prev.rejected,
        now.files,
        buffered,
    )
}

/// The `pipeline` InfluxDB point for the interval between two snapshots.
pub fn pipeline_point(
    m: &Metrics,
    prev: Snapshot,
    now: Snapshot,
    elapsed: Duration,
) -> telltale_influx::PipelinePoint {
    let rejected_by_reason = telltale_core::RejectReason::ALL
        .iter()
        .map(|r| {
            let label = crate::metrics::ReasonLabel {
                reason: r.as_str().to_owned(),
            };
            (
                r.as_str().to_owned(),
                m.rejected.get_or_create(&label).get(),
            )
        })
        .collect();
    telltale_influx::PipelinePoint {
        at_us: chrono::Utc::now().timestamp_micros(),
        ingest_rate: (now.accepted - prev.accepted) as f64 / elapsed.as_secs_f64().max(1e-9),
        accepted_total: now.accepted,
        rejected_total: now.rejected,
        rejected_by_reason,
        lag_seconds: m.event_lag_seconds.get(),
        queue_depth: m.queue_depth.get().max(0) as u64,
        buffered_rows: m.buffered_rows.get().max(0) as u64,
        files_written_total: now.files,
    }
}

/// Logs a summary line every `interval` until `shutdown` turns true, and pushes the same
/// numbers to InfluxDB as a `pipeline` point when a sink is given.
pub async fn run(
    metrics: Arc<Metrics>,
    interval: Duration,
    influx: Option<telltale_influx::InfluxSink>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut prev = Snapshot::take(&metrics);
    let mut at = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = Snapshot::take(&metrics);
        let elapsed = at.elapsed();
        let text = line(prev, now, elapsed, metrics.buffered_rows.get());
        if let Some(sink) = &influx {
            sink.send(&[pipeline_point(&metrics, prev, now, elapsed)]);
        }
        tracing::info!(
            accepted = now.accepted,
            rejected = now.rejected,
            files = now.files,
            "{text}"
        );
        prev = now;
        at = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_reads_well() {
        let a = Snapshot {
            accepted: 100,
            rejected: 1,
            files: 2,
        };
        let b = Snapshot {
            accepted: 600,
            rejected: 3,
            files: 5,
        };
        assert_eq!(
            line(a, b, Duration::from_secs(5), 42),
            "100 events/s, 600 accepted, 3 rejected (+2), 5 files written, 42 rows buffered"
        );
    }
}
