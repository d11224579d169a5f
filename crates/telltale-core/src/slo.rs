//! SLO engine: error budgets, multi-window multi-burn-rate alerts and service status.
//!
//! Two SLIs per service, both ratios of events: **availability** (events not `is_error`)
//! and **latency** (events not `is_slow`). Every number comes from exact integer counts
//! per minute, summed over a window and divided once (never an average of ratios):
//!
//! ```text
//! burn rate(window)  = (bad / total in the window) / (1 - objective)      0 when total = 0
//! budget remaining   = 1 - bad / (total * (1 - objective)) over the SLO window
//!                                                    1 when total = 0; negative when overspent
//! ```
//!
//! Alerts follow the SRE Workbook ("Alerting on SLOs"): a rule fires when the burn rate is
//! above its factor over a long window AND over a short window (long ÷ 12) ending now, and
//! both windows hold at least `min_events` events. The factor is derived, not hard-coded:
//! `factor = budget consumed × SLO period ÷ long window` (14.4 / 6 / 3 / 1 for 30 days).
//! One alert state per SLO (service × SLI) with the tier as a label; state changes come
//! out of [`SloEngine::evaluate`] as [`AlertTransition`] values.
//!
//! Pure code: the caller passes rollup rows in and the event time (normally the rollup
//! watermark) to evaluate at. Memory is bounded by a sparse per-minute series per service
//! covering the longest window it needs (the SLO window, at most 31 days for a calendar
//! month, or the 3-day alert window), pruned as evaluation time advances.
//! See `docs/slo.md` for the math with a worked example.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

pub use crate::config::AlertTier;
use crate::config::{ServiceCatalog, ServicePolicy, SloWindow};
use crate::rollup::RollupRow;

const MINUTE_US: i64 = 60_000_000;
const DAY_MINUTES: i64 = 1440;
/// A calendar month spans at most 31 days.
const CALENDAR_MONTH_MAX_MINUTES: i64 = 31 * DAY_MINUTES;
/// `alertname` label of every alert the engine produces.
pub const ALERT_NAME: &str = "SloErrorBudgetBurn";

// ---------------------------------------------------------------------------------------
// Public value types
// ---------------------------------------------------------------------------------------

/// Which service level indicator an SLO measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sli {
    /// Share of events that are not errors (`is_error`: 5xx or `error: true`).
    Availability,
    /// Share of events at or under the service's latency threshold (not `is_slow`).
    Latency,
}

impl Sli {
    /// Both SLIs, in report order.
    pub const ALL: [Sli; 2] = [Sli::Availability, Sli::Latency];

    /// `"availability"` or `"latency"`, as in labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Sli::Availability => "availability",
            Sli::Latency => "latency",
        }
    }

    /// This SLI's objective (a fraction) in a policy.
    pub fn objective(self, policy: &ServicePolicy) -> f64 {
        match self {
            Sli::Availability => policy.availability_objective,
            Sli::Latency => policy.latency_objective,
        }
    }

    fn index(self) -> usize {
        match self {
            Sli::Availability => 0,
            Sli::Latency => 1,
        }
    }
}

impl fmt::Display for Sli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The alert state of one SLO: not firing, or firing at a tier. Ordered by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    /// No burn-rate rule fires.
    #[default]
    Ok,
    /// A ticket-tier rule fires (and no page-tier rule).
    Ticket,
    /// A page-tier rule fires.
    Page,
}

impl AlertLevel {
    /// 0 (ok), 1 (ticket) or 2 (page): the InfluxDB field value.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The tier firing, if any.
    pub fn tier(self) -> Option<AlertTier> {
        match self {
            AlertLevel::Ok => None,
            AlertLevel::Ticket => Some(AlertTier::Ticket),
            AlertLevel::Page => Some(AlertTier::Page),
        }
    }

    /// `"ok"`, `"ticket"` or `"page"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Ok => "ok",
            AlertLevel::Ticket => "ticket",
            AlertLevel::Page => "page",
        }
    }
}

impl From<AlertTier> for AlertLevel {
    fn from(t: AlertTier) -> Self {
        match t {
            AlertTier::Ticket => AlertLevel::Ticket,
            AlertTier::Page => AlertLevel::Page,
        }
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Traffic-light state of an SLO or a service. Ordered: green < yellow < red.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SloState {
    /// No alert and enough budget left.
    #[default]
    Green,
    /// A ticket-tier alert fires, or less than `budget_warning_percent` of the budget is left.
    Yellow,
    /// A page-tier alert fires, or the budget is exhausted.
    Red,
}

impl SloState {
    /// 0 (green), 1 (yellow) or 2 (red): the InfluxDB `state` field.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// `"green"`, `"yellow"` or `"red"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SloState::Green => "green",
            SloState::Yellow => "yellow",
            SloState::Red => "red",
        }
    }
}

impl fmt::Display for SloState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Burn rates over the windows the Workbook's rules use (5m … 3d), each computed from
/// exact counts. Field names are the InfluxDB field names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BurnRates {
    /// Burn rate over the last 5 minutes.
    pub burn_rate_5m: f64,
    /// Burn rate over the last 30 minutes.
    pub burn_rate_30m: f64,
    /// Burn rate over the last hour.
    pub burn_rate_1h: f64,
    /// Burn rate over the last 2 hours.
    pub burn_rate_2h: f64,
    /// Burn rate over the last 6 hours.
    pub burn_rate_6h: f64,
    /// Burn rate over the last day.
    pub burn_rate_1d: f64,
    /// Burn rate over the last 3 days.
    pub burn_rate_3d: f64,
}

impl BurnRates {
    /// The reported windows, in minutes, in field order.
    pub const WINDOW_MINUTES: [i64; 7] = [5, 30, 60, 120, 360, 1440, 4320];

    fn from_array(a: [f64; 7]) -> Self {
        Self {
            burn_rate_5m: a[0],
            burn_rate_30m: a[1],
            burn_rate_1h: a[2],
            burn_rate_2h: a[3],
            burn_rate_6h: a[4],
            burn_rate_1d: a[5],
            burn_rate_3d: a[6],
        }
    }

    /// `(window label, burn rate)` pairs, shortest window first: `("5m", …)` … `("3d", …)`.
    pub fn iter(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        let v = [
            self.burn_rate_5m,
            self.burn_rate_30m,
            self.burn_rate_1h,
            self.burn_rate_2h,
            self.burn_rate_6h,
            self.burn_rate_1d,
            self.burn_rate_3d,
        ];
        Self::WINDOW_MINUTES
            .into_iter()
            .zip(v)
            .map(|(m, b)| (minutes_label(m), b))
    }
}

/// The rule that makes an SLO fire: both windows over the factor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// Tier of the rule.
    pub tier: AlertTier,
    /// Long window, e.g. `"1h"`.
    pub long_window: String,
    /// Short window (long ÷ 12), e.g. `"5m"`.
    pub short_window: String,
    /// Burn-rate factor both windows exceed (derived from the SLO period).
    pub factor: f64,
    /// Share of the period's error budget this rate spends within the long window.
    pub budget_consumed: f64,
    /// Burn rate over the long window.
    pub long_burn_rate: f64,
    /// Burn rate over the short window.
    pub short_burn_rate: f64,
}

/// What happened to an SLO's alert state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    /// ok → ticket or page: a new incident.
    Fired,
    /// ticket → page, same incident.
    Escalated,
    /// page → ticket, same incident.
    Deescalated,
    /// ticket or page → ok: the incident is over.
    Resolved,
}

impl TransitionKind {
    /// `"fired"`, `"escalated"`, `"deescalated"` or `"resolved"` (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Fired => "fired",
            TransitionKind::Escalated => "escalated",
            TransitionKind::Deescalated => "deescalated",
            TransitionKind::Resolved => "resolved",
        }
    }
}

/// A change of one SLO's alert state, for the processor to log and send to Alertmanager
/// (see [`AlertTransition::to_alertmanager`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertTransition {
    /// Event time of the evaluation that saw the change, µs since the epoch (UTC).
    pub at_us: i64,
    /// Service name.
    pub service: String,
    /// Owning team.
    pub team: String,
    /// Which SLI.
    pub sli: Sli,
    /// Fired, escalated, de-escalated or resolved.
    pub kind: TransitionKind,
    /// State before.
    pub from: AlertLevel,
    /// State after.
    pub to: AlertLevel,
    /// When the incident (the run of non-ok states this transition belongs to) started.
    pub started_at_us: i64,
    /// When the `from` level began (the previous transition's `at_us`; 0 before any).
    pub from_since_us: i64,
    /// The SLI's objective, a fraction.
    pub objective: f64,
    /// The SLO window, e.g. `"30days"` or `"calendar-month"`.
    pub window: String,
    /// Error budget remaining over the SLO window (may be negative).
    pub budget_remaining: f64,
    /// Burn rates at `at_us`.
    #[serde(flatten)]
    pub burn_rates: BurnRates,
    /// The rule that fires in the new state (`None` when resolved).
    pub rule: Option<RuleHit>,
}

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it (send a JSON list of these).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertmanagerAlert {
    /// Identity of the alert: `alertname`, `service`, `team`, `sli`, `severity`, `tier`.
    pub labels: BTreeMap<String, String>,
    /// Summary, description, budget and burn rates; not part of the identity.
    pub annotations: BTreeMap<String, String>,
    /// When this alert (this label set) started firing, µs since the epoch; serialized as
    /// RFC 3339 `startsAt`.
    #[serde(rename = "startsAt", serialize_with = "ser_rfc3339")]
    pub starts_at_us: i64,
    /// When the alert was resolved (`endsAt`); `None` while firing (Alertmanager then
    /// times it out unless it is re-sent, see [`SloEngine::active_alerts`]).
    #[serde(
        rename = "endsAt",
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_rfc3339"
    )]
    pub ends_at_us: Option<i64>,
    /// Back-link to the sender, filled in by whoever sends the alert.
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// The state of one SLO at an event time: the `/api/v1/slo` JSON and the InfluxDB
/// `slo_status` measurement (tags `service`, `team`, `sli`; the rest are fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloStatus {
    /// Event time evaluated at, µs since the epoch (UTC).
    pub at_us: i64,
    /// Service name.
    pub service: String,
    /// Owning team.
    pub team: String,
    /// Which SLI.
    pub sli: Sli,
    /// Objective, a fraction (0.999).
    pub objective: f64,
    /// The SLO window, e.g. `"30days"` or `"calendar-month"`.
    pub window: String,
    /// Good events in the SLO window.
    pub good: u64,
    /// All events in the SLO window.
    pub total: u64,
    /// good / total over the SLO window (1 when there are no events).
    pub sli_value: f64,
    /// Error budget remaining (1 = untouched, 0 = exhausted, negative = overspent).
    pub budget_remaining: f64,
    /// Burn rates over 5m … 3d.
    #[serde(flatten)]
    pub burn_rates: BurnRates,
    /// Which tier the burn-rate rules fire at now.
    pub alert: AlertLevel,
    /// The highest rule firing, if any.
    pub rule: Option<RuleHit>,
    /// This SLO's own colour.
    pub state: SloState,
    /// The service's colour: the worst over its SLOs.
    pub service_state: SloState,
}

/// A burn-rate rule: fire at `tier` when `budget_consumed` of the period's budget would go
/// within `long_window` (checked over the long window and over long ÷ 12).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnRule {
    /// Tier it fires at.
    pub tier: AlertTier,
    /// Long window; the short window is a twelfth of it. Whole minutes, a multiple of 12 min.
    pub long_window: Duration,
    /// Fraction of the period's error budget that would be spent in `long_window` (0.02).
    pub budget_consumed: f64,
}

impl BurnRule {
    /// The Workbook's four rules: page 2%/1h and 5%/6h, ticket 10%/1d and 10%/3d.
    pub fn workbook() -> Vec<BurnRule> {
        let h = |n: u64| Duration::from_secs(n * 3600);
        vec![
            BurnRule {
                tier: AlertTier::Page,
                long_window: h(1),
                budget_consumed: 0.02,
            },
            BurnRule {
                tier: AlertTier::Page,
                long_window: h(6),
                budget_consumed: 0.05,
            },
            BurnRule {
                tier: AlertTier::Ticket,
                long_window: h(24),
                budget_consumed: 0.10,
            },
            BurnRule {
                tier: AlertTier::Ticket,
                long_window: h(72),
                budget_consumed: 0.10,
            },
        ]
    }

    /// The short window: long ÷ 12.
    pub fn short_window(&self) -> Duration {
        self.long_window / 12
    }

    /// Burn-rate factor for an SLO period: budget consumed × period ÷ long window
    /// (0.02 × 30d ÷ 1h = 14.4).
    pub fn factor(&self, period: Duration) -> f64 {
        self.budget_consumed * period.as_secs_f64() / self.long_window.as_secs_f64()
    }
}

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

// ---------------------------------------------------------------------------------------
// Per-minute counts
// ---------------------------------------------------------------------------------------

/// Event counts; the two SLIs share `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    total: u64,
    errors: u64,
    slow: u64,
}

impl Counts {
    fn add(self, o: Counts) -> Counts {
        Counts {
            total: self.total + o.total,
            errors: self.errors + o.errors,
            slow: self.slow + o.slow,
        }
    }

    /// `self - o` where `o` is an earlier cumulative value (so never negative).
    fn since(self, o: Counts) -> Counts {
        Counts {
            total: self.total - o.total,
            errors: self.errors - o.errors,
            slow: self.slow - o.slow,
        }
    }

    fn bad(self, sli: Sli) -> u64 {
        match sli {
            Sli::Availability => self.errors,
            Sli::Latency => self.slow,
        }
    }
}

/// A sparse per-minute series of one service stored as cumulative counts, so any window
/// is two binary searches and a subtraction, whatever its length.
#[derive(Debug, Clone, Default)]
struct Series {
    /// `(minute, counts of every minute up to and including it)`, minutes increasing.
    entries: VecDeque<(i64, Counts)>,
    /// Cumulative counts of the pruned entries.
    base: Counts,
    /// Minutes before this were pruned; rows for them are stale.
    floor_minute: i64,
}

impl Series {
    fn new() -> Self {
        Self {
            floor_minute: i64::MIN,
            ..Self::default()
        }
    }

    /// Adds counts to a minute. Rows normally arrive in order (append); an out-of-order
    /// minute is inserted and every later cumulative value corrected.
    fn add(&mut self, minute: i64, c: Counts) -> bool {
        if minute < self.floor_minute {
            return false;
        }
        match self.entries.back_mut() {
            Some((m, cum)) if *m == minute => *cum = cum.add(c),
            Some((m, cum)) if *m < minute => {
                let next = cum.add(c);
                self.entries.push_back((minute, next));
            }
            None => self.entries.push_back((minute, self.base.add(c))),
            Some(_) => {
                let i = self.entries.partition_point(|(m, _)| *m < minute);
                if self.entries[i].0 != minute {
                    let before = self.cum_before_index(i);
                    self.entries.insert(i, (minute, before));
                }
                for (_, cum) in self.entries.range_mut(i..) {
                    *cum = cum.add(c);
                }
            }
        }
        true
    }

    fn cum_before_index(&self, i: usize) -> Counts {
        if i == 0 {
            self.base
        } else {
            self.entries[i - 1].1
        }
    }

    /// Cumulative counts of every minute before `minute`.
    fn cum_before(&self, minute: i64) -> Counts {
        self.cum_before_index(self.entries.partition_point(|(m, _)| *m < minute))
    }

    /// Counts of minutes in `[start, end)`.
    fn window(&self, start: i64, end: i64) -> Counts {
        if end <= start {
            return Counts::default();
        }
        self.cum_before(end).since(self.cum_before(start))
    }

    /// Forgets minutes before `minute`.
    fn prune_before(&mut self, minute: i64) {
        while let Some(&(m, cum)) = self.entries.front() {
            if m >= minute {
                break;
            }
            self.base = cum;
            self.entries.pop_front();
        }
        self.floor_minute = self.floor_minute.max(minute);
    }
}

// ---------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------

/// A rule resolved for one service: windows in minutes, factor from its SLO period.
#[derive(Debug, Clone)]
struct ResolvedRule {
    tier: AlertTier,
    long_minutes: i64,
    short_minutes: i64,
    factor: f64,
    budget_consumed: f64,
}

/// One SLO's alert state machine.
#[derive(Debug, Clone, Copy, Default)]
struct AlertMachine {
    level: AlertLevel,
    /// Start of the current incident (first non-ok evaluation).
    started_at_us: i64,
    /// When the current level began (escalation / de-escalation time).
    level_since_us: i64,
    /// Since when every evaluation has assessed a level below `level` (hysteresis).
    lower_since_us: Option<i64>,
}

#[derive(Debug, Clone)]
struct Tracked {
    policy: Arc<ServicePolicy>,
    rules: Vec<ResolvedRule>,
    /// Minutes of history any evaluation needs.
    horizon_minutes: i64,
    series: Series,
    alerts: [AlertMachine; 2],
}

/// Everything computed for one SLO at one time.
#[derive(Debug, Clone)]
struct Assessment {
    good: u64,
    total: u64,
    sli_value: f64,
    budget_remaining: f64,
    burn_rates: BurnRates,
    level: AlertLevel,
    rule: Option<RuleHit>,
    state: SloState,
}

/// The SLO engine: feed it rollup rows, evaluate it at event times.
#[derive(Debug, Clone)]
pub struct SloEngine {
    catalog: ServiceCatalog,
    settings: SloSettings,
    services: BTreeMap<String, Tracked>,
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
        for p in catalog.services() {
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
            .map(|r| {
                let long = (r.long_window.as_secs() / 60) as i64;
                ResolvedRule {
                    tier: r.tier,
                    long_minutes: long,
                    short_minutes: long / 12,
                    factor: r.factor(period),
                    budget_consumed: r.budget_consumed,
                }
            })
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

    /// Every alert firing after the last [`evaluate`](Self::evaluate), as Alertmanager
    /// alerts with annotations computed at `now_us`. Alertmanager expects a firing alert to
    /// be re-sent periodically (every 30 s – 3 min); this is what to re-send.
    pub fn active_alerts(&self, now_us: i64) -> Vec<AlertmanagerAlert> {
        let mut out = Vec::new();
        for (name, t) in &self.services {
            for sli in Sli::ALL {
                let m = t.alerts[sli.index()];
                let Some(tier) = m.level.tier() else {
                    continue;
                };
                let a = assess(t, sli, now_us);
                let ctx = AlertContext {
                    service: name,
                    team: &t.policy.team[..],
                    sli,
                    objective: sli.objective(&t.policy),
                    window: t.policy.window.into(),
                    budget_remaining: a.budget_remaining,
                    burn_rates: &a.burn_rates,
                    rule: a.rule.as_ref(),
                    started_at_us: m.started_at_us,
                };
                out.push(ctx.firing(tier, m.level_since_us));
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

/// The error budget as a fraction of events, `1 − objective`, rounded to 12 decimals:
/// `1.0 - 0.999` is 0.0010000000000000009 in floating point, which would make an exactly
/// spent budget read as barely positive and every burn rate end in …9991.
pub fn budget_fraction(objective: f64) -> f64 {
    ((1.0 - objective) * 1e12).round() / 1e12
}

/// Burn rate: bad ratio ÷ error budget fraction; 0 with no events.
pub fn burn_rate(bad: u64, total: u64, objective: f64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (bad as f64 / total as f64) / budget_fraction(objective)
    }
}

/// Error budget remaining: 1 − bad ÷ (total × (1 − objective)); 1 with no events, negative
/// when overspent (clamp only for display).
pub fn budget_remaining(bad: u64, total: u64, objective: f64) -> f64 {
    if total == 0 {
        1.0
    } else {
        1.0 - bad as f64 / (total as f64 * budget_fraction(objective))
    }
}

/// Start of the UTC calendar month holding `t_us`, µs since the epoch.
pub fn month_start_us(t_us: i64) -> i64 {
    DateTime::<Utc>::from_timestamp_micros(t_us)
        .and_then(|d| {
            Utc.with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
                .single()
        })
        .map_or(t_us, |d| d.timestamp_micros())
}

/// `[start, end)` in minutes of the SLO window at `now_us`.
fn slo_window(window: SloWindow, now_us: i64) -> (i64, i64) {
    let end = now_us.div_euclid(MINUTE_US);
    let start = match window {
        SloWindow::Rolling(d) => end - (d.as_secs() / 60) as i64,
        // The month holding `now`: at 00:00 on the 1st the window is empty, i.e. a fresh
        // budget; the minute before belongs to the previous month.
        SloWindow::CalendarMonth => month_start_us(now_us).div_euclid(MINUTE_US),
    };
    (start, end)
}

fn assess(t: &Tracked, sli: Sli, now_us: i64) -> Assessment {
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

/// `5` → `"5m"`, `60` → `"1h"`, `1440` → `"1d"`.
fn minutes_label(m: i64) -> String {
    if m % DAY_MINUTES == 0 {
        format!("{}d", m / DAY_MINUTES)
    } else if m % 60 == 0 {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

// ---------------------------------------------------------------------------------------
// Alertmanager mapping
// ---------------------------------------------------------------------------------------

/// RFC 3339 in UTC with milliseconds, as Alertmanager shows it.
pub fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn ser_rfc3339<S: serde::Serializer>(us: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*us))
}

fn ser_opt_rfc3339<S: serde::Serializer>(us: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match us {
        Some(us) => ser_rfc3339(us, s),
        None => s.serialize_none(),
    }
}

fn severity(tier: AlertTier) -> &'static str {
    match tier {
        AlertTier::Page => "critical",
        AlertTier::Ticket => "warning",
    }
}

struct AlertContext<'a> {
    service: &'a str,
    team: &'a str,
    sli: Sli,
    objective: f64,
    window: String,
    budget_remaining: f64,
    burn_rates: &'a BurnRates,
    rule: Option<&'a RuleHit>,
    started_at_us: i64,
}

impl AlertContext<'_> {
    fn labels(&self, tier: AlertTier) -> BTreeMap<String, String> {
        [
            ("alertname", ALERT_NAME),
            ("service", self.service),
            ("team", self.team),
            ("sli", self.sli.as_str()),
            ("severity", severity(tier)),
            ("tier", tier.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn common_annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert(
            "objective".to_owned(),
            format!(
                "{}% over {}",
                trim_float(self.objective * 100.0),
                self.window
            ),
        );
        a.insert(
            "budget_remaining".to_owned(),
            format!("{:.1}%", self.budget_remaining * 100.0),
        );
        a.insert(
            "burn_rates".to_owned(),
            self.burn_rates
                .iter()
                .map(|(w, b)| format!("{w}={b:.2}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
        a.insert(
            "incident_started_at".to_owned(),
            rfc3339(self.started_at_us),
        );
        a
    }

    fn firing(&self, tier: AlertTier, since_us: i64) -> AlertmanagerAlert {
        let mut annotations = self.common_annotations();
        let (summary, description) = match self.rule {
            Some(r) => (
                format!(
                    "{} {} SLO is burning its error budget {:.1}x too fast ({})",
                    self.service, self.sli, r.long_burn_rate, tier
                ),
                format!(
                    "Burn rate {:.2} over {} and {:.2} over {}, both above {} (the rate that \
                     spends {}% of the error budget in {}). Error budget remaining: {:.1}%.",
                    r.long_burn_rate,
                    r.long_window,
                    r.short_burn_rate,
                    r.short_window,
                    trim_float(r.factor),
                    trim_float(r.budget_consumed * 100.0),
                    r.long_window,
                    self.budget_remaining * 100.0
                ),
            ),
            None => (
                format!("{} {} SLO alert ({})", self.service, self.sli, tier),
                String::new(),
            ),
        };
        annotations.insert("summary".to_owned(), summary);
        if !description.is_empty() {
            annotations.insert("description".to_owned(), description);
        }
        AlertmanagerAlert {
            labels: self.labels(tier),
            annotations,
            starts_at_us: since_us,
            ends_at_us: None,
            generator_url: None,
        }
    }

    fn resolved(&self, tier: AlertTier, since_us: i64, at_us: i64) -> AlertmanagerAlert {
        let mut annotations = self.common_annotations();
        annotations.insert(
            "summary".to_owned(),
            format!(
                "{} {} SLO no longer burns at {} rate",
                self.service, self.sli, tier
            ),
        );
        AlertmanagerAlert {
            labels: self.labels(tier),
            annotations,
            starts_at_us: since_us,
            ends_at_us: Some(at_us),
            generator_url: None,
        }
    }
}

/// `99.900000000001` → `"99.9"`: at most 4 decimals, trailing zeros trimmed.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl AlertTransition {
    /// The alerts to post to Alertmanager for this change. The tier is a label (so
    /// inhibition rules and routes can use it), and labels identify an alert, so a change
    /// of tier resolves the old label set and starts the new one; route with
    /// `group_by: [alertname, service, sli]` to keep one notification group per incident.
    /// - fired: the new alert, `startsAt` = now;
    /// - escalated / de-escalated: the old tier resolved (`endsAt` = now) and the new one;
    /// - resolved: the old tier with `endsAt` = now.
    pub fn to_alertmanager(&self) -> Vec<AlertmanagerAlert> {
        let ctx = AlertContext {
            service: &self.service,
            team: &self.team,
            sli: self.sli,
            objective: self.objective,
            window: self.window.clone(),
            budget_remaining: self.budget_remaining,
            burn_rates: &self.burn_rates,
            rule: self.rule.as_ref(),
            started_at_us: self.started_at_us,
        };
        let mut out = Vec::with_capacity(2);
        if let Some(old) = self.from.tier() {
            out.push(ctx.resolved(old, self.from_since_us, self.at_us));
        }
        if let Some(new) = self.to.tier() {
            out.push(ctx.firing(new, self.at_us));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: i64 = MINUTE_US;
    /// 2025-01-01T00:00:00Z
    const T0: i64 = 1_735_689_600_000_000;

    fn catalog(extra: &str) -> ServiceCatalog {
        ServiceCatalog::from_toml_str(
            &format!(
                "[services.svc]\nteam = \"core\"\navailability_objective = 99.9\n\
                 latency_objective = 99.0\n{extra}"
            ),
            "t.toml",
        )
        .unwrap()
    }

    fn engine(extra: &str) -> SloEngine {
        SloEngine::new(&catalog(extra), SloSettings::default()).unwrap()
    }

    fn row(service: &str, start_us: i64, count: u64, errors: u64, slow: u64) -> RollupRow {
        RollupRow {
            service: service.to_owned(),
            team: "core".to_owned(),
            window_start_us: start_us,
            window_seconds: 60,
            count,
            errors,
            slow,
            latency_avg_ms: 0.0,
            latency_p50_ms: 0.0,
            latency_p95_ms: 0.0,
            latency_p99_ms: 0.0,
            latency_max_ms: 0.0,
        }
    }

    /// `n` minutes of `count` events with `errors` errors each, from `start_us`.
    fn feed(e: &mut SloEngine, start_us: i64, n: i64, count: u64, errors: u64) {
        for i in 0..n {
            assert_eq!(
                e.observe(&row("svc", start_us + i * M, count, errors, 0)),
                Observed::Counted
            );
        }
    }

    fn status(e: &SloEngine, now: i64, sli: Sli) -> SloStatus {
        e.status(now)
            .into_iter()
            .find(|s| s.service == "svc" && s.sli == sli)
            .unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn factors_are_derived_from_period_and_long_window() {
        let rules = BurnRule::workbook();
        let f = |days: u64| -> Vec<f64> {
            rules
                .iter()
                .map(|r| r.factor(Duration::from_secs(days * 86_400)))
                .collect()
        };
        // 0.02 × 720h ÷ 1h, 0.05 × 720h ÷ 6h, 0.1 × 720h ÷ 24h, 0.1 × 720h ÷ 72h
        for (got, want) in f(30).into_iter().zip([14.4, 6.0, 3.0, 1.0]) {
            assert!(close(got, want), "{got} != {want}");
        }
        // 28 days = 672h: 13.44, 5.6, 2.8, 0.9333 (as Sloth derives them)
        for (got, want) in f(28).into_iter().zip([13.44, 5.6, 2.8, 672.0 * 0.1 / 72.0]) {
            assert!(close(got, want), "{got} != {want}");
        }
        assert!(close(f(28)[3], 0.933_333_333_333_333_3));
        let shorts: Vec<_> = rules.iter().map(|r| r.short_window().as_secs()).collect();
        assert_eq!(shorts, [300, 1800, 7200, 21_600]);
        // A calendar month derives its factors from a nominal 30 days.
        assert_eq!(
            SloWindow::CalendarMonth.nominal(),
            Duration::from_secs(30 * 86_400)
        );
    }

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
    fn month_starts() {
        let us = |y, mo, d, h, mi| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
                .unwrap()
                .timestamp_micros()
        };
        assert_eq!(
            month_start_us(us(2024, 2, 29, 23, 59)),
            us(2024, 2, 1, 0, 0)
        );
        assert_eq!(month_start_us(us(2024, 3, 1, 0, 0)), us(2024, 3, 1, 0, 0));
        assert_eq!(
            month_start_us(us(2024, 3, 1, 0, 0) - 1),
            us(2024, 2, 1, 0, 0)
        );
        assert_eq!(
            month_start_us(us(2024, 12, 31, 23, 59)),
            us(2024, 12, 1, 0, 0)
        );
        assert_eq!(month_start_us(us(2025, 1, 1, 0, 0)), us(2025, 1, 1, 0, 0));
        // A 31-day month at its end needs 31 days of history, the ring's bound.
        let (s, e) = slo_window(SloWindow::CalendarMonth, us(2025, 1, 31, 23, 59) + M - 1);
        assert_eq!(e - s, CALENDAR_MONTH_MAX_MINUTES - 1);
    }

    /// One hour clean, a 10-minute outage, then clean: the hand-computed timeline.
    fn outage_engine(extra: &str) -> SloEngine {
        let mut e = engine(extra);
        feed(&mut e, T0, 60, 100, 0);
        feed(&mut e, T0 + 60 * M, 10, 100, 100);
        feed(&mut e, T0 + 70 * M, 500, 100, 0);
        e
    }

    fn run(e: &mut SloEngine, minutes: i64) -> Vec<AlertTransition> {
        (1..=minutes).flat_map(|k| e.evaluate(T0 + k * M)).collect()
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

    #[test]
    fn transition_kind_names_match_their_json() {
        for k in [
            TransitionKind::Fired,
            TransitionKind::Escalated,
            TransitionKind::Deescalated,
            TransitionKind::Resolved,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
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
    fn escalation_keeps_the_incident() {
        // A slow burn (0.5% errors: 5×) tickets; an outage on top escalates to a page.
        let mut e = engine("");
        feed(&mut e, T0, 120, 1000, 5);
        feed(&mut e, T0 + 120 * M, 5, 1000, 1000);
        let t = run(&mut e, 125);
        let kinds: Vec<_> = t
            .iter()
            .map(|t| ((t.at_us - T0) / M, t.kind, t.to))
            .collect();
        assert_eq!(
            kinds,
            [
                // From the first complete minute (1000 events ≥ min_events) both windows
                // of the 24h/2h ticket burn at 5× > 3; no page window reaches 6.
                (1, TransitionKind::Fired, AlertLevel::Ticket),
                // Minute 120 fails: 5m = 1020/5000 (204×), 1h = 1295/60 000 (21.6×).
                (121, TransitionKind::Escalated, AlertLevel::Page),
            ]
        );
        assert_eq!(t[1].started_at_us, T0 + M);
        let am = t[1].to_alertmanager();
        assert_eq!(am.len(), 2);
        assert_eq!(am[0].labels["tier"], "ticket");
        assert_eq!(am[0].ends_at_us, Some(T0 + 121 * M));
        assert_eq!(am[0].starts_at_us, T0 + M);
        assert_eq!(am[1].labels["tier"], "page");
        assert_eq!(am[1].labels["severity"], "critical");
        assert_eq!(am[1].ends_at_us, None);
        let json = serde_json::to_value(&am).unwrap();
        assert_eq!(json[0]["endsAt"], "2025-01-01T02:01:00.000Z");
        assert_eq!(json[0]["startsAt"], "2025-01-01T00:01:00.000Z");
        assert!(json[1].get("endsAt").is_none());
    }

    #[test]
    fn alertmanager_payloads() {
        let mut e = outage_engine("");
        let t = run(&mut e, 520);
        let payloads: Vec<_> = t.iter().map(AlertTransition::to_alertmanager).collect();
        insta::assert_json_snapshot!("alertmanager_outage_payloads", payloads);
        // While firing, the alert to re-send keeps its startsAt.
        let mut e = outage_engine("");
        run(&mut e, 70);
        let active = e.active_alerts(T0 + 70 * M);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].starts_at_us, T0 + 61 * M);
        assert_eq!(active[0].labels["sli"], "availability");
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

    #[test]
    fn series_handles_out_of_order_minutes() {
        let mut s = Series::new();
        let c = |n| Counts {
            total: n,
            errors: 1,
            slow: 0,
        };
        for m in [5, 9, 3, 9, 7, 3] {
            assert!(s.add(m, c(m as u64)));
        }
        assert_eq!(s.window(0, 100).total, 3 + 3 + 5 + 7 + 9 + 9);
        assert_eq!(s.window(4, 8).total, 5 + 7);
        assert_eq!(
            s.window(3, 4),
            Counts {
                total: 6,
                errors: 2,
                slow: 0
            }
        );
        s.prune_before(6);
        assert_eq!(s.window(6, 100).total, 7 + 18);
        assert!(!s.add(5, c(1)), "pruned minutes are stale");
    }

    // ---------------------------------------------------------------------------------
    // Properties
    // ---------------------------------------------------------------------------------

    /// Rows as (minute offset, count, errors, slow) with errors, slow <= count.
    fn rows(max_minute: i64, n: usize) -> impl Strategy<Value = Vec<(i64, u64, u64, u64)>> {
        prop::collection::vec(
            (0..max_minute, 1u64..400, 0.0f64..=1.0, 0.0f64..=1.0).prop_map(|(m, c, e, s)| {
                let f = |x: f64| ((c as f64 * x * x * x).round() as u64).min(c);
                (m, c, f(e), f(s))
            }),
            1..n,
        )
    }

    proptest! {
        /// Windows are exact integer sums, and a short window's counts never exceed those
        /// of a long window ending at the same minute (whatever order rows came in).
        #[test]
        fn windows_are_exact_and_nested(rs in rows(5 * DAY_MINUTES, 120), end in 0i64..6 * DAY_MINUTES) {
            let mut s = Series::new();
            for &(m, c, e, sl) in &rs {
                s.add(m, Counts { total: c, errors: e, slow: sl });
            }
            for r in BurnRule::workbook() {
                let long = (r.long_window.as_secs() / 60) as i64;
                let short = long / 12;
                let (lw, sw) = (s.window(end - long, end), s.window(end - short, end));
                prop_assert!(sw.total <= lw.total && sw.errors <= lw.errors && sw.slow <= lw.slow);
                let brute = |len: i64| rs.iter().filter(|(m, ..)| (end - len..end).contains(m))
                    .fold(Counts::default(), |a, &(_, c, e, sl)| a.add(Counts { total: c, errors: e, slow: sl }));
                prop_assert_eq!(lw, brute(long));
                prop_assert_eq!(sw, brute(short));
            }
        }

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
