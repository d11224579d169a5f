//! The interface every sink implements.

use telltale_core::slo::{AlertTransition, AlertmanagerAlert, SloStatus};
use telltale_core::{HttpCheckEvent, ProbeEvent, RollupRow};

/// One evaluation of every SLO, at the start of an event-time minute.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation<'a> {
    /// Event time of the evaluation, µs since the epoch.
    pub at_us: i64,
    /// The state of every SLO.
    pub statuses: &'a [SloStatus],
    /// The alert changes this evaluation made.
    pub transitions: &'a [AlertTransition],
    /// Every alert firing after this evaluation, with `startsAt` = when it began: the
    /// state to hold a receiver to (a change can be missed; the state cannot).
    pub active: &'a [AlertmanagerAlert],
}

/// An output of the processor. Every method has a default that ignores its input, so a
/// sink implements only what it takes.
pub trait Sink: Send + std::fmt::Debug {
    /// Rollup rows as the writer emits them (event-time order).
    fn on_rollups(&mut self, _rows: &[RollupRow]) {}
    /// Probe measurements, as they are applied.
    fn on_probes(&mut self, _probes: &[ProbeEvent]) {}
    /// URL check results (`"kind":"http"` lines), as they are applied.
    fn on_checks(&mut self, _checks: &[HttpCheckEvent]) {}
    /// An evaluation of the SLOs.
    fn on_evaluation(&mut self, _evaluation: &Evaluation<'_>) {}
    /// End of input or shutdown: nothing more follows.
    fn on_finish(&mut self) {}
}
