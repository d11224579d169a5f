//! `config/services.toml`, the service catalogue: who owns what, latency thresholds, SLO
//! objectives and windows, burn-rate alert tiers, and the simulator's profile of each
//! service.
//!
//! The file as written is [`ServiceCatalogFile`] (`[defaults]` and `[services.<name>]`);
//! [`ServiceCatalog::from_toml_str`] / [`ServiceCatalog::from_file`] validate it and apply
//! the defaults, giving one [`ServicePolicy`] per service, which is what the flagger, the
//! rollups and the SLO engine read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid, parse_toml};

/// How long an SLO's compliance window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SloWindow {
    /// A rolling window of this length ending now, e.g. `"30d"` or `"28d"`.
    Rolling(Duration),
    /// The current calendar month (UTC), written `"calendar-month"`.
    CalendarMonth,
}

impl SloWindow {
    /// The window's nominal length, used to derive burn-rate factors. A calendar month
    /// counts as 30 days, as in the SRE Workbook.
    pub fn nominal(&self) -> Duration {
        match self {
            SloWindow::Rolling(d) => *d,
            SloWindow::CalendarMonth => Duration::from_secs(30 * 86_400),
        }
    }
}

impl TryFrom<String> for SloWindow {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("calendar-month") || t.eq_ignore_ascii_case("calendar_month") {
            return Ok(SloWindow::CalendarMonth);
        }
        humantime::parse_duration(t)
            .map(SloWindow::Rolling)
            .map_err(|e| {
                format!(
                    "`{s}` is not a window: use a duration like \"30d\" or \"calendar-month\" ({e})"
                )
            })
    }
}

impl From<SloWindow> for String {
    fn from(w: SloWindow) -> String {
        match w {
            SloWindow::Rolling(d) => humantime::format_duration(d).to_string(),
            SloWindow::CalendarMonth => "calendar-month".to_owned(),
        }
    }
}

/// A severity tier of burn-rate alerts (SRE Workbook, "Alerting on SLOs"): a page wakes
/// someone up, a ticket is handled in working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertTier {
    /// Slow burns (budget gone within days): 24h/2h at 10%, 3d/6h at 10% of the budget.
    Ticket,
    /// Fast burns (budget gone within hours): 1h/5m at 2%, 6h/30m at 5% of the budget.
    Page,
}

impl AlertTier {
    /// Both tiers, lowest first.
    pub const ALL: [AlertTier; 2] = [AlertTier::Ticket, AlertTier::Page];

    /// `"page"` or `"ticket"`, as written in `services.toml` and in alert labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertTier::Ticket => "ticket",
            AlertTier::Page => "page",
        }
    }
}

impl std::fmt::Display for AlertTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[defaults]`: what a service gets for every key it does not set, and what a service
/// that is not in the catalogue at all gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceDefaults {
    /// Team that owns services which do not name one.
    pub team: String,
    /// An event is slow when its `latency_ms` is over this.
    pub latency_threshold_ms: f64,
    /// Availability SLO, in percent of events that are not errors.
    pub availability_objective: f64,
    /// Latency SLO, in percent of events at or under `latency_threshold_ms`.
    pub latency_objective: f64,
    /// SLO compliance window: a duration (`"30d"`) or `"calendar-month"`.
    pub window: SloWindow,
    /// Burn-rate alert tiers that may fire: any of `"page"`, `"ticket"`; `[]` for none.
    pub alert_tiers: Vec<AlertTier>,
    /// Fewest events a window must hold before its ratio counts: a burn-rate alert needs
    /// this many in both of its windows, and the budget colours the status only once the
    /// SLO window holds this many. Keeps one failed request on a quiet service from paging.
    pub min_events: u64,
    /// Status turns yellow when less than this percentage of the error budget remains.
    pub budget_warning_percent: f64,
}

/// Default of `min_events`: see `docs/slo.md` ("Low traffic") for why 100.
pub const DEFAULT_MIN_EVENTS: u64 = 100;
/// Default of `budget_warning_percent`.
pub const DEFAULT_BUDGET_WARNING_PERCENT: f64 = 25.0;

/// Built-in `latency_threshold_ms` of a URL monitor (`[monitor_defaults]`): a check's
/// duration includes DNS, connect and TLS, so it is higher than a request's.
pub const MONITOR_LATENCY_THRESHOLD_MS: f64 = 1000.0;
/// Built-in `min_events` of a URL monitor: a monitor checks about once a minute, so
/// fewer events make a window count than for a service.
pub const MONITOR_MIN_EVENTS: u64 = 10;

impl ServiceDefaults {
    /// What a URL monitor gets for every key neither `[monitor_defaults]` nor its
    /// `[monitors."<url>"]` table sets.
    pub fn for_monitors() -> Self {
        Self {
            latency_threshold_ms: MONITOR_LATENCY_THRESHOLD_MS,
            min_events: MONITOR_MIN_EVENTS,
            ..Self::default()
        }
    }

    /// These defaults with the keys `e` sets replaced.
    fn overridden_by(&self, e: &ServiceEntry) -> Self {
        Self {
            team: e.team.clone().unwrap_or_else(|| self.team.clone()),
            latency_threshold_ms: e.latency_threshold_ms.unwrap_or(self.latency_threshold_ms),
            availability_objective: e
                .availability_objective
                .unwrap_or(self.availability_objective),
            latency_objective: e.latency_objective.unwrap_or(self.latency_objective),
            window: e.window.unwrap_or(self.window),
            alert_tiers: e
                .alert_tiers
                .clone()
                .unwrap_or_else(|| self.alert_tiers.clone()),
            min_events: e.min_events.unwrap_or(self.min_events),
            budget_warning_percent: e
                .budget_warning_percent
                .unwrap_or(self.budget_warning_percent),
        }
    }
}

impl Default for ServiceDefaults {
    fn default() -> Self {
        Self {
            team: "unowned".to_owned(),
            latency_threshold_ms: 300.0,
            availability_objective: 99.9,
            latency_objective: 99.0,
            window: SloWindow::Rolling(Duration::from_secs(30 * 86_400)),
            alert_tiers: AlertTier::ALL.to_vec(),
            min_events: DEFAULT_MIN_EVENTS,
            budget_warning_percent: DEFAULT_BUDGET_WARNING_PERCENT,
        }
    }
}

/// `[services.<name>]`: one service; every key falls back to `[defaults]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceEntry {
    /// Owning team.
    pub team: Option<String>,
    /// Latency threshold in milliseconds (events over it are slow).
    pub latency_threshold_ms: Option<f64>,
    /// Availability objective in percent.
    pub availability_objective: Option<f64>,
    /// Latency objective in percent.
    pub latency_objective: Option<f64>,
    /// SLO window.
    pub window: Option<SloWindow>,
    /// Burn-rate alert tiers that may fire (`["page", "ticket"]`, `["ticket"]`, `[]`).
    pub alert_tiers: Option<Vec<AlertTier>>,
    /// Fewest events per window before a ratio counts (see `[defaults]`).
    pub min_events: Option<u64>,
    /// Status turns yellow below this percentage of error budget remaining.
    pub budget_warning_percent: Option<f64>,
    /// How the simulator should imitate this service; ignored by the processor.
    pub sim: Option<SimProfileSpec>,
}

/// `[services.<name>.sim]`: the simulator's profile of a service. Every key is optional;
/// the simulator derives missing ones from the service name so output stays deterministic.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimProfileSpec {
    /// Median latency in milliseconds under normal conditions.
    pub baseline_latency_ms: Option<f64>,
    /// Spread of the log-normal latency (sigma of ln(latency)).
    pub latency_sigma: Option<f64>,
    /// Share of traffic relative to other services (1.0 = average).
    pub weight: Option<f64>,
    /// Fraction of requests that fail with a 5xx under normal conditions.
    pub error_rate: Option<f64>,
    /// Endpoints the service serves, e.g. `"GET /v1/login"`.
    pub endpoints: Option<Vec<String>>,
}

/// The service catalogue file as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceCatalogFile {
    /// Values for keys a service does not set, and for services not in the catalogue.
    pub defaults: ServiceDefaults,
    /// The services, by name.
    pub services: BTreeMap<String, ServiceEntry>,
    /// Probe targets with SLOs, by the target name as `telltale probe` reports it (the
    /// keys of a service but `sim`): every echo to the target is one event.
    pub probes: BTreeMap<String, ServiceEntry>,
    /// What every URL monitor gets for the keys its `[monitors."<url>"]` table does not
    /// set, and what a monitor without a table gets (the keys of a service but `sim`;
    /// built in: `[defaults]`'s built-in values but `latency_threshold_ms = 1000.0` and
    /// `min_events = 10`, see [`ServiceDefaults::for_monitors`]).
    pub monitor_defaults: ServiceEntry,
    /// URL monitors with SLOs of their own, by URL (`[monitors."https://…"]`, the keys of
    /// a service but `sim`): every check result is one event.
    pub monitors: BTreeMap<String, ServiceEntry>,
}

/// Everything the pipeline needs to know about one service, defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePolicy {
    /// Service name as it appears in events.
    pub name: String,
    /// Owning team.
    pub team: Arc<str>,
    /// Events over this latency are slow.
    pub latency_threshold_ms: f64,
    /// Availability objective as a fraction (0.999 for 99.9%).
    pub availability_objective: f64,
    /// Latency objective as a fraction.
    pub latency_objective: f64,
    /// SLO window.
    pub window: SloWindow,
    /// Burn-rate alert tiers that may fire, lowest first, without duplicates.
    pub alert_tiers: Vec<AlertTier>,
    /// Fewest events a window must hold before its ratio counts.
    pub min_events: u64,
    /// Status turns yellow below this fraction of error budget remaining (0.25 for 25%).
    pub budget_warning: f64,
    /// Whether the service is in the catalogue (false: defaults applied to an unknown name).
    pub known: bool,
    /// A probe target's SLOs (`[probes.NAME]`): its events are the echoes of
    /// `telltale probe`, not requests.
    pub probe: bool,
    /// A URL monitor's SLOs (`[monitors."<url>"]` or `[monitor_defaults]`): its events are
    /// check results, its name is the URL.
    pub monitor: bool,
    /// Simulator profile, if the catalogue gives one.
    #[serde(skip)]
    pub sim: SimProfileSpec,
}

/// The parsed, validated catalogue with defaults applied.
#[derive(Debug, Clone)]
pub struct ServiceCatalog {
    /// The catalogued services by name, defaults applied.
    services: BTreeMap<String, Arc<ServicePolicy>>,
    /// The probe targets with SLOs by name, defaults applied.
    probes: BTreeMap<String, Arc<ServicePolicy>>,
    /// `services` and `probes` hashed: every event looks its service up, and a tree walk compared
    /// strings a few times per event.
    by_name: HashMap<Box<str>, Arc<ServicePolicy>, foldhash::fast::FixedState>,
    /// The URL monitors with SLOs of their own by URL, `[monitor_defaults]` applied.
    monitors: BTreeMap<String, Arc<ServicePolicy>>,
    /// `[monitor_defaults]` over the built-in monitor defaults, for monitors without a
    /// table.
    monitor_defaults: ServiceDefaults,
    /// `[defaults]`, for services not in the catalogue.
    defaults: ServiceDefaults,
    /// `defaults.team`, shared by every event of an uncatalogued service.
    default_team: Arc<str>,
}

impl ServiceCatalog {
    /// Parses and validates catalogue text; `file` names it in error messages.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Self, ConfigError> {
        let raw: ServiceCatalogFile = parse_toml(text, file)?;
        Self::from_file(raw, file)
    }

    /// Validates an already-deserialized catalogue.
    pub fn from_file(raw: ServiceCatalogFile, file: &str) -> Result<Self, ConfigError> {
        let d = &raw.defaults;
        validate_defaults(file, "defaults", d)?;
        if raw.monitor_defaults.sim.is_some() {
            return Err(invalid(
                file,
                "monitor_defaults.sim",
                "monitors are checked by `telltale monitor`, not simulated: remove `sim`",
            ));
        }
        let md = ServiceDefaults::for_monitors().overridden_by(&raw.monitor_defaults);
        validate_defaults(file, "monitor_defaults", &md)?;
        let mut services = BTreeMap::new();
        for (name, e) in &raw.services {
            let policy = resolve(file, "services", name, e, d, false)?;
            services.insert(name.clone(), Arc::new(policy));
        }
        let mut probes = BTreeMap::new();
        for (name, e) in &raw.probes {
            if services.contains_key(name) {
                return Err(invalid(
                    file,
                    format!("probes.{name}"),
                    format!(
                        "{name:?} is both a service and a probe target: one name, one SLO; \
                         rename one of [services.{name}] and [probes.{name}]"
                    ),
                ));
            }
            let policy = resolve(file, "probes", name, e, d, true)?;
            probes.insert(name.clone(), Arc::new(policy));
        }
        let mut monitors = BTreeMap::new();
        for (url, e) in &raw.monitors {
            let key = format!("monitors.{url}");
            if !is_monitor_url(url) {
                return Err(invalid(
                    file,
                    key,
                    format!(
                        "{url:?} is not a URL: a monitor's table is named by the URL it checks, \
                         e.g. [monitors.\"https://example.com/health\"]"
                    ),
                ));
            }
            if services.contains_key(url) || probes.contains_key(url) {
                return Err(invalid(
                    file,
                    key,
                    format!(
                        "{url:?} is also a service or probe target: one name, one SLO; rename one"
                    ),
                ));
            }
            if e.sim.is_some() {
                return Err(invalid(
                    file,
                    format!("{key}.sim"),
                    "monitors are checked by `telltale monitor`, not simulated: remove `sim`",
                ));
            }
            let mut policy = resolve(file, "monitors", url, e, &md, false)?;
            policy.monitor = true;
            monitors.insert(url.clone(), Arc::new(policy));
        }
        Ok(Self {
            default_team: Arc::from(raw.defaults.team.as_str()),
            by_name: services
                .iter()
                .chain(&probes)
                .chain(&monitors)
                .map(|(name, p)| (Box::from(name.as_str()), Arc::clone(p)))
                .collect(),
            services,
            probes,
            monitors,
            monitor_defaults: md,
            defaults: raw.defaults,
        })
    }

    /// The SLO policy of the URL monitor checking `url`: its `[monitors."<url>"]` table,
    /// or `[monitor_defaults]`.
    pub fn monitor(&self, url: &str) -> Arc<ServicePolicy> {
        match self.monitors.get(url) {
            Some(p) => Arc::clone(p),
            None => Arc::new(self.monitor_default_policy(url)),
        }
    }

    /// URL monitors with SLOs of their own (`[monitors."<url>"]`), in URL order.
    pub fn monitors(&self) -> impl Iterator<Item = &Arc<ServicePolicy>> {
        self.monitors.values()
    }

    /// `[monitor_defaults]` applied to a monitor without a table of its own.
    pub fn monitor_default_policy(&self, url: &str) -> ServicePolicy {
        let mut p = policy_from_defaults(url, &self.monitor_defaults);
        p.monitor = true;
        p
    }

    /// The SLO policy of a probe target (`[probes.NAME]`), if it has one.
    pub fn probe(&self, target: &str) -> Option<&Arc<ServicePolicy>> {
        self.probes.get(target)
    }

    /// Probe targets with SLOs, in name order.
    pub fn probes(&self) -> impl Iterator<Item = &Arc<ServicePolicy>> {
        self.probes.values()
    }

    /// The policy for a catalogued service or probe target.
    pub fn get(&self, name: &str) -> Option<&Arc<ServicePolicy>> {
        self.by_name.get(name)
    }

    /// The team of services not in the catalogue.
    pub fn default_team(&self) -> &Arc<str> {
        &self.default_team
    }

    /// The latency threshold of services not in the catalogue, ms.
    pub fn default_latency_threshold_ms(&self) -> f64 {
        self.defaults.latency_threshold_ms
    }

    /// The policy for any service name: the catalogue's; for an `http://` or `https://`
    /// URL (a monitor's SLOs carry its URL as the service) `[monitor_defaults]`; else the
    /// defaults (`known = false`).
    pub fn policy_for(&self, name: &str) -> Arc<ServicePolicy> {
        match self.get(name) {
            Some(p) => Arc::clone(p),
            None if is_monitor_url(name) => Arc::new(self.monitor_default_policy(name)),
            None => Arc::new(self.default_policy(name)),
        }
    }

    /// The defaults applied to a service name that is not in the catalogue.
    pub fn default_policy(&self, name: &str) -> ServicePolicy {
        let mut p = policy_from_defaults(name, &self.defaults);
        p.team = Arc::clone(&self.default_team);
        p
    }

    /// Catalogued services in name order.
    pub fn services(&self) -> impl Iterator<Item = &Arc<ServicePolicy>> {
        self.services.values()
    }

    /// Number of catalogued services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when no service is catalogued.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The `[defaults]` table.
    pub fn defaults(&self) -> &ServiceDefaults {
        &self.defaults
    }

    /// Team names in order, with the services and probe targets each owns.
    pub fn teams(&self) -> BTreeMap<String, Vec<String>> {
        let mut teams: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let all = self.services.values().chain(self.probes.values());
        for p in all.chain(self.monitors.values()) {
            teams
                .entry(p.team.to_string())
                .or_default()
                .push(p.name.clone());
        }
        teams
    }
}

/// `[section.NAME]` with the defaults applied, validated; keys are named
/// `section.NAME.key` in errors. Probe targets take no `sim`.
fn resolve(
    file: &str,
    section: &str,
    name: &str,
    e: &ServiceEntry,
    d: &ServiceDefaults,
    probe: bool,
) -> Result<ServicePolicy, ConfigError> {
    let key = |k: &str| format!("{section}.{name}.{k}");
    if name.trim().is_empty() {
        return Err(invalid(
            file,
            section,
            format!("a name in [{section}] is empty: give it a name"),
        ));
    }
    let team = e.team.clone().unwrap_or_else(|| d.team.clone());
    validate_team(file, &key("team"), &team)?;
    let thr = e.latency_threshold_ms.unwrap_or(d.latency_threshold_ms);
    validate_threshold(file, &key("latency_threshold_ms"), thr)?;
    let avail = e.availability_objective.unwrap_or(d.availability_objective);
    validate_objective(file, &key("availability_objective"), avail)?;
    let lat = e.latency_objective.unwrap_or(d.latency_objective);
    validate_objective(file, &key("latency_objective"), lat)?;
    let window = e.window.unwrap_or(d.window);
    validate_window(file, &key("window"), window)?;
    let min_events = e.min_events.unwrap_or(d.min_events);
    validate_min_events(file, &key("min_events"), min_events)?;
    let warning = e.budget_warning_percent.unwrap_or(d.budget_warning_percent);
    validate_budget_warning(file, &key("budget_warning_percent"), warning)?;
    let tiers = normalize_tiers(e.alert_tiers.as_ref().unwrap_or(&d.alert_tiers));
    if let Some(sim) = &e.sim {
        if probe {
            return Err(invalid(
                file,
                key("sim"),
                "probe targets are measured by `telltale probe`, not simulated: remove `sim`",
            ));
        }
        validate_sim(file, name, sim)?;
    }
    Ok(ServicePolicy {
        name: name.to_owned(),
        team: Arc::from(team.as_str()),
        latency_threshold_ms: thr,
        availability_objective: percent_to_fraction(avail),
        latency_objective: percent_to_fraction(lat),
        window,
        alert_tiers: tiers,
        min_events,
        budget_warning: percent_to_fraction(warning),
        known: true,
        probe,
        monitor: false,
        sim: e.sim.clone().unwrap_or_default(),
    })
}

/// Whether `name` is an `http://` or `https://` URL: a monitor's name.
pub fn is_monitor_url(name: &str) -> bool {
    name.starts_with("http://") || name.starts_with("https://")
}

/// A policy of `defaults` for a name not in the catalogue (`known = false`).
fn policy_from_defaults(name: &str, d: &ServiceDefaults) -> ServicePolicy {
    ServicePolicy {
        name: name.to_owned(),
        team: Arc::from(d.team.as_str()),
        latency_threshold_ms: d.latency_threshold_ms,
        availability_objective: percent_to_fraction(d.availability_objective),
        latency_objective: percent_to_fraction(d.latency_objective),
        window: d.window,
        alert_tiers: normalize_tiers(&d.alert_tiers),
        min_events: d.min_events,
        budget_warning: percent_to_fraction(d.budget_warning_percent),
        known: false,
        probe: false,
        monitor: false,
        sim: SimProfileSpec::default(),
    }
}

/// Every key of a `[defaults]`-like table (`prefix`), validated.
fn validate_defaults(file: &str, prefix: &str, d: &ServiceDefaults) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    validate_team(file, &key("team"), &d.team)?;
    validate_threshold(file, &key("latency_threshold_ms"), d.latency_threshold_ms)?;
    validate_objective(
        file,
        &key("availability_objective"),
        d.availability_objective,
    )?;
    validate_objective(file, &key("latency_objective"), d.latency_objective)?;
    validate_window(file, &key("window"), d.window)?;
    validate_min_events(file, &key("min_events"), d.min_events)?;
    validate_budget_warning(
        file,
        &key("budget_warning_percent"),
        d.budget_warning_percent,
    )
}

fn validate_team(file: &str, key: &str, team: &str) -> Result<(), ConfigError> {
    if team.trim().is_empty() {
        return Err(invalid(
            file,
            key,
            "team is empty: name the owning team, e.g. \"payments\"",
        ));
    }
    Ok(())
}

fn validate_threshold(file: &str, key: &str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || v <= 0.0 {
        return Err(invalid(
            file,
            key,
            format!(
                "{v} is not a latency threshold: use a positive number of milliseconds, e.g. 300.0"
            ),
        ));
    }
    Ok(())
}

fn validate_objective(file: &str, key: &str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || v <= 0.0 || v >= 100.0 {
        return Err(invalid(
            file,
            key,
            format!(
                "{v} is not an objective: give a percentage above 0 and below 100, e.g. 99.9 \
                 (100 would leave no error budget)"
            ),
        ));
    }
    Ok(())
}

fn validate_window(file: &str, key: &str, w: SloWindow) -> Result<(), ConfigError> {
    if let SloWindow::Rolling(d) = w
        && (d < Duration::from_secs(3600) || d > Duration::from_secs(400 * 86_400))
    {
        return Err(invalid(
            file,
            key,
            "window must be between 1h and 400d, e.g. \"30d\", or \"calendar-month\"",
        ));
    }
    Ok(())
}

fn validate_min_events(file: &str, key: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(invalid(
            file,
            key,
            "0 would let a single request decide an alert: give at least 1, e.g. 100",
        ));
    }
    Ok(())
}

fn validate_budget_warning(file: &str, key: &str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || !(0.0..100.0).contains(&v) {
        return Err(invalid(
            file,
            key,
            format!(
                "{v} is not a budget percentage: give a number from 0 (never yellow for budget) \
                 to below 100, e.g. 25"
            ),
        ));
    }
    Ok(())
}

/// `99.9` → `0.999`. Plain division gives 0.9990000000000001, which then shows in every
/// JSON and InfluxDB output; rounding to 12 decimals gives the nearest double to 0.999.
fn percent_to_fraction(p: f64) -> f64 {
    (p / 100.0 * 1e12).round() / 1e12
}

/// Tiers sorted lowest first, duplicates dropped (`["page", "page"]` means `["page"]`).
fn normalize_tiers(tiers: &[AlertTier]) -> Vec<AlertTier> {
    let mut t = tiers.to_vec();
    t.sort_unstable();
    t.dedup();
    t
}

fn validate_sim(file: &str, name: &str, s: &SimProfileSpec) -> Result<(), ConfigError> {
    let key = |k: &str| format!("services.{name}.sim.{k}");
    let positive = |k: &str, v: Option<f64>| match v {
        Some(x) if !x.is_finite() || x <= 0.0 => Err(invalid(
            file,
            key(k),
            format!("{x} must be a positive number"),
        )),
        _ => Ok(()),
    };
    positive("baseline_latency_ms", s.baseline_latency_ms)?;
    positive("latency_sigma", s.latency_sigma)?;
    positive("weight", s.weight)?;
    if let Some(r) = s.error_rate
        && !(0.0..=1.0).contains(&r)
    {
        return Err(invalid(
            file,
            key("error_rate"),
            format!("{r} must be a fraction from 0 to 1, e.g. 0.001"),
        ));
    }
    if let Some(eps) = &s.endpoints
        && (eps.is_empty() || eps.iter().any(|e| e.trim().is_empty()))
    {
        return Err(invalid(
            file,
            key("endpoints"),
            "list at least one non-empty endpoint, e.g. [\"GET /v1/items\"]",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[defaults]
team = "unowned"
latency_threshold_ms = 300.0
availability_objective = 99.9
latency_objective = 99.0
window = "30d"

[services.auth-service]
team = "identity"
latency_threshold_ms = 250.0
availability_objective = 99.95
"#;

    #[test]
    fn the_issue_example_parses_with_defaults_applied() {
        let c = ServiceCatalog::from_toml_str(EXAMPLE, "services.toml").unwrap();
        let a = c.get("auth-service").unwrap();
        assert_eq!(&*a.team, "identity");
        assert_eq!(a.latency_threshold_ms, 250.0);
        assert!((a.availability_objective - 0.9995).abs() < 1e-12);
        assert!((a.latency_objective - 0.99).abs() < 1e-12);
        assert_eq!(
            a.window,
            SloWindow::Rolling(Duration::from_secs(30 * 86_400))
        );
        assert!(a.known);
    }

    #[test]
    fn unknown_service_gets_defaults_and_unowned_team() {
        let c = ServiceCatalog::from_toml_str(EXAMPLE, "services.toml").unwrap();
        let p = c.policy_for("mystery");
        assert!(!p.known);
        assert_eq!(&*p.team, "unowned");
        assert_eq!(p.latency_threshold_ms, 300.0);
    }

    #[test]
    fn probe_targets_have_slos_of_their_own() {
        let text = format!(
            "{EXAMPLE}\n[probes.\"db.example.com\"]\nteam = \"network\"\nlatency_threshold_ms = 40.0\n"
        );
        let c = ServiceCatalog::from_toml_str(&text, "services.toml").unwrap();
        let p = c.probe("db.example.com").expect("the probe target");
        assert!(p.probe && p.known);
        assert_eq!((&*p.team, p.latency_threshold_ms), ("network", 40.0));
        assert!((p.availability_objective - 0.999).abs() < 1e-12, "default");
        assert_eq!(c.get("db.example.com"), Some(p), "looked up like a service");
        assert!(c.probe("auth-service").is_none());
        assert_eq!(c.services().count(), 1, "not a service: never simulated");
        assert_eq!(c.teams()["network"], ["db.example.com"]);
    }

    #[test]
    fn a_probe_target_named_like_a_service_or_with_sim_is_rejected() {
        let text = format!("{EXAMPLE}\n[probes.auth-service]\n");
        let err = ServiceCatalog::from_toml_str(&text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`probes.auth-service`") && err.contains("rename"),
            "{err}"
        );
        let text = "[probes.x]\nsim = { weight = 1.0 }\n";
        let err = ServiceCatalog::from_toml_str(text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`probes.x.sim`") && err.contains("remove"),
            "{err}"
        );
        let text = "[probes.x]\nlatency_threshold_ms = -1.0\n";
        let err = ServiceCatalog::from_toml_str(text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`probes.x.latency_threshold_ms`"), "{err}");
    }

    /// `[monitors."<url>"]` and `[monitor_defaults]`: a monitor with a table gets it over
    /// the monitor defaults; any other URL gets the monitor defaults; bad tables name
    /// their key.
    #[test]
    fn monitors_have_slos_of_their_own_and_defaults() {
        let text = format!(
            "{EXAMPLE}\n[monitor_defaults]\nteam = \"web\"\n\
             [monitors.\"https://x.test/health\"]\nlatency_threshold_ms = 200.0\nmin_events = 1\n"
        );
        let c = ServiceCatalog::from_toml_str(&text, "services.toml").unwrap();
        let m = c.monitor("https://x.test/health");
        assert!(m.monitor && m.known && !m.probe);
        assert_eq!(
            (&*m.team, m.latency_threshold_ms, m.min_events),
            ("web", 200.0, 1)
        );
        assert_eq!(c.policy_for("https://x.test/health"), m);
        let other = c.policy_for("http://other.test/");
        assert!(other.monitor && !other.known);
        assert_eq!(
            (&*other.team, other.latency_threshold_ms, other.min_events),
            ("web", MONITOR_LATENCY_THRESHOLD_MS, MONITOR_MIN_EVENTS)
        );
        assert!(!c.policy_for("mystery").monitor);
        assert_eq!(c.monitors().count(), 1);
        assert!(c.teams()["web"].contains(&"https://x.test/health".to_owned()));
        // Built in, without any table.
        let plain = ServiceCatalog::from_toml_str("", "services.toml").unwrap();
        let p = plain.monitor("https://y.test/");
        assert_eq!((&*p.team, p.latency_threshold_ms), ("unowned", 1000.0));
        for (text, key) in [
            ("[monitors.not-a-url]\n", "`monitors.not-a-url`"),
            (
                "[monitors.\"https://x/\"]\nsim = {}\n",
                "`monitors.https://x/.sim`",
            ),
            (
                "[monitors.\"https://x/\"]\navailability_objective = 100.0\n",
                "`monitors.https://x/.availability_objective`",
            ),
            (
                "[monitor_defaults]\nlatency_threshold_ms = -1.0\n",
                "`monitor_defaults.latency_threshold_ms`",
            ),
            ("[monitor_defaults]\nsim = {}\n", "`monitor_defaults.sim`"),
            ("[monitor_defaults]\nnope = 1\n", "nope"),
        ] {
            let err = ServiceCatalog::from_toml_str(text, "services.toml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key) && err.contains("services.toml"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn unknown_key_is_rejected_with_file_and_key() {
        let err = ServiceCatalog::from_toml_str(
            "[services.a]\nteam = \"x\"\nlatency_treshold_ms = 5\n",
            "config/services.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("config/services.toml:"), "{err}");
        assert!(err.contains("latency_treshold_ms"), "{err}");
    }

    #[test]
    fn objective_of_100_is_rejected_with_the_fix() {
        let err = ServiceCatalog::from_toml_str(
            "[services.a]\navailability_objective = 100.0\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "s.toml: `services.a.availability_objective`: 100 is not an objective: give a percentage \
             above 0 and below 100, e.g. 99.9 (100 would leave no error budget)"
        );
    }

    #[test]
    fn negative_threshold_is_rejected() {
        let err =
            ServiceCatalog::from_toml_str("[services.a]\nlatency_threshold_ms = -1.0\n", "s.toml")
                .unwrap_err()
                .to_string();
        assert!(err.contains("`services.a.latency_threshold_ms`"), "{err}");
    }

    #[test]
    fn calendar_month_window_parses() {
        let c =
            ServiceCatalog::from_toml_str("[services.a]\nwindow = \"calendar-month\"\n", "s.toml")
                .unwrap();
        assert_eq!(c.get("a").unwrap().window, SloWindow::CalendarMonth);
        let err = ServiceCatalog::from_toml_str("[services.a]\nwindow = \"fortnight\"\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a window"), "{err}");
    }

    #[test]
    fn objectives_are_the_nearest_fraction() {
        for (pct, frac) in [
            (99.9, 0.999),
            (99.95, 0.9995),
            (99.999, 0.99999),
            (95.0, 0.95),
        ] {
            let c = ServiceCatalog::from_toml_str(
                &format!("[services.a]\navailability_objective = {pct}\n"),
                "s.toml",
            )
            .unwrap();
            assert_eq!(c.get("a").unwrap().availability_objective, frac, "{pct}");
        }
    }

    #[test]
    fn slo_alerting_keys_default_and_override() {
        let c = ServiceCatalog::from_toml_str(
            "[defaults]\nmin_events = 50\n\
             [services.a]\nalert_tiers = [\"page\", \"page\"]\nbudget_warning_percent = 10.0\n\
             [services.b]\nalert_tiers = []\nmin_events = 500\n",
            "s.toml",
        )
        .unwrap();
        let a = c.get("a").unwrap();
        assert_eq!(a.alert_tiers, [AlertTier::Page]);
        assert_eq!(a.min_events, 50);
        assert!((a.budget_warning - 0.10).abs() < 1e-12);
        let b = c.get("b").unwrap();
        assert!(b.alert_tiers.is_empty());
        assert_eq!(b.min_events, 500);
        assert!((b.budget_warning - 0.25).abs() < 1e-12);
        let d = ServiceCatalog::from_toml_str("", "s.toml")
            .unwrap()
            .policy_for("x");
        assert_eq!(d.alert_tiers, [AlertTier::Ticket, AlertTier::Page]);
        assert_eq!(d.min_events, DEFAULT_MIN_EVENTS);
    }

    #[test]
    fn services_toml_documents_the_slo_alerting_defaults() {
        // The keys are commented out in the shipped file; uncommented they must parse and
        // equal the defaults, so the comments cannot drift from the code.
        let text = include_str!("../../../../config/services.toml");
        // The `[defaults]` part: the monitor section documents its own defaults (tested
        // in crates/telltale/tests/it/config_files.rs).
        let text = text.split("# --- URL monitors").next().unwrap();
        let keys = ["alert_tiers", "min_events", "budget_warning_percent"];
        let mut found = 0;
        let uncommented: Vec<&str> = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if keys.iter().any(|k| rest.starts_with(k)) => {
                    found += 1;
                    rest
                }
                _ => l,
            })
            .collect();
        assert_eq!(found, keys.len(), "every SLO alerting key is documented");
        let c = ServiceCatalog::from_toml_str(&uncommented.join("\n"), "services.toml").unwrap();
        let (got, want) = (
            c.policy_for("x"),
            ServiceCatalog::from_toml_str("", "d")
                .unwrap()
                .policy_for("x"),
        );
        assert_eq!(
            (&got.alert_tiers, got.min_events, got.budget_warning),
            (&want.alert_tiers, want.min_events, want.budget_warning)
        );
    }

    #[test]
    fn bad_slo_alerting_keys_name_key_and_fix() {
        let err = ServiceCatalog::from_toml_str("[services.a]\nmin_events = 0\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "s.toml: `services.a.min_events`: 0 would let a single request decide an alert: \
             give at least 1, e.g. 100"
        );
        let err =
            ServiceCatalog::from_toml_str("[defaults]\nbudget_warning_percent = 100.0\n", "s.toml")
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("s.toml: `defaults.budget_warning_percent`: 100 is not"),
            "{err}"
        );
        let err =
            ServiceCatalog::from_toml_str("[services.a]\nalert_tiers = [\"pager\"]\n", "s.toml")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("alert_tiers") && err.contains("`page`"),
            "{err}"
        );
    }
}
