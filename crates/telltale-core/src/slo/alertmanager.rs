//! The Alertmanager mapping: SLO alert states as the alerts `POST /api/v2/alerts` takes.
//!
//! [`AlertTransition::to_alertmanager`] turns a state change into the alerts to post (the
//! old tier resolved, the new one firing) and [`SloEngine::active_alerts`] lists what to
//! re-send while alerts fire. Labels identify an alert (`alertname`, `service`, `team`,
//! `sli`, `severity`, `tier`); annotations carry the numbers; times are RFC 3339 with
//! milliseconds.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use serde::Serialize;

use super::engine::{SloEngine, assess};
use super::sli::Sli;
use super::status::{BurnRates, RuleHit};
use super::transition::AlertTransition;
use crate::config::AlertTier;
use crate::event::format_rfc3339;

/// `alertname` label of every alert the engine produces.
pub const ALERT_NAME: &str = "SloErrorBudgetBurn";

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

/// RFC 3339 in UTC with milliseconds, as Alertmanager shows it; empty outside chrono's
/// range. The formatting itself is [`crate::event::format_rfc3339`].
pub fn rfc3339(us: i64) -> String {
    format_rfc3339(us, SecondsFormat::Millis).unwrap_or_default()
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

impl SloEngine {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::test_support::*;
    use crate::slo::{AlertLevel, TransitionKind};

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
}
