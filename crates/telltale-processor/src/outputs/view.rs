//! The live view behind `GET /api/v1/slo` and the status page: the last evaluation of
//! every service's SLOs with its latest rollup window, shared with the HTTP handlers.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use telltale_core::RollupRow;
use telltale_core::slo::{SloState, SloStatus};

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

/// The last snapshot, shared with the HTTP handlers, and the SLO engine's counts for
/// `/metrics`.
#[derive(Debug, Default)]
pub struct SloView {
    snapshot: RwLock<SloSnapshot>,
    /// Services the SLO engine tracks (catalogued, and uncatalogued up to its cap).
    pub services: AtomicU64,
    /// Rollup rows of uncatalogued services past the SLO engine's cap: in the lake and
    /// InfluxDB, not in SLOs or on the status page.
    pub untracked_rows: AtomicU64,
}

impl SloView {
    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> SloSnapshot {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub(super) fn set(&self, s: SloSnapshot) {
        if let Ok(mut g) = self.snapshot.write() {
            *g = s;
        }
    }
}

/// The snapshot of an evaluation at event time `now_us`: `statuses` grouped by service,
/// with each service's `latest` rollup row.
pub(super) fn build_snapshot(
    now_us: i64,
    statuses: Vec<SloStatus>,
    latest: &BTreeMap<String, RollupRow>,
) -> SloSnapshot {
    let mut by_service: BTreeMap<String, Vec<SloStatus>> = BTreeMap::new();
    for s in statuses {
        by_service.entry(s.service.clone()).or_default().push(s);
    }
    let mut services: Vec<ServiceView> = by_service
        .into_iter()
        .map(|(service, slos)| {
            let latest = latest.get(&service).map(|r| LatestWindow {
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
