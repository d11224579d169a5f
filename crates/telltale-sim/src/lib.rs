//! # telltale-sim
//!
//! The simulator, at the very start of the data flow: it stands in for real services and
//! network probes, and produces the NDJSON lines everything downstream consumes.
//!
//! ```text
//! [telltale-sim] ──NDJSON──▶ stdout | file | HTTP POST /v1/events | in-process channel
//!                                          └──▶ processor: [parse] ──▶ [flag] ──▶ lake, rollups
//! ```
//!
//! Two kinds of line, each valid for `telltale_core::parse::parse_line`:
//!
//! ```text
//! {"service":"auth-service","timestamp":"2025-01-01T00:00:00.123Z","status_code":200,"latency_ms":41.237,"error":false,"endpoint":"/v1/login","method":"POST","region":"eu-west-1","instance":"auth-service-2","trace_id":"<32 hex>"}
//! {"kind":"probe","target":"example.com","timestamp":"…","rtt_ms":23.4,"loss_pct":0.0,"hop_count":9,"hops":[{"ttl":1,"addr":"192.0.2.1","rtt_ms":0.4,"loss_pct":0.0},…]}
//! ```
//!
//! - [`Simulator`] is pure and deterministic: the same [`SimConfig`] and catalogue give
//!   the same bytes (ChaCha8 seeded from `seed`; service properties the catalogue leaves
//!   out are derived from an FNV-1a hash of the name; incidents from the seed and the
//!   simulated hour). Service profiles come from `[services.NAME.sim]`.
//! - [`run`] drives it into an [`Output`], as fast as possible or paced to the wall clock,
//!   and can share it with a control API through a [`SimHandle`].
//! - [`control_router`] is that control API over HTTP: `GET /control`,
//!   `POST /control/spike`, `POST /control/incident`.

#![warn(missing_docs)]

mod control;
mod error;
mod format;
mod http_output;
mod probe;
mod profile;
mod run;
mod shutdown;
mod sim;

use std::time::Duration;

pub use control::{
    CONTROL_ROUTES, ControlError, ControlErrorBody, ControlStatus, IncidentRequest, IncidentStatus,
    MAX_CONTROL_DURATION, MAX_SPIKE_FACTOR, SpikeRequest, SpikeStatus, control_router,
};
pub use error::SimError;
pub use http_output::{HttpStats, HttpTarget};
pub use profile::{DEFAULT_SERVICES, ServiceProfile, fnv1a64};
pub use run::{Output, RunOptions, RunSummary, SimHandle, StopReason, run, wall_now_us};
pub use sim::{
    Incident, IncidentKind, SEEDED_START_US, SimConfig, SimPlan, SimStats, Simulator, Spike,
    diurnal_factor,
};

/// Picks the simulated start time, given the wall clock `now_us`:
///
/// 1. `paced` → `now_us` (lines are emitted as the wall clock reaches them);
/// 2. else `seeded` → [`SEEDED_START_US`], 2025-01-01T00:00:00Z, so `--seed` output is
///    byte-identical across runs and days;
/// 3. else with a `span` → `now_us − span`: a history ending now;
/// 4. else (unbounded) → `now_us`.
pub fn default_start_us(seeded: bool, paced: bool, span: Option<Duration>, now_us: i64) -> i64 {
    if paced {
        now_us
    } else if seeded {
        SEEDED_START_US
    } else if let Some(span) = span {
        now_us
            .saturating_sub(i64::try_from(span.as_micros()).unwrap_or(i64::MAX))
            .max(0)
    } else {
        now_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_rules() {
        let now = 1_750_000_000_000_000;
        let hour = Duration::from_secs(3600);
        assert_eq!(default_start_us(true, true, Some(hour), now), now);
        assert_eq!(default_start_us(false, true, None, now), now);
        assert_eq!(
            default_start_us(true, false, Some(hour), now),
            SEEDED_START_US
        );
        assert_eq!(default_start_us(true, false, None, now), SEEDED_START_US);
        assert_eq!(
            default_start_us(false, false, Some(hour), now),
            now - 3_600_000_000
        );
        assert_eq!(default_start_us(false, false, None, now), now);
        assert_eq!(
            chrono::DateTime::from_timestamp_micros(SEEDED_START_US)
                .unwrap()
                .to_rfc3339(),
            "2025-01-01T00:00:00+00:00"
        );
    }
}
