//! Error-budget arithmetic and the burn-rate alert rules.
//!
//! The three formulas (budget fraction, burn rate, budget remaining) over exact counts,
//! and the Workbook's multi-window rules with their factors derived from the SLO period.

use std::time::Duration;

use serde::Serialize;

use crate::config::AlertTier;

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

/// A rule resolved for one service: windows in minutes, factor from its SLO period.
#[derive(Debug, Clone)]
pub(super) struct ResolvedRule {
    pub(super) tier: AlertTier,
    pub(super) long_minutes: i64,
    pub(super) short_minutes: i64,
    pub(super) factor: f64,
    pub(super) budget_consumed: f64,
}

impl ResolvedRule {
    /// `r` for a service whose SLO period is `period`.
    pub(super) fn new(r: &BurnRule, period: Duration) -> Self {
        let long = (r.long_window.as_secs() / 60) as i64;
        ResolvedRule {
            tier: r.tier,
            long_minutes: long,
            short_minutes: long / 12,
            factor: r.factor(period),
            budget_consumed: r.budget_consumed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SloWindow;
    use crate::slo::test_support::*;

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
}
