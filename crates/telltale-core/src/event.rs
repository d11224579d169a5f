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
///
/// Only `ttl` is required in a line; the measurements a real tracer makes (`telltale
/// probe`) are all there, a simulator or another tool may send fewer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeHop {
    /// Time-to-live at which this hop answered (1-based).
    pub ttl: u8,
    /// Address that answered (the one that answered most often), `None` when nothing did.
    pub addr: Option<String>,
    /// Every address that answered at this TTL, most often first: more than one on an
    /// ECMP (load-balanced) path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<String>,
    /// Reverse-DNS name of `addr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Packets sent to this TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<u32>,
    /// Answers received from this TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<u32>,
    /// Mean round-trip time to this hop, `None` when nothing answered.
    pub rtt_ms: Option<f64>,
    /// Round-trip time of the last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ms: Option<f64>,
    /// Lowest round-trip time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_ms: Option<f64>,
    /// Highest round-trip time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst_ms: Option<f64>,
    /// Mean difference between consecutive round-trip times (jitter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    /// Share of probes to this hop that were lost, in percent.
    pub loss_pct: f64,
    /// What kind of address `addr` is: `public`, `private`, `loopback`, `link_local`,
    /// `shared` (carrier-grade NAT), `documentation`, `multicast` or `unspecified`.
    /// Every address is looked up in the geolocation databases (a company's own `.mmdb`
    /// may map its private ranges); private ones have no location in a public one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Autonomous system number of `addr`, from an ASN database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Organisation of that autonomous system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
    /// City of `addr`, from a City database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Country of `addr` (ISO 3166-1 alpha-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Latitude of `addr`, degrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude of `addr`, degrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

/// One network-probe measurement of the path to a target.
///
/// Required in a line: `target`, `timestamp`, `loss_pct`, `hop_count`; everything else is
/// what a real tracer adds (`telltale probe`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeEvent {
    /// The probed target (an FQDN or address).
    pub target: String,
    /// When it was measured, microseconds since the epoch, UTC.
    pub timestamp_us: i64,
    /// The vantage point that measured it (`--agent`, default the host name).
    pub agent: Option<String>,
    /// How the path was traced: `icmp`, `udp` or `tcp`.
    pub protocol: Option<String>,
    /// The address the target resolved to (the address itself for an address).
    pub resolved_addr: Option<String>,
    /// The address it resolved to in the agent's previous probe, only when that differs
    /// from `resolved_addr` (a DNS change).
    pub previous_resolved_addr: Option<String>,
    /// How long resolving the target took, milliseconds.
    pub dns_ms: Option<f64>,
    /// Why the target did not resolve; then nothing was traced (`loss_pct` 100,
    /// `hop_count` 0).
    pub dns_error: Option<String>,
    /// End-to-end mean round-trip time, `None` when every probe was lost.
    pub rtt_ms: Option<f64>,
    /// End-to-end loss in percent.
    pub loss_pct: f64,
    /// Number of hops to the target.
    pub hop_count: u8,
    /// Echoes sent to the destination. For a `dns_error`, the echoes the probe was to
    /// send (none went out): all of them count as lost, so `loss_pct` is 100.
    pub sent: Option<u32>,
    /// Echoes the destination answered.
    pub received: Option<u32>,
    /// Lowest destination round-trip time.
    pub rtt_min_ms: Option<f64>,
    /// Highest destination round-trip time.
    pub rtt_max_ms: Option<f64>,
    /// Median destination round-trip time.
    pub rtt_median_ms: Option<f64>,
    /// 95th percentile of the destination round-trip times.
    pub rtt_p95_ms: Option<f64>,
    /// Standard deviation of the destination round-trip times.
    pub rtt_stddev_ms: Option<f64>,
    /// Mean difference between consecutive destination round-trip times.
    pub jitter_ms: Option<f64>,
    /// The destination's round-trip times, ms, one per answered echo (lost ones left
    /// out): SmokePing's "smoke", and what a probe target's latency SLO counts.
    pub rtt_samples_ms: Vec<f64>,
    /// The agent's previous route hash to this target, only when the route changed
    /// (a route-change event).
    pub previous_route_hash: Option<String>,
    /// The hops in TTL order.
    pub hops: Vec<ProbeHop>,
}

impl ProbeEvent {
    /// A stable hash of the hop addresses in TTL order, so route changes show as a change
    /// of this value (as Grafana Synthetic Monitoring's `probe_traceroute_route_hash`).
    /// A hop that answered from several addresses (ECMP) counts as the sorted set of
    /// them, so which one answered most in this probe does not matter. FNV-1a: stable
    /// across builds and platforms, unlike `std`'s hasher.
    pub fn route_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for hop in &self.hops {
            if hop.addrs.len() > 1 {
                let mut addrs: Vec<&str> = hop.addrs.iter().map(String::as_str).collect();
                addrs.sort_unstable();
                eat(addrs.join(",").as_bytes());
            } else {
                eat(hop.addr.as_deref().unwrap_or("*").as_bytes());
            }
            eat(b"|");
        }
        h
    }

    /// [`Self::route_hash`] as text: 16 lowercase hex digits (the lake's `route_hash`
    /// column, InfluxDB's `route_hash` field, a line's `previous_route_hash`).
    pub fn route_hash_hex(&self) -> String {
        format!("{:016x}", self.route_hash())
    }
}

/// The partition key (`monitor_id`) of a check without a monitor id: a one-off
/// `telltale monitor check` rather than a scheduled monitor's.
pub const ADHOC_MONITOR_ID: &str = "adhoc";

/// The error classes a URL check may report (`error` of a `"kind":"http"` line), as
/// `telltale monitor check` prints them.
pub const CHECK_ERRORS: [&str; 8] = [
    "invalid_url",
    "dns",
    "connect_refused",
    "connect",
    "tls",
    "timeout",
    "http",
    "too_many_redirects",
];

/// One URL monitor check's result (a `"kind":"http"` line, as `telltale monitor check`
/// prints it): the phases, the answer and, when it failed, why.
///
/// Required in a line: `url`, `timestamp`, `duration_ms`, and `status_code` unless
/// `error` names a class; everything else may be absent or `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpCheckEvent {
    /// The URL checked (the first of a redirect chain): the SLO's `service`.
    pub url: String,
    /// The monitor's id, for scheduled checks; `None` for a one-off check (partitioned
    /// under [`ADHOC_MONITOR_ID`]).
    pub monitor_id: Option<String>,
    /// The monitor's frequency, seconds.
    pub every_s: Option<u64>,
    /// When the check started, microseconds since the epoch, UTC.
    pub timestamp_us: i64,
    /// The final answer's HTTP status, when one came.
    pub status_code: Option<u16>,
    /// The whole check, redirects included, ms.
    pub duration_ms: f64,
    /// Name resolution, ms.
    pub dns_ms: Option<f64>,
    /// TCP connect, ms.
    pub connect_ms: Option<f64>,
    /// TLS handshake, ms.
    pub tls_ms: Option<f64>,
    /// Request sent to first byte of the answer, ms.
    pub ttfb_ms: Option<f64>,
    /// Reading the body, ms.
    pub transfer_ms: Option<f64>,
    /// Redirects followed.
    pub redirects: u32,
    /// Bytes of the final body.
    pub body_bytes: Option<u64>,
    /// Days until the server certificate expires (negative once expired).
    pub cert_expiry_days: Option<f64>,
    /// Where the redirects led.
    pub final_url: Option<String>,
    /// Why the check failed: one of [`CHECK_ERRORS`]; `None` when an answer came.
    pub error: Option<String>,
    /// The failure in words.
    pub error_message: Option<String>,
}

impl HttpCheckEvent {
    /// The lake partition (`monitor_id=`) of this result: its monitor id, or
    /// [`ADHOC_MONITOR_ID`] for a one-off check.
    pub fn partition_key(&self) -> &str {
        self.monitor_id.as_deref().unwrap_or(ADHOC_MONITOR_ID)
    }

    /// Whether the URL was up: no error and a 2xx or 3xx answer (as the checker's own
    /// `CheckResult::is_up`).
    pub fn is_up(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..400).contains(&s))
    }

    /// The answer's status class, `"2xx"` to `"5xx"` (`"1xx"` too), or `"none"` when no
    /// answer came.
    pub fn status_class(&self) -> &'static str {
        match self.status_code.map(|s| s / 100) {
            Some(1) => "1xx",
            Some(2) => "2xx",
            Some(3) => "3xx",
            Some(4) => "4xx",
            Some(5) => "5xx",
            _ => "none",
        }
    }
}

/// A validated line: a service event, a probe measurement or a URL check result.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `{"service", "timestamp", "status_code", "latency_ms", ...}`
    Service(ServiceEvent),
    /// `{"kind": "probe", "target", ...}`
    Probe(ProbeEvent),
    /// `{"kind": "http", "url", ...}`
    HttpCheck(HttpCheckEvent),
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
            ..ProbeHop::default()
        };
        let mut p = ProbeEvent {
            target: "t".into(),
            hop_count: 2,
            hops: vec![hop("192.0.2.1"), hop("192.0.2.2")],
            ..ProbeEvent::default()
        };
        let h1 = p.route_hash();
        p.hops[1].addr = Some("192.0.2.3".into());
        assert_ne!(h1, p.route_hash());
        p.hops[1].addr = Some("192.0.2.2".into());
        assert_eq!(h1, p.route_hash());
    }

    /// An ECMP hop is the set of its addresses: which one answered most does not change
    /// the route, a new address in the set does.
    #[test]
    fn route_hash_of_an_ecmp_hop_is_its_address_set() {
        let ecmp = |addr: &str, addrs: &[&str]| ProbeEvent {
            hops: vec![ProbeHop {
                ttl: 1,
                addr: Some(addr.into()),
                addrs: addrs.iter().map(|a| (*a).to_owned()).collect(),
                ..ProbeHop::default()
            }],
            ..ProbeEvent::default()
        };
        let a = ecmp("192.0.2.1", &["192.0.2.1", "192.0.2.2"]);
        let b = ecmp("192.0.2.2", &["192.0.2.2", "192.0.2.1"]);
        assert_eq!(a.route_hash(), b.route_hash());
        let c = ecmp("192.0.2.1", &["192.0.2.1", "192.0.2.3"]);
        assert_ne!(a.route_hash(), c.route_hash());
        // One address in `addrs` is the same route as that address alone.
        let single = ecmp("192.0.2.1", &["192.0.2.1"]);
        assert_eq!(single.route_hash(), ecmp("192.0.2.1", &[]).route_hash());
        assert_eq!(a.route_hash_hex().len(), 16);
    }
}
