//! From what the tracer saw to the measured path: where it ends, each hop's loss and RTT
//! statistics, the destination's RTT distribution. Pure: tested with made-up hops.

use telltale_core::{ProbeEvent, ProbeHop};

use crate::trace::Hop;

/// Lowest, highest, mean, median, 95th percentile, standard deviation and jitter of a
/// set of round-trip times.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RttStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub median: f64,
    pub p95: f64,
    pub stddev: f64,
    /// Mean absolute difference of consecutive round-trip times (RFC 3550's idea without
    /// its smoothing, as mtr's `Javg`).
    pub jitter: Option<f64>,
}

/// Milliseconds to the microsecond: what a tracer's clock can tell apart.
pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The statistics of `samples` (in the order they were measured, either direction);
/// `None` without any.
pub(crate) fn rtt_stats(samples: &[f64]) -> Option<RttStats> {
    if samples.is_empty() {
        return None;
    }
    let n = samples.len();
    let mean = samples.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 {
        (samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let jitter = (n > 1)
        .then(|| samples.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (n - 1) as f64);
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Nearest rank: the smallest sample with at least q of them at or below it.
    let rank = |q: f64| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(RttStats {
        min: round_ms(sorted[0]),
        max: round_ms(sorted[n - 1]),
        mean: round_ms(mean),
        median: round_ms(rank(0.5)),
        p95: round_ms(rank(0.95)),
        stddev: round_ms(stddev),
        jitter: jitter.map(round_ms),
    })
}

fn loss_pct(sent: usize, received: usize) -> f64 {
    if sent == 0 {
        return 100.0;
    }
    100.0 * (sent.saturating_sub(received)) as f64 / sent as f64
}

fn count(n: usize) -> Option<u32> {
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Fills `event` with the path up to the destination: the lowest TTL at which the target
/// answered. In a round whose destination answer was lost the tracer goes on to higher
/// TTLs; those are not hops. Without any answer from the target, every TTL up to the last
/// one that answered counts and the path's loss is 100%.
/// Without an answer from the target: the last TTL that answered. A router that answers
/// for an unreachable target (ICMP host or network unreachable) answers at every higher
/// TTL too, up to the maximum; the path ends at the first TTL of that repeated tail.
fn last_answered_ttl(hops: &[Hop]) -> u8 {
    let answered: Vec<&Hop> = hops.iter().filter(|h| h.received > 0).collect();
    let Some(tail) = answered.last() else {
        return 0;
    };
    let mut last = tail.ttl;
    for h in answered.iter().rev().skip(1) {
        if h.addr().is_none() || h.addr() != tail.addr() {
            break;
        }
        last = h.ttl;
    }
    last
}

pub(crate) fn fill_path(event: &mut ProbeEvent, hops: &[Hop]) {
    let destination = hops.iter().find(|h| h.is_target);
    let last_ttl = destination.map_or_else(|| last_answered_ttl(hops), |d| d.ttl);
    event.hops = hops
        .iter()
        .filter(|h| h.ttl <= last_ttl)
        .map(|h| {
            let stats = rtt_stats(&h.samples_ms);
            ProbeHop {
                ttl: h.ttl,
                addr: h.addr().map(|a| a.to_string()),
                addrs: if h.addrs.len() > 1 {
                    h.addrs.iter().map(|(a, _)| a.to_string()).collect()
                } else {
                    Vec::new()
                },
                sent: count(h.sent),
                received: count(h.received),
                rtt_ms: stats.map(|s| s.mean),
                last_ms: h.last_ms.map(round_ms),
                best_ms: stats.map(|s| s.min),
                worst_ms: stats.map(|s| s.max),
                jitter_ms: stats.and_then(|s| s.jitter),
                loss_pct: loss_pct(h.sent, h.received),
                ..ProbeHop::default()
            }
        })
        .collect();
    event.hop_count = last_ttl;
    match destination {
        Some(d) => {
            let stats = rtt_stats(&d.samples_ms);
            event.loss_pct = loss_pct(d.sent, d.received);
            event.sent = count(d.sent);
            event.received = count(d.received);
            event.rtt_ms = stats.map(|s| s.mean);
            event.rtt_min_ms = stats.map(|s| s.min);
            event.rtt_max_ms = stats.map(|s| s.max);
            event.rtt_median_ms = stats.map(|s| s.median);
            event.rtt_p95_ms = stats.map(|s| s.p95);
            event.rtt_stddev_ms = stats.map(|s| s.stddev);
            event.jitter_ms = stats.and_then(|s| s.jitter);
            event.rtt_samples_ms = d
                .samples_ms
                .iter()
                .take(d.received)
                .map(|ms| round_ms(*ms))
                .collect();
        }
        None => {
            event.loss_pct = 100.0;
            // What the first hop was sent is what the destination was sent.
            event.sent = hops.first().and_then(|h| count(h.sent));
            event.received = Some(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ttl: u8, addr: &str, target: bool, sent: usize, samples: &[f64]) -> Hop {
        Hop {
            ttl,
            addrs: vec![(addr.parse().unwrap(), samples.len())],
            is_target: target,
            sent,
            received: samples.len(),
            last_ms: samples.first().copied(),
            samples_ms: samples.to_vec(),
        }
    }

    fn path(hops: &[Hop]) -> ProbeEvent {
        let mut e = ProbeEvent::default();
        fill_path(&mut e, hops);
        e
    }

    /// The tracer's extra TTLs after a lost destination answer are not hops.
    #[test]
    fn the_path_ends_at_the_lowest_ttl_the_target_answered() {
        let hops = [
            hop(1, "10.0.1.1", false, 4, &[1.0, 1.0, 1.0]),
            hop(2, "10.0.2.2", false, 4, &[2.0, 2.0, 2.0]),
            hop(3, "10.0.3.2", true, 4, &[3.0, 5.0]),
            hop(4, "10.0.3.2", true, 1, &[3.0]),
        ];
        let p = path(&hops);
        assert_eq!(p.hop_count, 3);
        assert_eq!(p.hops.len(), 3);
        assert_eq!(p.loss_pct, 50.0);
        assert_eq!(p.hops[0].loss_pct, 25.0);
        assert_eq!((p.sent, p.received), (Some(4), Some(2)));
        assert_eq!(p.rtt_ms, Some(4.0));
        assert_eq!((p.rtt_min_ms, p.rtt_max_ms), (Some(3.0), Some(5.0)));
    }

    #[test]
    fn a_silent_target_is_all_loss_after_the_last_hop_that_answered() {
        let hops = [
            hop(1, "10.0.1.1", false, 5, &[1.0; 5]),
            Hop {
                ttl: 2,
                sent: 5,
                ..Hop::default()
            },
        ];
        let p = path(&hops);
        assert_eq!((p.hop_count, p.loss_pct, p.rtt_ms), (1, 100.0, None));
        assert_eq!((p.sent, p.received), (Some(5), Some(0)));
    }

    /// Regression: a target behind a router that answers "host unreachable" for it gave
    /// a path of that router repeated up to the maximum TTL (hop count 25 for three
    /// real hops).
    #[test]
    fn a_router_answering_for_an_unreachable_target_ends_the_path_once() {
        let mut hops = vec![
            hop(1, "10.0.1.1", false, 5, &[1.0; 5]),
            hop(2, "10.0.2.2", false, 5, &[2.0; 5]),
        ];
        for ttl in 3..=25 {
            hops.push(hop(ttl, "10.0.2.2", false, 5, &[2.0; 5]));
        }
        let p = path(&hops);
        assert_eq!((p.hop_count, p.loss_pct), (2, 100.0));
        assert_eq!(p.hops.len(), 2);
    }

    /// SmokePing-style: a destination's RTTs as a distribution, not one number.
    #[test]
    fn rtt_statistics_of_twenty_echoes() {
        let samples: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = rtt_stats(&samples).unwrap();
        assert_eq!((s.min, s.max), (1.0, 20.0));
        assert_eq!(s.mean, 10.5);
        assert_eq!(s.median, 10.0, "nearest rank: the 10th of 20");
        assert_eq!(s.p95, 19.0, "nearest rank: the 19th of 20");
        assert_eq!(s.stddev, 5.916, "rounded to the microsecond");
        assert_eq!(s.jitter, Some(1.0));
        let one = rtt_stats(&[4.0]).unwrap();
        assert_eq!(
            (one.median, one.p95, one.stddev, one.jitter),
            (4.0, 4.0, 0.0, None)
        );
        assert!(rtt_stats(&[]).is_none());
    }

    #[test]
    fn an_ecmp_hop_lists_every_address_most_answers_first() {
        let mut h = hop(1, "10.0.1.1", false, 4, &[1.0; 4]);
        h.addrs = vec![
            ("10.0.1.9".parse().unwrap(), 3),
            ("10.0.1.1".parse().unwrap(), 1),
        ];
        let p = path(&[h, hop(2, "10.0.2.2", true, 4, &[2.0; 4])]);
        assert_eq!(p.hops[0].addr.as_deref(), Some("10.0.1.9"));
        assert_eq!(p.hops[0].addrs, ["10.0.1.9", "10.0.1.1"]);
        assert!(p.hops[1].addrs.is_empty(), "one address: `addr` says it");
    }
}
