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
use telltale_core::{ProbeEvent, RollupRow};

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
