//! The event model: what one validated line of telemetry is.
//!
//! Timestamps are microseconds since the Unix epoch, UTC — the unit Parquet readers
//! (DuckDB, Spark, pyarrow, DataFusion) all agree on.

use std::sync::Arc;

use serde::Serialize;

/// Microseconds in a second.
pub const MICROS_PER_SEC: i64 = 1_000_000;
/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

/// One service request, as validated from a JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceEvent {
    /// The service that handled the request.
    pub service: String,
    /// When it happened, microseconds since the epoch, UTC.
    pub timestamp_us: i64,
    /// HTTP-style status code, 100–599.
    pub status_code: u16,
    /// Request latency in milliseconds (finite, >= 0).
    pub latency_ms: f64,
    /// The sender's own error flag, when it sent one.
    pub error: Option<bool>,
    /// Endpoint (route), if sent.
    pub endpoint: Option<String>,
    /// HTTP method, if sent.
    pub method: Option<String>,
    /// Region, if sent.
    pub region: Option<String>,
    /// Instance, if sent.
    pub instance: Option<String>,
    /// Trace id, if sent.
    pub trace_id: Option<String>,
    /// Fields we do not know, kept as a JSON object string (keys sorted).
    pub attributes: Option<String>,
}

/// A service event with the flags and owner the catalogue gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlaggedEvent {
    /// The event as received.
    pub event: ServiceEvent,
    /// Owning team from the catalogue (`unowned` by default).
    pub team: Arc<str>,
    /// `status_code >= 500 || error`.
    pub is_error: bool,
    /// `latency_ms > latency_threshold_ms` of the service.
    pub is_slow: bool,
}

/// One hop of a network path as a probe saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeHop {
    /// Time-to-live at which this hop answered (1-based).
    pub ttl: u8,
    /// Address that answered, `None` when nothing did.
    pub addr: Option<String>,
    /// Round-trip time to this hop, `None` when nothing answered.
    pub rtt_ms: Option<f64>,
    /// Share of probes to this hop that were lost, in percent.
    pub loss_pct: f64,
}

/// One network-probe measurement of the path to a target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeEvent {
    /// The probed target (an FQDN or address).
    pub target: String,
    /// When it was measured, microseconds since the epoch, UTC.
    pub timestamp_us: i64,
    /// End-to-end round-trip time, `None` when every probe was lost.
    pub rtt_ms: Option<f64>,
    /// End-to-end loss in percent.
    pub loss_pct: f64,
    /// Number of hops to the target.
    pub hop_count: u8,
    /// The hops in TTL order.
    pub hops: Vec<ProbeHop>,
}

impl ProbeEvent {
    /// A stable hash of the hop addresses in TTL order, so route changes show as a change
    /// of this value (as Grafana Synthetic Monitoring's `probe_traceroute_route_hash`).
    /// FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
    pub fn route_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for hop in &self.hops {
            for b in hop.addr.as_deref().unwrap_or("*").bytes().chain([b'|']) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
}

/// A validated line: a service event or a probe measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `{"service", "timestamp", "status_code", "latency_ms", ...}`
    Service(ServiceEvent),
    /// `{"kind": "probe", "target", ...}`
    Probe(ProbeEvent),
}

/// The UTC date (`YYYY-MM-DD`) of a timestamp, as used in `date=` partitions.
pub fn utc_date(timestamp_us: i64) -> String {
    let days = timestamp_us.div_euclid(MICROS_PER_DAY);
    match chrono::DateTime::from_timestamp(days * 86_400, 0) {
        Some(t) => t.format("%Y-%m-%d").to_string(),
        None => "invalid-date".to_owned(),
    }
}

/// RFC 3339 text (UTC, `Z`) of a timestamp in µs at `precision`; `None` outside chrono's
/// range (about ±262 000 years). telltale-core's one RFC 3339 formatter: [`rfc3339`]
/// (microseconds, for the lake and logs) and [`crate::slo::rfc3339`] (milliseconds, for
/// Alertmanager) are this plus what to print for an out-of-range timestamp.
pub fn format_rfc3339(timestamp_us: i64, precision: chrono::SecondsFormat) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(timestamp_us)
        .map(|t| t.to_rfc3339_opts(precision, true))
}

/// RFC 3339 text (UTC, microseconds) of a timestamp; `"<n>us"` outside chrono's range.
pub fn rfc3339(timestamp_us: i64) -> String {
    format_rfc3339(timestamp_us, chrono::SecondsFormat::Micros)
        .unwrap_or_else(|| format!("{timestamp_us}us"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_of_timestamps_around_midnight() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(MICROS_PER_DAY - 1), "1970-01-01");
        assert_eq!(utc_date(MICROS_PER_DAY), "1970-01-02");
        // 2025-04-30T23:59:59.999999Z
        assert_eq!(utc_date(1_746_057_599_999_999), "2025-04-30");
    }

    #[test]
    fn route_hash_changes_with_any_hop() {
        let hop = |a: &str| ProbeHop {
            ttl: 1,
            addr: Some(a.into()),
            rtt_ms: Some(1.0),
            loss_pct: 0.0,
        };
        let mut p = ProbeEvent {
            target: "t".into(),
            timestamp_us: 0,
            rtt_ms: None,
            loss_pct: 0.0,
            hop_count: 2,
            hops: vec![hop("192.0.2.1"), hop("192.0.2.2")],
        };
        let h1 = p.route_hash();
        p.hops[1].addr = Some("192.0.2.3".into());
        assert_ne!(h1, p.route_hash());
        p.hops[1].addr = Some("192.0.2.2".into());
        assert_eq!(h1, p.route_hash());
    }
}
