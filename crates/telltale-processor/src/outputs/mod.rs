//! What happens to rollups and probes besides the lake: the SLO engine is evaluated, and
//! the results go to the live view behind `/api/v1/slo` and to every configured [`Sink`]
//! (InfluxDB, Alertmanager, and whatever joins them under `crate::sinks`).
//!
//! Runs on the writer thread, which emits rollup rows in event-time order. The SLO engine
//! is evaluated each time the rows cross into a new event-time minute (its windows cover
//! whole minutes), so replaying a file gives the same alert timeline as live traffic, and
//! nothing here depends on how fast the input arrives.

mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use telltale_core::slo::{AlertTransition, SloEngine};
use telltale_core::{HttpCheckEvent, ProbeEvent, RollupRow};

pub use view::{LatestWindow, ServiceView, SloSnapshot, SloView};

use crate::sinks::{Evaluation, Sink};

const MINUTE_US: i64 = 60_000_000;

/// Everything downstream of the rollups.
#[derive(Debug)]
pub struct Outputs {
    slo: SloEngine,
    sinks: Vec<Box<dyn Sink>>,
    view: Arc<SloView>,
    latest: BTreeMap<String, RollupRow>,
    /// Minute (µs) of the newest row observed; `None` before the first.
    cursor_minute: Option<i64>,
}

impl Outputs {
    /// `slo` may already be primed with history from the lake; `sinks` get every rollup,
    /// probe and evaluation from now on.
    pub fn new(slo: SloEngine, sinks: Vec<Box<dyn Sink>>, view: Arc<SloView>) -> Self {
        Self {
            slo,
            sinks,
            view,
            latest: BTreeMap::new(),
            cursor_minute: None,
        }
    }

    /// After priming the SLO engine with history whose newest rollup window starts at
    /// `newest_window_us`: one evaluation at the minute after it, so the status page,
    /// `/api/v1/slo`, InfluxDB and Alertmanager have the last known state at once after a
    /// restart, not only once new traffic arrives.
    pub fn evaluate_history(&mut self, newest_window_us: i64) {
        let minute = newest_window_us.div_euclid(MINUTE_US) * MINUTE_US;
        self.evaluate(minute + MINUTE_US);
    }

    /// Rollup rows as the writer emits them (event-time order).
    pub fn on_rollups(&mut self, rows: &[RollupRow]) {
        for row in rows {
            let minute = row.window_start_us.div_euclid(MINUTE_US) * MINUTE_US;
            match self.cursor_minute {
                // Every window before this minute has been emitted: evaluate up to it.
                Some(c) if minute > c => self.evaluate(minute),
                None => self.cursor_minute = Some(minute),
                _ => {}
            }
            self.slo.observe(row);
            self.latest.insert(row.service.clone(), row.clone());
        }
        for sink in &mut self.sinks {
            sink.on_rollups(rows);
        }
    }

    /// Probe measurements.
    pub fn on_probes(&mut self, probes: &[ProbeEvent]) {
        for sink in &mut self.sinks {
            sink.on_probes(probes);
        }
    }

    /// URL check results.
    pub fn on_checks(&mut self, checks: &[HttpCheckEvent]) {
        for sink in &mut self.sinks {
            sink.on_checks(checks);
        }
    }

    /// End of input or shutdown: everything is emitted, so the last minute is complete.
    pub fn finish(&mut self) {
        if let Some(c) = self.cursor_minute {
            self.evaluate(c + MINUTE_US);
        }
        for sink in &mut self.sinks {
            sink.on_finish();
        }
    }

    /// Evaluates the SLOs at event time `now_us` (start of a minute).
    fn evaluate(&mut self, now_us: i64) {
        self.cursor_minute = Some(self.cursor_minute.map_or(now_us, |c| c.max(now_us)));
        let transitions = self.slo.evaluate(now_us);
        for t in &transitions {
            log_transition(t);
        }
        let statuses = self.slo.status(now_us);
        let active = self.slo.active_alerts(now_us);
        let evaluation = Evaluation {
            at_us: now_us,
            statuses: &statuses,
            transitions: &transitions,
            active: &active,
        };
        for sink in &mut self.sinks {
            sink.on_evaluation(&evaluation);
        }
        self.view
            .set(view::build_snapshot(now_us, statuses, &self.latest));
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.view
            .services
            .store(self.slo.tracked_services() as u64, relaxed);
        self.view
            .untracked_rows
            .store(self.slo.dropped_rows(), relaxed);
    }
}

/// Every alert change is logged, delivered or not.
fn log_transition(t: &AlertTransition) {
    let burn_1h = t.burn_rates.burn_rate_1h;
    let message = format!(
        "SLO {}: {} {} {} → {} (budget left {:.1}%, burn 1h {:.1}x), team {}",
        t.sli.as_str(),
        t.service,
        t.kind.as_str(),
        t.from.as_str(),
        t.to.as_str(),
        t.budget_remaining * 100.0,
        burn_1h,
        t.team,
    );
    tracing::warn!(
        service = %t.service,
        team = %t.team,
        sli = t.sli.as_str(),
        from = t.from.as_str(),
        to = t.to.as_str(),
        at = %telltale_core::event::rfc3339(t.at_us),
        "{message}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use telltale_core::ServiceCatalog;
    use telltale_core::slo::SloSettings;

    /// Rows of uncatalogued services past the SLO engine's cap are counted for
    /// `/metrics` (`telltale_slo_untracked_rows_total`), not silently lost; and a primed
    /// history is evaluated at once.
    #[test]
    fn services_past_the_slo_cap_are_counted_and_history_is_evaluated() {
        let catalog = ServiceCatalog::from_toml_str("", "services.toml").unwrap();
        let settings = SloSettings {
            max_unknown_services: 2,
            ..SloSettings::default()
        };
        let mut slo = SloEngine::new(&catalog, settings).unwrap();
        let t0 = 1_735_689_600_000_000;
        for (i, service) in ["a", "b", "c", "d"].into_iter().enumerate() {
            slo.observe(&RollupRow::counts_only(
                service,
                "t",
                t0 + i as i64 * MINUTE_US,
                60,
                [10, 0, 0],
            ));
        }
        let view = Arc::new(SloView::default());
        let mut outputs = Outputs::new(slo, Vec::new(), Arc::clone(&view));
        assert!(view.snapshot().evaluated_at.is_none());
        outputs.evaluate_history(t0 + 3 * MINUTE_US);
        assert!(view.snapshot().evaluated_at.is_some(), "evaluated at once");
        assert_eq!(view.services.load(Relaxed), 2);
        assert_eq!(view.untracked_rows.load(Relaxed), 2, "c and d");
        assert_eq!(view.snapshot().services.len(), 2);
    }
}
