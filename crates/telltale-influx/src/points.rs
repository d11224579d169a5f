//! What the sink writes: one measurement per kind of input, documented in
//! `docs/influxdb.md`. Timestamps are event time in milliseconds (the precision every
//! request states): a rollup at its window start, a probe at its measurement time, SLO
//! status and pipeline health at the time they were computed. Same measurement, tag set
//! and timestamp overwrite on the server, so re-sending a corrected rollup is idempotent.

use std::collections::BTreeMap;

use telltale_core::slo::{AlertLevel, SloStatus};
use telltale_core::{HttpCheckEvent, ProbeEvent, RollupRow};

use crate::line::LineBuilder;

/// `service_rollup`: one point per service and rollup window.
pub const SERVICE_ROLLUP: &str = "service_rollup";
/// `slo_status`: one point per service, SLI and evaluation.
pub const SLO_STATUS: &str = "slo_status";
/// `probe`: one point per network-probe measurement.
pub const PROBE: &str = "probe";
/// `probe_hop`: one point per hop of a probe measurement.
pub const PROBE_HOP: &str = "probe_hop";
/// `probe_route_change`: one point per probe whose route differs from the agent's
/// previous one to that target.
pub const PROBE_ROUTE_CHANGE: &str = "probe_route_change";
/// `probe_dns_change`: one point per probe whose target resolved to another address than
/// in the agent's previous probe.
pub const PROBE_DNS_CHANGE: &str = "probe_dns_change";
/// `http_check`: one point per URL monitor check result.
pub const HTTP_CHECK: &str = "http_check";
/// `pipeline`: one point per pipeline-health sample.
pub const PIPELINE: &str = "pipeline";
/// `pipeline_rejects`: one point per rejection reason per pipeline-health sample.
pub const PIPELINE_REJECTS: &str = "pipeline_rejects";

/// Something the sink can write: appends its lines to `out`.
pub trait ToLineProtocol {
    /// Appends this item's lines (each ending in `\n`, timestamps in milliseconds) to
    /// `out` and returns how many it wrote. Use [`LineBuilder`].
    fn write_lines(&self, out: &mut String) -> usize;
}

impl<T: ToLineProtocol + ?Sized> ToLineProtocol for &T {
    fn write_lines(&self, out: &mut String) -> usize {
        (**self).write_lines(out)
    }
}

/// Microseconds since the epoch to the milliseconds the sink sends (floor, so negative
/// times stay in the right millisecond).
pub fn us_to_ms(us: i64) -> i64 {
    us.div_euclid(1_000)
}

impl ToLineProtocol for RollupRow {
    fn write_lines(&self, out: &mut String) -> usize {
        usize::from(
            LineBuilder::new(out, SERVICE_ROLLUP)
                .tag("service", &self.service)
                .tag("team", &self.team)
                .field_u64("count", self.count)
                .field_u64("errors", self.errors)
                .field_u64("slow", self.slow)
                .field_f64("error_rate", self.error_rate())
                .field_f64("slow_rate", self.slow_rate())
                .field_f64("latency_avg_ms", self.latency_avg_ms)
                .field_f64("latency_p50_ms", self.latency_p50_ms)
                .field_f64("latency_p95_ms", self.latency_p95_ms)
                .field_f64("latency_p99_ms", self.latency_p99_ms)
                .field_f64("latency_max_ms", self.latency_max_ms)
                .field_i64("window_seconds", self.window_seconds)
                .finish(us_to_ms(self.window_start_us)),
        )
    }
}

/// The `alert_tier` value written when no alert fires. Written rather than left out, so
/// `last(alert_tier)` shows the recovery instead of the last tier that fired.
pub const NO_ALERT: &str = "none";

/// The state of one SLO at one evaluation (`slo_status`), straight from the engine's
/// [`SloStatus`]; `state` is its colour's code (0 green, 1 yellow, 2 red).
impl ToLineProtocol for SloStatus {
    fn write_lines(&self, out: &mut String) -> usize {
        let b = &self.burn_rates;
        let tier = (self.alert != AlertLevel::Ok).then(|| self.alert.as_str());
        usize::from(
            LineBuilder::new(out, SLO_STATUS)
                .tag("service", &self.service)
                .tag("sli", self.sli.as_str())
                .tag("team", &self.team)
                .field_i64("state", i64::from(self.state.code()))
                .field_f64("sli_value", self.sli_value)
                .field_f64("objective", self.objective)
                .field_f64("budget_remaining", self.budget_remaining)
                .field_f64("burn_rate_5m", b.burn_rate_5m)
                .field_f64("burn_rate_30m", b.burn_rate_30m)
                .field_f64("burn_rate_1h", b.burn_rate_1h)
                .field_f64("burn_rate_2h", b.burn_rate_2h)
                .field_f64("burn_rate_6h", b.burn_rate_6h)
                .field_f64("burn_rate_1d", b.burn_rate_1d)
                .field_f64("burn_rate_3d", b.burn_rate_3d)
                .field_str("alert_tier", tier.unwrap_or(NO_ALERT))
                .finish(us_to_ms(self.at_us)),
        )
    }
}

/// The `addr` tag of a hop that did not answer (as in the route hash).
pub const UNKNOWN_HOP_ADDR: &str = "*";

impl ToLineProtocol for ProbeEvent {
    fn write_lines(&self, out: &mut String) -> usize {
        let ts = us_to_ms(self.timestamp_us);
        let agent = self.agent.as_deref().unwrap_or_default();
        let route_hash = self.route_hash_hex();
        let mut n = usize::from(
            LineBuilder::new(out, PROBE)
                .tag("agent", agent)
                .tag("target", &self.target)
                .field_opt_f64("rtt_ms", self.rtt_ms)
                .field_f64("loss_pct", self.loss_pct)
                .field_i64("hop_count", i64::from(self.hop_count))
                // The same 16 hex digits as the lake's `route_hash` column.
                .field_str("route_hash", &route_hash)
                .field_opt_i64("sent", self.sent.map(i64::from))
                .field_opt_i64("received", self.received.map(i64::from))
                .field_opt_f64("rtt_min_ms", self.rtt_min_ms)
                .field_opt_f64("rtt_max_ms", self.rtt_max_ms)
                .field_opt_f64("rtt_median_ms", self.rtt_median_ms)
                .field_opt_f64("rtt_p95_ms", self.rtt_p95_ms)
                .field_opt_f64("rtt_stddev_ms", self.rtt_stddev_ms)
                .field_opt_f64("jitter_ms", self.jitter_ms)
                .field_opt_f64("dns_ms", self.dns_ms)
                .field_opt_str("resolved_addr", self.resolved_addr.as_deref())
                .field_opt_str("dns_error", self.dns_error.as_deref())
                .finish(ts),
        );
        for hop in &self.hops {
            n += usize::from(
                LineBuilder::new(out, PROBE_HOP)
                    .tag("addr", hop.addr.as_deref().unwrap_or(UNKNOWN_HOP_ADDR))
                    .tag("agent", agent)
                    .tag("target", &self.target)
                    .tag("ttl", &hop.ttl.to_string())
                    .field_opt_f64("rtt_ms", hop.rtt_ms)
                    .field_f64("loss_pct", hop.loss_pct)
                    .field_opt_str("name", hop.name.as_deref())
                    .field_opt_i64("sent", hop.sent.map(i64::from))
                    .field_opt_i64("received", hop.received.map(i64::from))
                    .field_opt_f64("last_ms", hop.last_ms)
                    .field_opt_f64("best_ms", hop.best_ms)
                    .field_opt_f64("worst_ms", hop.worst_ms)
                    .field_opt_f64("jitter_ms", hop.jitter_ms)
                    .field_opt_str(
                        "addrs",
                        (hop.addrs.len() > 1)
                            .then(|| hop.addrs.join(","))
                            .as_deref(),
                    )
                    .field_opt_str("scope", hop.scope.as_deref())
                    .field_opt_i64("asn", hop.asn.map(i64::from))
                    .field_opt_str("as_org", hop.as_org.as_deref())
                    .field_opt_str("city", hop.city.as_deref())
                    .field_opt_str("country", hop.country.as_deref())
                    .field_opt_f64("latitude", hop.latitude)
                    .field_opt_f64("longitude", hop.longitude)
                    .finish(ts),
            );
        }
        if let Some(from) = &self.previous_route_hash {
            // A route change: Grafana's annotation query reads `text`.
            let route: Vec<&str> = self
                .hops
                .iter()
                .map(|h| h.addr.as_deref().unwrap_or(UNKNOWN_HOP_ADDR))
                .collect();
            n += usize::from(
                LineBuilder::new(out, PROBE_ROUTE_CHANGE)
                    .tag("agent", agent)
                    .tag("target", &self.target)
                    .field_str("from", from)
                    .field_str("to", &route_hash)
                    .field_i64("hop_count", i64::from(self.hop_count))
                    .field_str(
                        "text",
                        &format!("route to {} changed: {}", self.target, route.join(" → ")),
                    )
                    .finish(ts),
            );
        }
        if let (Some(from), Some(to)) = (&self.previous_resolved_addr, &self.resolved_addr) {
            n += usize::from(
                LineBuilder::new(out, PROBE_DNS_CHANGE)
                    .tag("agent", agent)
                    .tag("target", &self.target)
                    .field_str("from", from)
                    .field_str("to", to)
                    .field_str(
                        "text",
                        &format!("{} now resolves to {to} (was {from})", self.target),
                    )
                    .finish(ts),
            );
        }
        n
    }
}

/// A sample of the pipeline's own health, as the processor's metrics see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelinePoint {
    /// Sample time, µs since the epoch.
    pub at_us: i64,
    /// Events per second accepted since the previous sample.
    pub ingest_rate: f64,
    /// Events accepted since the process started.
    pub accepted_total: u64,
    /// Lines rejected since the process started.
    pub rejected_total: u64,
    /// `rejected_total` by reason (`invalid_json`, `future_timestamp`, ...).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// How far event time lags wall-clock time, seconds.
    pub lag_seconds: f64,
    /// Batches waiting for the writer thread.
    pub queue_depth: u64,
    /// Rows buffered for the lake, not yet in a file.
    pub buffered_rows: u64,
    /// Parquet files written since the process started.
    pub files_written_total: u64,
    /// Request body bytes per second offered to HTTP ingest since the previous sample,
    /// refused requests included.
    pub offered_bytes_rate: f64,
    /// Request body bytes per second of ingest requests processed since the previous
    /// sample; the gap to `offered_bytes_rate` is what overload refused.
    pub accepted_bytes_rate: f64,
    /// Ingest requests refused with 429/503 for overload since the process started.
    pub overload_rejected_total: u64,
    /// Processing workers running now.
    pub workers: u64,
    /// Autoscaler decisions to add a worker since the process started.
    pub scale_ups_total: u64,
    /// Autoscaler decisions to remove a worker since the process started.
    pub scale_downs_total: u64,
    /// Ingest batches waiting for a processing worker.
    pub parse_backlog: u64,
    /// CPU the process used over the last autoscaler interval, in cores.
    pub cpu_cores_used: f64,
}

impl ToLineProtocol for PipelinePoint {
    fn write_lines(&self, out: &mut String) -> usize {
        let ts = us_to_ms(self.at_us);
        let mut n = usize::from(
            LineBuilder::new(out, PIPELINE)
                .field_f64("ingest_rate", self.ingest_rate)
                .field_u64("accepted", self.accepted_total)
                .field_u64("rejected", self.rejected_total)
                .field_f64("lag_seconds", self.lag_seconds)
                .field_u64("queue_depth", self.queue_depth)
                .field_u64("buffered_rows", self.buffered_rows)
                .field_u64("files_written", self.files_written_total)
                .field_f64("offered_bytes_rate", self.offered_bytes_rate)
                .field_f64("accepted_bytes_rate", self.accepted_bytes_rate)
                .field_u64("overload_rejected", self.overload_rejected_total)
                .field_u64("parse_backlog", self.parse_backlog)
                .field_u64("workers", self.workers)
                .field_u64("scale_ups", self.scale_ups_total)
                .field_u64("scale_downs", self.scale_downs_total)
                .field_f64("cpu_cores_used", self.cpu_cores_used)
                .finish(ts),
        );
        // A measurement of its own: tagged points in `pipeline` would make every
        // `sum(rejected)` there count the untagged total as well.
        for (reason, count) in &self.rejected_by_reason {
            n += usize::from(
                LineBuilder::new(out, PIPELINE_REJECTS)
                    .tag("reason", reason)
                    .field_u64("rejected", *count)
                    .finish(ts),
            );
        }
        n
    }
}

/// The `error` tag of a check that got an answer (whatever its status).
pub const NO_CHECK_ERROR: &str = "none";

/// One URL check result (`http_check`) at the check's start: tagged by URL, monitor id
/// (`adhoc` for a one-off check), error class (`none` when an answer came) and status
/// class (`2xx` … `5xx`, `none` without an answer); `up` is 1 or 0, so its mean is the
/// availability. Phases not reached are left out.
impl ToLineProtocol for HttpCheckEvent {
    fn write_lines(&self, out: &mut String) -> usize {
        usize::from(
            LineBuilder::new(out, HTTP_CHECK)
                .tag("error", self.error.as_deref().unwrap_or(NO_CHECK_ERROR))
                .tag("monitor_id", self.partition_key())
                .tag("status_class", self.status_class())
                .tag("url", &self.url)
                .field_opt_i64("status_code", self.status_code.map(i64::from))
                .field_f64("duration_ms", self.duration_ms)
                .field_opt_f64("dns_ms", self.dns_ms)
                .field_opt_f64("connect_ms", self.connect_ms)
                .field_opt_f64("tls_ms", self.tls_ms)
                .field_opt_f64("ttfb_ms", self.ttfb_ms)
                .field_opt_f64("transfer_ms", self.transfer_ms)
                .field_i64("redirects", i64::from(self.redirects))
                .field_opt_i64(
                    "body_bytes",
                    self.body_bytes
                        .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
                )
                .field_opt_f64("cert_expiry_days", self.cert_expiry_days)
                .field_i64("up", i64::from(self.is_up()))
                .finish(us_to_ms(self.timestamp_us)),
        )
    }
}

/// The line protocol of `items`, as the sink would send it (for tests and tools).
pub fn encode<T: ToLineProtocol>(items: &[T]) -> String {
    let mut out = String::new();
    for item in items {
        item.write_lines(&mut out);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use telltale_core::ProbeHop;

    use super::*;
    use crate::line::tests::{Value, parse_line};
    use telltale_core::slo::Sli;

    pub(crate) fn rollup(service: &str, team: &str, window_start_us: i64) -> RollupRow {
        RollupRow {
            service: service.into(),
            team: team.into(),
            window_start_us,
            window_seconds: 10,
            count: 1200,
            errors: 36,
            slow: 12,
            latency_avg_ms: 41.25,
            latency_p50_ms: 30.5,
            latency_p95_ms: 120.0,
            latency_p99_ms: 250.75,
            latency_max_ms: 1234.5,
        }
    }

    pub(crate) fn probe(target: &str, timestamp_us: i64) -> ProbeEvent {
        ProbeEvent {
            target: target.into(),
            timestamp_us,
            rtt_ms: Some(23.5),
            loss_pct: 0.0,
            hop_count: 3,
            hops: vec![
                ProbeHop {
                    ttl: 1,
                    addr: Some("10.0.0.1".into()),
                    rtt_ms: Some(0.4),
                    loss_pct: 0.0,
                    ..ProbeHop::default()
                },
                ProbeHop {
                    ttl: 2,
                    addr: None,
                    rtt_ms: None,
                    loss_pct: 100.0,
                    ..ProbeHop::default()
                },
                ProbeHop {
                    ttl: 3,
                    addr: Some("192.0.2.7".into()),
                    rtt_ms: Some(23.5),
                    loss_pct: 0.0,
                    ..ProbeHop::default()
                },
            ],
            ..ProbeEvent::default()
        }
    }

    /// A probe as `telltale probe` makes it: every field, an ECMP hop, a route change and
    /// a DNS change.
    pub(crate) fn traced_probe(timestamp_us: i64) -> ProbeEvent {
        let mut p = probe("db.example.com", timestamp_us);
        p.agent = Some("fra-1".into());
        p.protocol = Some("icmp".into());
        p.resolved_addr = Some("192.0.2.7".into());
        p.previous_resolved_addr = Some("192.0.2.6".into());
        p.dns_ms = Some(1.25);
        p.sent = Some(20);
        p.received = Some(19);
        p.rtt_min_ms = Some(20.0);
        p.rtt_max_ms = Some(31.5);
        p.rtt_median_ms = Some(23.0);
        p.rtt_p95_ms = Some(30.0);
        p.rtt_stddev_ms = Some(2.5);
        p.jitter_ms = Some(1.5);
        p.previous_route_hash = Some("0123456789abcdef".into());
        p.hops[0].addrs = vec!["10.0.0.1".into(), "10.0.0.9".into()];
        p.hops[0].scope = Some("private".into());
        let last = &mut p.hops[2];
        last.name = Some("db.example.com".into());
        last.sent = Some(20);
        last.received = Some(19);
        last.last_ms = Some(22.0);
        last.best_ms = Some(20.0);
        last.worst_ms = Some(31.5);
        last.jitter_ms = Some(1.5);
        last.scope = Some("public".into());
        last.asn = Some(64_500);
        last.as_org = Some("Example Net".into());
        last.city = Some("Frankfurt am Main".into());
        last.country = Some("DE".into());
        last.latitude = Some(50.1109);
        last.longitude = Some(8.6821);
        p
    }

    fn slo(alert: AlertLevel) -> SloStatus {
        crate::testing::slo_status(
            "checkout-api",
            Sli::Availability,
            alert,
            [18.0, 15.5, 14.6, 9.0, 6.1, 2.0, 0.8],
            1_714_471_210_000_000,
        )
    }

    #[test]
    fn line_protocol_of_sample_data() {
        let t0 = 1_714_471_200_000_000; // 2024-04-30T10:00:00Z
        let mut out = encode(&[
            rollup("auth-service", "identity", t0),
            // Awkward names: everything that needs escaping, and a backslash that has
            // no portable spelling (trailing).
            rollup("search api,v2=beta", "team \"blue\"", t0),
            rollup(r"C:\legacy\", "ops", t0),
        ]);
        out += &encode(&[slo(AlertLevel::Page), slo(AlertLevel::Ok)]);
        let mut lossy = probe("api.example.com", t0 + 1_001_500);
        lossy.rtt_ms = None;
        lossy.loss_pct = 100.0;
        out += &encode(&[probe("api.example.com", t0 + 1_500), lossy]);
        out += &encode(&[traced_probe(t0 + 2_000_000)]);
        out += &encode(&[PipelinePoint {
            at_us: t0 + 5_000_000,
            ingest_rate: 412.5,
            accepted_total: 10_234,
            rejected_total: 7,
            rejected_by_reason: [
                ("invalid_json".to_owned(), 5),
                ("future_timestamp".to_owned(), 2),
            ]
            .into_iter()
            .collect(),
            lag_seconds: 0.8,
            queue_depth: 2,
            buffered_rows: 2311,
            files_written_total: 61,
            offered_bytes_rate: 1_572_864.0,
            accepted_bytes_rate: 1_048_576.5,
            overload_rejected_total: 17,
            workers: 3,
            scale_ups_total: 4,
            scale_downs_total: 1,
            parse_backlog: 9,
            cpu_cores_used: 1.75,
        }]);
        insta::assert_snapshot!(out);
    }

    /// `http_check`: an answered check with every phase, a refused one-off check, and a
    /// URL that needs escaping in a tag.
    #[test]
    fn http_check_line_protocol() {
        let t0 = 1_714_471_200_000_000; // 2024-04-30T10:00:00Z
        let up = HttpCheckEvent {
            url: "https://example.com/health".into(),
            monitor_id: Some("m-1".into()),
            every_s: Some(60),
            timestamp_us: t0 + 123_456,
            status_code: Some(200),
            duration_ms: 84.2,
            dns_ms: Some(3.1),
            connect_ms: Some(20.4),
            tls_ms: Some(31.0),
            ttfb_ms: Some(27.9),
            transfer_ms: Some(0.4),
            redirects: 1,
            body_bytes: Some(17),
            cert_expiry_days: Some(61.25),
            final_url: Some("https://example.com/health/".into()),
            error: None,
            error_message: None,
        };
        let refused = HttpCheckEvent {
            url: "http://127.0.0.1:9/a b,c=d".into(),
            timestamp_us: t0 + 60_000_000,
            duration_ms: 0.8,
            dns_ms: Some(0.0),
            error: Some("connect_refused".into()),
            error_message: Some("Connection refused".into()),
            ..HttpCheckEvent::default()
        };
        let server_error = HttpCheckEvent {
            status_code: Some(503),
            timestamp_us: t0 + 120_000_000,
            ..up.clone()
        };
        let out = encode(&[up, refused, server_error]);
        for line in out.split_inclusive('\n') {
            let p = parse_line(line).unwrap();
            assert_eq!(p.measurement, HTTP_CHECK);
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn every_sample_line_parses_and_counts_are_integers() {
        let mut out = encode(&[rollup("a,b", "t", 0)]);
        out += &encode(&[probe("x y", 0)]);
        for line in out.split_inclusive('\n') {
            let p = parse_line(line).unwrap();
            if p.measurement == SERVICE_ROLLUP {
                assert_eq!(
                    p.tags,
                    vec![
                        ("service".into(), "a,b".into()),
                        ("team".into(), "t".into())
                    ]
                );
                let count = p.fields.iter().find(|(k, _)| k == "count").unwrap();
                assert_eq!(count.1, Value::Int(1200));
                let rate = p.fields.iter().find(|(k, _)| k == "error_rate").unwrap();
                assert_eq!(rate.1, Value::Float(0.03));
            }
        }
        assert_eq!(out.lines().count(), 1 + 1 + 3);
    }

    #[test]
    fn timestamps_are_event_time_in_ms() {
        assert_eq!(us_to_ms(1_714_471_200_123_999), 1_714_471_200_123);
        assert_eq!(us_to_ms(-1), -1);
        let line = encode(&[rollup("s", "t", 1_714_471_200_000_000)]);
        assert!(line.ends_with(" 1714471200000\n"), "{line}");
    }
}
