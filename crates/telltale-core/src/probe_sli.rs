//! A probe target's SLIs: one probe becomes the events its SLOs count, between the parser
//! and the rollups (`[probes.NAME]` in the service catalogue):
//!
//! ```text
//! ProbeEvent ──echo_events(threshold)──▶ (timestamp, latency, is_error, is_slow) per echo
//!            ──▶ Rollups (service = target) ──▶ rollups table, InfluxDB, SLO engine
//! ```
//!
//! Every echo sent to the destination is one event, as every request is for a service
//! (SmokePing's view: one packet per probe cannot show a loss of a few percent):
//!
//! - an answered echo is good for availability, and slow when its round-trip time is over
//!   the target's `latency_threshold_ms`;
//! - a lost echo (or, for a target that did not resolve, every echo the probe was to
//!   send) is an error and slow, as a request that timed out is, and has no latency (NaN:
//!   left out of the rollup's latency statistics).
//!
//! A line without echo counts (`sent` absent: the simulator, other senders) is one event:
//! an error when the destination was lost (`loss_pct` 100 or no `rtt_ms`), else good and
//! slow by its `rtt_ms`.

use crate::event::ProbeEvent;

/// One SLI event: (timestamp µs, latency ms or NaN, is_error, is_slow), the shape
/// [`crate::Rollups::record_service_events`] takes.
pub type SliEvent = (i64, f64, bool, bool);

/// The SLI events of one probe, for a target whose latency threshold is `threshold_ms`.
pub fn echo_events(p: &ProbeEvent, threshold_ms: f64) -> Vec<SliEvent> {
    let t = p.timestamp_us;
    let answered = |ms: f64| (t, ms, false, ms > threshold_ms);
    let lost = (t, f64::NAN, true, true);
    let Some(sent) = p.sent else {
        return vec![match p.rtt_ms {
            Some(ms) if p.loss_pct < 100.0 => answered(ms),
            _ => lost,
        }];
    };
    let sent = sent as usize;
    let received = p
        .received
        .map_or(p.rtt_samples_ms.len(), |r| r as usize)
        .min(sent);
    let mut out = Vec::with_capacity(sent);
    if p.rtt_samples_ms.is_empty() {
        // Counts without samples: each answer at the mean round-trip time.
        if let Some(ms) = p.rtt_ms {
            out.extend(std::iter::repeat_n(answered(ms), received));
        }
    } else {
        out.extend(
            p.rtt_samples_ms
                .iter()
                .take(received)
                .map(|ms| answered(*ms)),
        );
    }
    let lost_echoes = sent - out.len();
    out.extend(std::iter::repeat_n(lost, lost_echoes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(sent: Option<u32>, received: Option<u32>, samples: &[f64]) -> ProbeEvent {
        ProbeEvent {
            target: "db.example.com".into(),
            timestamp_us: 7,
            sent,
            received,
            rtt_samples_ms: samples.to_vec(),
            rtt_ms: (!samples.is_empty())
                .then(|| samples.iter().sum::<f64>() / samples.len() as f64),
            ..ProbeEvent::default()
        }
    }

    fn tally(events: &[SliEvent]) -> (usize, usize, usize) {
        (
            events.len(),
            events.iter().filter(|e| e.2).count(),
            events.iter().filter(|e| e.3).count(),
        )
    }

    #[test]
    fn every_echo_is_an_event_and_a_lost_one_is_an_error_and_slow() {
        let p = probe(Some(5), Some(3), &[10.0, 60.0, 20.0]);
        let events = echo_events(&p, 50.0);
        // 5 events; 2 lost (errors, slow), 1 answered over 50 ms (slow).
        assert_eq!(tally(&events), (5, 2, 3));
        assert!(events.iter().all(|e| e.0 == 7));
        assert_eq!(events.iter().filter(|e| e.1.is_nan()).count(), 2);
    }

    #[test]
    fn a_target_that_did_not_resolve_fails_every_planned_echo() {
        let mut p = probe(Some(20), Some(0), &[]);
        p.dns_error = Some("no address".into());
        p.loss_pct = 100.0;
        assert_eq!(tally(&echo_events(&p, 50.0)), (20, 20, 20));
    }

    #[test]
    fn counts_without_samples_use_the_mean() {
        let mut p = probe(Some(4), Some(4), &[]);
        p.rtt_ms = Some(70.0);
        assert_eq!(tally(&echo_events(&p, 50.0)), (4, 0, 4));
    }

    #[test]
    fn a_line_without_counts_is_one_event() {
        let mut p = probe(None, None, &[]);
        p.rtt_ms = Some(12.0);
        assert_eq!(tally(&echo_events(&p, 50.0)), (1, 0, 0));
        p.loss_pct = 100.0;
        assert_eq!(tally(&echo_events(&p, 50.0)), (1, 1, 1));
    }
}
