//! # telltale-monitor
//!
//! URL monitors, at the start of the data flow like the simulator and the probes:
//!
//! ```text
//! URL ──[check]── DNS ▸ connect ▸ TLS ▸ request ▸ first byte ▸ body ──▶ CheckResult line
//!                                                                     ──▶ pipeline (lake, SLOs)
//! ```
//!
//! One check ([`Checker::check`]) times each phase as blackbox_exporter's http probe
//! reports them (resolve, connect, TLS, processing = time to first byte, transfer),
//! follows redirects up to a limit, reads the certificate's expiry even when the
//! certificate is refused, and turns every failure (a name that does not resolve, a
//! refused port, a bad certificate, a timeout) into a result with an error class and the
//! reason, never into an error of its own.

pub mod check;
pub mod registry;
pub mod result;
pub mod scheduler;
pub mod spec;
pub mod store;

pub use check::{CheckSettings, Checker};
pub use registry::{MonitorView, Registry, RegistryError, Source};
pub use result::{CheckError, CheckResult};
pub use scheduler::{Check, FirstCheck, Scheduler, SchedulerSettings, SchedulerStats};
pub use spec::{Every, Monitor, SpecError};
pub use store::{FileStore, MonitorStore, StoreError};
