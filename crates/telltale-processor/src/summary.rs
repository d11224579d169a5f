//! The periodic one-line summary: events/s, accepted, rejected, refused for overload, files
//! written, buffered, workers; and the `pipeline` InfluxDB point with the same numbers.

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
    /// Request body bytes offered to HTTP ingest, refused requests included.
    pub offered_bytes: u64,
    /// Request body bytes of ingest requests that were processed.
    pub accepted_bytes: u64,
    /// Ingest requests refused for overload.
    pub overload_rejected: u64,
    /// Processing workers running at that instant (a gauge, not a total).
    pub workers: u64,
}

impl Snapshot {
    /// Reads the metrics now.
    pub fn take(m: &Metrics) -> Self {
        Self {
            accepted: m.ingested_total(),
            rejected: m.rejected_total(),
            files: m.files_written_total(),
            offered_bytes: m.offered_bytes.get(),
            accepted_bytes: m.accepted_bytes.get(),
            overload_rejected: m.overload_rejections_total(),
            workers: gauge_u64(m.workers.get()),
        }
    }
}

/// A gauge that counts things, as the unsigned number it is (never negative in practice;
/// a transient negative from racing increments and decrements reads as 0).
fn gauge_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Per second over `elapsed`, from two readings of a counter.
fn per_second(prev: u64, now: u64, elapsed: Duration) -> f64 {
    now.saturating_sub(prev) as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// One summary line from two snapshots `elapsed` apart. Requests refused for overload
/// show only once there are any, the worker count only while a worker pool runs.
pub fn line(prev: Snapshot, now: Snapshot, elapsed: Duration, buffered: i64) -> String {
    let mut text = format!(
        "{:.0} events/s, {} accepted, {} rejected (+{})",
        per_second(prev.accepted, now.accepted, elapsed),
        now.accepted,
        now.rejected,
        now.rejected.saturating_sub(prev.rejected),
    );
    if now.overload_rejected > 0 {
        text += &format!(", {} refused for overload", now.overload_rejected);
    }
    text += &format!(", {} files written, {} rows buffered", now.files, buffered);
    if now.workers > 0 {
        let plural = if now.workers == 1 { "" } else { "s" };
        text += &format!(", {} worker{plural}", now.workers);
    }
    text
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
        ingest_rate: per_second(prev.accepted, now.accepted, elapsed),
        accepted_total: now.accepted,
        rejected_total: now.rejected,
        rejected_by_reason,
        lag_seconds: m.event_lag_seconds.get(),
        queue_depth: gauge_u64(m.queue_depth.get()),
        buffered_rows: gauge_u64(m.buffered_rows.get()),
        files_written_total: now.files,
        offered_bytes_rate: per_second(prev.offered_bytes, now.offered_bytes, elapsed),
        accepted_bytes_rate: per_second(prev.accepted_bytes, now.accepted_bytes, elapsed),
        overload_rejected_total: now.overload_rejected,
        workers: now.workers,
        scale_ups_total: m.autoscale_total("up"),
        scale_downs_total: m.autoscale_total("down"),
        parse_backlog: gauge_u64(m.parse_backlog.get()),
        cpu_cores_used: m.cpu_cores_used.get(),
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
            ..Snapshot::default()
        };
        let b = Snapshot {
            accepted: 600,
            rejected: 3,
            files: 5,
            ..Snapshot::default()
        };
        assert_eq!(
            line(a, b, Duration::from_secs(5), 42),
            "100 events/s, 600 accepted, 3 rejected (+2), 5 files written, 42 rows buffered"
        );
        let overloaded = Snapshot {
            overload_rejected: 17,
            workers: 3,
            ..b
        };
        assert_eq!(
            line(a, overloaded, Duration::from_secs(5), 42),
            "100 events/s, 600 accepted, 3 rejected (+2), 17 refused for overload, \
             5 files written, 42 rows buffered, 3 workers"
        );
        let one = Snapshot { workers: 1, ..b };
        assert!(line(a, one, Duration::from_secs(5), 0).ends_with(", 1 worker"));
    }

    #[test]
    fn pipeline_point_carries_load_and_scaling() {
        let m = Metrics::new();
        let prev = Snapshot::take(&m);
        m.offered_bytes.inc_by(3_000);
        m.accepted_bytes.inc_by(2_000);
        m.overload_rejections
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: "queue".to_owned(),
            })
            .inc_by(4);
        m.workers.set(3);
        m.parse_backlog.set(7);
        m.cpu_cores_used.set(1.5);
        for (direction, n) in [("up", 2), ("down", 1)] {
            m.autoscale_decisions
                .get_or_create(&crate::metrics::DirectionLabel {
                    direction: direction.to_owned(),
                })
                .inc_by(n);
        }
        let now = Snapshot::take(&m);
        let p = pipeline_point(&m, prev, now, Duration::from_secs(2));
        assert_eq!(p.offered_bytes_rate, 1_500.0);
        assert_eq!(p.accepted_bytes_rate, 1_000.0);
        assert_eq!(p.overload_rejected_total, 4);
        assert_eq!(p.workers, 3);
        assert_eq!((p.scale_ups_total, p.scale_downs_total), (2, 1));
        assert_eq!(p.parse_backlog, 7);
        assert_eq!(p.cpu_cores_used, 1.5);
    }
}
