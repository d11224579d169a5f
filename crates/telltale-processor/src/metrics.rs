//! Prometheus metrics of the processor, served at `GET /metrics`.
//!
//! Counters are also read back by the periodic one-line summary, so the log and the
//! scrape never disagree.

use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use telltale_core::RejectReason;

/// `reason` label of rejects.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A [`RejectReason::as_str`] value.
    pub reason: String,
}

/// `kind` label of ingested records: `service` or `probe`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Record kind.
    pub kind: String,
}

/// `table` label of lake writes: `events`, `rollups`, `probes`, `deadletter`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    /// Lake table.
    pub table: String,
}

/// `source` label of ingest: `http`, `stdin`, `file`, `embedded`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Where lines came from.
    pub source: String,
}

/// Every metric the processor exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records accepted, by kind.
    pub ingested: Family<KindLabel, Counter>,
    /// Lines rejected, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Lines received (accepted or rejected), by source.
    pub lines_received: Family<SourceLabel, Counter>,
    /// Accepted events whose service is not in the catalogue.
    pub unknown_service_events: Counter,
    /// Events too late for their rollup window (still written to the events table).
    pub rollup_late_events: Counter,
    /// Rollup rows emitted.
    pub rollup_rows: Counter,
    /// Files written to the lake, by table.
    pub files_written: Family<TableLabel, Counter>,
    /// Rows written to the lake, by table.
    pub rows_written: Family<TableLabel, Counter>,
    /// Bytes written to the lake.
    pub bytes_written: Counter,
    /// Failed lake writes (the rows stay buffered and are retried).
    pub write_errors: Counter,
    /// Batches waiting for the writer thread.
    pub queue_depth: Gauge<i64, AtomicI64>,
    /// Rows buffered in memory, not yet in a file.
    pub buffered_rows: Gauge<i64, AtomicI64>,
    /// Rollup windows still open.
    pub open_windows: Gauge<i64, AtomicI64>,
    /// Seconds between the newest event time seen and now (negative: ahead of the clock).
    pub event_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric, with every reject reason present at zero so
    /// dashboards and alert rules see the series before the first reject.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("telltale");
        let m = Self {
            ingested: Family::default(),
            rejected: Family::default(),
            lines_received: Family::default(),
            unknown_service_events: Counter::default(),
            rollup_late_events: Counter::default(),
            rollup_rows: Counter::default(),
            files_written: Family::default(),
            rows_written: Family::default(),
            bytes_written: Counter::default(),
            write_errors: Counter::default(),
            queue_depth: Gauge::default(),
            buffered_rows: Gauge::default(),
            open_windows: Gauge::default(),
            event_lag_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        for r in RejectReason::ALL {
            let _ = m.rejected.get_or_create(&ReasonLabel {
                reason: r.as_str().to_owned(),
            });
        }
        for k in ["service", "probe"] {
            let _ = m.ingested.get_or_create(&KindLabel { kind: k.to_owned() });
        }
        registry.register(
            "events_ingested",
            "Records accepted, by kind",
            m.ingested.clone(),
        );
        registry.register(
            "events_rejected",
            "Lines rejected, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "lines_received",
            "Lines received, by source",
            m.lines_received.clone(),
        );
        registry.register(
            "unknown_service_events",
            "Accepted events from services not in the catalogue",
            m.unknown_service_events.clone(),
        );
        registry.register(
            "rollup_late_events",
            "Events too late for their rollup window (kept in the events table)",
            m.rollup_late_events.clone(),
        );
        registry.register("rollup_rows", "Rollup rows emitted", m.rollup_rows.clone());
        registry.register(
            "lake_files_written",
            "Files written to the lake, by table",
            m.files_written.clone(),
        );
        registry.register(
            "lake_rows_written",
            "Rows written to the lake, by table",
            m.rows_written.clone(),
        );
        registry.register(
            "lake_bytes_written",
            "Bytes written to the lake",
            m.bytes_written.clone(),
        );
        registry.register(
            "lake_write_errors",
            "Failed lake writes (rows stay buffered and are retried)",
            m.write_errors.clone(),
        );
        registry.register(
            "queue_depth",
            "Batches waiting for the writer thread",
            m.queue_depth.clone(),
        );
        registry.register(
            "lake_buffered_rows",
            "Rows buffered in memory, not yet in a file",
            m.buffered_rows.clone(),
        );
        registry.register(
            "rollup_open_windows",
            "Rollup windows still open",
            m.open_windows.clone(),
        );
        registry.register(
            "event_lag_seconds",
            "Now minus the newest event time seen",
            m.event_lag_seconds.clone(),
        );
        Self { registry, ..m }
    }

    /// Prometheus/OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Total accepted records.
    pub fn ingested_total(&self) -> u64 {
        ["service", "probe"]
            .iter()
            .map(|k| {
                self.ingested
                    .get_or_create(&KindLabel {
                        kind: (*k).to_owned(),
                    })
                    .get()
            })
            .sum()
    }

    /// Total rejected lines.
    pub fn rejected_total(&self) -> u64 {
        RejectReason::ALL
            .iter()
            .map(|r| {
                self.rejected
                    .get_or_create(&ReasonLabel {
                        reason: r.as_str().to_owned(),
                    })
                    .get()
            })
            .sum()
    }

    /// Total files written, all tables.
    pub fn files_written_total(&self) -> u64 {
        ["events", "rollups", "probes", "deadletter"]
            .iter()
            .map(|t| {
                self.files_written
                    .get_or_create(&TableLabel {
                        table: (*t).to_owned(),
                    })
                    .get()
            })
            .sum()
    }

    pub(crate) fn reject(&self, reason: RejectReason) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().to_owned(),
            })
            .inc();
    }

    pub(crate) fn add_files(&self, table: &str, files: u64, rows: u64) {
        let l = TableLabel {
            table: table.to_owned(),
        };
        self.files_written.get_or_create(&l).inc_by(files);
        self.rows_written.get_or_create(&l).inc_by(rows);
    }

    pub(crate) fn gauge_set(g: &Gauge<i64, AtomicI64>, v: usize) {
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
    }

    pub(crate) fn queue_delta(&self, d: i64) {
        self.queue_depth.inner().fetch_add(d, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reject_reason_is_exported_at_zero() {
        let m = Metrics::new();
        let text = m.encode();
        for r in RejectReason::ALL {
            let line = format!(
                "telltale_events_rejected_total{{reason=\"{}\"}} 0",
                r.as_str()
            );
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        m.reject(RejectReason::MalformedJson);
        assert_eq!(m.rejected_total(), 1);
        assert!(
            m.encode()
                .contains("telltale_events_rejected_total{reason=\"malformed_json\"} 1")
        );
    }
}
