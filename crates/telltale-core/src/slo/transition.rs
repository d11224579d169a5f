//! A change of one SLO's alert state, as [`SloEngine::evaluate`](super::SloEngine::evaluate)
//! returns it for the processor to log and to send to Alertmanager.

use serde::Serialize;

use super::sli::Sli;
use super::status::{AlertLevel, BurnRates, RuleHit};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
