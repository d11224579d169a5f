//! Simulated network probes: a traceroute-like measurement of the path to one target every
//! probe interval of simulated time.
//!
//! The path (6–14 hops, addresses in the documentation ranges 192.0.2.0/24,
//! 198.51.100.0/24 and 203.0.113.0/24, base round-trip times increasing along it) is derived
//! from the target name alone, so a target always has the same path. Each measurement adds
//! jitter, occasional loss, occasionally a hop that does not answer, and now and then a
//! route change: a middle hop answers from another address, a few milliseconds slower, for
//! 5–30 minutes.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp1, StandardNormal};
use serde::Serialize;

use crate::format::{round3, truncate_to_ms};
use crate::profile::unit;

/// One hop of the simulated path.
#[derive(Debug, Clone)]
struct HopModel {
    addr: String,
    /// Address this hop answers from while a route change is in effect.
    alt_addr: String,
    base_rtt_ms: f64,
    /// Never answers (a router that filters ICMP).
    silent: bool,
}

/// A route change in progress.
#[derive(Debug, Clone)]
struct RouteChange {
    hop: usize,
    until_us: i64,
    extra_ms: f64,
}

/// The probe generator for one target.
#[derive(Debug, Clone)]
pub(crate) struct ProbeSim {
    target: String,
    interval_us: i64,
    next_us: i64,
    hops: Vec<HopModel>,
    route_change: Option<RouteChange>,
}

#[derive(Serialize)]
struct ProbeLine<'a> {
    kind: &'static str,
    target: &'a str,
    timestamp: &'a str,
    /// Made-up data says so: `agent` is `simulator`, never a real vantage point.
    agent: &'static str,
    rtt_ms: Option<f64>,
    loss_pct: f64,
    hop_count: u8,
    hops: &'a [HopLine<'a>],
}

#[derive(Serialize)]
struct HopLine<'a> {
    ttl: u8,
    addr: Option<&'a str>,
    rtt_ms: Option<f64>,
    loss_pct: f64,
}

impl ProbeSim {
    /// A probe of `target` every `interval_us` (at least 1 ms), the first at `start_us`.
    pub(crate) fn new(target: &str, start_us: i64, interval_us: i64) -> Self {
        Self {
            target: target.to_owned(),
            interval_us: interval_us.max(1000),
            next_us: start_us,
            hops: derive_path(target),
            route_change: None,
        }
    }

    /// Simulated time of the next measurement.
    pub(crate) fn next_us(&self) -> i64 {
        self.next_us
    }

    /// The probed target.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Appends the next measurement as one line and returns its timestamp (whole ms).
    pub(crate) fn emit(&mut self, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) -> i64 {
        let t = self.next_us;
        self.next_us = self.next_us.saturating_add(self.interval_us);
        let n = self.hops.len();

        if self
            .route_change
            .as_ref()
            .is_some_and(|rc| t >= rc.until_us)
        {
            self.route_change = None;
        }
        let p_change = (self.interval_us as f64 / 7_200e6).min(1.0);
        if self.route_change.is_none() && rng.random_bool(p_change) {
            self.route_change = Some(RouteChange {
                hop: rng.random_range(2..n - 1),
                until_us: t + rng.random_range(300..=1800) * 1_000_000,
                extra_ms: rng.random_range(1.0..12.0),
            });
        }
        let transient_silent = rng.random_bool(0.03).then(|| rng.random_range(2..n - 1));
        let dest_lost = rng.random_bool(0.001);

        let mut hops = Vec::with_capacity(n);
        for (i, h) in self.hops.iter().enumerate() {
            let ttl = (i + 1) as u8;
            let last = i == n - 1;
            if h.silent || transient_silent == Some(i) || (last && dest_lost) {
                hops.push(HopLine {
                    ttl,
                    addr: None,
                    rtt_ms: None,
                    loss_pct: 100.0,
                });
                continue;
            }
            let mut addr = h.addr.as_str();
            let mut rtt = h.base_rtt_ms;
            if let Some(rc) = &self.route_change {
                if i == rc.hop {
                    addr = h.alt_addr.as_str();
                }
                if i >= rc.hop {
                    rtt += rc.extra_ms;
                }
            }
            let z: f64 = rng.sample(StandardNormal);
            let e: f64 = rng.sample(Exp1);
            rtt = rtt * (1.0 + 0.04 * z.abs()) + e * 0.15 * (1.0 + 0.1 * i as f64);
            let loss_pct = if last {
                if rng.random_bool(0.03) {
                    [10.0, 20.0, 30.0, 50.0][rng.random_range(0..4)]
                } else {
                    0.0
                }
            } else if rng.random_bool(0.02) {
                [10.0, 20.0, 30.0][rng.random_range(0..3)]
            } else {
                0.0
            };
            hops.push(HopLine {
                ttl,
                addr: Some(addr),
                rtt_ms: Some(round3(rtt)),
                loss_pct,
            });
        }
        let dest = &hops[n - 1];
        let ts = truncate_to_ms(t);
        let timestamp = match chrono::DateTime::from_timestamp_micros(ts) {
            Some(d) => d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => "1970-01-01T00:00:00.000Z".to_owned(),
        };
        let line = ProbeLine {
            kind: "probe",
            target: &self.target,
            timestamp: &timestamp,
            agent: "simulator",
            rtt_ms: dest.rtt_ms,
            loss_pct: dest.loss_pct,
            hop_count: n as u8,
            hops: &hops,
        };
        // Serializing plain structs of strings and finite numbers into a Vec cannot fail.
        if serde_json::to_writer(&mut *out, &line).is_ok() {
            out.push(b'\n');
        }
        ts
    }
}

/// Derives the path to `target` from its name: hop count, addresses, base RTTs, silent hop.
fn derive_path(target: &str) -> Vec<HopModel> {
    let u = |purpose: &str| unit(target, purpose);
    let n = 6 + (u("hop-count") * 9.0) as usize; // 6..=14
    let off_a = (u("offset-a") * 199.0) as usize;
    let off_b = (u("offset-b") * 199.0) as usize;
    let off_alt = (u("offset-alt") * 54.0) as usize;
    let long_haul = 2 + (u("long-haul") * (n - 3) as f64) as usize;
    let silent = (u("silent") < 0.35).then(|| 2 + (u("silent-hop") * (n - 3) as f64) as usize);

    let mut hops = Vec::with_capacity(n);
    let mut rtt = 0.0;
    for i in 0..n {
        let step = |lo: f64, hi: f64| lo + (hi - lo) * u(&format!("step-{i}"));
        rtt += match i {
            0 => step(0.3, 1.0),
            1 => step(2.0, 8.0),
            _ => step(0.5, 4.0),
        };
        if i == long_haul {
            rtt += 10.0 + 50.0 * u("long-haul-ms");
        }
        let addr = if i == 0 {
            "192.0.2.1".to_owned()
        } else if i == 1 {
            format!("192.0.2.{}", 2 + (u("isp-edge") * 250.0) as usize)
        } else if i == n - 1 {
            format!("203.0.113.{}", 200 + (u("destination") * 54.0) as usize)
        } else if i < n / 2 + 1 {
            format!("198.51.100.{}", 1 + (off_a + i * 37) % 199)
        } else {
            format!("203.0.113.{}", 1 + (off_b + i * 37) % 199)
        };
        hops.push(HopModel {
            addr,
            alt_addr: format!("198.51.100.{}", 200 + (off_alt + i * 7) % 54),
            base_rtt_ms: rtt,
            silent: silent == Some(i),
        });
    }
    hops
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::SeedableRng;
    use telltale_core::{Limits, ProbeEvent, Record, parse_line};

    use super::*;

    fn in_doc_range(addr: &str) -> bool {
        ["192.0.2.", "198.51.100.", "203.0.113."]
            .iter()
            .any(|p| addr.starts_with(p))
    }

    fn probes(target: &str, count: usize) -> Vec<ProbeEvent> {
        let mut sim = ProbeSim::new(target, 1_735_689_600_000_000, 10_000_000);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        (0..count)
            .map(|i| {
                let mut out = Vec::new();
                let ts = sim.emit(&mut rng, &mut out);
                assert_eq!(out.last(), Some(&b'\n'));
                let rec = parse_line(&out[..out.len() - 1], 1, i64::MAX / 2, &Limits::default())
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                let Record::Probe(p) = rec else {
                    panic!("not a probe")
                };
                assert_eq!(p.timestamp_us, ts);
                assert_eq!(ts, 1_735_689_600_000_000 + i as i64 * 10_000_000);
                p
            })
            .collect()
    }

    #[test]
    fn paths_are_deterministic_per_target_and_in_documentation_ranges() {
        for i in 0..200 {
            let target = format!("host-{i}.example.com");
            let a = derive_path(&target);
            let b = derive_path(&target);
            assert!((6..=14).contains(&a.len()));
            let addrs: BTreeSet<_> = a.iter().map(|h| h.addr.as_str()).collect();
            assert_eq!(addrs.len(), a.len(), "addresses repeat in {target}");
            for (h, g) in a.iter().zip(&b) {
                assert_eq!(h.addr, g.addr);
                assert!(in_doc_range(&h.addr) && in_doc_range(&h.alt_addr));
                assert!(!addrs.contains(h.alt_addr.as_str()));
            }
            assert!(a.windows(2).all(|w| w[0].base_rtt_ms < w[1].base_rtt_ms));
            assert!(!a[0].silent && !a[1].silent && !a[a.len() - 1].silent);
        }
    }

    #[test]
    fn a_day_of_probes_parses_and_shows_loss_silence_and_route_changes() {
        let ps = probes("example.com", 8640);
        let hashes: BTreeSet<u64> = ps.iter().map(ProbeEvent::route_hash).collect();
        assert!(
            hashes.len() >= 3,
            "expected route changes, got {}",
            hashes.len()
        );
        assert!(ps.iter().any(|p| {
            p.hops
                .iter()
                .any(|h| h.addr.is_none() && h.loss_pct == 100.0)
        }));
        assert!(ps.iter().any(|p| p.loss_pct > 0.0));
        assert!(ps.iter().filter(|p| p.loss_pct == 0.0).count() > 8000);
        for p in &ps {
            assert!((6..=14).contains(&p.hop_count));
            assert_eq!(usize::from(p.hop_count), p.hops.len());
            for (i, h) in p.hops.iter().enumerate() {
                assert_eq!(usize::from(h.ttl), i + 1);
                assert!(h.addr.as_deref().is_none_or(in_doc_range));
                assert_eq!(h.addr.is_none(), h.rtt_ms.is_none());
            }
            assert_eq!(p.rtt_ms, p.hops.last().unwrap().rtt_ms);
        }
        // RTT grows along the path on average.
        let mean = |i: usize| {
            let v: Vec<f64> = ps.iter().filter_map(|p| p.hops[i].rtt_ms).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let n = ps[0].hops.len();
        assert!(mean(0) < mean(1) && mean(1) < mean(n - 1));
    }
}
