//! Prometheus metrics of the processor, served at `GET /metrics`.
//!
//! Counters are also read back by the periodic one-line summary, so the log and the
//! scrape never disagree.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use telltale_influx::InfluxStatsReader;

use crate::outputs::SloView;
use crate::sinks::alertmanager::NotifierStats;
use telltale_core::RejectReason;

/// `reason` label of rejects.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A [`RejectReason::as_str`] value.
    pub reason: String,
}

/// The `kind` values of `telltale_events_ingested_total`: service events, probes and URL
/// check results (`http`, the lines' `kind`).
pub const INGESTED_KINDS: [&str; 3] = ["service", "probe", "http"];

/// `kind` label of ingested records: one of [`INGESTED_KINDS`].
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

/// `code` label of HTTP ingest responses: `200`, `400`, `429`, `503`, ...
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// HTTP status code.
    pub code: String,
}

/// `direction` label of autoscaling decisions: `up` or `down`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// Which way the worker count moved.
    pub direction: String,
}

/// Reasons an ingest request is refused for overload (the `reason` label of
/// `telltale_overload_rejections_total`).
pub const OVERLOAD_REASONS: [&str; 3] = ["memory", "queue", "shutting_down"];

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
    /// Valid events of services past `limits.max_services`, kept in the dead letter.
    pub events_over_service_limit: Counter,
    /// `POST /v1/events` requests being handled now (a shutdown waits for them).
    pub ingest_requests_in_flight: Gauge<i64, AtomicI64>,
    /// Services tracked now (at most `limits.max_services` plus the catalogue's).
    pub tracked_services: Gauge<i64, AtomicI64>,
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
    /// `POST /v1/events` responses, by status code.
    pub http_responses: Family<CodeLabel, Counter>,
    /// Ingest requests refused with 429/503 before processing, by reason
    /// ([`OVERLOAD_REASONS`]).
    pub overload_rejections: Family<ReasonLabel, Counter>,
    /// Request body bytes offered to `POST /v1/events` (including refused requests).
    pub offered_bytes: Counter,
    /// Request body bytes of requests that were processed (2xx or 400).
    pub accepted_bytes: Counter,
    /// Request body bytes held in memory by requests in flight.
    pub inflight_bytes: Gauge<i64, AtomicI64>,
    /// Ingest batches waiting for a processing worker.
    pub parse_backlog: Gauge<i64, AtomicI64>,
    /// Processing workers running now.
    pub workers: Gauge<i64, AtomicI64>,
    /// OTLP spans that are not requests of their service (client, internal, producer,
    /// unspecified kinds), dropped, by kind.
    pub otlp_spans_skipped: Family<KindLabel, Counter>,
    /// OTLP log records without a status code (not requests), dropped.
    pub otlp_log_records_skipped: Counter,
    /// Autoscaling decisions, by direction.
    pub autoscale_decisions: Family<DirectionLabel, Counter>,
    /// CPU used by the process over the last autoscaler interval, in cores (1.0 = one core busy).
    pub cpu_cores_used: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Records appended to the write-ahead log.
    pub wal_records: Counter,
    /// Bytes appended to the write-ahead log.
    pub wal_bytes: Counter,
    /// fsync calls on the write-ahead log (one per group commit under `sync = always`).
    pub wal_fsyncs: Counter,
    /// Group commits to the write-ahead log that failed (disk full or failing); their
    /// batches were answered 503.
    pub wal_write_errors: Counter,
    /// Write-ahead log segment files on disk.
    pub wal_segments: Gauge<i64, AtomicI64>,
    /// Records replayed from the write-ahead log at start.
    pub wal_replayed_records: Counter,
}

/// The outputs' own counters, exported with the processor's metrics: the InfluxDB
/// sink's (`telltale_influx_*`) and the Alertmanager delivery's (`telltale_alertmanager_*`).
/// Either may be absent (output disabled); its series are then not exported.
#[derive(Debug, Default)]
pub struct OutputStats {
    /// The InfluxDB sink, when enabled.
    pub influx: Option<InfluxStatsReader>,
    /// Alertmanager delivery, when enabled.
    pub alertmanager: Option<Arc<NotifierStats>>,
    /// The SLO engine's counts, when it runs.
    pub slo: Option<Arc<SloView>>,
    /// The PostgreSQL sink, when enabled, and the results it could not store (one-off
    /// checks without a monitor).
    pub postgres: Option<(
        telltale_postgres::PostgresSink,
        Arc<std::sync::atomic::AtomicU64>,
    )>,
}

impl Collector for OutputStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut counter = |name: &str, help: &str, value: u64| {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
        };
        let influx = self.influx.as_ref().map(InfluxStatsReader::stats);
        if let Some(s) = &influx {
            counter(
                "influx_points_received",
                "Points handed to the InfluxDB sink",
                s.points_received,
            )?;
            counter(
                "influx_points_sent",
                "Points InfluxDB acknowledged",
                s.points_sent,
            )?;
            counter(
                "influx_requests_sent",
                "Successful InfluxDB write requests",
                s.requests_sent,
            )?;
            counter(
                "influx_bytes_sent",
                "Request bytes InfluxDB acknowledged (after gzip)",
                s.bytes_sent,
            )?;
            counter(
                "influx_retries",
                "InfluxDB writes that failed and were retried",
                s.retries,
            )?;
            counter(
                "influx_points_spilled",
                "Points moved from memory to the spool",
                s.points_spilled,
            )?;
            counter(
                "influx_points_dropped",
                "Points lost: evicted from a full spool or not spillable",
                s.points_dropped,
            )?;
            counter(
                "influx_points_dead_lettered",
                "Points in batches InfluxDB refused, kept in dead-letter files",
                s.points_dead_lettered,
            )?;
        }
        let postgres = self
            .postgres
            .as_ref()
            .map(|(p, skipped)| (p.stats(), skipped.load(Ordering::Relaxed)));
        if let Some((s, skipped)) = &postgres {
            for (name, help, value) in [
                (
                    "postgres_results_received",
                    "URL check results handed to the PostgreSQL sink",
                    s.received,
                ),
                (
                    "postgres_results_inserted",
                    "Results inserted into monitor_results",
                    s.inserted,
                ),
                (
                    "postgres_results_duplicate",
                    "Results written again that were already stored (retries, replays)",
                    s.duplicates,
                ),
                (
                    "postgres_results_refused",
                    "Results PostgreSQL refused, kept in deadletter/postgres/",
                    s.refused,
                ),
                (
                    "postgres_results_dropped",
                    "Results dropped from a full spool (postgres.spool_max_bytes)",
                    s.dropped,
                ),
                (
                    "postgres_failures",
                    "Failed connections and batches lost to the connection (retried)",
                    s.failures,
                ),
                (
                    "postgres_results_skipped",
                    "One-off check results without a monitor: not stored in PostgreSQL",
                    *skipped,
                ),
            ] {
                counter(name, help, value)?;
            }
        }
        if let Some(am) = &self.alertmanager {
            counter(
                "alertmanager_posts_ok",
                "Successful posts to Alertmanager",
                am.posts_ok.load(Ordering::Relaxed),
            )?;
            counter(
                "alertmanager_posts_failed",
                "Failed posts to Alertmanager (each retried)",
                am.posts_failed.load(Ordering::Relaxed),
            )?;
        }
        if let Some(view) = &self.slo {
            counter(
                "slo_untracked_rows",
                "Rollup rows of uncatalogued services past the SLO engine's cap (100): in the lake and InfluxDB, not in SLOs or on the status page",
                view.untracked_rows.load(Ordering::Relaxed),
            )?;
            let g = ConstGauge::new(
                i64::try_from(view.services.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            );
            g.encode(encoder.encode_descriptor(
                "slo_services",
                "Services the SLO engine tracks (all catalogued ones, uncatalogued up to 100)",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Some(s) = &influx {
            for (name, help, value) in [
                (
                    "influx_queued_points",
                    "Points in memory waiting to be sent to InfluxDB",
                    s.queued_points,
                ),
                (
                    "influx_spooled_points",
                    "Points in the InfluxDB spool on disk",
                    s.spooled_points,
                ),
                (
                    "influx_spooled_bytes",
                    "Bytes in the InfluxDB spool on disk",
                    s.spooled_bytes,
                ),
            ] {
                let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        if let Some((s, _)) = &postgres {
            for (name, help, value) in [
                (
                    "postgres_queued_results",
                    "Results in memory waiting for PostgreSQL",
                    s.queued,
                ),
                (
                    "postgres_spooled_results",
                    "Results in the PostgreSQL spool on disk",
                    s.spooled,
                ),
                (
                    "postgres_connected",
                    "1 while connected to PostgreSQL",
                    u64::from(s.connected),
                ),
            ] {
                let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

/// The URL monitors' scheduler counters, read at each scrape:
/// `telltale_monitor_checks_total{result}` (`up`, `down`, or the error class),
/// `telltale_monitor_missed_ticks_total`, `telltale_monitor_checks_in_flight`,
/// `telltale_monitors`.
#[derive(Debug)]
pub struct MonitorStats(pub Arc<telltale_monitor::SchedulerStats>);

/// `result` label of monitor checks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

impl Collector for MonitorStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let results = self.0.results();
        {
            let mut family = encoder.encode_descriptor(
                "monitor_checks",
                "URL monitor checks finished, by result: up, down (an answer outside 2xx/3xx) or the error class",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            let mut labels = vec!["up", "down"];
            labels.extend(
                results
                    .keys()
                    .copied()
                    .filter(|l| !["up", "down"].contains(l)),
            );
            for label in labels {
                let c = ConstCounter::new(results.get(label).copied().unwrap_or(0));
                let key = ResultLabel {
                    result: label.to_owned(),
                };
                c.encode(family.encode_family(&key)?)?;
            }
        }
        let c = ConstCounter::new(self.0.missed_ticks());
        c.encode(encoder.encode_descriptor(
            "monitor_missed_ticks",
            "Monitor ticks skipped because the monitor's previous check was still running",
            None,
            c.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "monitor_checks_in_flight",
                "URL monitor checks running now",
                self.0.in_flight(),
            ),
            ("monitors", "URL monitors scheduled", self.0.scheduled()),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
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
            events_over_service_limit: Counter::default(),
            tracked_services: Gauge::default(),
            ingest_requests_in_flight: Gauge::default(),
            rollup_rows: Counter::default(),
            files_written: Family::default(),
            rows_written: Family::default(),
            bytes_written: Counter::default(),
            write_errors: Counter::default(),
            queue_depth: Gauge::default(),
            buffered_rows: Gauge::default(),
            open_windows: Gauge::default(),
            event_lag_seconds: Gauge::default(),
            http_responses: Family::default(),
            overload_rejections: Family::default(),
            offered_bytes: Counter::default(),
            accepted_bytes: Counter::default(),
            inflight_bytes: Gauge::default(),
            parse_backlog: Gauge::default(),
            workers: Gauge::default(),
            autoscale_decisions: Family::default(),
            otlp_spans_skipped: Family::default(),
            otlp_log_records_skipped: Counter::default(),
            cpu_cores_used: Gauge::default(),
            wal_records: Counter::default(),
            wal_bytes: Counter::default(),
            wal_fsyncs: Counter::default(),
            wal_write_errors: Counter::default(),
            wal_segments: Gauge::default(),
            wal_replayed_records: Counter::default(),
            registry: Registry::default(),
        };
        for r in OVERLOAD_REASONS {
            let _ = m.overload_rejections.get_or_create(&ReasonLabel {
                reason: r.to_owned(),
            });
        }
        for d in ["up", "down"] {
            let _ = m.autoscale_decisions.get_or_create(&DirectionLabel {
                direction: d.to_owned(),
            });
        }
        for r in RejectReason::ALL {
            let _ = m.rejected.get_or_create(&ReasonLabel {
                reason: r.as_str().to_owned(),
            });
        }
        for k in crate::sources::otlp::map::SKIPPED_KINDS {
            let _ = m
                .otlp_spans_skipped
                .get_or_create(&KindLabel { kind: k.to_owned() });
        }
        for k in INGESTED_KINDS {
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
        registry.register(
            "events_over_service_limit",
            "Valid events of services past limits.max_services, kept in the dead letter",
            m.events_over_service_limit.clone(),
        );
        registry.register(
            "ingest_requests_in_flight",
            "POST /v1/events requests being handled now (a shutdown waits for them)",
            m.ingest_requests_in_flight.clone(),
        );
        registry.register(
            "tracked_services",
            "Services tracked now (rollups, SLOs, lake partitions); at most limits.max_services plus the catalogue's",
            m.tracked_services.clone(),
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
        registry.register(
            "http_ingest_responses",
            "POST /v1/events responses, by status code",
            m.http_responses.clone(),
        );
        registry.register(
            "overload_rejections",
            "Ingest requests refused with 429/503 before processing, by reason",
            m.overload_rejections.clone(),
        );
        registry.register(
            "http_offered_bytes",
            "Request body bytes offered to POST /v1/events, refused ones included",
            m.offered_bytes.clone(),
        );
        registry.register(
            "http_accepted_bytes",
            "Request body bytes of ingest requests that were processed",
            m.accepted_bytes.clone(),
        );
        registry.register(
            "http_inflight_bytes",
            "Request body bytes held by ingest requests in flight",
            m.inflight_bytes.clone(),
        );
        registry.register(
            "parse_backlog",
            "Ingest batches waiting for a processing worker",
            m.parse_backlog.clone(),
        );
        registry.register(
            "workers",
            "Processing workers running now",
            m.workers.clone(),
        );
        registry.register(
            "autoscale_decisions",
            "Autoscaling decisions, by direction",
            m.autoscale_decisions.clone(),
        );
        registry.register(
            "cpu_cores_used",
            "CPU used by the process over the last autoscaler interval, in cores",
            m.cpu_cores_used.clone(),
        );
        registry.register(
            "wal_records",
            "Records appended to the write-ahead log",
            m.wal_records.clone(),
        );
        registry.register(
            "wal_bytes",
            "Bytes appended to the write-ahead log",
            m.wal_bytes.clone(),
        );
        registry.register(
            "wal_fsyncs",
            "fsync calls on the write-ahead log",
            m.wal_fsyncs.clone(),
        );
        registry.register(
            "wal_write_errors",
            "Group commits to the write-ahead log that failed (disk full or failing); their batches were answered 503",
            m.wal_write_errors.clone(),
        );
        registry.register(
            "wal_segments",
            "Write-ahead log segment files on disk",
            m.wal_segments.clone(),
        );
        registry.register(
            "otlp_spans_skipped",
            "OTLP spans that are not requests of their service (client, internal, producer, unspecified), dropped, by kind",
            m.otlp_spans_skipped.clone(),
        );
        registry.register(
            "otlp_log_records_skipped",
            "OTLP log records without a status code (not requests), dropped",
            m.otlp_log_records_skipped.clone(),
        );
        registry.register(
            "wal_replayed_records",
            "Records replayed from the write-ahead log at start",
            m.wal_replayed_records.clone(),
        );
        Self { registry, ..m }
    }

    /// Adds the outputs' own counters (InfluxDB sink, Alertmanager delivery), read at
    /// each scrape. Called before the metrics are shared.
    pub fn with_outputs(mut self, outputs: OutputStats) -> Self {
        self.registry.register_collector(Box::new(outputs));
        self
    }

    /// Adds the URL monitors' counters, read at each scrape.
    pub fn with_monitors(mut self, stats: Arc<telltale_monitor::SchedulerStats>) -> Self {
        self.registry
            .register_collector(Box::new(MonitorStats(stats)));
        self
    }

    /// Total ingest requests refused for overload.
    pub fn overload_rejections_total(&self) -> u64 {
        OVERLOAD_REASONS
            .iter()
            .map(|r| {
                self.overload_rejections
                    .get_or_create(&ReasonLabel {
                        reason: (*r).to_owned(),
                    })
                    .get()
            })
            .sum()
    }

    /// Autoscaling decisions so far in one direction (`up` or `down`).
    pub fn autoscale_total(&self, direction: &str) -> u64 {
        self.autoscale_decisions
            .get_or_create(&DirectionLabel {
                direction: direction.to_owned(),
            })
            .get()
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
        INGESTED_KINDS
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
        ["events", "rollups", "probes", "monitors", "deadletter"]
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
