//! The Alertmanager sink: the SLO engine's firing alerts delivered to an
//! Alertmanager-compatible receiver (`POST /api/v2/alerts`). The engine decides what an
//! alert is (its labels and annotations: `telltale_core::slo`); this sink holds the
//! receiver to the engine's state; [`delivery`] keeps firing alerts alive there and
//! retries.
//!
//! **What is delivered.** After every evaluation the sink compares the engine's firing
//! alerts ([`Evaluation::active`]) with what it has told the receiver: a new label set is
//! posted as firing, with `startsAt` = when it began (however long ago that was); a label
//! set that is gone is posted as resolved, at the evaluation's time. Only evaluations
//! whose event time is within `alertmanager.max_alert_age` of the wall clock are
//! reconciled, so a replayed day of history does not page for incidents long over; their
//! alert changes are logged. The first recent evaluation brings the receiver up to date,
//! whatever the older ones did (an outage still going after a restart, a catch-up after a
//! network break). At the end of an input ([`Sink::on_finish`]) what is firing is
//! delivered whatever its age: `telltale process --input` pages for an outage still going
//! at the end of its file.

pub mod delivery;

use std::collections::{BTreeMap, BTreeSet};

pub use delivery::{Alert, AlertUpdate, Notifier, NotifierSettings, NotifierStats, NotifyError};
use telltale_core::slo::AlertmanagerAlert;

use super::sink::{Evaluation, Sink};

type Labels = BTreeMap<String, String>;

/// Alert delivery on the writer side: the engine's state, reconciled with what the
/// receiver was told.
#[derive(Debug)]
pub struct AlertDelivery {
    notifier: Notifier,
    /// Evaluations older than this (event time vs. wall clock) are logged, not delivered.
    max_age_us: i64,
    /// Label sets the receiver was told are firing (and not since resolved).
    told: BTreeSet<Labels>,
    /// The newest evaluation's firing alerts and its time, delivered at the end.
    latest: Option<(i64, Vec<AlertmanagerAlert>)>,
}

impl AlertDelivery {
    /// Starts delivery to the Alertmanager of `cfg` on the current tokio runtime. The
    /// task ends once the sink is dropped and what it queued is posted: await it to
    /// deliver before exiting.
    pub fn start(
        cfg: &telltale_core::config::AlertmanagerConfig,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), NotifyError> {
        let (notifier, task) = Notifier::start(NotifierSettings::from_config(cfg))?;
        let max_age_us = i64::try_from(cfg.max_alert_age.as_micros()).unwrap_or(i64::MAX);
        Ok((Self::new(notifier, max_age_us), task))
    }

    /// Delivery through `notifier`, reconciling evaluations at most `max_age_us` old.
    pub fn new(notifier: Notifier, max_age_us: i64) -> Self {
        Self {
            notifier,
            max_age_us,
            told: BTreeSet::new(),
            latest: None,
        }
    }

    /// The delivery counters (shared; holding them does not keep delivery running).
    pub fn stats(&self) -> std::sync::Arc<NotifierStats> {
        self.notifier.shared_stats()
    }

    /// Tells the receiver what changed between what it was told and `active`, the firing
    /// alerts of the evaluation at `at_us`.
    fn reconcile(&mut self, at_us: i64, active: &[AlertmanagerAlert]) {
        let firing: BTreeSet<&Labels> = active.iter().map(|a| &a.labels).collect();
        let gone: Vec<Labels> = self
            .told
            .iter()
            .filter(|l| !firing.contains(l))
            .cloned()
            .collect();
        for labels in gone {
            self.told.remove(&labels);
            self.notifier.send(AlertUpdate::Resolved { labels, at_us });
        }
        for a in active {
            if self.told.insert(a.labels.clone()) {
                self.notifier.send(AlertUpdate::Firing {
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    since_us: a.starts_at_us,
                });
            }
        }
    }
}

impl Sink for AlertDelivery {
    fn on_evaluation(&mut self, evaluation: &Evaluation<'_>) {
        self.latest = Some((evaluation.at_us, evaluation.active.to_vec()));
        let age_us = chrono::Utc::now().timestamp_micros() - evaluation.at_us;
        if age_us > self.max_age_us {
            for t in evaluation.transitions {
                tracing::info!(
                    service = %t.service,
                    sli = t.sli.as_str(),
                    to = t.to.as_str(),
                    age_s = age_us / 1_000_000,
                    "alert change is from old data (older than alertmanager.max_alert_age): \
                     logged; what is still firing is delivered once data is recent or at the \
                     end of the input"
                );
            }
            return;
        }
        self.reconcile(evaluation.at_us, evaluation.active);
    }

    fn on_finish(&mut self) {
        if let Some((at_us, active)) = self.latest.take() {
            self.reconcile(at_us, &active);
            self.latest = Some((at_us, active));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::UnboundedReceiver;

    const MINUTE: i64 = 60_000_000;

    fn now() -> i64 {
        chrono::Utc::now().timestamp_micros()
    }

    fn alert(service: &str, tier: &str, starts_at_us: i64) -> AlertmanagerAlert {
        AlertmanagerAlert {
            labels: [
                ("alertname", "SloErrorBudgetBurn"),
                ("service", service),
                ("tier", tier),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            annotations: BTreeMap::from([("summary".to_owned(), format!("{service} burns"))]),
            starts_at_us,
            ends_at_us: None,
            generator_url: None,
        }
    }

    fn evaluate(sink: &mut AlertDelivery, at_us: i64, active: &[AlertmanagerAlert]) {
        sink.on_evaluation(&Evaluation {
            at_us,
            statuses: &[],
            transitions: &[],
            active,
        });
    }

    fn sent(rx: &mut UnboundedReceiver<AlertUpdate>) -> Vec<AlertUpdate> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn sink() -> (AlertDelivery, UnboundedReceiver<AlertUpdate>) {
        let (notifier, rx) = Notifier::detached();
        (AlertDelivery::new(notifier, 15 * MINUTE), rx)
    }

    #[test]
    fn regression_an_alert_that_began_long_ago_and_still_fires_is_delivered() {
        // #12: an outage whose last 30 minutes arrive in one batch. Its alert began in
        // old data; it must reach the receiver with startsAt = when it began.
        let (mut sink, mut rx) = sink();
        let began = now() - 30 * MINUTE;
        for m in 0..30 {
            let at = began + m * MINUTE;
            evaluate(&mut sink, at, &[alert("auth", "page", began)]);
        }
        assert_eq!(
            sent(&mut rx),
            [AlertUpdate::Firing {
                labels: alert("auth", "page", began).labels,
                annotations: alert("auth", "page", began).annotations,
                since_us: began,
            }]
        );
        // Held, not re-posted by every evaluation (the delivery task re-sends it).
        evaluate(&mut sink, now(), &[alert("auth", "page", began)]);
        assert_eq!(sent(&mut rx), []);
    }

    #[test]
    fn an_alert_that_began_and_ended_in_old_history_is_only_logged() {
        let (mut sink, mut rx) = sink();
        let t0 = now() - 3 * 60 * MINUTE;
        evaluate(&mut sink, t0, &[]);
        evaluate(
            &mut sink,
            t0 + MINUTE,
            &[alert("auth", "page", t0 + MINUTE)],
        );
        evaluate(&mut sink, t0 + 2 * MINUTE, &[]);
        evaluate(&mut sink, now(), &[]);
        sink.on_finish();
        assert_eq!(sent(&mut rx), []);
    }

    #[test]
    fn a_recent_resolve_and_escalation_reach_the_receiver() {
        let (mut sink, mut rx) = sink();
        let t = now() - 5 * MINUTE;
        evaluate(&mut sink, t, &[alert("auth", "ticket", t)]);
        evaluate(&mut sink, t + MINUTE, &[alert("auth", "page", t + MINUTE)]);
        evaluate(&mut sink, t + 2 * MINUTE, &[]);
        let kinds: Vec<_> = sent(&mut rx)
            .into_iter()
            .map(|u| match u {
                AlertUpdate::Firing {
                    labels, since_us, ..
                } => ("firing", labels["tier"].clone(), since_us),
                AlertUpdate::Resolved { labels, at_us } => {
                    ("resolved", labels["tier"].clone(), at_us)
                }
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("firing", "ticket".to_owned(), t),
                ("resolved", "ticket".to_owned(), t + MINUTE),
                ("firing", "page".to_owned(), t + MINUTE),
                ("resolved", "page".to_owned(), t + 2 * MINUTE),
            ]
        );
    }

    #[test]
    fn the_end_of_an_input_delivers_what_is_firing_whatever_its_age() {
        // `telltale process --input` of yesterday's file, its outage still going at the end.
        let (mut sink, mut rx) = sink();
        let t = now() - 24 * 60 * MINUTE;
        evaluate(&mut sink, t, &[alert("auth", "page", t - MINUTE)]);
        assert_eq!(sent(&mut rx), []);
        sink.on_finish();
        assert!(
            matches!(&sent(&mut rx)[..], [AlertUpdate::Firing { since_us, .. }] if *since_us == t - MINUTE)
        );
        sink.on_finish();
        assert_eq!(sent(&mut rx), [], "a second end repeats nothing");
    }
}
