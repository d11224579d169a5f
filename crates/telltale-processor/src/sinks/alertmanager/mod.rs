//! The Alertmanager sink: the SLO engine's alert changes delivered to an
//! Alertmanager-compatible receiver (`POST /api/v2/alerts`). The engine decides what an
//! alert is (its labels and annotations: `telltale_core::slo`); [`delivery`] keeps firing
//! alerts alive there and retries.

pub mod delivery;

pub use delivery::{Alert, AlertUpdate, Notifier, NotifierSettings, NotifierStats, NotifyError};

use super::sink::{Evaluation, Sink};

impl AlertDelivery {
    /// Starts delivery to the Alertmanager of `cfg` on the current tokio runtime.
    pub fn start(cfg: &telltale_core::config::AlertmanagerConfig) -> Self {
        let (notifier, _task) = Notifier::start(NotifierSettings::from_config(cfg));
        Self {
            notifier,
            max_age_us: i64::try_from(cfg.max_alert_age.as_micros()).unwrap_or(i64::MAX),
        }
    }
}

/// Alert delivery on the writer side.
#[derive(Debug, Clone)]
pub struct AlertDelivery {
    /// The delivery task.
    pub notifier: Notifier,
    /// Changes older than this (event time vs. wall clock) are logged, not delivered.
    pub max_age_us: i64,
}

impl Sink for AlertDelivery {
    fn on_evaluation(&mut self, evaluation: &Evaluation<'_>) {
        for t in evaluation.transitions {
            let age = chrono::Utc::now().timestamp_micros() - t.at_us;
            if age > self.max_age_us {
                tracing::info!(service = %t.service, age_s = age / 1_000_000, "alert change is from old data: logged, not delivered");
                continue;
            }
            for a in t.to_alertmanager() {
                let update = match a.ends_at_us {
                    Some(at_us) => AlertUpdate::Resolved {
                        labels: a.labels,
                        at_us,
                    },
                    None => AlertUpdate::Firing {
                        labels: a.labels,
                        annotations: a.annotations,
                        since_us: a.starts_at_us,
                    },
                };
                self.notifier.send(update);
            }
        }
    }
}
