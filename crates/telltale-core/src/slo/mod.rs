//! SLO engine: error budgets, multi-window multi-burn-rate alerts and service status.
//!
//! Its place in the data flow, between the rollups and the outputs:
//!
//! ```text
//! [rollup] ──RollupRow──▶ SloEngine::observe ──▶ per-minute good/total counts per service
//!                                                      │  evaluate / status at an event time
//!                                                      ▼  (normally the rollup watermark)
//!                              budgets, burn rates, burn-rate rules firing, alert states
//!                                                      │
//!          ┌───────────────────────────────────────────┴──────────────────────┐
//!          ▼                                                                  ▼
//!    SloStatus ──▶ /api/v1/slo, InfluxDB slo_status      AlertTransition ──▶ logs, Alertmanager
//!                                                        (AlertmanagerAlert payloads)
//! ```
//!
//! One file per job, lowest level first; each uses only files listed before it:
//!
//! - `sli`: which indicator ([`Sli`]) and its objective in a policy;
//! - `burn`: the budget arithmetic ([`burn_rate`], [`budget_remaining`]) and the burn-rate
//!   rules ([`BurnRule`]) with their factors derived from the SLO period;
//! - `window`: per-minute counts of a service and the windows over them, SLO window bounds
//!   ([`month_start_us`]), window labels;
//! - `status`: what is reported about one SLO ([`SloStatus`], [`AlertLevel`], [`SloState`],
//!   [`BurnRates`], [`RuleHit`]);
//! - `transition`: a change of an SLO's alert state ([`AlertTransition`]);
//! - `engine`: [`SloEngine`] and its settings: observe, assess, evaluate, status;
//! - `alertmanager`: the Alertmanager payloads ([`AlertmanagerAlert`],
//!   [`AlertTransition::to_alertmanager`], [`SloEngine::active_alerts`], [`rfc3339`]).
//!
//! (`test_support`, compiled for tests only, holds the fixtures the tests share.) Every
//! public item is re-exported here: the paths are `telltale_core::slo::X`.
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

mod alertmanager;
mod burn;
mod engine;
mod sli;
mod status;
#[cfg(test)]
mod test_support;
mod transition;
mod window;

pub use alertmanager::{ALERT_NAME, AlertmanagerAlert, rfc3339};
pub use burn::{BurnRule, budget_fraction, budget_remaining, burn_rate};
pub use engine::{Observed, SloEngine, SloError, SloSettings};
pub use sli::Sli;
pub use status::{AlertLevel, BurnRates, RuleHit, SloState, SloStatus};
pub use transition::{AlertTransition, TransitionKind};
pub use window::month_start_us;

pub use crate::config::AlertTier;
