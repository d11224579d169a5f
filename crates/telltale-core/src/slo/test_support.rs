//! Fixtures shared by the SLO engine's unit tests: a one-service catalogue, rollup rows,
//! the hand-computed outage timeline and the proptest row strategy.

use proptest::prelude::*;

use super::window::MINUTE_US;
use super::{AlertTransition, Observed, Sli, SloEngine, SloSettings, SloStatus};
use crate::config::ServiceCatalog;
use crate::rollup::RollupRow;

pub(super) const M: i64 = MINUTE_US;
/// 2025-01-01T00:00:00Z
pub(super) const T0: i64 = 1_735_689_600_000_000;

pub(super) fn catalog(extra: &str) -> ServiceCatalog {
    ServiceCatalog::from_toml_str(
        &format!(
            "[services.svc]\nteam = \"core\"\navailability_objective = 99.9\n\
             latency_objective = 99.0\n{extra}"
        ),
        "t.toml",
    )
    .unwrap()
}

pub(super) fn engine(extra: &str) -> SloEngine {
    SloEngine::new(&catalog(extra), SloSettings::default()).unwrap()
}

pub(super) fn row(service: &str, start_us: i64, count: u64, errors: u64, slow: u64) -> RollupRow {
    RollupRow::counts_only(service, "core", start_us, 60, [count, errors, slow])
}

/// `n` minutes of `count` events with `errors` errors each, from `start_us`.
pub(super) fn feed(e: &mut SloEngine, start_us: i64, n: i64, count: u64, errors: u64) {
    for i in 0..n {
        assert_eq!(
            e.observe(&row("svc", start_us + i * M, count, errors, 0)),
            Observed::Counted
        );
    }
}

pub(super) fn status(e: &SloEngine, now: i64, sli: Sli) -> SloStatus {
    e.status(now)
        .into_iter()
        .find(|s| s.service == "svc" && s.sli == sli)
        .unwrap()
}

pub(super) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

/// One hour clean, a 10-minute outage, then clean: the hand-computed timeline.
pub(super) fn outage_engine(extra: &str) -> SloEngine {
    let mut e = engine(extra);
    feed(&mut e, T0, 60, 100, 0);
    feed(&mut e, T0 + 60 * M, 10, 100, 100);
    feed(&mut e, T0 + 70 * M, 500, 100, 0);
    e
}

pub(super) fn run(e: &mut SloEngine, minutes: i64) -> Vec<AlertTransition> {
    (1..=minutes).flat_map(|k| e.evaluate(T0 + k * M)).collect()
}

/// Rows as (minute offset, count, errors, slow) with errors, slow <= count.
pub(super) fn rows(max_minute: i64, n: usize) -> impl Strategy<Value = Vec<(i64, u64, u64, u64)>> {
    prop::collection::vec(
        (0..max_minute, 1u64..400, 0.0f64..=1.0, 0.0f64..=1.0).prop_map(|(m, c, e, s)| {
            let f = |x: f64| ((c as f64 * x * x * x).round() as u64).min(c);
            (m, c, f(e), f(s))
        }),
        1..n,
    )
}
