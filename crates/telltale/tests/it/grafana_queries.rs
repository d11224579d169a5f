//! Every InfluxQL query of the Grafana dashboards (`grafana/dashboards/*.json`) and of the
//! alert rules (`alerts/*.yaml`), run against a real InfluxDB 1.x holding what
//! `telltale process` wrote for a seeded incident, with the values the panels would show
//! checked against the incident.
//!
//! The data: three services for three simulated hours from Monday 2025-01-06 08:00 UTC
//! (seeded, spontaneous incidents off); at +60 min `checkout-api` answers every request
//! with a 503 for 30 minutes (`IncidentKind::Outage`), the other services stay clean, and
//! six malformed lines are mixed in. The NDJSON goes through the real binary,
//! `telltale process --input FILE` with `INFLUX_API=v1`, into Debian's `influxd` (1.6)
//! started on a free loopback port (`telltale_influx::testing`) — twice, as a restart
//! replaying its input would: the replay must change nothing the SLO panels show.
//!
//! Grafana macros are substituted as Grafana does: `$timeFilter` becomes
//! `time >= <from>ms and time <= <to>ms` over the time range of the data each query reads
//! (the simulated hours for rollups and SLO status; the run's wall-clock seconds for the
//! pipeline's own health samples), `$__interval` is `1m` (`100ms` for the pipeline's
//! samples, which are seconds apart), `$__interval_ms` its milliseconds and `$service` the
//! incident's service. In the alert rules, `$$` is first read as `$`, as Grafana's
//! provisioning does.
//!
//! The network path dashboard reads probes, which this data has none of: its queries run
//! against real `telltale probe` output in `network_path_dashboard`; here it only goes
//! through the checks every dashboard does (data source, `$timeFilter`, `$__interval`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use telltale_core::ServiceCatalog;
use telltale_influx::testing::Server;
use telltale_sim::{IncidentKind, SimConfig, Simulator};

use crate::support::{ChildGuard, repo_root, telltale};

const DB: &str = "telltale";
const MINUTE_MS: i64 = 60_000;
/// 2025-01-06T08:00:00Z, a Monday morning (the diurnal curve is near its average).
const START_MS: i64 = 1_736_150_400_000;
const OUTAGE_AFTER_MIN: i64 = 60;
const OUTAGE_MIN: i64 = 30;
const TOTAL_MIN: i64 = 180;
/// Average events per second over the three services.
const RATE: f64 = 6.0;
const INCIDENT: &str = "checkout-api";
const HEALTHY: &str = "search-api";
/// Grafana's alert rules look this far back (`relativeTimeRange.from`, alerts/*.yaml).
const RULE_RANGE_MS: i64 = 600_000;
/// How long `telltale process` may take for the whole file.
const PROCESS_DEADLINE: Duration = Duration::from_secs(300);

/// Clean services (no background 5xx, latency far under the thresholds), so that only the
/// outage moves an SLO.
const SERVICES: &str = r#"
[defaults]
team = "unowned"
latency_threshold_ms = 800.0
availability_objective = 99.9
latency_objective = 99.0
window = "30d"

[services.checkout-api]
team = "payments"
sim = { baseline_latency_ms = 120.0, latency_sigma = 0.3, weight = 1.0, error_rate = 0.0, endpoints = ["POST /v1/checkout"] }

[services.search-api]
team = "catalog"
sim = { baseline_latency_ms = 80.0, latency_sigma = 0.3, weight = 1.0, error_rate = 0.0, endpoints = ["GET /v1/search"] }

[services.auth-service]
team = "identity"
sim = { baseline_latency_ms = 40.0, latency_sigma = 0.3, weight = 1.0, error_rate = 0.0, endpoints = ["POST /v1/login"] }
"#;

/// Lines the processor must reject, by reason.
const BAD_LINES: [(&str, &str); 6] = [
    ("malformed_json", "this is not json"),
    ("malformed_json", "{\"service\":"),
    ("malformed_json", "{{}}"),
    ("missing_field", r#"{"service":"checkout-api"}"#),
    (
        "missing_field",
        r#"{"service":"search-api","timestamp":"2025-01-06T08:10:00Z","latency_ms":5.0}"#,
    ),
    (
        "out_of_range",
        r#"{"service":"search-api","timestamp":"2025-01-06T08:10:00Z","status_code":700,"latency_ms":5.0}"#,
    ),
];

/// What the test generated.
struct Generated {
    /// Accepted-to-be service lines per service.
    per_service: BTreeMap<String, u64>,
    good_lines: u64,
    outage_start_ms: i64,
    outage_end_ms: i64,
    end_ms: i64,
}

fn generate(path: &Path) -> Generated {
    let catalog = ServiceCatalog::from_toml_str(SERVICES, "services.toml").unwrap();
    let mut sim = Simulator::new(
        &catalog,
        SimConfig {
            seed: 7,
            start_us: START_MS * 1000,
            rate: RATE,
            probe_target: None,
            incidents: false,
            ..SimConfig::default()
        },
    );
    let outage_at_us = (START_MS + OUTAGE_AFTER_MIN * MINUTE_MS) * 1000;
    let end_us = (START_MS + TOTAL_MIN * MINUTE_MS) * 1000;
    let mut out = Vec::with_capacity(16 << 20);
    let mut line = Vec::with_capacity(512);
    let mut per_service = BTreeMap::new();
    let mut incident = None;
    let mut good_lines = 0u64;
    loop {
        let next = sim.next_us();
        if incident.is_none() && next >= outage_at_us {
            incident = Some(
                sim.start_incident(
                    INCIDENT,
                    IncidentKind::Outage,
                    Duration::from_secs(OUTAGE_MIN as u64 * 60),
                )
                .unwrap(),
            );
        }
        if next >= end_us {
            break;
        }
        line.clear();
        sim.next_line(&mut line);
        let v: Value = serde_json::from_slice(&line).unwrap();
        *per_service
            .entry(v["service"].as_str().unwrap().to_owned())
            .or_insert(0u64) += 1;
        good_lines += 1;
        out.extend_from_slice(&line);
        if good_lines == 1000 {
            for (_, bad) in BAD_LINES {
                out.extend_from_slice(bad.as_bytes());
                out.push(b'\n');
            }
        }
    }
    std::fs::write(path, out).unwrap();
    let inc = incident.expect("the outage started");
    Generated {
        per_service,
        good_lines,
        outage_start_ms: inc.start_us / 1000,
        outage_end_ms: inc.end_us / 1000,
        end_ms: end_us / 1000,
    }
}

/// Runs `telltale process --input FILE` with the InfluxDB sink on `influx` (InfluxDB 1.x
/// API, database `telltale`); also what `network_path_dashboard` feeds its probes through.
pub(crate) fn process(input: &Path, data_dir: &Path, services: &Path, influx: &str) {
    let mut cmd = telltale();
    for (k, _) in std::env::vars() {
        if k.starts_with("INFLUX_") || k.starts_with("TELLTALE_") || k == "ALERTMANAGER_URL" {
            cmd.env_remove(k);
        }
    }
    let log = data_dir.with_extension("log");
    let mut child = ChildGuard::spawn(
        cmd.arg("process")
            .arg("--input")
            .arg(input)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(repo_root().join("config/telltale.toml"))
            .arg("--services")
            .arg(services)
            .env("INFLUX_URL", influx)
            .env("INFLUX_API", "v1")
            .env("INFLUX_DATABASE", DB)
            .env("TELLTALE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap()),
    );
    let deadline = Instant::now() + PROCESS_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            drop(child); // killed and reaped
            panic!(
                "telltale process did not finish within {PROCESS_DEADLINE:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "telltale process failed ({status}); log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

// --- query results ----------------------------------------------------------------------

/// One series of an InfluxQL result.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) columns: Vec<String>,
    pub(crate) values: Vec<Vec<Value>>,
}

impl Series {
    pub(crate) fn tag(&self, k: &str) -> &str {
        self.tags.get(k).map_or("", String::as_str)
    }

    /// `(time ms, value)` of a column, nulls left out.
    pub(crate) fn points(&self, column: &str) -> Vec<(i64, f64)> {
        let i = self
            .columns
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| panic!("no column {column:?} in {:?}", self.columns));
        self.values
            .iter()
            .filter_map(|row| Some((row[0].as_i64()?, row[i].as_f64()?)))
            .collect()
    }

    pub(crate) fn strings(&self, column: &str) -> Vec<String> {
        let i = self.columns.iter().position(|c| c == column).unwrap();
        self.values
            .iter()
            .filter_map(|row| row[i].as_str().map(str::to_owned))
            .collect()
    }

    /// The value of the only (or last) row in a column.
    fn last(&self, column: &str) -> f64 {
        self.points(column)
            .last()
            .unwrap_or_else(|| panic!("{column} of {:?} is empty", self.tags))
            .1
    }
}

/// The series of the first statement's result (which must not be an error).
pub(crate) fn series_of(v: &Value) -> Vec<Series> {
    let result = &v["results"][0];
    assert!(result.get("error").is_none(), "query error: {result}");
    result["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Series {
            tags: s["tags"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            columns: s["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect(),
            values: s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_array().unwrap().clone())
                .collect(),
        })
        .collect()
}

fn find<'a>(series: &'a [Series], tag: &str, value: &str) -> &'a Series {
    series
        .iter()
        .find(|s| s.tag(tag) == value)
        .unwrap_or_else(|| panic!("no series with {tag}={value} in {series:?}"))
}

fn find2<'a>(series: &'a [Series], service: &str, sli: &str) -> &'a Series {
    series
        .iter()
        .find(|s| s.tag("service") == service && s.tag("sli") == sli)
        .unwrap_or_else(|| panic!("no series for {service}/{sli} in {series:?}"))
}

// --- queries of the dashboards and rules ------------------------------------------------

/// One InfluxQL query and where it comes from.
#[derive(Debug, Clone)]
struct Query {
    /// `dashboard file / panel title / refId`, or `alerts file / rule uid / refId`.
    origin: String,
    text: String,
}

/// The dashboards `grafana/provisioning/dashboards/telltale.yaml` loads, sorted.
fn dashboard_files() -> Vec<PathBuf> {
    let dir = repo_root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            NETWORK_PATH,
            "pipeline-health.json",
            "service-detail.json",
            "slo-overview.json"
        ],
        "the dashboards in {}",
        dir.display()
    );
    files
}

/// The network path dashboard reads probes, which the incident here has none of: its
/// queries run against real probe output in `network_path_dashboard`.
const NETWORK_PATH: &str = "network-path.json";

/// Every query of every dashboard.
fn all_dashboard_queries() -> Vec<Query> {
    dashboard_files()
        .iter()
        .flat_map(|f| queries_of(f))
        .collect()
}

/// The queries of the dashboards this test's incident data is for.
fn dashboard_queries() -> Vec<Query> {
    dashboard_files()
        .iter()
        .filter(|f| !f.ends_with(NETWORK_PATH))
        .flat_map(|f| queries_of(f))
        .collect()
}

/// The panel, annotation and variable queries of one dashboard file.
fn queries_of(file: &Path) -> Vec<Query> {
    let mut out = Vec::new();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let d: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut panels: Vec<&Value> = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            assert_eq!(t["rawQuery"], true, "{name} / {title}: raw InfluxQL");
            assert_eq!(
                t["datasource"]["uid"], "telltale-influxdb",
                "{name} / {title}: the provisioned data source"
            );
            out.push(Query {
                origin: format!("{name} / {title} / {}", t["refId"].as_str().unwrap()),
                text: t["query"].as_str().unwrap().to_owned(),
            });
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = a["query"].as_str() {
            out.push(Query {
                origin: format!("{name} / annotation {}", a["name"].as_str().unwrap()),
                text: q.to_owned(),
            });
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"].as_str() {
            out.push(Query {
                origin: format!("{name} / variable {}", v["name"].as_str().unwrap()),
                text: q.to_owned(),
            });
        }
    }
    out
}

/// Queries of the alert rules, keyed by rule uid, with `$$` read as `$`.
fn rule_queries() -> BTreeMap<String, Query> {
    let dir = repo_root().join("alerts");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let doc: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc["apiVersion"], 1, "{name}: apiVersion 1");
        for group in doc["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().unwrap() {
                let uid = rule["uid"].as_str().unwrap().to_owned();
                for d in rule["data"].as_array().unwrap() {
                    if d["datasourceUid"] != "telltale-influxdb" {
                        continue;
                    }
                    assert_eq!(d["model"]["rawQuery"], true, "{name} / {uid}");
                    assert_eq!(
                        d["relativeTimeRange"]["from"].as_i64(),
                        Some(RULE_RANGE_MS / 1000),
                        "{name} / {uid}: the rules look back 10 minutes"
                    );
                    let text = d["model"]["query"].as_str().unwrap().replace("$$", "$");
                    let origin = format!("{name} / {uid} / {}", d["refId"].as_str().unwrap());
                    assert!(
                        out.insert(uid.clone(), Query { origin, text }).is_none(),
                        "one InfluxDB query per rule"
                    );
                }
            }
        }
    }
    out
}

/// Measurements a query reads (`FROM "name"`).
fn measurements(q: &str) -> Vec<String> {
    q.split("FROM \"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(m, _)| m.to_owned()))
        .collect()
}

/// Substitutes Grafana's macros for a time range and interval.
fn expand(q: &str, from_ms: i64, to_ms: i64, interval_ms: i64) -> String {
    let interval = if interval_ms % MINUTE_MS == 0 {
        format!("{}m", interval_ms / MINUTE_MS)
    } else if interval_ms % 1000 == 0 {
        format!("{}s", interval_ms / 1000)
    } else {
        format!("{interval_ms}ms")
    };
    q.replace(
        "$timeFilter",
        &format!("time >= {from_ms}ms and time <= {to_ms}ms"),
    )
    .replace("$__interval_ms", &interval_ms.to_string())
    .replace("$__interval", &interval)
    .replace("$service", INCIDENT)
}

struct Lake {
    server: Server,
    /// First and last point time per measurement, ms.
    ranges: BTreeMap<String, (i64, i64)>,
}

impl Lake {
    async fn run(&self, q: &str) -> Vec<Series> {
        series_of(&self.server.influxql(DB, q).await)
    }

    /// Grafana's view of a dashboard query: the time range of the data it reads, whole
    /// minutes, and the interval that range gets.
    async fn dashboard(&self, q: &Query) -> Vec<Series> {
        let ms = measurements(&q.text);
        let (from, to) = ms
            .iter()
            .map(|m| {
                *self
                    .ranges
                    .get(m)
                    .unwrap_or_else(|| panic!("{}: InfluxDB holds no {m:?} points", q.origin))
            })
            .fold((i64::MAX, i64::MIN), |(a, b), (f, t)| (a.min(f), b.max(t)));
        let (from, to) = if ms.is_empty() {
            (0, 0)
        } else {
            (
                from.div_euclid(MINUTE_MS) * MINUTE_MS,
                (to.div_euclid(MINUTE_MS) + 1) * MINUTE_MS,
            )
        };
        // The pipeline's own samples of the two runs are a second or so apart.
        let interval = if to - from > 30 * MINUTE_MS {
            MINUTE_MS
        } else {
            100
        };
        self.run(&expand(&q.text, from, to, interval)).await
    }

    /// An alert rule's query as Grafana evaluates it at `at_ms`.
    async fn rule(&self, q: &Query, at_ms: i64) -> Vec<Series> {
        self.run(&expand(&q.text, at_ms - RULE_RANGE_MS, at_ms, MINUTE_MS))
            .await
    }
}

fn result_of<'a>(results: &'a BTreeMap<String, Vec<Series>>, origin: &str) -> &'a [Series] {
    results
        .get(origin)
        .unwrap_or_else(|| panic!("no query {origin:?}; have {:?}", results.keys()))
}

const MEASUREMENTS: [(&str, &str); 4] = [
    ("service_rollup", "count"),
    ("slo_status", "state"),
    ("pipeline", "accepted"),
    ("pipeline_rejects", "rejected"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alert_rules_show_the_incident() {
    let dashboards = dashboard_queries();
    let rules = rule_queries();
    assert!(
        rules.contains_key("telltale-slo-page") && rules.contains_key("telltale-slo-ticket"),
        "page and ticket rules: {:?}",
        rules.keys()
    );

    // The incident, through the real processor, into a real InfluxDB 1.x.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("events.ndjson");
    let services = tmp.path().join("services.toml");
    std::fs::write(&services, SERVICES).unwrap();
    let g = generate(&input);
    let server = Server::influxd().await;
    server
        .influxql(DB, &format!("CREATE DATABASE \"{DB}\""))
        .await;
    let url = server.url();
    let lakes = (tmp.path().join("lake-1"), tmp.path().join("lake-2"));
    tokio::task::spawn_blocking(move || {
        // The same input twice, as after a restart that replays it: every rollup and SLO
        // status point lands again on its own series and timestamp and overwrites the
        // first (the request-rate check below fails if anything doubled), the pipeline's
        // counters start again from zero, and the pipeline health panels get a second
        // sample to take a rate from.
        process(&input, &lakes.0, &services, &url);
        process(&input, &lakes.1, &services, &url);
    })
    .await
    .unwrap();

    let mut ranges = BTreeMap::new();
    let mut missing = Vec::new();
    for (m, field) in MEASUREMENTS {
        let first = series_of(
            &server
                .influxql(DB, &format!("SELECT first(\"{field}\") FROM \"{m}\""))
                .await,
        );
        let last = series_of(
            &server
                .influxql(DB, &format!("SELECT last(\"{field}\") FROM \"{m}\""))
                .await,
        );
        match (first.first(), last.first()) {
            (Some(f), Some(l)) => {
                ranges.insert(
                    m.to_owned(),
                    (f.points(&f.columns[1])[0].0, l.points(&l.columns[1])[0].0),
                );
            }
            _ => missing.push(m),
        }
    }
    // Rollups and SLO status are needed for anything below; the pipeline's own health is
    // checked last, so that a missing piece still lets the rest be checked.
    let wiring = "Is the InfluxDB sink wired into `telltale process` yet? \
                  (`grep -rn telltale_influx crates/telltale-processor/src`)";
    assert!(
        !missing.contains(&"service_rollup") && !missing.contains(&"slo_status"),
        "`telltale process` with INFLUX_URL set wrote no {missing:?} points to InfluxDB. {wiring}"
    );
    let lake = Lake { server, ranges };

    // Every dashboard query runs without error and returns data.
    let mut results: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    let mut empty = Vec::new();
    let mut not_run = Vec::new();
    for q in &dashboards {
        if measurements(&q.text)
            .iter()
            .any(|m| missing.contains(&m.as_str()))
        {
            not_run.push(q.origin.clone());
            continue;
        }
        let series = lake.dashboard(q).await;
        if series.iter().all(|s| s.values.is_empty()) {
            empty.push(format!("{}: {}", q.origin, q.text));
        }
        results.insert(q.origin.clone(), series);
    }
    assert!(
        empty.is_empty(),
        "queries that returned nothing:\n{}",
        empty.join("\n")
    );
    let r = |origin: &str| result_of(&results, origin);
    let (out_start, out_end) = (g.outage_start_ms, g.outage_end_ms);
    let before_outage = |t: i64| t + MINUTE_MS <= out_start;
    let near_start = |t: i64| (out_start - MINUTE_MS..=out_start + 3 * MINUTE_MS).contains(&t);

    // --- SLO overview --------------------------------------------------------------
    let status = r("slo-overview.json / Service status / A");
    assert_eq!(status.len(), 3, "one tile per service: {status:?}");
    assert_eq!(find(status, "service", INCIDENT).last("state"), 2.0, "red");
    assert_eq!(find(status, "service", INCIDENT).tag("team"), "payments");
    assert_eq!(find(status, "service", HEALTHY).last("state"), 0.0, "green");
    assert_eq!(find(status, "service", "auth-service").last("state"), 0.0);

    let budget = r("slo-overview.json / Error budget remaining (worst SLI) / A");
    assert!(
        find(budget, "service", INCIDENT).last("budget_remaining") < 0.0,
        "a 30-minute outage in three hours overspends a 99.9% budget"
    );
    assert!(find(budget, "service", HEALTHY).last("budget_remaining") > 0.9);

    let burn = r("slo-overview.json / Burn rate, 1h and 5m (worst SLI) / A");
    assert!(find(burn, "service", HEALTHY).last("burn_rate_1h") < 1.0);

    let table = r("slo-overview.json / All SLOs / A");
    assert_eq!(table.len(), 6, "one row per service and SLI: {table:?}");
    let row = find2(table, INCIDENT, "availability");
    assert_eq!(row.last("state"), 2.0);
    assert_eq!(
        row.strings("alert"),
        ["ticket"],
        "90 minutes after the outage the page has de-escalated to a ticket"
    );
    assert!(row.last("budget_remaining") < 0.0);
    assert!(row.last("sli_value") < 0.9);
    assert!((row.last("objective") - 0.999).abs() < 1e-9);
    for s in table.iter().filter(|s| s.tag("service") != INCIDENT) {
        assert_eq!(s.last("state"), 0.0, "{s:?}");
        assert_eq!(s.strings("alert"), ["none"], "{s:?}");
    }

    let history = r("slo-overview.json / State over time / A");
    let incident_states = find(history, "service", INCIDENT).points("state");
    assert!(
        incident_states
            .iter()
            .filter(|(t, _)| before_outage(*t))
            .all(|(_, v)| *v == 0.0),
        "green before the outage: {incident_states:?}"
    );
    let first_red = incident_states
        .iter()
        .find(|(_, v)| *v == 2.0)
        .expect("red at some point");
    assert!(
        near_start(first_red.0),
        "red within 3 minutes of the outage start ({out_start}): {first_red:?}"
    );
    for s in history.iter().filter(|s| s.tag("service") != INCIDENT) {
        assert!(s.points("state").iter().all(|(_, v)| *v == 0.0), "{s:?}");
    }

    // --- Service detail ($service = the incident's service) ------------------------
    let requests = r("service-detail.json / Request rate / A");
    assert_eq!(requests.len(), 1);
    let total: f64 = requests[0]
        .points("requests")
        .iter()
        .map(|(_, per_s)| per_s * 60.0)
        .sum();
    let sent = g.per_service[INCIDENT] as f64;
    assert!(
        (total - sent).abs() < 1e-6 * sent,
        "the request-rate panel adds up to every {INCIDENT} event sent: {total} vs {sent}"
    );

    let errors = r("service-detail.json / Error rate and slow rate / A");
    let error_rate = find(errors, "service", INCIDENT).points("error_rate");
    let peak = error_rate
        .iter()
        .cloned()
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    assert!(peak.1 > 0.99, "error rate peaks near 1.0: {peak:?}");
    let full: Vec<i64> = error_rate
        .iter()
        .filter(|(_, v)| *v > 0.99)
        .map(|(t, _)| *t)
        .collect();
    assert!(
        full.iter()
            .all(|t| (out_start - MINUTE_MS..out_end).contains(t)),
        "error rate ~1.0 only during the outage {out_start}..{out_end}: {full:?}"
    );
    assert!(
        full.len() as i64 >= OUTAGE_MIN - 2,
        "the whole outage shows: {} minutes",
        full.len()
    );
    assert!(
        error_rate
            .iter()
            .filter(|(t, _)| before_outage(*t))
            .all(|(_, v)| *v == 0.0),
        "no errors before the outage"
    );
    let slow = r("service-detail.json / Error rate and slow rate / B");
    assert!(
        slow[0]
            .points("slow_rate")
            .iter()
            .all(|(_, v)| (0.0..=1.0).contains(v))
    );

    let latency = &r("service-detail.json / Latency / A")[0];
    let (p95, p99) = (latency.points("p95"), latency.points("p99"));
    assert_eq!(p95.len(), p99.len());
    assert!(p95.iter().zip(&p99).all(|(a, b)| a.1 <= b.1 && a.1 > 0.0));
    assert!(latency.points("avg").iter().all(|(_, v)| *v > 0.0));

    let burndown = r("service-detail.json / Error budget remaining / A");
    let avail = find2(burndown, INCIDENT, "availability").points("budget_remaining");
    let before: Vec<f64> = avail
        .iter()
        .filter(|(t, _)| before_outage(*t))
        .map(|p| p.1)
        .collect();
    assert!(
        !before.is_empty() && before.iter().all(|v| *v > 0.99),
        "whole budget before the outage: {before:?}"
    );
    assert!(avail.last().unwrap().1 < 0.0, "overspent at the end");
    let during: Vec<f64> = avail
        .iter()
        .filter(|(t, _)| (out_start + MINUTE_MS..=out_end).contains(t))
        .map(|p| p.1)
        .collect();
    assert!(
        during.len() as i64 >= OUTAGE_MIN - 2 && during.windows(2).all(|w| w[1] < w[0]),
        "the budget burns down every minute of the outage: {during:?}"
    );
    let lowest = avail
        .iter()
        .cloned()
        .fold((0, f64::MAX), |a, b| if b.1 < a.1 { b } else { a });
    assert!(
        (out_end - MINUTE_MS..=out_end + 2 * MINUTE_MS).contains(&lowest.0),
        "lowest when the outage ends ({out_end}), then clean traffic refills the ratio: {lowest:?}"
    );

    let burns = r("service-detail.json / Burn rates / A");
    let fast = find2(burns, INCIDENT, "availability").points("1h");
    assert!(
        fast.iter().any(|(t, v)| *v > 14.4 && near_start(*t)),
        "1h burn rate over the 14.4 page factor within minutes: {fast:?}"
    );

    let state = r("service-detail.json / SLO state / A");
    let avail_state = find2(state, INCIDENT, "availability").points("state");
    assert!(near_start(
        avail_state.iter().find(|p| p.1 == 2.0).unwrap().0
    ));

    let pages = r("service-detail.json / annotation Page fired");
    assert_eq!(
        pages.len(),
        1,
        "one page, on the availability SLO: {pages:?}"
    );
    assert_eq!(pages[0].tag("sli"), "availability");
    let page_at: Vec<i64> = pages[0].points("started").iter().map(|p| p.0).collect();
    assert_eq!(page_at.len(), 1, "paged once: {page_at:?}");
    assert!(
        near_start(page_at[0]),
        "paged at {page_at:?}, outage {out_start}"
    );
    let tickets = r("service-detail.json / annotation Ticket fired");
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let ticket_at: Vec<i64> = tickets[0].points("started").iter().map(|p| p.0).collect();
    assert_eq!(ticket_at.len(), 1, "{ticket_at:?}");
    assert!(
        (out_end + 25 * MINUTE_MS..=out_end + 35 * MINUTE_MS).contains(&ticket_at[0]),
        "de-escalated to a ticket ~30 min after the outage ended ({out_end}): {ticket_at:?}"
    );

    let names: Vec<String> = r("service-detail.json / variable service")[0].strings("value");
    assert_eq!(names, ["auth-service", "checkout-api", "search-api"]);

    // --- Pipeline health -------------------------------------------------------------
    if !missing.is_empty() {
        check_rules(&lake, &rules, &g).await;
        panic!(
            "`telltale process` with INFLUX_URL set wrote no {missing:?} points to InfluxDB, \
             so these queries were not run: {not_run:?}. {wiring}"
        );
    }
    let rejects = r("pipeline-health.json / Rejected since start, by reason / A");
    let mut by_reason: BTreeMap<String, f64> = BTreeMap::new();
    for (reason, _) in BAD_LINES {
        *by_reason.entry(reason.to_owned()).or_default() += 1.0;
    }
    let shown: BTreeMap<String, f64> = rejects
        .iter()
        .map(|s| (s.tag("reason").to_owned(), s.last("rejected")))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    assert_eq!(shown, by_reason, "rejects by reason");
    let totals = &r("pipeline-health.json / Totals since start / A")[0];
    assert_eq!(totals.last("accepted"), g.good_lines as f64);
    assert_eq!(totals.last("rejected"), BAD_LINES.len() as f64);

    // The load-spike row. The input is a file, not HTTP: no overload refusals; every
    // panel still has the two runs' samples to draw.
    let events = r("pipeline-health.json / Accepted events/s / A");
    assert!(
        events[0]
            .points("ingest_rate")
            .iter()
            .any(|(_, v)| *v > 0.0),
        "events were accepted: {events:?}"
    );
    let refused = r("pipeline-health.json / Overload refusals (429/503) / A");
    let refused = refused[0].points("refused");
    assert!(
        !refused.is_empty() && refused.iter().all(|(_, v)| *v == 0.0),
        "file input is never refused for overload: {refused:?}"
    );
    let scaling = &r("pipeline-health.json / Workers and scaling decisions / B")[0];
    for column in ["scale_ups", "scale_downs"] {
        let decisions = scaling.points(column);
        assert!(
            !decisions.is_empty() && decisions.iter().all(|(_, v)| *v >= 0.0),
            "{column}: {decisions:?}"
        );
    }

    check_rules(&lake, &rules, &g).await;
}

/// The alert rules as Grafana would evaluate them at moments before, during and after
/// the outage.
async fn check_rules(lake: &Lake, rules: &BTreeMap<String, Query>, g: &Generated) {
    let out_start = g.outage_start_ms;
    let page = &rules["telltale-slo-page"];
    let ticket = &rules["telltale-slo-ticket"];
    let during = out_start + 10 * MINUTE_MS;
    for (rule, at, fires) in [
        (page, out_start - 5 * MINUTE_MS, false),
        (page, during, true),
        (page, g.end_ms, false),
        (ticket, during, false),
        (ticket, g.end_ms, true),
    ] {
        let series = lake.rule(rule, at).await;
        let firing: Vec<&Series> = series
            .iter()
            .filter(|s| s.points(&s.columns[1]).last().is_some_and(|p| p.1 > 0.0))
            .collect();
        if !fires {
            assert!(firing.is_empty(), "{} at {at}: {series:?}", rule.origin);
            continue;
        }
        assert!(
            firing.iter().all(|s| s.tag("service") == INCIDENT),
            "{} at {at} fires for {INCIDENT} only: {series:?}",
            rule.origin
        );
        let s = firing
            .iter()
            .find(|s| s.tag("sli") == "availability")
            .unwrap_or_else(|| panic!("{} at {at}: {series:?}", rule.origin));
        assert_eq!(s.tag("team"), "payments", "routed to the owning team");
    }
}

#[test]
fn dashboards_and_rules_use_the_provisioned_datasource() {
    let ds: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(
            repo_root().join("grafana/provisioning/datasources/influxdb.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let d = &ds["datasources"][0];
    assert_eq!(d["uid"], "telltale-influxdb");
    assert_eq!(d["type"], "influxdb");
    assert_eq!(d["jsonData"]["version"], "InfluxQL");
    assert_eq!(d["url"], "http://influxdb2:8086");
    assert_eq!(d["jsonData"]["dbName"], "${INFLUX_BUCKET}");
    assert_eq!(d["jsonData"]["httpHeaderName1"], "Authorization");
    assert_eq!(
        d["secureJsonData"]["httpHeaderValue1"],
        "Token ${INFLUX_TOKEN}"
    );
    let queries = all_dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    for q in &queries {
        let uses_time = q.text.contains("$timeFilter");
        assert!(
            uses_time || q.text.starts_with("SHOW "),
            "{}: no $timeFilter",
            q.origin
        );
        if q.text.contains("GROUP BY time(") {
            assert!(
                q.text.contains("GROUP BY time($__interval)"),
                "{}: group by Grafana's interval",
                q.origin
            );
        }
    }
    let rules = rule_queries();
    assert_eq!(rules.len(), 2);
}
