//! # telltale-probe
//!
//! Real probes of the network path to a target, at the start of the data flow beside the
//! simulator (issue #13):
//!
//! ```text
//! target FQDN ──resolve──▶ trace (TTL 1..=max, N rounds) ──▶ path
//!   ──▶ reverse DNS, scope, .mmdb location ──▶ route/DNS change vs. the last probe
//!   ──▶ ProbeEvent ──▶ probe line ──▶ processor
//! ```
//!
//! One probe is N traceroute rounds (`echoes`, SmokePing style: one packet is not enough
//! to see loss). Each hop's loss and RTT are over those rounds; the destination is the
//! lowest TTL at which the target itself answered, and its loss and RTT distribution are
//! the path's. A target that does not resolve is a result (`dns_error`), not an error.
//!
//! Two tracers give the same hops ([`trace_mode`] picks one): raw sockets with
//! trippy-core (`trace`; ICMP, UDP, TCP; needs `CAP_NET_RAW` or root) and, on Linux
//! without that capability, ICMP over unprivileged ping sockets (`ping_socket`; for a
//! group that the sysctl `net.ipv4.ping_group_range` allows). With neither the error
//! names both fixes.

mod error;
mod geo;
mod options;
mod path;
#[cfg(target_os = "linux")]
mod ping_socket;
mod rdns;
mod scope;
mod trace;

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use telltale_core::{ProbeEvent, ProbeHop};

pub use error::ProbeError;
pub use geo::{Geo, GeoError, Location};
pub use options::{ProbeOptions, Protocol, TraceMode};
pub use rdns::ReverseDns;
pub use scope::scope;

/// The target's first address and how long resolving it took, or why it did not resolve.
/// An address resolves to itself.
pub fn resolve(target: &str) -> Result<(IpAddr, Duration), String> {
    let started = Instant::now();
    let addr = (target, 0)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_owned())?;
    Ok((addr.ip(), started.elapsed()))
}

/// Raises `CAP_NET_RAW` from the permitted to the effective set of the calling thread
/// (for a binary given `setcap cap_net_raw+p`, as the container image is: with `+p`
/// alone, a copy run without the capability in its bounding set still starts). Threads
/// started afterwards from this one inherit it. Whether raw sockets are allowed now.
pub fn acquire_privileges() -> bool {
    trippy_privilege::Privilege::acquire_privileges().is_ok_and(|p| p.has_privileges())
}

/// How this process can trace with `protocol` (the error for `targets` if it cannot):
/// raw sockets when it has `CAP_NET_RAW` (raised here as [`acquire_privileges`] does),
/// else for ICMP on Linux unprivileged ICMP sockets if it may open one (its group is in
/// `net.ipv4.ping_group_range`). The error names every fix that would help.
pub fn trace_mode(protocol: Protocol, targets: &[String]) -> Result<TraceMode, ProbeError> {
    if acquire_privileges() {
        return Ok(TraceMode::Raw);
    }
    if protocol == Protocol::Icmp && ping_sockets_available() {
        return Ok(TraceMode::PingSocket);
    }
    Err(ProbeError::no_privilege(targets, protocol))
}

#[cfg(target_os = "linux")]
fn ping_sockets_available() -> bool {
    ping_socket::available()
}

#[cfg(not(target_os = "linux"))]
fn ping_sockets_available() -> bool {
    false
}

/// This host's name: the default agent label.
pub fn host_name() -> Option<String> {
    dns_lookup::get_hostname().ok().filter(|h| !h.is_empty())
}

/// What the agent saw of a target last time: to tell a route or DNS change.
#[derive(Debug, Default)]
struct Last {
    route_hash: Option<String>,
    resolved_addr: Option<String>,
}

/// Probes targets: the options, the geolocation databases, a reverse-DNS cache and what
/// each target's last probe saw. One per process; `probe` may be called from many
/// threads at once (one target each).
#[derive(Debug)]
pub struct Prober {
    opts: ProbeOptions,
    geo: Geo,
    rdns: ReverseDns,
    last: Mutex<HashMap<String, Last>>,
}

impl Prober {
    /// A prober with these options and databases (`Geo::default()` for none).
    pub fn new(opts: ProbeOptions, geo: Geo) -> Self {
        Self {
            rdns: ReverseDns::new(opts.round_timeout.max(Duration::from_secs(1))),
            opts,
            geo,
            last: Mutex::default(),
        }
    }

    /// The same prober tracing with `mode` (from [`trace_mode`]).
    pub fn with_mode(mut self, mode: TraceMode) -> Self {
        self.opts.mode = mode;
        self
    }

    /// The options it probes with.
    pub fn options(&self) -> &ProbeOptions {
        &self.opts
    }

    /// One probe of `target` (an FQDN or an address), timestamped `timestamp_us`. Probes
    /// that run at once (in this process or another) need different `trace_id`s: answers
    /// are matched to their tracer by it. A target that does not resolve gives a result
    /// with `dns_error`.
    pub fn probe(
        &self,
        target: &str,
        trace_id: u16,
        timestamp_us: i64,
    ) -> Result<ProbeEvent, ProbeError> {
        let mut event = ProbeEvent {
            target: target.to_owned(),
            timestamp_us,
            agent: self.opts.agent.clone(),
            protocol: Some(self.opts.protocol.as_str().to_owned()),
            ..ProbeEvent::default()
        };
        let addr = match resolve(target) {
            Ok((addr, took)) => {
                event.resolved_addr = Some(addr.to_string());
                event.dns_ms = Some(path::round_ms(took.as_secs_f64() * 1000.0));
                addr
            }
            Err(reason) => {
                event.dns_error = Some(reason);
                // Every echo of the probe is lost: a probe target's availability SLO
                // counts a name that does not resolve as that many failures.
                event.sent = u32::try_from(self.opts.echoes.max(1)).ok();
                event.received = Some(0);
                event.loss_pct = 100.0;
                return Ok(event);
            }
        };
        let hops = match self.opts.mode {
            TraceMode::Raw => trace::trace(target, addr, &self.opts, trace_id)?,
            // The kernel picks each ping socket's identifier: `trace_id` is not needed.
            #[cfg(target_os = "linux")]
            TraceMode::PingSocket => ping_socket::trace(target, addr, &self.opts)?,
            #[cfg(not(target_os = "linux"))]
            TraceMode::PingSocket => {
                return Err(ProbeError::no_privilege(
                    &[target.to_owned()],
                    self.opts.protocol,
                ));
            }
        };
        path::fill_path(&mut event, &hops);
        self.describe_hops(&mut event.hops);
        self.compare_with_last(&mut event);
        Ok(event)
    }

    /// Names, scopes and locations of the hops.
    fn describe_hops(&self, hops: &mut [ProbeHop]) {
        let addrs: Vec<IpAddr> = hops
            .iter()
            .filter_map(|h| h.addr.as_deref()?.parse().ok())
            .collect();
        let names = if self.opts.reverse_dns {
            self.rdns.names(&addrs)
        } else {
            HashMap::new()
        };
        for hop in hops {
            let Some(addr) = hop.addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            hop.name = names.get(&addr).cloned();
            hop.scope = Some(scope(addr).to_owned());
            // The databases are asked for every address: a company's own `.mmdb` may map
            // its private ranges. A public database has none, so those stay unlocated.
            let loc = self.geo.locate(addr);
            hop.city = loc.city;
            hop.country = loc.country;
            hop.latitude = loc.latitude;
            hop.longitude = loc.longitude;
            hop.asn = loc.asn;
            hop.as_org = loc.as_org;
        }
    }

    /// Marks a route change (`previous_route_hash`) and a DNS change
    /// (`previous_resolved_addr`) against this target's last probe. A route is only
    /// compared when the target answered: a path cut short by an outage is loss, not a
    /// new route.
    fn compare_with_last(&self, event: &mut ProbeEvent) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let last = last.entry(event.target.clone()).or_default();
        if event.received.unwrap_or(0) > 0 {
            let hash = event.route_hash_hex();
            if last.route_hash.as_ref().is_some_and(|h| *h != hash) {
                event.previous_route_hash = last.route_hash.clone();
            }
            last.route_hash = Some(hash);
        }
        if let Some(addr) = &event.resolved_addr {
            if last.resolved_addr.as_ref().is_some_and(|a| a != addr) {
                event.previous_resolved_addr = last.resolved_addr.clone();
            }
            last.resolved_addr = Some(addr.clone());
        }
    }
}

/// A probe as the processor's probe line (`kind: "probe"`).
pub fn to_line(p: &ProbeEvent) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        kind: &'static str,
        target: &'a str,
        timestamp: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        protocol: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        resolved_addr: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_resolved_addr: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dns_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dns_error: Option<&'a str>,
        rtt_ms: Option<f64>,
        loss_pct: f64,
        hop_count: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        sent: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        received: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_min_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_max_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_median_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_p95_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_stddev_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        jitter_ms: Option<f64>,
        #[serde(skip_serializing_if = "<[f64]>::is_empty")]
        rtt_samples_ms: &'a [f64],
        /// For readers of the line; the processor computes it again from `hops`.
        route_hash: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_route_hash: Option<&'a str>,
        hops: &'a [ProbeHop],
    }
    let line = Line {
        kind: "probe",
        target: &p.target,
        timestamp: telltale_core::event::rfc3339(p.timestamp_us),
        agent: p.agent.as_deref(),
        protocol: p.protocol.as_deref(),
        resolved_addr: p.resolved_addr.as_deref(),
        previous_resolved_addr: p.previous_resolved_addr.as_deref(),
        dns_ms: p.dns_ms,
        dns_error: p.dns_error.as_deref(),
        rtt_ms: p.rtt_ms,
        loss_pct: p.loss_pct,
        hop_count: p.hop_count,
        sent: p.sent,
        received: p.received,
        rtt_min_ms: p.rtt_min_ms,
        rtt_max_ms: p.rtt_max_ms,
        rtt_median_ms: p.rtt_median_ms,
        rtt_p95_ms: p.rtt_p95_ms,
        rtt_stddev_ms: p.rtt_stddev_ms,
        jitter_ms: p.jitter_ms,
        rtt_samples_ms: &p.rtt_samples_ms,
        route_hash: p.route_hash_hex(),
        previous_route_hash: p.previous_route_hash.as_deref(),
        hops: &p.hops,
    };
    serde_json::to_string(&line).expect("a probe line serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProbeEvent {
        ProbeEvent {
            target: "example.org".into(),
            timestamp_us: 1_750_000_000_000_000,
            agent: Some("fra-1".into()),
            protocol: Some("icmp".into()),
            resolved_addr: Some("10.0.2.2".into()),
            dns_ms: Some(0.5),
            rtt_ms: Some(2.5),
            loss_pct: 50.0,
            hop_count: 2,
            sent: Some(4),
            received: Some(2),
            rtt_min_ms: Some(2.0),
            rtt_max_ms: Some(3.0),
            rtt_median_ms: Some(2.0),
            rtt_p95_ms: Some(3.0),
            rtt_stddev_ms: Some(0.75),
            jitter_ms: Some(1.0),
            rtt_samples_ms: vec![2.0, 3.0],
            previous_route_hash: Some("00000000000000aa".into()),
            hops: vec![
                ProbeHop {
                    ttl: 1,
                    addr: Some("10.0.1.1".into()),
                    addrs: vec!["10.0.1.1".into(), "10.0.1.9".into()],
                    name: Some("r1.test".into()),
                    sent: Some(4),
                    received: Some(4),
                    rtt_ms: Some(1.0),
                    best_ms: Some(1.0),
                    scope: Some("private".into()),
                    ..ProbeHop::default()
                },
                ProbeHop {
                    ttl: 2,
                    addr: Some("10.0.2.2".into()),
                    rtt_ms: Some(2.5),
                    loss_pct: 50.0,
                    city: Some("Berlin".into()),
                    latitude: Some(52.52),
                    longitude: Some(13.405),
                    asn: Some(64_500),
                    ..ProbeHop::default()
                },
            ],
            ..ProbeEvent::default()
        }
    }

    /// The line is one the processor accepts as a probe, unchanged, every field kept.
    #[test]
    fn the_line_parses_back_as_the_same_probe() {
        let p = sample();
        let line = to_line(&p);
        let parsed = telltale_core::parse_line(
            line.as_bytes(),
            1,
            1_750_000_000_000_000,
            &telltale_core::Limits::default(),
        )
        .unwrap();
        assert_eq!(parsed, telltale_core::Record::Probe(p), "{line}");
    }

    #[test]
    fn a_dns_error_line_parses_back() {
        let p = ProbeEvent {
            target: "no-such-host.invalid".into(),
            timestamp_us: 1_750_000_000_000_000,
            dns_error: Some("failed to lookup address information".into()),
            loss_pct: 100.0,
            ..ProbeEvent::default()
        };
        let line = to_line(&p);
        let parsed =
            telltale_core::parse_line(line.as_bytes(), 1, p.timestamp_us, &Default::default())
                .unwrap();
        assert_eq!(parsed, telltale_core::Record::Probe(p), "{line}");
    }

    #[test]
    fn an_unresolvable_name_is_a_dns_error_result() {
        let prober = Prober::new(ProbeOptions::default(), Geo::default());
        let p = prober.probe("no-such-host.invalid", 1, 0).unwrap();
        assert!(p.dns_error.is_some(), "{p:?}");
        assert_eq!((p.loss_pct, p.hop_count, p.rtt_ms), (100.0, 0, None));
        assert!(p.resolved_addr.is_none());
        // Every planned echo counts as lost (the availability SLO sees the failure with
        // the weight of a whole probe).
        assert_eq!((p.sent, p.received), (Some(20), Some(0)));
    }

    fn answered(route: &[&str], resolved: &str) -> ProbeEvent {
        ProbeEvent {
            target: "t".into(),
            resolved_addr: Some(resolved.into()),
            received: Some(1),
            hops: route
                .iter()
                .enumerate()
                .map(|(i, a)| ProbeHop {
                    ttl: i as u8 + 1,
                    addr: Some((*a).into()),
                    ..ProbeHop::default()
                })
                .collect(),
            ..ProbeEvent::default()
        }
    }

    /// A route change is marked once, on the first probe of the new route; an outage
    /// (the target silent, the path cut short) is not a route change.
    #[test]
    fn a_route_change_is_marked_once_and_an_outage_is_not_one() {
        let prober = Prober::new(ProbeOptions::default(), Geo::default());
        let mut marks = Vec::new();
        let mut outage = answered(&["10.0.1.1"], "10.0.9.9");
        outage.received = Some(0);
        for mut p in [
            answered(&["10.0.1.1", "10.0.9.9"], "10.0.9.9"),
            answered(&["10.0.1.1", "10.0.9.9"], "10.0.9.9"),
            outage,
            answered(&["10.0.1.1", "10.0.9.9"], "10.0.9.9"),
            answered(&["10.0.5.1", "10.0.9.9"], "10.0.9.9"),
            answered(&["10.0.5.1", "10.0.9.9"], "10.0.9.9"),
        ] {
            prober.compare_with_last(&mut p);
            marks.push(p.previous_route_hash.is_some());
        }
        assert_eq!(marks, [false, false, false, false, true, false]);
    }

    #[test]
    fn a_dns_change_names_the_previous_address() {
        let prober = Prober::new(ProbeOptions::default(), Geo::default());
        let mut a = answered(&["10.0.9.9"], "10.0.9.9");
        prober.compare_with_last(&mut a);
        let mut b = answered(&["10.0.9.8"], "10.0.9.8");
        prober.compare_with_last(&mut b);
        assert_eq!(b.previous_resolved_addr.as_deref(), Some("10.0.9.9"));
        assert!(a.previous_resolved_addr.is_none());
    }
}
