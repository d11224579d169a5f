//! What happens to rollups and probes besides the lake: the SLO engine, InfluxDB, alert
//! delivery, and the live view behind `/api/v1/slo` and the status page.
//!
//! Runs on the writer thread, which emits rollup rows in event-time order. The SLO engine
//! is evaluated each time the rows cross into a new event-time minute (its windows cover
//! whole minutes), so replaying a file gives the same alert timeline as live traffic, and
//! nothing here depends on how fast the input arrives.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use telltale_core::slo::{AlertLevel, AlertTransition, SloEngine, SloState, SloStatus};
use telltale_core::{ProbeEvent, RollupRow};
use telltale_influx::{InfluxSink, SloStatusPoint};

use crate::alertmanager::{AlertUpdate, Notifier};

const MINUTE_US: i64 = 60_000_000;

/// The latest rollup window of a service, for the status page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestWindow {
    /// Window start, RFC 3339.
    pub window_start: String,
    /// Window width in seconds.
    pub window_seconds: i64,
    /// Events in the window.
    pub count: u64,
    /// Share of errors.
    pub error_rate: f64,
    /// Share of slow events.
    pub slow_rate: f64,
    /// Median latency, ms.
    pub latency_p50_ms: f64,
    /// p95 latency, ms.
    pub latency_p95_ms: f64,
    /// p99 latency, ms.
    pub latency_p99_ms: f64,
}

/// One service on the status page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// Service name.
    pub service: String,
    /// Owning team.
    pub team: String,
    /// Worst state over its SLOs: `green`, `yellow` or `red`.
    pub state: SloState,
    /// One entry per SLI (availability, latency).
    pub slos: Vec<SloStatus>,
    /// Its latest rollup window, if any.
    pub latest: Option<LatestWindow>,
}

/// `GET /api/v1/slo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SloSnapshot {
    /// Event time of the last evaluation, RFC 3339 (None before the first).
    pub evaluated_at: Option<String>,
    /// Services, red first, then yellow, then green; by name within a state.
    pub services: Vec<ServiceView>,
}

/// The last snapshot, shared with the HTTP handlers.
#[derive(Debug, Default)]
pub struct SloView(RwLock<SloSnapshot>);

impl SloView {
    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> SloSnapshot {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, s: SloSnapshot) {
        if let Ok(mut g) = self.0.write() {
            *g = s;
        }
    }
}

/// Alert delivery settings on the writer side.
#[derive(Debug, Clone)]
pub struct AlertDelivery {
    /// The delivery task.
    pub notifier: Notifier,
    /// Changes older than this (event time vs. wall clock) are logged, not delivered.
    pub max_age_us: i64,
}

/// Everything downstream of the rollups.
#[derive(Debug)]
pub struct Outputs {
    slo: SloEngine,
    influx: Option<InfluxSink>,
    alerts: Option<AlertDelivery>,
    view: Arc<SloView>,
    latest: BTreeMap<String, RollupRow>,
    /// Minute (µs) of the newest row observed; `None` before the first.
    cursor_minute: Option<i64>,
}

impl Outputs {
    /// `slo` may already be primed with history from the lake.
    pub fn new(
        slo: SloEngine,
        influx: Option<InfluxSink>,
        alerts: Option<AlertDelivery>,
        view: Arc<SloView>,
    ) -> Self {
        Self {
            slo,
            influx,
            alerts,
            view,
            latest: BTreeMap::new(),
            cursor_minute: None,
        }
    }

    /// Rollup rows as the writer emits them (event-time order).
    pub fn on_rollups(&mut self, rows: &[RollupRow]) {
        for row in rows {
            let minute = row.window_start_us.div_euclid(MINUTE_US) * MINUTE_US;
            match self.cursor_minute {
                // Every window before this minute has been emitted: evaluate up to it.
                Some(c) if minute > c => self.evaluate(minute),
                None => self.cursor_minute = Some(minute),
                _ => {}
            }
            self.slo.observe(row);
            self.latest.insert(row.service.clone(), row.clone());
        }
        if let Some(influx) = &self.influx {
            influx.send(rows);
        }
    }

    /// Probe measurements.
    pub fn on_probes(&mut self, probes: &[ProbeEvent]) {
        if let Some(influx) = &self.influx {
            influx.send(probes);
        }
    }

    /// End of input or shutdown: everything is emitted, so the last minute is complete.
    pub fn finish(&mut self) {
        if let Some(c) = self.cursor_minute {
            self.evaluate(c + MINUTE_US);
        }
    }

    /// Evaluates the SLOs at event time `now_us` (start of a minute).
    fn evaluate(&mut self, now_us: i64) {
        self.cursor_minute = Some(self.cursor_minute.map_or(now_us, |c| c.max(now_us)));
        let transitions = self.slo.evaluate(now_us);
        for t in &transitions {
            self.deliver(t);
        }
        let statuses = self.slo.status(now_us);
        if let Some(influx) = &self.influx {
            let points: Vec<SloStatusPoint> = statuses.iter().map(to_point).collect();
            influx.send(&points);
        }
        self.view.set(self.snapshot(now_us, statuses));
    }

    fn deliver(&self, t: &AlertTransition) {
        let burn_1h = t.burn_rates.burn_rate_1h;
        let message = format!(
            "SLO {}: {} {} {} → {} (budget left {:.1}%, burn 1h {:.1}x), team {}",
            t.sli.as_str(),
            t.service,
            t.kind.as_str(),
            t.from.as_str(),
            t.to.as_str(),
            t.budget_remaining * 100.0,
            burn_1h,
            t.team,
        );
        tracing::warn!(
            service = %t.service,
            team = %t.team,
            sli = t.sli.as_str(),
            from = t.from.as_str(),
            to = t.to.as_str(),
            at = %telltale_core::event::rfc3339(t.at_us),
            "{message}"
        );
        let Some(alerts) = &self.alerts else { return };
        let age = chrono::Utc::now().timestamp_micros() - t.at_us;
        if age > alerts.max_age_us {
            tracing::info!(service = %t.service, age_s = age / 1_000_000, "alert change is from old data: logged, not delivered");
            return;
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
            alerts.notifier.send(update);
        }
    }

    fn snapshot(&self, now_us: i64, statuses: Vec<SloStatus>) -> SloSnapshot {
        let mut by_service: BTreeMap<String, Vec<SloStatus>> = BTreeMap::new();
        for s in statuses {
            by_service.entry(s.service.clone()).or_default().push(s);
        }
        let mut services: Vec<ServiceView> = by_service
            .into_iter()
            .map(|(service, slos)| {
                let latest = self.latest.get(&service).map(|r| LatestWindow {
                    window_start: telltale_core::event::rfc3339(r.window_start_us),
                    window_seconds: r.window_seconds,
                    count: r.count,
                    error_rate: r.error_rate(),
                    slow_rate: r.slow_rate(),
                    latency_p50_ms: r.latency_p50_ms,
                    latency_p95_ms: r.latency_p95_ms,
                    latency_p99_ms: r.latency_p99_ms,
                });
                ServiceView {
                    team: slos.first().map(|s| s.team.clone()).unwrap_or_default(),
                    state: slos.first().map_or(SloState::Green, |s| s.service_state),
                    service,
                    slos,
                    latest,
                }
            })
            .collect();
        services.sort_by(|a, b| {
            b.state
                .code()
                .cmp(&a.state.code())
                .then_with(|| a.service.cmp(&b.service))
        });
        SloSnapshot {
            evaluated_at: Some(telltale_core::event::rfc3339(now_us)),
            services,
        }
    }
}

fn to_point(s: &SloStatus) -> SloStatusPoint {
    let b = &s.burn_rates;
    SloStatusPoint {
        service: s.service.clone(),
        team: s.team.clone(),
        sli: s.sli.as_str().to_owned(),
        state: s.state.code(),
        sli_value: s.sli_value,
        objective: s.objective,
        budget_remaining: s.budget_remaining,
        burn_rate_5m: b.burn_rate_5m,
        burn_rate_30m: b.burn_rate_30m,
        burn_rate_1h: b.burn_rate_1h,
        burn_rate_2h: b.burn_rate_2h,
        burn_rate_6h: b.burn_rate_6h,
        burn_rate_1d: b.burn_rate_1d,
        burn_rate_3d: b.burn_rate_3d,
        alert_tier: (s.alert != AlertLevel::Ok).then(|| s.alert.as_str().to_owned()),
        at_us: s.at_us,
    }
}
