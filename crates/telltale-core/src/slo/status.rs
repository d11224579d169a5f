//! What the engine reports about an SLO at an event time: [`SloStatus`] (the
//! `/api/v1/slo` JSON and the InfluxDB `slo_status` measurement) and the values it is made
//! of: alert level, traffic-light state, burn rates and the rule that fires.

use std::fmt;

use serde::Serialize;

use super::sli::Sli;
use super::window::minutes_label;
use crate::config::AlertTier;

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

    pub(super) fn from_array(a: [f64; 7]) -> Self {
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
