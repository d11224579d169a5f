//! The simulator proper: a merged, time-ordered stream of service events and probe
//! measurements in simulated time.
//!
//! Service events form one Poisson process whose rate is `rate × diurnal(t) × spike(t)`;
//! each event goes to a service chosen by weight. Latency is log-normal around the
//! service's baseline, status codes follow the service's error rate, and incidents
//! (scheduled per simulated hour from the seed, or started by hand) change both for one
//! service at a time.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use telltale_core::ServiceCatalog;
use telltale_core::event::MICROS_PER_SEC;

use crate::error::SimError;
use crate::format::{TimestampFormatter, push_fixed3, push_hex128, push_u64, truncate_to_ms};
use crate::probe::ProbeSim;
use crate::profile::{EndpointTemplate, ServiceProfile, json_inner, splitmix64};

/// 2025-01-01T00:00:00Z in microseconds: where seeded runs start (see
/// [`crate::default_start_us`]).
pub const SEEDED_START_US: i64 = 1_735_689_600 * MICROS_PER_SEC;

const HOUR_US: i64 = 3600 * MICROS_PER_SEC;
const SCHEDULED_ID_BASE: u64 = 1_000_000_000;
/// Chance that a given simulated hour has an incident (when incidents are on).
const INCIDENT_PROBABILITY_PER_HOUR: f64 = 0.25;
/// Latencies are capped here, as a client or gateway timeout would.
const MAX_LATENCY_MS: f64 = 120_000.0;
/// Latest start accepted: the end of year 9999 minus a year of headroom.
const MAX_START_US: i64 = 253_370_764_800 * MICROS_PER_SEC;

/// What to simulate and from when. Equal configs (with the same catalogue) produce
/// byte-identical output.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Simulated time of the start, microseconds since the epoch (UTC).
    pub start_us: i64,
    /// Average service events per simulated second, over all services (the diurnal curve
    /// moves the instantaneous rate between 0.5× and 1.5× of this).
    pub rate: f64,
    /// Target of the simulated network probes; `None` for no probes.
    pub probe_target: Option<String>,
    /// Simulated time between two probe measurements.
    pub probe_interval: Duration,
    /// Whether incidents are scheduled from the seed (manual ones always work).
    pub incidents: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            start_us: SEEDED_START_US,
            rate: 100.0,
            probe_target: None,
            probe_interval: Duration::from_secs(10),
            incidents: true,
        }
    }
}

impl SimConfig {
    /// Checks the values; [`Simulator::new`] does not fail, it clamps what this rejects.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field, message: String| Err(SimError::InvalidConfig { field, message });
        if !self.rate.is_finite() || self.rate < 0.0 {
            return bad(
                "rate",
                format!(
                    "{} is not a rate: give events per second, e.g. 100",
                    self.rate
                ),
            );
        }
        if !(0..=MAX_START_US).contains(&self.start_us) {
            return bad(
                "start_us",
                format!("{} is outside 1970..9999", self.start_us),
            );
        }
        if let Some(t) = &self.probe_target {
            if t.trim().is_empty() || t.len() > 253 {
                return bad(
                    "probe_target",
                    format!(
                        "{t:?} is not a target: give a host name of 1 to 253 bytes, e.g. example.com"
                    ),
                );
            }
            if self.probe_interval < Duration::from_millis(1) {
                return bad(
                    "probe_interval",
                    "must be at least 1ms, e.g. 10s".to_owned(),
                );
            }
        }
        if self.rate == 0.0 && self.probe_target.is_none() {
            return bad(
                "rate",
                "is 0 and there is no probe target, so there is nothing to simulate".to_owned(),
            );
        }
        Ok(())
    }
}

/// Kinds of incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Latency × magnitude (scheduled: ×4–8 for 10–30 min).
    LatencyRegression,
    /// A magnitude fraction of requests fail with a 5xx (scheduled: 10–40% for 5–15 min).
    ErrorBurst,
    /// Every request fails with 503 (scheduled: for 3–10 min).
    Outage,
}

impl IncidentKind {
    /// Every kind.
    pub const ALL: [IncidentKind; 3] = [Self::LatencyRegression, Self::ErrorBurst, Self::Outage];

    /// Stable snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LatencyRegression => "latency_regression",
            Self::ErrorBurst => "error_burst",
            Self::Outage => "outage",
        }
    }

    /// Magnitude of an incident started by hand: latency ×6, 25% errors, or 1 (outage).
    pub fn default_magnitude(self) -> f64 {
        match self {
            Self::LatencyRegression => 6.0,
            Self::ErrorBurst => 0.25,
            Self::Outage => 1.0,
        }
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IncidentKind {
    type Err = SimError;
    /// Accepts the snake_case names and their kebab-case spellings.
    fn from_str(s: &str) -> Result<Self, SimError> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == norm)
            .ok_or_else(|| SimError::InvalidArgument {
                what: "incident kind",
                message: format!("{s:?} is not one of latency_regression, error_burst, outage"),
            })
    }
}

/// One incident, scheduled or manual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Identifier, unique within a simulator (scheduled ones derive it from the hour).
    pub id: u64,
    /// Affected service.
    pub service: String,
    /// What happens.
    pub kind: IncidentKind,
    /// Start, simulated microseconds since the epoch.
    pub start_us: i64,
    /// End (exclusive), simulated microseconds since the epoch.
    pub end_us: i64,
    /// Latency factor for a regression, 5xx fraction for an error burst, 1 for an outage.
    pub magnitude: f64,
    /// Started through [`Simulator::start_incident`] rather than scheduled from the seed.
    pub manual: bool,
}

/// A load spike: the event rate is multiplied by `factor` from `start_us` to `end_us`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spike {
    /// Rate multiplier (0 pauses service traffic).
    pub factor: f64,
    /// Start, simulated microseconds.
    pub start_us: i64,
    /// End (exclusive), simulated microseconds.
    pub end_us: i64,
}

/// What the simulator is doing at its current simulated time, for a control API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimPlan {
    /// The simulated clock ([`Simulator::now_us`]).
    pub now_us: i64,
    /// Configured average rate, events per simulated second.
    pub base_rate: f64,
    /// Diurnal factor at `now_us` (0.5 at midnight UTC .. 1.5 at noon UTC).
    pub diurnal_factor: f64,
    /// The load spike in effect, if any.
    pub spike: Option<Spike>,
    /// Rate in effect now: base × diurnal × spike.
    pub effective_rate: f64,
    /// Whether incidents are scheduled from the seed.
    pub incidents_enabled: bool,
    /// Incidents in effect now.
    pub active_incidents: Vec<Incident>,
    /// Incidents already scheduled to start later (the current simulated hour is known).
    pub upcoming_incidents: Vec<Incident>,
    /// The probed target, if any.
    pub probe_target: Option<String>,
    /// Profiles of the simulated services.
    pub services: Vec<ServiceProfile>,
}

/// Lines emitted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Service event lines.
    pub service_lines: u64,
    /// Probe lines.
    pub probe_lines: u64,
}

/// A service with its precomputed line fragments.
#[derive(Debug, Clone)]
struct ServiceState {
    profile: ServiceProfile,
    /// `{"service":"NAME","timestamp":"`
    prefix: Vec<u8>,
    /// JSON-escaped `NAME-` (instance number follows).
    instance_prefix: Vec<u8>,
    endpoints: Vec<Endpoint>,
    regions: Vec<Vec<u8>>,
    /// ln(baseline latency)
    mu: f64,
}

#[derive(Debug, Clone)]
struct Endpoint {
    template: EndpointTemplate,
    /// The success status other than 200 this method sometimes returns (201 for POST, 204
    /// for PUT/PATCH/DELETE, 200 otherwise).
    alt_success: u16,
}

/// What active incidents do to one service.
#[derive(Debug, Clone, Copy)]
struct Effect {
    latency_factor: f64,
    error_fraction: f64,
    outage: bool,
}

const NO_EFFECT: Effect = Effect {
    latency_factor: 1.0,
    error_fraction: 0.0,
    outage: false,
};

/// The deterministic telemetry simulator. See the crate docs for the line formats.
#[derive(Debug, Clone)]
pub struct Simulator {
    cfg: SimConfig,
    services: Vec<ServiceState>,
    /// Cumulative weights, for picking a service.
    cum_weights: Vec<f64>,
    rng: ChaCha8Rng,
    probe_rng: ChaCha8Rng,
    probe: Option<ProbeSim>,
    /// Time of the next service event, microseconds (fractional); infinite when none.
    next_service_at: f64,
    rate: f64,
    spike: Option<Spike>,
    /// Pending and active incidents (expired ones are dropped at bookkeeping).
    incidents: Vec<(usize, Incident)>,
    effects: Vec<Effect>,
    /// Start of the next simulated hour to roll incidents for.
    next_hour_us: i64,
    /// Next simulated time at which incident bookkeeping must run.
    next_change_us: i64,
    next_manual_id: u64,
    now_us: i64,
    ts: TimestampFormatter,
    stats: SimStats,
}

impl Simulator {
    /// A simulator of the catalogue's services (or a default set when it is empty).
    /// Values [`SimConfig::validate`] rejects are clamped: a negative or non-finite rate
    /// becomes 0, an empty probe target means no probes, a probe interval under 1 ms
    /// becomes 1 ms.
    pub fn new(catalog: &ServiceCatalog, cfg: SimConfig) -> Self {
        let profiles = ServiceProfile::from_catalog(catalog);
        let services: Vec<ServiceState> = profiles.into_iter().map(service_state).collect();
        let mut total = 0.0;
        let cum_weights = services
            .iter()
            .map(|s| {
                total += s.profile.weight.max(0.0);
                total
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(0);
        let mut probe_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        probe_rng.set_stream(1);
        let start = cfg.start_us.clamp(0, MAX_START_US);
        let probe = cfg
            .probe_target
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                let interval = i64::try_from(cfg.probe_interval.as_micros()).unwrap_or(i64::MAX);
                ProbeSim::new(t, start, interval)
            });
        let rate = if cfg.rate.is_finite() && cfg.rate > 0.0 {
            cfg.rate
        } else {
            0.0
        };
        let hour_start = start - start.rem_euclid(HOUR_US);
        let n = services.len();
        let mut sim = Self {
            services,
            cum_weights,
            rng,
            probe_rng,
            probe,
            next_service_at: f64::INFINITY,
            rate,
            spike: None,
            incidents: Vec::new(),
            effects: vec![NO_EFFECT; n],
            next_hour_us: hour_start,
            next_change_us: start,
            next_manual_id: 1,
            now_us: start,
            ts: TimestampFormatter::default(),
            stats: SimStats::default(),
            cfg,
        };
        sim.update_incidents(start);
        sim.schedule_next_service(start as f64);
        sim
    }

    /// The configuration the simulator was built with.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The simulated clock: the timestamp of the last line emitted (the start before the
    /// first). Manual incidents and spikes start here.
    pub fn now_us(&self) -> i64 {
        self.now_us
    }

    /// Timestamp of the line [`next_line`](Self::next_line) will emit next, or `i64::MAX`
    /// when nothing is left to emit (service rate 0 and no probe target).
    pub fn next_us(&self) -> i64 {
        let svc = self.next_service_us();
        let probe = self.probe.as_ref().map_or(i64::MAX, ProbeSim::next_us);
        match probe.min(svc) {
            i64::MAX => i64::MAX,
            t => truncate_to_ms(t),
        }
    }

    /// Lines emitted so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Appends the next line (a service event or a probe measurement, in time order)
    /// including its `'\n'`, and returns its timestamp in microseconds (whole
    /// milliseconds, as written). Appends nothing and returns `i64::MAX` when nothing is
    /// left to emit.
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> i64 {
        let svc_t = self.next_service_us();
        let probe_t = self.probe.as_ref().map_or(i64::MAX, ProbeSim::next_us);
        if probe_t == i64::MAX && svc_t == i64::MAX {
            return i64::MAX;
        }
        if probe_t <= svc_t
            && let Some(p) = self.probe.as_mut()
        {
            let ts = p.emit(&mut self.probe_rng, out);
            self.now_us = ts;
            self.stats.probe_lines += 1;
            return ts;
        }
        let t = svc_t;
        if t >= self.next_change_us {
            self.update_incidents(t);
        }
        let ts = truncate_to_ms(t);
        self.write_service_event(ts, out);
        self.now_us = ts;
        self.stats.service_lines += 1;
        self.schedule_next_service(self.next_service_at);
        ts
    }

    /// Starts an incident on `service` now, for `duration` of simulated time, with the
    /// kind's [default magnitude](IncidentKind::default_magnitude).
    pub fn start_incident(
        &mut self,
        service: &str,
        kind: IncidentKind,
        duration: Duration,
    ) -> Result<Incident, SimError> {
        self.start_incident_with_magnitude(service, kind, duration, kind.default_magnitude())
    }

    /// Like [`start_incident`](Self::start_incident) with an explicit magnitude: the
    /// latency factor of a regression (> 0), the 5xx fraction of an error burst (0 to 1,
    /// e.g. 0.005 for a slow burn); an outage ignores it (always 1).
    pub fn start_incident_with_magnitude(
        &mut self,
        service: &str,
        kind: IncidentKind,
        duration: Duration,
        magnitude: f64,
    ) -> Result<Incident, SimError> {
        let magnitude = match kind {
            IncidentKind::Outage => 1.0,
            IncidentKind::ErrorBurst if !(0.0..=1.0).contains(&magnitude) => {
                return Err(SimError::InvalidArgument {
                    what: "incident magnitude",
                    message: format!(
                        "{magnitude} is not a fraction of failing requests: give 0 to 1, e.g. 0.005"
                    ),
                });
            }
            IncidentKind::LatencyRegression if !(magnitude.is_finite() && magnitude > 0.0) => {
                return Err(SimError::InvalidArgument {
                    what: "incident magnitude",
                    message: format!(
                        "{magnitude} is not a latency factor: give a positive number, e.g. 6"
                    ),
                });
            }
            _ => magnitude,
        };
        let Some(svc) = self.services.iter().position(|s| s.profile.name == service) else {
            return Err(SimError::UnknownService {
                name: service.to_owned(),
                known: self
                    .services
                    .iter()
                    .map(|s| s.profile.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let dur = duration_us(duration, "incident duration")?;
        let incident = Incident {
            id: self.next_manual_id,
            service: service.to_owned(),
            kind,
            start_us: self.now_us,
            end_us: self.now_us.saturating_add(dur),
            magnitude,
            manual: true,
        };
        self.next_manual_id += 1;
        self.incidents.push((svc, incident.clone()));
        self.next_change_us = self.now_us;
        Ok(incident)
    }

    /// Ends an incident now (scheduled or manual) and returns it, or fails when no
    /// pending or active incident has this id.
    pub fn end_incident(&mut self, id: u64) -> Result<Incident, SimError> {
        let now = self.now_us;
        let found = self
            .incidents
            .iter_mut()
            .find(|(_, i)| i.id == id && i.end_us > now);
        let Some((_, inc)) = found else {
            return Err(SimError::InvalidArgument {
                what: "incident id",
                message: format!("no pending or active incident has id {id}"),
            });
        };
        inc.end_us = now.max(inc.start_us);
        let ended = inc.clone();
        self.next_change_us = now;
        Ok(ended)
    }

    /// Multiplies the event rate by `factor` (finite, >= 0; 0 pauses service traffic) for
    /// `duration` of simulated time from now, replacing any spike in effect. A zero
    /// duration cancels the spike.
    pub fn set_spike(&mut self, factor: f64, duration: Duration) -> Result<(), SimError> {
        if !factor.is_finite() || factor < 0.0 {
            return Err(SimError::InvalidArgument {
                what: "spike factor",
                message: format!("{factor} must be a finite number >= 0, e.g. 5"),
            });
        }
        let dur = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        self.spike = (dur > 0).then(|| Spike {
            factor,
            start_us: self.now_us,
            end_us: self.now_us.saturating_add(dur),
        });
        self.schedule_next_service(self.now_us as f64);
        Ok(())
    }

    /// Changes the average event rate (finite, >= 0) from now on.
    pub fn set_rate(&mut self, rate: f64) -> Result<(), SimError> {
        if !rate.is_finite() || rate < 0.0 {
            return Err(SimError::InvalidArgument {
                what: "rate",
                message: format!("{rate} must be a finite number of events per second >= 0"),
            });
        }
        self.rate = rate;
        self.schedule_next_service(self.now_us as f64);
        Ok(())
    }

    /// The current plan: rate, spike and incidents as of [`now_us`](Self::now_us).
    pub fn plan(&self) -> SimPlan {
        let now = self.now_us;
        let spike = self.spike.filter(|s| s.start_us <= now && now < s.end_us);
        let diurnal = diurnal_factor(now as f64);
        let mut active = Vec::new();
        let mut upcoming = Vec::new();
        for (_, i) in &self.incidents {
            if i.start_us <= now && now < i.end_us {
                active.push(i.clone());
            } else if i.start_us > now {
                upcoming.push(i.clone());
            }
        }
        upcoming.sort_by_key(|i| i.start_us);
        SimPlan {
            now_us: now,
            base_rate: self.rate,
            diurnal_factor: diurnal,
            spike,
            effective_rate: self.rate * diurnal * spike.map_or(1.0, |s| s.factor),
            incidents_enabled: self.cfg.incidents,
            active_incidents: active,
            upcoming_incidents: upcoming,
            probe_target: self.probe.as_ref().map(|p| p.target().to_owned()),
            services: self.services.iter().map(|s| s.profile.clone()).collect(),
        }
    }

    fn next_service_us(&self) -> i64 {
        if self.next_service_at.is_finite() {
            // Saturating float-to-int conversion.
            self.next_service_at as i64
        } else {
            i64::MAX
        }
    }

    /// Spike factor at `t` and when it stops applying (infinite when no spike applies).
    fn spike_at(&self, t: f64) -> (f64, f64) {
        match self.spike {
            Some(s) if (s.start_us as f64) <= t && t < s.end_us as f64 => {
                (s.factor, s.end_us as f64)
            }
            _ => (1.0, f64::INFINITY),
        }
    }

    /// Draws the next service event after `from` (memoryless, so redrawing from the
    /// present after a rate change is exact).
    fn schedule_next_service(&mut self, from: f64) {
        let mut t = from;
        loop {
            let (factor, boundary) = self.spike_at(t);
            let lambda = self.rate * diurnal_factor(t) * factor;
            if lambda <= 0.0 {
                if boundary.is_finite() {
                    t = boundary;
                    continue;
                }
                self.next_service_at = f64::INFINITY;
                return;
            }
            let e: f64 = self.rng.sample(Exp1);
            let candidate = t + e / lambda * 1e6;
            if candidate >= boundary {
                t = boundary;
                continue;
            }
            self.next_service_at = candidate;
            return;
        }
    }

    /// Rolls incidents for elapsed hours, drops finished ones and recomputes each
    /// service's effects as of `t`.
    fn update_incidents(&mut self, t: i64) {
        if self.cfg.incidents {
            while self.next_hour_us <= t {
                self.roll_hour(self.next_hour_us);
                self.next_hour_us += HOUR_US;
            }
        }
        self.incidents.retain(|(_, i)| i.end_us > t);
        let mut next = if self.cfg.incidents {
            self.next_hour_us
        } else {
            i64::MAX
        };
        self.effects.fill(NO_EFFECT);
        for (svc, i) in &self.incidents {
            if i.start_us > t {
                next = next.min(i.start_us);
                continue;
            }
            next = next.min(i.end_us);
            let e = &mut self.effects[*svc];
            match i.kind {
                IncidentKind::LatencyRegression => e.latency_factor *= i.magnitude,
                IncidentKind::ErrorBurst => e.error_fraction = e.error_fraction.max(i.magnitude),
                IncidentKind::Outage => e.outage = true,
            }
        }
        self.next_change_us = next;
    }

    /// Decides, from the seed and the hour alone, whether the hour starting at
    /// `hour_start` has an incident, and schedules it.
    fn roll_hour(&mut self, hour_start: i64) {
        let hour = hour_start.div_euclid(HOUR_US) as u64;
        let mut r = ChaCha8Rng::seed_from_u64(splitmix64(
            self.cfg.seed ^ splitmix64(hour ^ 0x1c1d_e47c_0de0_0000),
        ));
        if !r.random_bool(INCIDENT_PROBABILITY_PER_HOUR) {
            return;
        }
        let svc = r.random_range(0..self.services.len());
        let k: f64 = r.random();
        let (kind, magnitude, minutes) = if k < 0.45 {
            (
                IncidentKind::LatencyRegression,
                r.random_range(4.0..8.0),
                r.random_range(10..=30),
            )
        } else if k < 0.85 {
            (
                IncidentKind::ErrorBurst,
                r.random_range(0.10..0.40),
                r.random_range(5..=15),
            )
        } else {
            (IncidentKind::Outage, 1.0, r.random_range(3..=10))
        };
        let start_us = hour_start + r.random_range(0..HOUR_US / 1000) * 1000;
        self.incidents.push((
            svc,
            Incident {
                // Scheduled ids are 1e9 + the hour number: they never collide with manual
                // ones (counted from 1) and stay exact in JSON readers that use doubles.
                id: SCHEDULED_ID_BASE + hour,
                service: self.services[svc].profile.name.clone(),
                kind,
                start_us,
                end_us: start_us + minutes * 60 * MICROS_PER_SEC,
                magnitude: (magnitude * 1000.0_f64).round() / 1000.0,
                manual: false,
            },
        ));
    }

    fn pick_service(&mut self) -> usize {
        let n = self.cum_weights.len();
        let total = self.cum_weights[n - 1];
        let u = self.rng.random::<f64>() * total;
        self.cum_weights.partition_point(|&c| c <= u).min(n - 1)
    }

    fn write_service_event(&mut self, ts: i64, out: &mut Vec<u8>) {
        let svc = self.pick_service();
        let rng = &mut self.rng;
        let s = &self.services[svc];
        let effect = self.effects[svc];
        let ep = if s.endpoints.len() == 1 {
            &s.endpoints[0]
        } else {
            &s.endpoints[rng.random_range(0..s.endpoints.len())]
        };

        let u: f64 = rng.random();
        let error_p = s.profile.error_rate.max(effect.error_fraction);
        let status: u16 = if effect.outage {
            503
        } else if u < error_p {
            let v = u / error_p;
            if v < 0.45 {
                500
            } else if v < 0.65 {
                502
            } else if v < 0.85 {
                503
            } else {
                504
            }
        } else {
            let v = (u - error_p) / (1.0 - error_p);
            if v < 0.93 {
                200
            } else if v < 0.96 {
                ep.alt_success
            } else if v < 0.965 {
                301
            } else if v < 0.975 {
                400
            } else if v < 0.99 {
                404
            } else if v < 0.993 {
                429
            } else {
                200
            }
        };
        let z: f64 = rng.sample(StandardNormal);
        let status_factor = match status {
            503 | 429 => 0.1,
            504 => 5.0,
            500 | 502 => 0.7,
            301 => 0.3,
            400 | 404 => 0.5,
            _ => 1.0,
        };
        let latency =
            ((s.mu + s.profile.latency_sigma * z).exp() * effect.latency_factor * status_factor)
                .min(MAX_LATENCY_MS);

        out.extend_from_slice(&s.prefix);
        self.ts.push(out, ts);
        out.extend_from_slice(b"\",\"status_code\":");
        push_u64(out, u64::from(status));
        out.extend_from_slice(b",\"latency_ms\":");
        push_fixed3(out, latency);
        out.extend_from_slice(if status >= 500 {
            b",\"error\":true,\"endpoint\":\""
        } else {
            b",\"error\":false,\"endpoint\":\""
        });
        out.extend_from_slice(&ep.template.route);
        out.extend_from_slice(b"\",\"method\":\"");
        out.extend_from_slice(&ep.template.method);
        out.extend_from_slice(b"\",\"region\":\"");
        let region = if s.regions.len() == 1 {
            &s.regions[0]
        } else {
            &s.regions[rng.random_range(0..s.regions.len())]
        };
        out.extend_from_slice(region);
        out.extend_from_slice(b"\",\"instance\":\"");
        out.extend_from_slice(&s.instance_prefix);
        push_u64(out, u64::from(rng.random_range(1..=s.profile.instances)));
        out.extend_from_slice(b"\",\"trace_id\":\"");
        let hi: u64 = rng.random();
        let lo: u64 = rng.random::<u64>() | 1;
        push_hex128(out, hi, lo);
        out.extend_from_slice(b"\"}\n");
    }
}

/// Traffic factor by time of day: 0.5 at 00:00 UTC, 1.5 at 12:00 UTC, averaging 1.
pub fn diurnal_factor(t_us: f64) -> f64 {
    let day = 86_400e6;
    let phase = t_us.rem_euclid(day) / day;
    1.0 - 0.5 * (std::f64::consts::TAU * phase).cos()
}

fn duration_us(d: Duration, what: &'static str) -> Result<i64, SimError> {
    let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    if us <= 0 {
        return Err(SimError::InvalidArgument {
            what,
            message: "must be above zero, e.g. 5m".to_owned(),
        });
    }
    Ok(us)
}

fn service_state(profile: ServiceProfile) -> ServiceState {
    let name = json_inner(&profile.name);
    let mut prefix = b"{\"service\":\"".to_vec();
    prefix.extend_from_slice(&name);
    prefix.extend_from_slice(b"\",\"timestamp\":\"");
    let mut instance_prefix = name;
    instance_prefix.push(b'-');
    let endpoints = profile
        .endpoints
        .iter()
        .map(|e| {
            let template = EndpointTemplate::parse(e);
            let alt_success = match template.method.as_slice() {
                b"POST" => 201,
                b"PUT" | b"PATCH" | b"DELETE" => 204,
                _ => 200,
            };
            Endpoint {
                template,
                alt_success,
            }
        })
        .collect();
    ServiceState {
        prefix,
        instance_prefix,
        endpoints,
        regions: profile.regions.iter().map(|r| json_inner(r)).collect(),
        mu: profile.baseline_latency_ms.max(1e-3).ln(),
        profile,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use telltale_core::{Limits, ProbeEvent, Record, ServiceEvent, parse_line};

    use super::*;

    const MIN: i64 = 60 * MICROS_PER_SEC;

    fn shipped_catalog() -> ServiceCatalog {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/services.toml");
        let text = std::fs::read_to_string(path).expect("read config/services.toml");
        ServiceCatalog::from_toml_str(&text, "config/services.toml").expect("valid catalogue")
    }

    fn catalog(toml: &str) -> ServiceCatalog {
        ServiceCatalog::from_toml_str(toml, "test.toml").unwrap()
    }

    fn cfg(seed: u64, rate: f64) -> SimConfig {
        SimConfig {
            seed,
            rate,
            ..SimConfig::default()
        }
    }

    fn parse(line: &[u8]) -> Record {
        let line = line.strip_suffix(b"\n").expect("line ends in a newline");
        parse_line(line, 1, i64::MAX / 2, &Limits::default())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)))
    }

    /// The next `n` lines as raw bytes.
    fn text(sim: &mut Simulator, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..n {
            sim.next_line(&mut out);
        }
        out
    }

    /// Service events until simulated time `until`.
    fn events_until(sim: &mut Simulator, until: i64) -> Vec<ServiceEvent> {
        let mut evs = Vec::new();
        let mut buf = Vec::new();
        while sim.next_us() < until {
            buf.clear();
            sim.next_line(&mut buf);
            if let Record::Service(e) = parse(&buf) {
                evs.push(e);
            }
        }
        evs
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn every_line_parses_and_is_well_formed() {
        let cat = shipped_catalog();
        let mut sim = Simulator::new(
            &cat,
            SimConfig {
                seed: 7,
                rate: 20.0,
                probe_target: Some("example.com".into()),
                ..SimConfig::default()
            },
        );
        sim.start_incident("search-api", IncidentKind::Outage, Duration::from_secs(30))
            .unwrap();
        // Normal error rates are a fraction of a budget; a burst shows every 5xx code.
        sim.start_incident(
            "product-catalog",
            IncidentKind::ErrorBurst,
            Duration::from_secs(600),
        )
        .unwrap();
        let names: BTreeSet<String> = cat.services().map(|p| p.name.clone()).collect();
        let (mut services, mut probes, mut last) = (0, 0, 0);
        let mut seen_status = BTreeSet::new();
        let mut buf = Vec::new();
        for _ in 0..30_000 {
            buf.clear();
            let peek = sim.next_us();
            let ts = sim.next_line(&mut buf);
            assert_eq!(ts, peek);
            assert_eq!(sim.now_us(), ts);
            assert!(ts >= last, "out of order");
            last = ts;
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            match parse(&buf) {
                Record::Service(e) => {
                    services += 1;
                    assert_eq!(e.timestamp_us, ts);
                    assert!(names.contains(&e.service), "{}", e.service);
                    assert_eq!(e.error, Some(e.status_code >= 500));
                    seen_status.insert(e.status_code);
                    let ep = e.endpoint.unwrap();
                    assert!(ep.starts_with('/'), "{ep}");
                    assert!(
                        ["GET", "POST", "PUT", "PATCH", "DELETE"]
                            .contains(&e.method.unwrap().as_str())
                    );
                    assert!(e.region.unwrap().contains('-'));
                    let inst = e.instance.unwrap();
                    let n: u32 = inst
                        .strip_prefix(&format!("{}-", e.service))
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert!((1..=6).contains(&n));
                    let trace = e.trace_id.unwrap();
                    assert_eq!(trace.len(), 32);
                    assert!(
                        trace
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    );
                    assert_eq!(e.attributes, None);
                    let text = std::str::from_utf8(&buf).unwrap();
                    let lat = text
                        .split("\"latency_ms\":")
                        .nth(1)
                        .unwrap()
                        .split(',')
                        .next()
                        .unwrap();
                    assert!(lat.split('.').nth(1).unwrap().len() <= 3, "{lat}");
                    assert!(text.starts_with("{\"service\":"));
                }
                Record::Probe(p) => {
                    assert_eq!(p.timestamp_us, ts);
                    assert_eq!(p.target, "example.com");
                    assert_eq!(ts, SEEDED_START_US + probes * 10 * MICROS_PER_SEC);
                    probes += 1;
                }
                Record::HttpCheck(c) => panic!("the simulator printed a check result {c:?}"),
            }
        }
        assert!(services > 25_000 && probes > 100, "{services} {probes}");
        for s in [200, 201, 204, 301, 400, 404, 429, 500, 502, 503, 504] {
            assert!(seen_status.contains(&s), "never saw {s}: {seen_status:?}");
        }
    }

    #[test]
    fn same_config_gives_same_bytes_and_other_seeds_differ() {
        let cat = shipped_catalog();
        let config = |seed| SimConfig {
            seed,
            probe_target: Some("example.com".into()),
            ..SimConfig::default()
        };
        let a = text(&mut Simulator::new(&cat, config(42)), 5000);
        let b = text(&mut Simulator::new(&cat, config(42)), 5000);
        let c = text(&mut Simulator::new(&cat, config(43)), 5000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Another start gives other timestamps, otherwise the same shape.
        let mut later = config(42);
        later.start_us += 1000;
        assert_ne!(a, text(&mut Simulator::new(&cat, later), 5000));
    }

    #[test]
    fn first_twenty_lines_for_seed_1() {
        let mut sim = Simulator::new(
            &shipped_catalog(),
            SimConfig {
                seed: 1,
                probe_target: Some("example.com".into()),
                ..SimConfig::default()
            },
        );
        let out = String::from_utf8(text(&mut sim, 20)).unwrap();
        insta::assert_snapshot!(out);
    }

    #[test]
    fn traffic_is_split_by_weight() {
        let cat = shipped_catalog();
        let mut sim = Simulator::new(
            &cat,
            SimConfig {
                incidents: false,
                ..cfg(5, 1000.0)
            },
        );
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        let n = 100_000;
        let mut buf = Vec::new();
        for _ in 0..n {
            buf.clear();
            sim.next_line(&mut buf);
            let Record::Service(e) = parse(&buf) else {
                panic!("no probes configured")
            };
            *counts.entry(e.service).or_default() += 1.0;
        }
        let total_weight: f64 = sim.plan().services.iter().map(|s| s.weight).sum();
        for s in sim.plan().services {
            let expected = s.weight / total_weight;
            let got = counts.get(&s.name).copied().unwrap_or(0.0) / f64::from(n);
            assert!(
                (got - expected).abs() < 0.1 * expected + 0.002,
                "{}: {got} vs {expected}",
                s.name
            );
        }
    }

    #[test]
    fn diurnal_curve_peaks_at_noon_utc() {
        assert!((diurnal_factor(0.0) - 0.5).abs() < 1e-9);
        assert!((diurnal_factor(12.0 * 3600e6) - 1.5).abs() < 1e-9);
        let mut sim = Simulator::new(
            &catalog(""),
            SimConfig {
                incidents: false,
                ..cfg(2, 2.0)
            },
        );
        let mut per_hour = [0u32; 24];
        let mut buf = Vec::new();
        while sim.next_us() < SEEDED_START_US + 24 * HOUR_US {
            let ts = sim.next_line(&mut buf);
            per_hour[((ts - SEEDED_START_US) / HOUR_US) as usize] += 1;
        }
        let ratio = f64::from(per_hour[12]) / f64::from(per_hour[0]);
        assert!((2.5..3.5).contains(&ratio), "{per_hour:?}");
        let total: u32 = per_hour.iter().sum();
        assert!((160_000..186_000).contains(&total), "{total}");
    }

    const ONE: &str = r#"
[services.one]
sim = { baseline_latency_ms = 100.0, latency_sigma = 0.5, weight = 1.0, error_rate = 0.02, endpoints = ["GET /a", "POST /b/{id}"] }
[services.two]
sim = { baseline_latency_ms = 10.0, weight = 1.0, error_rate = 0.0 }
"#;

    fn of(evs: &[ServiceEvent], svc: &str) -> Vec<ServiceEvent> {
        evs.iter().filter(|e| e.service == svc).cloned().collect()
    }

    #[test]
    fn latency_and_errors_follow_the_profile() {
        let mut sim = Simulator::new(
            &catalog(ONE),
            SimConfig {
                incidents: false,
                ..cfg(3, 100.0)
            },
        );
        let evs = events_until(&mut sim, SEEDED_START_US + 20 * MIN);
        let one = of(&evs, "one");
        let ok: Vec<f64> = one
            .iter()
            .filter(|e| e.status_code == 200)
            .map(|e| e.latency_ms)
            .collect();
        let m = median(ok);
        assert!((90.0..110.0).contains(&m), "median {m}");
        let errors = one.iter().filter(|e| e.status_code >= 500).count() as f64 / one.len() as f64;
        assert!((0.015..0.025).contains(&errors), "error share {errors}");
        let client_errors = one
            .iter()
            .filter(|e| (400..500).contains(&e.status_code))
            .count();
        assert!(client_errors > 0);
        assert!(
            one.iter()
                .filter(|e| e.status_code < 500)
                .all(|e| e.error == Some(false))
        );
        assert!(
            one.iter()
                .any(|e| e.method.as_deref() == Some("POST") && e.status_code == 201)
        );
        assert!(of(&evs, "two").iter().all(|e| e.status_code < 500));
    }

    #[test]
    fn manual_incidents_apply_for_their_duration() {
        let mut sim = Simulator::new(
            &catalog(ONE),
            SimConfig {
                incidents: false,
                ..cfg(4, 200.0)
            },
        );
        let base = events_until(&mut sim, SEEDED_START_US + 5 * MIN);
        let base_median = median(of(&base, "two").iter().map(|e| e.latency_ms).collect());

        let t0 = sim.now_us();
        let inc = sim
            .start_incident("two", IncidentKind::Outage, Duration::from_secs(120))
            .unwrap();
        assert_eq!(
            (inc.start_us, inc.end_us, inc.manual),
            (t0, t0 + 2 * MIN, true)
        );
        assert_eq!(sim.plan().active_incidents, vec![inc.clone()]);
        let during = events_until(&mut sim, inc.end_us);
        assert!(of(&during, "two").len() > 1000);
        assert!(
            of(&during, "two")
                .iter()
                .all(|e| e.status_code == 503 && e.error == Some(true))
        );
        assert!(
            of(&during, "one")
                .iter()
                .filter(|e| e.status_code >= 500)
                .count()
                < 200
        );
        let after = events_until(&mut sim, inc.end_us + MIN);
        assert!(sim.plan().active_incidents.is_empty());
        assert!(of(&after, "two").iter().all(|e| e.status_code < 500));

        let inc = sim
            .start_incident(
                "two",
                IncidentKind::LatencyRegression,
                Duration::from_secs(120),
            )
            .unwrap();
        let during = events_until(&mut sim, inc.end_us);
        let m = median(
            of(&during, "two")
                .iter()
                .filter(|e| e.status_code == 200)
                .map(|e| e.latency_ms)
                .collect(),
        );
        assert!(
            (4.5..7.5).contains(&(m / base_median)),
            "{m} vs {base_median}"
        );

        let inc = sim
            .start_incident("two", IncidentKind::ErrorBurst, Duration::from_secs(300))
            .unwrap();
        let during = of(&events_until(&mut sim, inc.end_us - MIN), "two");
        let share =
            during.iter().filter(|e| e.status_code >= 500).count() as f64 / during.len() as f64;
        assert!((0.22..0.28).contains(&share), "{share}");
        let ended = sim.end_incident(inc.id).unwrap();
        assert_eq!(ended.end_us, sim.now_us());
        let until = sim.now_us() + MIN;
        let after = of(&events_until(&mut sim, until), "two");
        assert!(after.iter().all(|e| e.status_code < 500));
        assert!(sim.end_incident(inc.id).is_err());
    }

    #[test]
    fn a_spike_multiplies_the_rate_for_its_duration() {
        let mut sim = Simulator::new(
            &catalog(ONE),
            SimConfig {
                incidents: false,
                ..cfg(6, 50.0)
            },
        );
        let t0 = SEEDED_START_US + 6 * HOUR_US;
        events_until(&mut sim, t0);
        let before = events_until(&mut sim, t0 + 2 * MIN).len() as f64;
        sim.set_spike(5.0, Duration::from_secs(120)).unwrap();
        let spike = sim.plan().spike.unwrap();
        assert_eq!(spike.factor, 5.0);
        assert!(
            (sim.plan().effective_rate / sim.plan().base_rate / sim.plan().diurnal_factor - 5.0)
                .abs()
                < 1e-9
        );
        let during = events_until(&mut sim, spike.end_us).len() as f64;
        let after = events_until(&mut sim, spike.end_us + 2 * MIN).len() as f64;
        assert!((4.3..5.7).contains(&(during / before)), "{before} {during}");
        assert!((0.8..1.25).contains(&(after / before)), "{before} {after}");
        assert_eq!(sim.plan().spike, None);

        // Factor 0 pauses service traffic; a zero duration cancels the spike.
        sim.set_spike(0.0, Duration::from_secs(60)).unwrap();
        let paused_at = sim.now_us();
        assert!(sim.next_us() >= paused_at + MIN - 1000);
        sim.set_spike(2.0, Duration::ZERO).unwrap();
        assert!(sim.next_us() < paused_at + MIN);
        assert!(sim.set_spike(f64::NAN, Duration::from_secs(1)).is_err());
        assert!(sim.set_spike(-1.0, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn scheduled_incidents_come_from_the_seed_and_the_hour() {
        let cat = shipped_catalog();
        let seen = |start_us: i64, incidents: bool| {
            let mut sim = Simulator::new(
                &cat,
                SimConfig {
                    start_us,
                    incidents,
                    ..cfg(11, 0.2)
                },
            );
            let mut all: BTreeMap<u64, Incident> = BTreeMap::new();
            let mut buf = Vec::new();
            while sim.next_us() < SEEDED_START_US + 7 * 24 * HOUR_US {
                buf.clear();
                sim.next_line(&mut buf);
                let plan = sim.plan();
                for i in plan
                    .active_incidents
                    .into_iter()
                    .chain(plan.upcoming_incidents)
                {
                    all.insert(i.id, i);
                }
            }
            all
        };
        let week = seen(SEEDED_START_US, true);
        assert!(
            (20..70).contains(&week.len()),
            "{} incidents in a week",
            week.len()
        );
        let kinds: BTreeSet<&str> = week.values().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        for i in week.values() {
            let minutes = (i.end_us - i.start_us) / MIN;
            assert!(!i.manual);
            match i.kind {
                IncidentKind::LatencyRegression => {
                    assert!(
                        (10..=30).contains(&minutes) && (4.0..=8.0).contains(&i.magnitude),
                        "{i:?}"
                    );
                }
                IncidentKind::ErrorBurst => {
                    assert!(
                        (5..=15).contains(&minutes) && (0.1..=0.4).contains(&i.magnitude),
                        "{i:?}"
                    );
                }
                IncidentKind::Outage => assert!((3..=10).contains(&minutes), "{i:?}"),
            }
        }
        // A run starting later sees the same incidents for the hours both cover.
        let later_start = SEEDED_START_US + 3 * 24 * HOUR_US + 17 * MIN;
        let later = seen(later_start, true);
        let overlap = |m: &BTreeMap<u64, Incident>| -> Vec<Incident> {
            m.values()
                .filter(|i| i.start_us >= later_start + HOUR_US)
                .cloned()
                .collect()
        };
        assert!(!overlap(&later).is_empty());
        assert_eq!(overlap(&week), overlap(&later));
        assert!(seen(SEEDED_START_US, false).is_empty());
    }

    #[test]
    fn empty_catalogue_simulates_the_default_services() {
        let mut sim = Simulator::new(&catalog(""), cfg(1, 100.0));
        let names: BTreeSet<String> = events_until(&mut sim, SEEDED_START_US + MIN)
            .into_iter()
            .map(|e| e.service)
            .collect();
        assert_eq!(
            names,
            crate::DEFAULT_SERVICES
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }

    #[test]
    fn probes_only_and_nothing_at_all() {
        let mut sim = Simulator::new(
            &catalog(ONE),
            SimConfig {
                rate: 0.0,
                probe_target: Some("example.net".into()),
                probe_interval: Duration::from_secs(1),
                ..SimConfig::default()
            },
        );
        let out = text(&mut sim, 50);
        let probes: Vec<ProbeEvent> = out
            .split_inclusive(|&b| b == b'\n')
            .map(|l| match parse(l) {
                Record::Probe(p) => p,
                Record::Service(e) => panic!("unexpected service event {e:?}"),
                Record::HttpCheck(c) => panic!("unexpected check result {c:?}"),
            })
            .collect();
        assert_eq!(probes.len(), 50);
        assert_eq!(
            probes[49].timestamp_us,
            SEEDED_START_US + 49 * MICROS_PER_SEC
        );
        assert_eq!(
            sim.stats(),
            SimStats {
                service_lines: 0,
                probe_lines: 50
            }
        );

        let mut none = Simulator::new(
            &catalog(ONE),
            SimConfig {
                rate: 0.0,
                ..SimConfig::default()
            },
        );
        let mut buf = Vec::new();
        assert_eq!(none.next_us(), i64::MAX);
        assert_eq!(none.next_line(&mut buf), i64::MAX);
        assert!(buf.is_empty());
        none.set_rate(10.0).unwrap();
        assert!(none.next_line(&mut buf) < i64::MAX && !buf.is_empty());
    }

    #[test]
    fn config_validation_names_the_setting() {
        SimConfig::default().validate().unwrap();
        let err = |c: SimConfig| c.validate().unwrap_err().to_string();
        assert!(
            err(SimConfig {
                rate: f64::NAN,
                ..SimConfig::default()
            })
            .starts_with("invalid simulator setting `rate`")
        );
        assert!(
            err(SimConfig {
                rate: 0.0,
                ..SimConfig::default()
            })
            .contains("nothing to simulate")
        );
        assert!(
            err(SimConfig {
                start_us: -1,
                ..SimConfig::default()
            })
            .contains("`start_us`")
        );
        assert!(
            err(SimConfig {
                probe_target: Some(" ".into()),
                ..SimConfig::default()
            })
            .contains("`probe_target`")
        );
        let c = SimConfig {
            probe_target: Some("x".into()),
            probe_interval: Duration::ZERO,
            ..SimConfig::default()
        };
        assert!(err(c).contains("`probe_interval`"));
    }

    #[test]
    fn control_errors_explain_themselves() {
        let mut sim = Simulator::new(&catalog(ONE), cfg(1, 10.0));
        let e = sim
            .start_incident("three", IncidentKind::Outage, Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown service \"three\": the simulator runs one, two"
        );
        let e = sim
            .start_incident("one", IncidentKind::Outage, Duration::ZERO)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid incident duration: must be above zero, e.g. 5m"
        );
        assert!(sim.set_rate(-1.0).is_err());
        assert_eq!(
            "error-burst".parse::<IncidentKind>().unwrap(),
            IncidentKind::ErrorBurst
        );
        assert_eq!(
            " Outage ".parse::<IncidentKind>().unwrap(),
            IncidentKind::Outage
        );
        assert!(
            "meltdown"
                .parse::<IncidentKind>()
                .unwrap_err()
                .to_string()
                .contains("latency_regression")
        );
    }

    #[test]
    fn the_plan_round_trips_through_json() {
        let mut sim = Simulator::new(&shipped_catalog(), cfg(1, 10.0));
        sim.start_incident(
            "checkout-api",
            IncidentKind::ErrorBurst,
            Duration::from_secs(600),
        )
        .unwrap();
        sim.set_spike(3.0, Duration::from_secs(60)).unwrap();
        let plan = sim.plan();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains("\"kind\":\"error_burst\""), "{json}");
        let back: SimPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        assert_eq!(plan.services.len(), 20);
    }
}
