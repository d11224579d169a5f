//! The SLO engine: rollup rows in, per-minute counts kept, SLOs assessed at event times.
//!
//! [`SloEngine::observe`] adds a row's counts to its service's minute;
//! [`SloEngine::evaluate`] assesses every SLO (budget, burn rates, the rule that fires, the
//! state), runs each SLO's alert state machine (with `keep_firing_for` hysteresis) and
//! returns the [`AlertTransition`]s; [`SloEngine::status`] reports the same assessment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::burn::{BurnRule, ResolvedRule, budget_remaining, burn_rate};
use super::sli::Sli;
use super::status::{AlertLevel, BurnRates, RuleHit, SloState, SloStatus};
use super::transition::{AlertTransition, TransitionKind};
use super::window::{
    CALENDAR_MONTH_MAX_MINUTES, Counts, MINUTE_US, Series, minutes_label, slo_window,
};
use crate::config::{AlertTier, ServiceCatalog, ServicePolicy, SloWindow};
use crate::rollup::RollupRow;

/// Engine-wide settings; per-service ones (tiers, `min_events`, warning level) come from
/// the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSettings {
    /// Burn-rate rules, checked in order; the highest tier firing wins.
    pub rules: Vec<BurnRule>,
    /// Services not in the catalogue tracked at most; rows of further unknown services are
    /// dropped (and counted) so a flood of made-up names cannot exhaust memory.
    pub max_unknown_services: usize,
    /// Hysteresis, as Prometheus' `keep_firing_for`: a lower level (de-escalation or
    /// resolve) must hold this long in event time before the alert follows it, while an
    /// escalation applies at once. Without it a burn rate hovering at a factor (common
    /// while the long windows hold little history) fires and resolves every minute: one
    /// incident, many notifications.
    pub keep_firing_for: Duration,
}

impl Default for SloSettings {
    fn default() -> Self {
        Self {
            rules: BurnRule::workbook(),
            max_unknown_services: 100,
            keep_firing_for: Duration::from_secs(10 * 60),
        }
    }
}

/// Settings the engine cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum SloError {
    /// A burn-rate rule is malformed.
    #[error("SLO burn-rate rule #{index} ({tier}, long window {long_window}): {message}")]
    InvalidRule {
        /// Position in `SloSettings::rules`, from 0.
        index: usize,
        /// Its tier.
        tier: AlertTier,
        /// Its long window, as written by humantime.
        long_window: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// What [`SloEngine::observe`] did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Added to its minute.
    Counted,
    /// Older than every window still evaluated: ignored.
    Stale,
    /// An unknown service beyond `max_unknown_services`: ignored.
    Dropped,
    /// The row holds no events.
    Empty,
}

/// One SLO's alert state machine.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AlertMachine {
    pub(super) level: AlertLevel,
    /// Start of the current incident (first non-ok evaluation).
    pub(super) started_at_us: i64,
    /// When the current level began (escalation / de-escalation time).
    pub(super) level_since_us: i64,
    /// Since when every evaluation has assessed a level below `level` (hysteresis).
    lower_since_us: Option<i64>,
}

#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub(super) policy: Arc<ServicePolicy>,
    rules: Vec<ResolvedRule>,
    /// Minutes of history any evaluation needs.
    horizon_minutes: i64,
    series: Series,
    pub(super) alerts: [AlertMachine; 2],
}

/// Everything computed for one SLO at one time.
#[derive(Debug, Clone)]
pub(super) struct Assessment {
    good: u64,
    total: u64,
    sli_value: f64,
    pub(super) budget_remaining: f64,
    pub(super) burn_rates: BurnRates,
    level: AlertLevel,
    pub(super) rule: Option<RuleHit>,
    state: SloState,
}

/// The SLO engine: feed it rollup rows, evaluate it at event times.
#[derive(Debug, Clone)]
pub struct SloEngine {
    catalog: ServiceCatalog,
    settings: SloSettings,
    pub(super) services: BTreeMap<String, Tracked>,
    unknown_services: usize,
    dropped_rows: u64,
    stale_rows: u64,
}

impl SloEngine {
    /// An engine for every catalogued service (unknown services are added as their rows
    /// arrive, with the catalogue's defaults). Fails when a rule is malformed.
    pub fn new(catalog: &ServiceCatalog, settings: SloSettings) -> Result<Self, SloError> {
        for (index, r) in settings.rules.iter().enumerate() {
            let bad = |message: &str| {
                Err(SloError::InvalidRule {
                    index,
                    tier: r.tier,
                    long_window: humantime::format_duration(r.long_window).to_string(),
                    message: message.to_owned(),
                })
            };
            let secs = r.long_window.as_secs();
            if r.long_window.subsec_nanos() != 0 || secs == 0 || secs % (12 * 60) != 0 {
                return bad(
                    "the long window must be a whole multiple of 12 minutes so its short window \
                     (a twelfth) is whole minutes, e.g. 1h",
                );
            }
            if secs > 31 * 86_400 {
                return bad("the long window must be at most 31 days, e.g. 3d");
            }
            if !(r.budget_consumed.is_finite()
                && r.budget_consumed > 0.0
                && r.budget_consumed <= 1.0)
            {
                return bad("budget_consumed must be a fraction above 0 and at most 1, e.g. 0.02");
            }
        }
        let mut engine = Self {
            catalog: catalog.clone(),
            settings,
            services: BTreeMap::new(),
            unknown_services: 0,
            dropped_rows: 0,
            stale_rows: 0,
        };
        for p in catalog.services().chain(catalog.probes()) {
            let t = engine.track(Arc::clone(p));
            engine.services.insert(p.name.clone(), t);
        }
        Ok(engine)
    }

    fn track(&self, policy: Arc<ServicePolicy>) -> Tracked {
        let period = policy.window.nominal();
        let rules: Vec<ResolvedRule> = self
            .settings
            .rules
            .iter()
            .filter(|r| policy.alert_tiers.contains(&r.tier))
            .map(|r| ResolvedRule::new(r, period))
            .collect();
        let slo_minutes = match policy.window {
            SloWindow::Rolling(d) => (d.as_secs() / 60) as i64,
            SloWindow::CalendarMonth => CALENDAR_MONTH_MAX_MINUTES,
        };
        let longest_rule = rules.iter().map(|r| r.long_minutes).max().unwrap_or(0);
        let longest_report = BurnRates::WINDOW_MINUTES[BurnRates::WINDOW_MINUTES.len() - 1];
        Tracked {
            horizon_minutes: slo_minutes.max(longest_rule).max(longest_report),
            policy,
            rules,
            series: Series::new(),
            alerts: [AlertMachine::default(); 2],
        }
    }

    /// Adds a rollup row's counts to the minute its window starts in. Rows may come in
    /// any order; a row older than every window still evaluated is ignored (`Stale`).
    pub fn observe(&mut self, row: &RollupRow) -> Observed {
        if row.count == 0 {
            return Observed::Empty;
        }
        if !self.services.contains_key(row.service.as_str()) {
            if self.unknown_services >= self.settings.max_unknown_services {
                self.dropped_rows += 1;
                return Observed::Dropped;
            }
            let t = self.track(self.catalog.policy_for(&row.service));
            self.services.insert(row.service.clone(), t);
            self.unknown_services += 1;
        }
        let Some(t) = self.services.get_mut(row.service.as_str()) else {
            return Observed::Dropped;
        };
        let c = Counts {
            total: row.count,
            errors: row.errors.min(row.count),
            slow: row.slow.min(row.count),
        };
        if t.series.add(row.window_start_us.div_euclid(MINUTE_US), c) {
            Observed::Counted
        } else {
            self.stale_rows += 1;
            Observed::Stale
        }
    }

    /// Evaluates every SLO at event time `now_us` (normally the rollup watermark) and
    /// returns the alert state changes, ordered by service then SLI. Windows cover the
    /// complete minutes before `now_us`, so results change at most once a minute.
    /// Also forgets minutes no later evaluation needs.
    pub fn evaluate(&mut self, now_us: i64) -> Vec<AlertTransition> {
        let mut out = Vec::new();
        let keep_firing_us =
            i64::try_from(self.settings.keep_firing_for.as_micros()).unwrap_or(i64::MAX);
        for (name, t) in &mut self.services {
            for sli in Sli::ALL {
                let a = assess(t, sli, now_us);
                let m = &mut t.alerts[sli.index()];
                if a.level >= m.level {
                    m.lower_since_us = None;
                }
                if a.level == m.level {
                    continue;
                }
                if a.level < m.level {
                    let since = *m.lower_since_us.get_or_insert(now_us);
                    if now_us - since < keep_firing_us {
                        continue;
                    }
                }
                let kind = match (m.level, a.level) {
                    (AlertLevel::Ok, _) => TransitionKind::Fired,
                    (_, AlertLevel::Ok) => TransitionKind::Resolved,
                    (from, to) if to > from => TransitionKind::Escalated,
                    _ => TransitionKind::Deescalated,
                };
                let started = if m.level == AlertLevel::Ok {
                    now_us
                } else {
                    m.started_at_us
                };
                out.push(AlertTransition {
                    at_us: now_us,
                    service: name.clone(),
                    team: t.policy.team.to_string(),
                    sli,
                    kind,
                    from: m.level,
                    to: a.level,
                    started_at_us: started,
                    from_since_us: m.level_since_us,
                    objective: sli.objective(&t.policy),
                    window: t.policy.window.into(),
                    budget_remaining: a.budget_remaining,
                    burn_rates: a.burn_rates,
                    rule: a.rule,
                });
                *m = AlertMachine {
                    level: a.level,
                    started_at_us: started,
                    level_since_us: now_us,
                    lower_since_us: None,
                };
            }
            let now_minute = now_us.div_euclid(MINUTE_US);
            t.series
                .prune_before(now_minute.saturating_sub(t.horizon_minutes));
        }
        out
    }

    /// The status of every SLO at event time `now_us`, ordered by service then SLI:
    /// catalogued services (also before their first event) and unknown ones seen so far.
    /// Computed afresh from the counts, so it matches [`evaluate`](Self::evaluate) at the
    /// same time.
    pub fn status(&self, now_us: i64) -> Vec<SloStatus> {
        let mut out = Vec::with_capacity(self.services.len() * 2);
        for (name, t) in &self.services {
            let a = Sli::ALL.map(|sli| assess(t, sli, now_us));
            let service_state = a[0].state.max(a[1].state);
            for (sli, a) in Sli::ALL.into_iter().zip(a) {
                out.push(SloStatus {
                    at_us: now_us,
                    service: name.clone(),
                    team: t.policy.team.to_string(),
                    sli,
                    objective: sli.objective(&t.policy),
                    window: t.policy.window.into(),
                    good: a.good,
                    total: a.total,
                    sli_value: a.sli_value,
                    budget_remaining: a.budget_remaining,
                    burn_rates: a.burn_rates,
                    alert: a.level,
                    rule: a.rule,
                    state: a.state,
                    service_state,
                });
            }
        }
        out
    }

    /// Rows ignored because `max_unknown_services` was reached.
    pub fn dropped_rows(&self) -> u64 {
        self.dropped_rows
    }

    /// Rows ignored because they were older than every window still evaluated.
    pub fn stale_rows(&self) -> u64 {
        self.stale_rows
    }

    /// Number of services tracked (catalogued plus unknown ones seen).
    pub fn tracked_services(&self) -> usize {
        self.services.len()
    }
}

/// Everything the engine reports about one SLO at `now_us`, from the counts alone.
pub(super) fn assess(t: &Tracked, sli: Sli, now_us: i64) -> Assessment {
    let p = &t.policy;
    let objective = sli.objective(p);
    let end = now_us.div_euclid(MINUTE_US);
    let last = |minutes: i64| t.series.window(end - minutes, end);

    let (ws, we) = slo_window(p.window, now_us);
    let budget = t.series.window(ws, we);
    let bad = budget.bad(sli);
    let budget_remaining = budget_remaining(bad, budget.total, objective);

    let burn_rates = BurnRates::from_array(BurnRates::WINDOW_MINUTES.map(|m| {
        let c = last(m);
        burn_rate(c.bad(sli), c.total, objective)
    }));

    let mut rule: Option<RuleHit> = None;
    for r in &t.rules {
        if rule.as_ref().is_some_and(|h| h.tier >= r.tier) {
            continue;
        }
        let (long, short) = (last(r.long_minutes), last(r.short_minutes));
        if long.total < p.min_events || short.total < p.min_events {
            continue;
        }
        let lb = burn_rate(long.bad(sli), long.total, objective);
        let sb = burn_rate(short.bad(sli), short.total, objective);
        if lb > r.factor && sb > r.factor {
            rule = Some(RuleHit {
                tier: r.tier,
                long_window: minutes_label(r.long_minutes),
                short_window: minutes_label(r.short_minutes),
                factor: r.factor,
                budget_consumed: r.budget_consumed,
                long_burn_rate: lb,
                short_burn_rate: sb,
            });
        }
    }
    let level = rule
        .as_ref()
        .map_or(AlertLevel::Ok, |h| AlertLevel::from(h.tier));

    // The budget colours the state only once the window holds `min_events` events: with
    // fewer, one failed request can "exhaust" a budget of a fraction of an event.
    let budget_counts = budget.total >= p.min_events;
    let state = if level == AlertLevel::Page || (budget_counts && budget_remaining <= 0.0) {
        SloState::Red
    } else if level == AlertLevel::Ticket || (budget_counts && budget_remaining < p.budget_warning)
    {
        SloState::Yellow
    } else {
        SloState::Green
    };
    Assessment {
        good: budget.total - bad,
        total: budget.total,
        sli_value: if budget.total == 0 {
            1.0
        } else {
            (budget.total - bad) as f64 / budget.total as f64
        },
        budget_remaining,
        burn_rates,
        level,
        rule,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::test_support::*;
    use crate::slo::window::DAY_MINUTES;
    use proptest::prelude::*;

    #[test]
    fn budget_math_by_hand() {
        // 10 000 events at 99.9%: the budget is 10 bad events.
        assert!(close(budget_remaining(4, 10_000, 0.999), 0.6));
        assert!(close(budget_remaining(10, 10_000, 0.999), 0.0));
        // Overspent is reported as it is, not clamped.
        assert!(close(budget_remaining(25, 10_000, 0.999), -1.5));
        assert_eq!(budget_remaining(0, 0, 0.999), 1.0);
        // 50 bad of 500 at 99.9%: 10% bad ÷ 0.1% allowed = 100× burn.
        assert!(close(burn_rate(50, 500, 0.999), 100.0));
        assert_eq!(burn_rate(0, 0, 0.999), 0.0);
        assert_eq!(burn_rate(0, 123, 0.999), 0.0);

        // The same through the engine, from integer counts summed over minutes.
        let mut e = engine("");
        e.observe(&row("svc", T0, 6_000, 1, 100));
        e.observe(&row("svc", T0 + M, 4_000, 3, 50));
        let a = status(&e, T0 + 2 * M, Sli::Availability);
        assert_eq!((a.good, a.total), (9_996, 10_000));
        assert!(close(a.sli_value, 0.9996));
        assert!(close(a.budget_remaining, 0.6));
        let l = status(&e, T0 + 2 * M, Sli::Latency);
        // 150 slow of 10 000 at 99%: budget 100 events, remaining 1 - 150/100 = -0.5.
        assert_eq!((l.good, l.total), (9_850, 10_000));
        assert!(close(l.budget_remaining, -0.5));
        assert_eq!(l.state, SloState::Red, "exhausted budget is red");
        assert_eq!(
            a.service_state,
            SloState::Red,
            "the worst SLI colours the service"
        );
    }

    #[test]
    fn the_budget_is_not_an_average_of_ratios() {
        // A busy minute with 0 errors and a quiet minute with 1 error of 10: averaging the
        // two minutes' ratios would give 5%, the event ratio is 1 / 10 010 ≈ 0.01%.
        let mut e = engine("");
        e.observe(&row("svc", T0, 10_000, 0, 0));
        e.observe(&row("svc", T0 + M, 10, 1, 0));
        let a = status(&e, T0 + 2 * M, Sli::Availability);
        assert!(close(a.sli_value, 10_009.0 / 10_010.0));
        assert!(close(a.budget_remaining, 1.0 - 1.0 / (10_010.0 * 0.001)));
    }

    #[test]
    fn burn_rates_by_hand_and_the_rule_that_fires() {
        // One hour of 100 events a minute; the last 5 minutes have 10 errors each.
        let mut e = engine("");
        feed(&mut e, T0, 55, 100, 0);
        feed(&mut e, T0 + 55 * M, 5, 100, 10);
        let s = status(&e, T0 + 60 * M, Sli::Availability);
        let b = s.burn_rates;
        assert!(close(b.burn_rate_5m, 100.0), "50/500 / 0.001"); // 10% bad
        assert!(close(b.burn_rate_30m, 50.0 / 3000.0 / 0.001)); // 16.67
        assert!(close(b.burn_rate_1h, 50.0 / 6000.0 / 0.001)); // 8.33
        // Longer windows hold the same hour of data.
        for w in [
            b.burn_rate_2h,
            b.burn_rate_6h,
            b.burn_rate_1d,
            b.burn_rate_3d,
        ] {
            assert!(close(w, b.burn_rate_1h));
        }
        // 1h at 8.33 is under 14.4, so the 1h/5m page does not fire; 6h (8.33) and 30m
        // (16.67) are both over 6, so the 6h/30m page does.
        let r = s.rule.unwrap();
        assert_eq!(
            (r.tier, &*r.long_window, &*r.short_window),
            (AlertTier::Page, "6h", "30m")
        );
        assert!(close(r.factor, 6.0));
        assert_eq!(s.alert, AlertLevel::Page);
        assert_eq!(s.state, SloState::Red);
        // The latency SLI saw nothing slow.
        let l = status(&e, T0 + 60 * M, Sli::Latency);
        assert_eq!(
            (l.alert, l.state, l.burn_rates),
            (AlertLevel::Ok, SloState::Green, BurnRates::default())
        );
    }

    #[test]
    fn windows_cover_complete_minutes_before_now() {
        let mut e = engine("");
        feed(&mut e, T0, 1, 100, 100);
        // Mid-minute: the minute is not complete, so not counted yet.
        assert_eq!(status(&e, T0 + 59 * 1_000_000, Sli::Availability).total, 0);
        assert_eq!(status(&e, T0 + M, Sli::Availability).total, 100);
    }

    #[test]
    fn min_events_keeps_a_handful_of_failures_from_alerting() {
        // 99 events, all errors: under min_events (100) in every window, so no alert, and
        // the budget does not colour the state either.
        let mut e = engine("");
        feed(&mut e, T0, 1, 99, 99);
        let s = status(&e, T0 + M, Sli::Availability);
        assert_eq!(s.total, 99);
        assert!(
            s.burn_rates.burn_rate_5m > 900.0,
            "the burn is reported all the same"
        );
        assert_eq!((s.alert, s.state), (AlertLevel::Ok, SloState::Green));
        assert!(e.evaluate(T0 + M).is_empty());
        // One more event reaches min_events: both page windows hold 100 events now.
        e.observe(&row("svc", T0, 1, 0, 0));
        let s = status(&e, T0 + M, Sli::Availability);
        assert_eq!((s.alert, s.state), (AlertLevel::Page, SloState::Red));
        // A lower min_events in the catalogue alerts on fewer events.
        let mut e = engine("min_events = 10\n");
        feed(&mut e, T0, 1, 10, 10);
        assert_eq!(
            status(&e, T0 + M, Sli::Availability).alert,
            AlertLevel::Page
        );
    }

    #[test]
    fn yellow_below_the_budget_warning_and_red_when_exhausted() {
        let mut e = engine("");
        // 100 000 events, budget 100 errors.
        e.observe(&row("svc", T0, 100_000, 76, 0));
        let at = T0 + 4 * 86_400_000_000; // 4 days later: no alert window sees the errors
        let s = status(&e, at, Sli::Availability);
        assert!(close(s.budget_remaining, 0.24));
        assert_eq!((s.alert, s.state), (AlertLevel::Ok, SloState::Yellow));
        let mut e = engine("budget_warning_percent = 10.0\n");
        e.observe(&row("svc", T0, 100_000, 76, 0));
        assert_eq!(status(&e, at, Sli::Availability).state, SloState::Green);
        let mut e = engine("");
        e.observe(&row("svc", T0, 100_000, 100, 0));
        let s = status(&e, at, Sli::Availability);
        assert!(close(s.budget_remaining, 0.0));
        assert_eq!(s.state, SloState::Red, "exactly exhausted is red");
    }

    #[test]
    fn calendar_month_resets_the_budget_at_the_rollover() {
        let feb1 = 1_738_368_000_000_000; // 2025-02-01T00:00:00Z
        let mut e = engine("window = \"calendar-month\"\n");
        // The last 10 minutes of January: 1000 events, 5 errors each.
        feed(&mut e, feb1 - 10 * M, 10, 1000, 5);
        let jan = status(&e, feb1 - 1, Sli::Availability);
        // Complete minutes before 23:59:59.999999: 9 of them, 9000 events, 45 errors, a
        // budget of 9 events: 1 - 45/9 = -4.
        assert_eq!((jan.total, jan.good), (9_000, 8_955));
        assert!(close(jan.budget_remaining, -4.0));
        assert_eq!(jan.state, SloState::Red);
        // At 00:00 on the 1st the window is empty: a fresh budget.
        let feb = status(&e, feb1, Sli::Availability);
        assert_eq!((feb.total, feb.budget_remaining), (0, 1.0));
        // Five clean February minutes: still untouched; the burn-rate windows are rolling and
        // still see January's errors (50 of 15 000 over the last hour).
        feed(&mut e, feb1, 5, 1000, 0);
        let feb = status(&e, feb1 + 5 * M, Sli::Availability);
        assert_eq!((feb.total, feb.budget_remaining), (5_000, 1.0));
        assert!(close(feb.burn_rates.burn_rate_1h, 50.0 / 15_000.0 / 0.001));
    }

    #[test]
    fn outage_pages_deescalates_and_resolves_once() {
        let mut e = outage_engine("");
        let t = run(&mut e, 520);
        let summary: Vec<_> = t
            .iter()
            .map(|t| ((t.at_us - T0) / M, t.sli, t.from, t.to, t.kind))
            .collect();
        use AlertLevel::*;
        assert_eq!(
            summary,
            [
                // Minute 60 complete: 5m = 100/500 (200×), 1h = 100/6000 (16.7× > 14.4).
                (61, Sli::Availability, Ok, Page, TransitionKind::Fired),
                // The 30m window (6h/30m page) forgets the outage 30 min after it ended
                // (minute 70); the 2h window still holds it (8.3% bad, 83× > 3): ticket,
                // once the lower level has held for keep_firing_for (10 min).
                (
                    110,
                    Sli::Availability,
                    Page,
                    Ticket,
                    TransitionKind::Deescalated
                ),
                // The 6h short window of the 3d/6h ticket forgets it at 70 + 360; + 10.
                (440, Sli::Availability, Ticket, Ok, TransitionKind::Resolved),
            ]
        );
        // One incident: every transition carries its start.
        assert!(t.iter().all(|t| t.started_at_us == T0 + 61 * M));
        assert_eq!(t[1].from_since_us, T0 + 61 * M);
        assert_eq!(t[2].from_since_us, T0 + 110 * M);
        // Evaluating again at the same time changes nothing.
        assert!(e.evaluate(T0 + 520 * M).is_empty());
    }

    /// Regression test for alerts that fired and resolved every minute while a burn rate
    /// hovered at a factor (seen at start-up, when the long windows hold little history).
    #[test]
    fn a_burn_rate_hovering_at_a_factor_fires_once_not_every_minute() {
        let mut e = engine("");
        // 99.9% objective; ticket 3d/6h at 1x. Minutes alternate between 0.2% and 0%
        // bad, so the windows' burn swings around 1x for hours.
        for k in 0..600 {
            let bad = if k % 2 == 0 { 2 } else { 0 };
            feed(&mut e, T0 + k * M, 1, 1000, bad);
        }
        let t = run(&mut e, 600);
        let fired = t.iter().filter(|t| t.kind == TransitionKind::Fired).count();
        assert!(fired <= 1, "one incident, one notification: {t:#?}");
        let mut flappy = engine("");
        flappy.settings.keep_firing_for = Duration::ZERO;
        for k in 0..600 {
            let bad = if k % 2 == 0 { 2 } else { 0 };
            feed(&mut flappy, T0 + k * M, 1, 1000, bad);
        }
        let without = run(&mut flappy, 600).len();
        assert!(
            without > t.len(),
            "the test must provoke flapping: {without} vs {}",
            t.len()
        );
    }

    #[test]
    fn disabled_tiers_never_fire() {
        let mut e = outage_engine("alert_tiers = [\"ticket\"]\n");
        let t = run(&mut e, 520);
        let summary: Vec<_> = t.iter().map(|t| ((t.at_us - T0) / M, t.to)).collect();
        // The 24h/2h ticket (both windows over 3) fires with the first outage minute.
        assert_eq!(summary, [(61, AlertLevel::Ticket), (440, AlertLevel::Ok)]);
        let mut e = outage_engine("alert_tiers = []\n");
        assert!(run(&mut e, 520).is_empty());
        // The budget still colours the status: 1000 bad events against a budget of 52.
        assert_eq!(
            status(&e, T0 + 520 * M, Sli::Availability).state,
            SloState::Red
        );
    }

    #[test]
    fn status_json() {
        let e = outage_engine("");
        let s: Vec<_> = e.status(T0 + 65 * M);
        insta::assert_json_snapshot!("status_during_outage", s);
        // The transition serializes with the same flat burn-rate fields.
        let mut e = outage_engine("");
        let t = run(&mut e, 61);
        insta::assert_json_snapshot!("transition_fired", t);
    }

    #[test]
    fn catalogued_services_report_before_their_first_event() {
        let e = engine("");
        let s = e.status(T0);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.total == 0
            && s.budget_remaining == 1.0
            && s.sli_value == 1.0
            && s.state == SloState::Green));
    }

    #[test]
    fn unknown_services_get_defaults_up_to_a_cap() {
        let settings = SloSettings {
            max_unknown_services: 1,
            ..SloSettings::default()
        };
        let mut e = SloEngine::new(&catalog(""), settings).unwrap();
        assert_eq!(e.observe(&row("mystery", T0, 10, 0, 0)), Observed::Counted);
        assert_eq!(
            e.observe(&row("mystery", T0 + M, 10, 0, 0)),
            Observed::Counted
        );
        assert_eq!(e.observe(&row("another", T0, 10, 0, 0)), Observed::Dropped);
        assert_eq!(e.observe(&row("svc", T0, 0, 0, 0)), Observed::Empty);
        assert_eq!((e.dropped_rows(), e.tracked_services()), (1, 2));
        let m: Vec<_> = e
            .status(T0 + 2 * M)
            .into_iter()
            .filter(|s| s.service == "mystery")
            .collect();
        assert_eq!(m.len(), 2);
        assert_eq!((&*m[0].team, m[0].total), ("unowned", 20));
    }

    /// Rows of a monitor's URL (from live checks, or primed from the lake's rollups at
    /// start) get the monitor policy: `[monitor_defaults]` without a table of its own, so
    /// 10 failed checks are enough to turn it red where a service needs 100 events.
    #[test]
    fn rows_of_a_monitor_url_get_the_monitor_defaults() {
        let mut e = SloEngine::new(
            &catalog("[monitor_defaults]\nteam = \"web\"\n"),
            SloSettings::default(),
        )
        .unwrap();
        for (i, service) in ["https://x.test/", "mystery"].into_iter().enumerate() {
            for m in 0..10 {
                let at = T0 + (m + i as i64 * 10) * M;
                assert_eq!(e.observe(&row(service, at, 1, 1, 0)), Observed::Counted);
            }
        }
        let s = e.status(T0 + 30 * M);
        let of = |name: &str| {
            s.iter()
                .find(|s| s.service == name && s.sli == Sli::Availability)
                .unwrap()
        };
        let monitor = of("https://x.test/");
        assert_eq!((&*monitor.team, monitor.state), ("web", SloState::Red));
        let service = of("mystery");
        assert_eq!(
            (&*service.team, service.state),
            ("unowned", SloState::Green)
        );
    }

    #[test]
    fn rows_older_than_every_window_are_stale() {
        let mut e = engine("");
        e.evaluate(T0 + 40 * 86_400_000_000);
        // 30d rolling window: the horizon is 30 days back from the last evaluation.
        assert_eq!(e.observe(&row("svc", T0, 10, 0, 0)), Observed::Stale);
        assert_eq!(
            e.observe(&row("svc", T0 + 11 * 86_400_000_000, 10, 0, 0)),
            Observed::Counted
        );
        assert_eq!(e.stale_rows(), 1);
    }

    #[test]
    fn malformed_rules_are_rejected_with_the_fix() {
        let settings = SloSettings {
            rules: vec![BurnRule {
                tier: AlertTier::Page,
                long_window: Duration::from_secs(65 * 60),
                budget_consumed: 0.02,
            }],
            ..SloSettings::default()
        };
        let err = SloEngine::new(&catalog(""), settings)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "SLO burn-rate rule #0 (page, long window 1h 5m): the long window must be a whole \
             multiple of 12 minutes so its short window (a twelfth) is whole minutes, e.g. 1h"
        );
    }

    // ---------------------------------------------------------------------------------
    // Properties
    // ---------------------------------------------------------------------------------

    proptest! {
        /// Within one calendar month, as time advances and rows arrive, the bad events in the
        /// budget window never decrease; while only all-bad rows arrive, the remaining budget
        /// never increases (adding k bad of k to bad/total never lowers the ratio).
        #[test]
        fn calendar_budget_spending_is_monotone(rs in rows(30 * DAY_MINUTES, 80), all_bad in any::<bool>()) {
            let mar1 = 1_740_787_200_000_000; // 2025-03-01T00:00:00Z
            let mut e = engine("window = \"calendar-month\"\n");
            let mut rs = rs;
            rs.sort_by_key(|r| r.0);
            let (mut last_bad, mut last_remaining) = (0u64, 1.0f64);
            for (m, c, err, sl) in rs {
                let err = if all_bad { c } else { err };
                e.observe(&row("svc", mar1 + m * M, c, err, sl));
                let now = mar1 + (m + 1) * M;
                e.evaluate(now);
                let s = status(&e, now, Sli::Availability);
                let bad = s.total - s.good;
                prop_assert!(bad >= last_bad, "bad {bad} < {last_bad}");
                if all_bad {
                    prop_assert!(s.budget_remaining <= last_remaining + 1e-12,
                        "remaining {} > {}", s.budget_remaining, last_remaining);
                }
                last_bad = bad;
                last_remaining = s.budget_remaining;
            }
        }

        /// With no bad events every burn rate is 0, the budget is whole, the state green and
        /// nothing ever fires.
        #[test]
        fn no_bad_events_no_burn(rs in rows(4 * DAY_MINUTES, 80), step in 30i64..600) {
            let mut e = engine("");
            for &(m, c, _, _) in &rs {
                e.observe(&row("svc", T0 + m * M, c, 0, 0));
            }
            let mut now = T0;
            while now <= T0 + 5 * 86_400_000_000 {
                prop_assert!(e.evaluate(now).is_empty());
                for s in e.status(now) {
                    prop_assert_eq!(s.burn_rates, BurnRates::default());
                    prop_assert_eq!(s.budget_remaining, 1.0);
                    prop_assert_eq!(s.state, SloState::Green);
                }
                now += step * M;
            }
        }

        /// More bad events (same totals) never improve the state or lower a burn rate.
        #[test]
        fn state_is_monotone_in_bad_events(
            rs in rows(4 * DAY_MINUTES, 80),
            extra in prop::collection::vec(0.0f64..=1.0, 80),
            at in 0i64..5 * DAY_MINUTES,
            min_events in 1u64..200,
        ) {
            let cfg = format!("min_events = {min_events}\n");
            let (mut a, mut b) = (engine(&cfg), engine(&cfg));
            for (i, &(m, c, err, sl)) in rs.iter().enumerate() {
                let more = |x: u64| x + ((c - x) as f64 * extra[i % extra.len()]).round() as u64;
                a.observe(&row("svc", T0 + m * M, c, err, sl));
                b.observe(&row("svc", T0 + m * M, c, more(err), more(sl)));
            }
            let now = T0 + at * M;
            for (sa, sb) in a.status(now).into_iter().zip(b.status(now)) {
                prop_assert!(sb.state >= sa.state, "{:?} < {:?}", sb.state, sa.state);
                prop_assert!(sb.service_state >= sa.service_state);
                prop_assert!(sb.alert >= sa.alert);
                prop_assert!(sb.budget_remaining <= sa.budget_remaining);
                for ((_, x), (_, y)) in sa.burn_rates.iter().zip(sb.burn_rates.iter()) {
                    prop_assert!(y >= x);
                }
            }
        }
    }
}
