//! One trace with trippy-core over raw sockets: `echoes` rounds of TTL 1..=max, and what
//! each TTL saw. (Without raw sockets, `ping_socket` gives the same hops for ICMP.)

use std::net::IpAddr;
use std::time::Duration;

use crate::error::ProbeError;
use crate::options::{ProbeOptions, Protocol};

/// What the tracer saw at one TTL, over all rounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Hop {
    pub ttl: u8,
    /// Addresses that answered, most answers first (ties by address, for a stable order).
    pub addrs: Vec<(IpAddr, usize)>,
    pub is_target: bool,
    pub sent: usize,
    pub received: usize,
    pub last_ms: Option<f64>,
    /// Round-trip times of the answers, milliseconds (lost probes left out).
    pub samples_ms: Vec<f64>,
}

impl Hop {
    /// The address that answered most often.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addrs.first().map(|(a, _)| *a)
    }
}

/// Traces `addr` (the resolved `target`) and returns every TTL the tracer tried.
pub(crate) fn trace(
    target: &str,
    addr: IpAddr,
    opts: &ProbeOptions,
    trace_id: u16,
) -> Result<Vec<Hop>, ProbeError> {
    let trace_err = |e: trippy_core::Error| ProbeError::from_tracer(target, e);
    let mut builder = trippy_core::Builder::new(addr)
        .trace_identifier(trace_id)
        .protocol(match opts.protocol {
            Protocol::Icmp => trippy_core::Protocol::Icmp,
            Protocol::Udp => trippy_core::Protocol::Udp,
            Protocol::Tcp => trippy_core::Protocol::Tcp,
        })
        .max_rounds(Some(opts.echoes.max(1)))
        .max_samples(opts.echoes.max(1))
        .max_ttl(opts.max_ttl)
        .min_round_duration(opts.round_interval)
        .max_round_duration(opts.round_interval.max(opts.round_timeout))
        .grace_duration(Duration::from_millis(100).min(opts.round_timeout));
    use trippy_core::{Port, PortDirection};
    let direction = match (opts.protocol, opts.port) {
        (Protocol::Icmp, _) => PortDirection::None,
        (_, Some(port)) => PortDirection::FixedDest(Port(port)),
        // TCP traces to the port a service answers on: 80, as `tcptraceroute` does.
        (Protocol::Tcp, None) => PortDirection::FixedDest(Port(80)),
        // Classic UDP traceroute: a fixed source port (one per tracer, so concurrent
        // traces tell their answers apart) and the destination port varied per probe.
        (Protocol::Udp, None) => PortDirection::FixedSrc(Port(50_000 + trace_id % 10_000)),
    };
    builder = builder.port_direction(direction);
    let tracer = builder.build().map_err(trace_err)?;
    tracer.run().map_err(trace_err)?;
    let state = tracer.snapshot();
    Ok(state
        .hops()
        .iter()
        .map(|h| {
            let mut addrs: Vec<(IpAddr, usize)> =
                h.addrs_with_counts().map(|(a, n)| (*a, *n)).collect();
            addrs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            Hop {
                ttl: h.ttl(),
                is_target: h.addrs().any(|a| *a == addr),
                addrs,
                sent: h.total_sent(),
                received: h.total_recv(),
                last_ms: h.last_ms(),
                // trippy records a lost probe as a zero duration.
                samples_ms: h
                    .samples()
                    .iter()
                    .filter(|d| !d.is_zero())
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .collect(),
            }
        })
        .collect())
}
