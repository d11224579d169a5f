//! # telltale-probe
//!
//! Real probes of the network path to a target, at the start of the data flow beside the
//! simulator (issue #13):
//!
//! ```text
//! target FQDN ──resolve──▶ trippy-core (ICMP, TTL 1..=max, N rounds) ──▶ ProbeEvent ──▶ probe line ──▶ processor
//! ```
//!
//! One probe is N traceroute rounds (`echoes`, SmokePing style: one packet is not enough
//! to see loss). Each hop's loss and RTT are over those rounds; the destination is the
//! lowest TTL at which the target itself answered, and its loss and RTT are the path's.
//! Raw ICMP sockets need `CAP_NET_RAW` (or root); without it the error says so.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;
use telltale_core::{ProbeEvent, ProbeHop};

/// How a probe is made.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Traceroute rounds per probe: every hop, the destination included, gets this many
    /// packets.
    pub echoes: usize,
    /// Highest TTL tried.
    pub max_ttl: u8,
    /// Shortest time a round takes (the pace of the echoes).
    pub round_interval: Duration,
    /// How long a round waits for late answers.
    pub round_timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            echoes: 20,
            max_ttl: 30,
            round_interval: Duration::from_secs(1),
            round_timeout: Duration::from_secs(2),
        }
    }
}

/// Why a probe gave no measurement.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The target's name did not resolve.
    #[error("{target}: does not resolve: {reason}")]
    Resolve {
        /// The target as given.
        target: String,
        /// What the resolver said.
        reason: String,
    },
    /// Raw sockets are not allowed to this process.
    #[error(
        "probing {target} needs raw ICMP sockets, which need the CAP_NET_RAW capability: run \
         as root, or grant it once with `sudo setcap cap_net_raw+ep <path to telltale>` (in a \
         container: `cap_add: [NET_RAW]`). The tracer said: {reason}"
    )]
    Privilege {
        /// The target.
        target: String,
        /// The tracer's error.
        reason: String,
    },
    /// The tracer failed for another reason.
    #[error("probing {target}: {reason}")]
    Trace {
        /// The target.
        target: String,
        /// The tracer's error.
        reason: String,
    },
}

/// The target's first address and how long resolving it took. An address resolves to
/// itself.
pub fn resolve(target: &str) -> Result<(IpAddr, Duration), ProbeError> {
    let started = Instant::now();
    let addr = (target, 0)
        .to_socket_addrs()
        .map_err(|e| ProbeError::Resolve {
            target: target.to_owned(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ProbeError::Resolve {
            target: target.to_owned(),
            reason: "no address".into(),
        })?;
    Ok((addr.ip(), started.elapsed()))
}

/// One probe of `target` (an FQDN or an address), timestamped `timestamp_us`. Probes that
/// run at once (in this process or another) need different `trace_id`s: ICMP answers are
/// matched to their tracer by it.
pub fn probe(
    target: &str,
    opts: &ProbeOptions,
    trace_id: u16,
    timestamp_us: i64,
) -> Result<ProbeEvent, ProbeError> {
    let (addr, _resolved_in) = resolve(target)?;
    let trace_err = |e: trippy_core::Error| {
        let reason = e.to_string();
        let privilege = matches!(e, trippy_core::Error::PrivilegeError(_))
            || reason.contains("Operation not permitted")
            || reason.contains("Permission denied");
        if privilege {
            ProbeError::Privilege {
                target: target.to_owned(),
                reason,
            }
        } else {
            ProbeError::Trace {
                target: target.to_owned(),
                reason,
            }
        }
    };
    let tracer = trippy_core::Builder::new(addr)
        .trace_identifier(trace_id)
        .max_rounds(Some(opts.echoes.max(1)))
        .max_ttl(opts.max_ttl)
        .min_round_duration(opts.round_interval)
        .max_round_duration(opts.round_interval.max(opts.round_timeout))
        .grace_duration(Duration::from_millis(100).min(opts.round_timeout))
        .build()
        .map_err(trace_err)?;
    tracer.run().map_err(trace_err)?;
    let state = tracer.snapshot();
    let hops: Vec<Hop> = state
        .hops()
        .iter()
        .map(|h| Hop {
            ttl: h.ttl(),
            // The address that answered most often (ECMP paths can show several).
            addr: h
                .addrs_with_counts()
                .max_by_key(|(_, n)| **n)
                .map(|(a, _)| *a),
            is_target: h.addrs().any(|a| *a == addr),
            sent: h.total_sent(),
            received: h.total_recv(),
            avg_ms: h.avg_ms(),
        })
        .collect();
    Ok(path_of(target, timestamp_us, &hops))
}

/// What the tracer saw at one TTL, over all rounds.
#[derive(Debug, Clone, PartialEq)]
struct Hop {
    ttl: u8,
    addr: Option<IpAddr>,
    is_target: bool,
    sent: usize,
    received: usize,
    avg_ms: f64,
}

/// The path up to the destination: the lowest TTL at which the target answered. In a
/// round whose destination answer was lost the tracer goes on to higher TTLs; those
/// are not hops. Without any answer from the target, every TTL that answered counts and
/// the path's loss is 100%.
fn path_of(target: &str, timestamp_us: i64, hops: &[Hop]) -> ProbeEvent {
    let destination = hops.iter().find(|h| h.is_target);
    let last_ttl = destination.map_or_else(
        || {
            hops.iter()
                .filter(|h| h.received > 0)
                .map(|h| h.ttl)
                .max()
                .unwrap_or(0)
        },
        |d| d.ttl,
    );
    let path: Vec<ProbeHop> = hops
        .iter()
        .filter(|h| h.ttl <= last_ttl)
        .map(|h| ProbeHop {
            ttl: h.ttl,
            addr: h.addr.map(|a| a.to_string()),
            rtt_ms: (h.received > 0).then_some(h.avg_ms),
            loss_pct: loss_pct(h.sent, h.received),
        })
        .collect();
    ProbeEvent {
        target: target.to_owned(),
        timestamp_us,
        rtt_ms: destination.and_then(|d| (d.received > 0).then_some(d.avg_ms)),
        loss_pct: destination.map_or(100.0, |d| loss_pct(d.sent, d.received)),
        hop_count: last_ttl,
        hops: path,
    }
}

fn loss_pct(sent: usize, received: usize) -> f64 {
    if sent == 0 {
        return 100.0;
    }
    100.0 * (sent.saturating_sub(received)) as f64 / sent as f64
}

/// A probe as the processor's probe line (`kind: "probe"`).
pub fn to_line(p: &ProbeEvent) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        kind: &'static str,
        target: &'a str,
        timestamp: String,
        rtt_ms: Option<f64>,
        loss_pct: f64,
        hop_count: u8,
        hops: &'a [ProbeHop],
    }
    let line = Line {
        kind: "probe",
        target: &p.target,
        timestamp: telltale_core::event::rfc3339(p.timestamp_us),
        rtt_ms: p.rtt_ms,
        loss_pct: p.loss_pct,
        hop_count: p.hop_count,
        hops: &p.hops,
    };
    serde_json::to_string(&line).expect("a probe line serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ttl: u8, addr: &str, target: bool, sent: usize, received: usize) -> Hop {
        Hop {
            ttl,
            addr: Some(addr.parse().unwrap()),
            is_target: target,
            sent,
            received,
            avg_ms: 1.5,
        }
    }

    /// The tracer's extra TTLs after a lost destination answer are not hops.
    #[test]
    fn the_path_ends_at_the_lowest_ttl_the_target_answered() {
        let hops = [
            hop(1, "10.0.1.1", false, 20, 15),
            hop(2, "10.0.2.2", false, 20, 15),
            hop(3, "10.0.3.2", true, 20, 11),
            hop(4, "10.0.3.2", true, 1, 1),
        ];
        let p = path_of("t", 0, &hops);
        assert_eq!(p.hop_count, 3);
        assert_eq!(p.hops.len(), 3);
        assert_eq!(p.loss_pct, 45.0);
        assert_eq!(p.hops[0].loss_pct, 25.0);
        assert_eq!(p.rtt_ms, Some(1.5));
    }

    #[test]
    fn a_silent_target_is_all_loss_after_the_last_hop_that_answered() {
        let hops = [
            hop(1, "10.0.1.1", false, 5, 5),
            Hop {
                ttl: 2,
                addr: None,
                is_target: false,
                sent: 5,
                received: 0,
                avg_ms: 0.0,
            },
        ];
        let p = path_of("t", 0, &hops);
        assert_eq!((p.hop_count, p.loss_pct, p.rtt_ms), (1, 100.0, None));
    }

    /// The line is one the processor accepts as a probe, unchanged.
    #[test]
    fn the_line_parses_back_as_the_same_probe() {
        let hops = [
            hop(1, "10.0.1.1", false, 4, 4),
            hop(2, "10.0.2.2", true, 4, 2),
        ];
        let p = path_of("example.org", 1_750_000_000_000_000, &hops);
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
    fn an_unresolvable_name_is_a_resolve_error() {
        let e = resolve("no-such-host.invalid").unwrap_err();
        assert!(matches!(e, ProbeError::Resolve { .. }), "{e}");
        assert!(e.to_string().contains("no-such-host.invalid"));
    }
}
