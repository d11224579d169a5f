//! Which service level indicator an SLO measures: the vocabulary every other file of the
//! SLO engine shares.

use std::fmt;

use serde::Serialize;

use crate::config::ServicePolicy;

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

    /// Position in per-SLI arrays: 0 (availability) or 1 (latency).
    pub(super) fn index(self) -> usize {
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
