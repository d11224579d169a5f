//! A URL monitor's SLIs: one check result is one SLI event of the monitor, recorded in the
//! rollups under the monitor's URL (`[monitors."<url>"]` or `[monitor_defaults]` in the
//! service catalogue):
//!
//! ```text
//! HttpCheckEvent ──check_event(threshold)──▶ (timestamp, duration, is_error, is_slow)
//!                ──▶ Rollups (service = url) ──▶ rollups table, InfluxDB, SLO engine
//! ```
//!
//! - availability: good when the check has no error and its answer is 2xx or 3xx
//!   ([`HttpCheckEvent::is_up`]), an error otherwise (a 4xx or 5xx answer too);
//! - latency: slow when `duration_ms` (the whole check, redirects included) is over the
//!   monitor's `latency_threshold_ms`; the duration is the event's latency, failed
//!   checks included.

use crate::event::HttpCheckEvent;
use crate::probe_sli::SliEvent;

/// The SLI event of one check, for a monitor whose latency threshold is `threshold_ms`.
pub fn check_event(c: &HttpCheckEvent, threshold_ms: f64) -> SliEvent {
    (
        c.timestamp_us,
        c.duration_ms,
        !c.is_up(),
        c.duration_ms > threshold_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Option<u16>, error: Option<&str>, ms: f64) -> HttpCheckEvent {
        HttpCheckEvent {
            url: "https://x.test/".into(),
            timestamp_us: 9,
            status_code: status,
            error: error.map(str::to_owned),
            duration_ms: ms,
            ..HttpCheckEvent::default()
        }
    }

    #[test]
    fn good_is_no_error_and_2xx_or_3xx_and_slow_is_over_the_threshold() {
        assert_eq!(
            check_event(&result(Some(200), None, 10.0), 50.0),
            (9, 10.0, false, false)
        );
        assert_eq!(
            check_event(&result(Some(301), None, 60.0), 50.0),
            (9, 60.0, false, true)
        );
        assert!(check_event(&result(Some(404), None, 1.0), 50.0).2);
        assert!(check_event(&result(Some(503), None, 1.0), 50.0).2);
        let refused = check_event(&result(None, Some("connect_refused"), 1.0), 50.0);
        assert_eq!(refused, (9, 1.0, true, false));
        assert!(check_event(&result(None, Some("timeout"), 10_000.0), 50.0).3);
    }
}
