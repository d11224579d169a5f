//! The pipeline's threads together, in process.

use std::sync::{Arc, Mutex};

use telltale_core::slo::{SloEngine, SloSettings};
use telltale_core::{PipelineConfig, RollupRow, ServiceCatalog};
use telltale_lake::store::LocalDisk;

use super::{Pipeline, PipelineSettings};
use crate::batch::IngestBatch;
use crate::metrics::Metrics;
use crate::outputs::{Outputs, SloView};
use crate::sinks::Sink;

/// A sink that counts the events in the rollup rows it is given.
#[derive(Debug, Clone, Default)]
struct CountingSink(Arc<Mutex<u64>>);

impl Sink for CountingSink {
    fn on_rollups(&mut self, rows: &[RollupRow]) {
        *self.0.lock().unwrap() += rows.iter().map(|r| r.count).sum::<u64>();
    }
}

/// `n` events of one service, one a second, ending a minute ago.
fn lines(n: i64) -> String {
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000 - n * 1_000;
    (0..n)
        .map(|i| {
            format!(
                "{{\"service\":\"a\",\"timestamp\":{},\"status_code\":200,\"latency_ms\":5}}\n",
                t0 + i * 1_000
            )
        })
        .collect()
}

/// Regression (issue #12, item 2): outputs attached with `attach_outputs` went to the
/// writer on another path than the batches, and the sequencer forwarded a batch that
/// arrived with them first, so the rollups of the first batches of a fast input (a file)
/// never reached InfluxDB or the SLO engine. Outputs attached before a batch is ingested
/// must see every rollup of it.
#[test]
fn outputs_attached_before_ingest_see_every_rollup() {
    let catalog = Arc::new(ServiceCatalog::from_toml_str("", "test").unwrap());
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let settings = PipelineSettings::from_config(&PipelineConfig::default(), catalog.clone());
        let pipeline = Pipeline::start(
            settings,
            Arc::new(LocalDisk::new(dir.path())),
            Arc::new(Metrics::new()),
            None,
        )
        .unwrap();
        let seen = CountingSink::default();
        let slo = SloEngine::new(&catalog, SloSettings::default()).unwrap();
        let outputs = Outputs::new(slo, vec![Box::new(seen.clone())], Arc::default());
        pipeline.attach_outputs(outputs).unwrap();
        let outcome = pipeline
            .ingest(IngestBatch::whole(lines(600), "file:test"))
            .unwrap();
        assert_eq!(outcome.accepted, 600);
        pipeline.shutdown().unwrap();
        assert_eq!(*seen.0.lock().unwrap(), 600, "round {round}");
    }
}

/// A pipeline over a lake in `dir` whose outputs (given at start) feed `sink` and a live
/// view, which is returned beside it.
fn start_with_outputs(
    catalog: &Arc<ServiceCatalog>,
    dir: &std::path::Path,
    sink: impl Sink + 'static,
) -> (Pipeline, Arc<SloView>) {
    let slo = SloEngine::new(catalog, SloSettings::default()).unwrap();
    let view = Arc::new(SloView::default());
    let outputs = Outputs::new(slo, vec![Box::new(sink)], Arc::clone(&view));
    let settings = PipelineSettings::from_config(&PipelineConfig::default(), catalog.clone());
    let pipeline = Pipeline::start(
        settings,
        Arc::new(LocalDisk::new(dir)),
        Arc::new(Metrics::new()),
        Some(outputs),
    )
    .unwrap();
    (pipeline, view)
}

#[test]
fn outputs_given_at_start_see_every_rollup() {
    let catalog = Arc::new(ServiceCatalog::from_toml_str("", "test").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let seen = CountingSink::default();
    let (pipeline, view) = start_with_outputs(&catalog, dir.path(), seen.clone());
    pipeline
        .ingest(IngestBatch::whole(lines(300), "http"))
        .unwrap();
    pipeline.shutdown().unwrap();
    assert_eq!(*seen.0.lock().unwrap(), 300);
    assert_eq!(
        view.snapshot().services.len(),
        1,
        "the live view was evaluated"
    );
}

/// One event for each of `services`, a minute ago.
fn one_each(services: &[&str]) -> String {
    let t = chrono::Utc::now().timestamp_millis() - 60_000;
    services
        .iter()
        .map(|s| {
            format!(
                "{{\"service\":\"{s}\",\"timestamp\":{t},\"status_code\":200,\"latency_ms\":5}}\n"
            )
        })
        .collect()
}

/// `(service, reason)` of every dead letter, and the services with events in the lake.
fn lake_and_dead(dir: &std::path::Path) -> (Vec<String>, Vec<(String, String)>) {
    use telltale_lake::store::LakeStore;
    let store = LocalDisk::new(dir);
    let mut services: Vec<String> = store
        .list("events")
        .unwrap()
        .iter()
        .filter_map(|f| {
            let part = f.rel_path.split('/').find(|p| p.starts_with("service="))?;
            Some(part["service=".len()..].to_owned())
        })
        .collect();
    services.sort();
    services.dedup();
    let mut dead = Vec::new();
    for f in store.list("deadletter").unwrap() {
        let text = String::from_utf8(store.read(&f.rel_path).unwrap()).unwrap();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let raw: serde_json::Value = serde_json::from_str(v["raw"].as_str().unwrap()).unwrap();
            dead.push((
                raw["service"].as_str().unwrap().to_owned(),
                v["reason"].as_str().unwrap().to_owned(),
            ));
        }
    }
    dead.sort();
    (services, dead)
}

#[test]
fn services_past_the_limit_go_to_the_dead_letter_and_the_limit_survives_a_restart() {
    let catalog = Arc::new(ServiceCatalog::from_toml_str("[services.known]\n", "test").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PipelineConfig::default();
    cfg.limits.max_services = 2;
    let start = || {
        let mut settings = PipelineSettings::from_config(&cfg, catalog.clone());
        settings.wal = super::WalSettings::from_config(&cfg.wal, dir.path().join("wal"));
        Pipeline::start(
            settings,
            Arc::new(LocalDisk::new(dir.path())),
            Arc::new(Metrics::new()),
            None,
        )
        .unwrap()
    };
    let pipeline = start();
    let outcome = pipeline
        .ingest(IngestBatch::whole(
            one_each(&["a", "b", "c", "known"]),
            "http",
        ))
        .unwrap();
    assert_eq!(outcome.accepted, 4, "valid events are accepted (and kept)");
    pipeline.shutdown().unwrap();
    // Counted once the writer has applied the batch (the ack comes from the log).
    assert_eq!(pipeline.metrics().events_over_service_limit.get(), 1);
    // After the restart the checkpoint's set decides: c is still over, d too; b is not.
    let pipeline = start();
    pipeline
        .ingest(IngestBatch::whole(one_each(&["b", "c", "d"]), "http"))
        .unwrap();
    pipeline.shutdown().unwrap();
    let (lake, dead) = lake_and_dead(dir.path());
    assert_eq!(lake, ["a", "b", "known"]);
    let over = |s: &str| (s.to_owned(), "service_limit".to_owned());
    assert_eq!(dead, [over("c"), over("c"), over("d")]);
}

/// A sink that keeps the rollup rows it is given.
#[derive(Debug, Clone, Default)]
struct RowSink(Arc<Mutex<Vec<RollupRow>>>);

impl Sink for RowSink {
    fn on_rollups(&mut self, rows: &[RollupRow]) {
        self.0.lock().unwrap().extend_from_slice(rows);
    }
}

/// Issue #13: a probe target with SLOs in the catalogue (`[probes.NAME]`) gets rollup rows
/// of its echoes (every echo an event, a lost one an error and slow), so its SLOs are
/// evaluated like a service's; a target without SLOs gets none.
#[test]
fn probes_of_a_target_with_slos_become_its_rollups_and_slo_status() {
    let catalog = Arc::new(
        ServiceCatalog::from_toml_str(
            "[probes.\"db.example.com\"]\nteam = \"network\"\nlatency_threshold_ms = 50.0\n",
            "test",
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let rows = RowSink::default();
    let (pipeline, view) = start_with_outputs(&catalog, dir.path(), rows.clone());
    let t = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000 - 120_000;
    let probe = |target: &str, at: i64, extra: &str| {
        format!(
            "{{\"kind\":\"probe\",\"target\":\"{target}\",\"timestamp\":{at},\"rtt_ms\":30,\
             \"loss_pct\":20,\"hop_count\":1,{extra}\"hops\":[]}}\n"
        )
    };
    // Two probes of 5 echoes: 4 answered each (one over 50 ms), 1 lost.
    let counts = "\"sent\":5,\"received\":4,\"rtt_samples_ms\":[10,20,30,60],";
    let dns = "\"sent\":5,\"received\":0,\"dns_error\":\"no address\",";
    let text = probe("db.example.com", t, counts)
        + &probe("db.example.com", t + 30_000, counts)
        + &probe("db.example.com", t + 45_000, dns)
        + &probe("no-slo.example.com", t, counts);
    let outcome = pipeline.ingest(IngestBatch::whole(text, "http")).unwrap();
    assert_eq!(outcome.accepted, 4);
    pipeline.shutdown().unwrap();
    let rows = rows.0.lock().unwrap().clone();
    assert!(
        rows.iter().all(|r| r.service == "db.example.com"),
        "{rows:?}"
    );
    let sum = |f: fn(&RollupRow) -> u64| rows.iter().map(f).sum::<u64>();
    assert!(rows.iter().all(|r| r.team == "network"));
    // 15 echoes: 2 + 5 lost (errors and slow), 2 answered over the threshold.
    assert_eq!(
        (sum(|r| r.count), sum(|r| r.errors), sum(|r| r.slow)),
        (15, 7, 9)
    );
    // Latency statistics of the answered echoes only (the lost ones have none).
    assert_eq!(rows[0].latency_avg_ms, 30.0);
    assert_eq!(rows[0].latency_max_ms, 60.0);
    let status = view.snapshot();
    let target = status
        .services
        .iter()
        .find(|s| s.service == "db.example.com")
        .expect("the probe target's SLOs are evaluated");
    assert_eq!(target.team, "network");
}

/// A sink that keeps the rollup rows and the check results it is given.
#[derive(Debug, Clone, Default)]
struct CheckSink {
    rows: Arc<Mutex<Vec<RollupRow>>>,
    checks: Arc<Mutex<Vec<telltale_core::HttpCheckEvent>>>,
}

impl Sink for CheckSink {
    fn on_rollups(&mut self, rows: &[RollupRow]) {
        self.rows.lock().unwrap().extend_from_slice(rows);
    }
    fn on_checks(&mut self, checks: &[telltale_core::HttpCheckEvent]) {
        self.checks.lock().unwrap().extend_from_slice(checks);
    }
}

/// Issue #17: URL check results (`"kind":"http"`) go to the sinks, to the lake's
/// `monitors` table (by monitor id, `adhoc` without one) and, as SLI events of their URL,
/// to the rollups and the SLO status; a monitor with a table of its own gets its policy,
/// any other the monitor defaults. A bad check line is a dead letter naming its field, the
/// batch's good lines stay.
#[test]
fn check_results_become_monitor_rows_rollups_and_slo_status() {
    let catalog = Arc::new(
        ServiceCatalog::from_toml_str(
            "[monitors.\"https://a.test/\"]\nteam = \"web\"\nlatency_threshold_ms = 50.0\n",
            "test",
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let sink = CheckSink::default();
    let (pipeline, view) = start_with_outputs(&catalog, dir.path(), sink.clone());
    let t = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000 - 120_000;
    let check = |url: &str, id: &str, at: i64, rest: &str| {
        format!("{{\"kind\":\"http\",\"url\":\"{url}\",{id}\"timestamp\":{at},{rest}}}\n")
    };
    let up = "\"status_code\":200,\"duration_ms\":20.0,\"redirects\":0,\"error\":null";
    let slow_503 = "\"status_code\":503,\"duration_ms\":80.0,\"redirects\":0,\"error\":null";
    let refused = "\"status_code\":null,\"duration_ms\":1.0,\"error\":\"connect_refused\"";
    let text = check("https://a.test/", "\"monitor_id\":\"a1\",", t, up)
        + &check(
            "https://a.test/",
            "\"monitor_id\":\"a1\",",
            t + 10_000,
            slow_503,
        )
        + &check("http://b.test/", "", t, refused)
        + &check(
            "http://b.test/",
            "",
            t,
            "\"duration_ms\":1.0,\"error\":\"boom\"",
        );
    let outcome = pipeline.ingest(IngestBatch::whole(text, "http")).unwrap();
    assert_eq!((outcome.accepted, outcome.rejected), (3, 1));
    assert_eq!(outcome.errors[0].field, Some("error"));
    assert_eq!(outcome.errors[0].line, 4);
    pipeline.shutdown().unwrap();
    assert_eq!(sink.checks.lock().unwrap().len(), 3);
    let rows = sink.rows.lock().unwrap().clone();
    let of = |url: &str| {
        let rs: Vec<&RollupRow> = rows.iter().filter(|r| r.service == url).collect();
        let sum = |f: fn(&RollupRow) -> u64| rs.iter().map(|r| f(r)).sum::<u64>();
        (
            sum(|r| r.count),
            sum(|r| r.errors),
            sum(|r| r.slow),
            rs[0].team.clone(),
        )
    };
    assert_eq!(of("https://a.test/"), (2, 1, 1, "web".to_owned()));
    assert_eq!(of("http://b.test/"), (1, 1, 0, "unowned".to_owned()));
    use telltale_lake::store::LakeStore;
    let store = LocalDisk::new(dir.path());
    let lake: Vec<String> = store
        .list("monitors")
        .unwrap()
        .into_iter()
        .map(|f| f.rel_path)
        .collect();
    for dir in ["monitors/monitor_id=a1/", "monitors/monitor_id=adhoc/"] {
        assert!(lake.iter().any(|f| f.starts_with(dir)), "{dir}: {lake:?}");
    }
    let dead: Vec<String> = store
        .list("deadletter")
        .unwrap()
        .iter()
        .flat_map(|f| {
            let text = String::from_utf8(store.read(&f.rel_path).unwrap()).unwrap();
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("\"field\":\"error\""), "{}", dead[0]);
    let status = view.snapshot();
    let a = status
        .services
        .iter()
        .find(|s| s.service == "https://a.test/")
        .expect("the monitor's SLOs are evaluated");
    assert_eq!(a.team, "web");
    assert!(
        status
            .services
            .iter()
            .any(|s| s.service == "http://b.test/")
    );
}

/// A monitor's URL counts towards `limits.max_services` like a service: past the limit a
/// URL gets no rollups (nor SLOs), its results are still stored; a `[monitors."<url>"]`
/// table is always admitted.
#[test]
fn monitor_urls_count_towards_the_service_limit() {
    let catalog = Arc::new(
        ServiceCatalog::from_toml_str("[monitors.\"https://listed.test/\"]\n", "test").unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PipelineConfig::default();
    cfg.limits.max_services = 1;
    let sink = CheckSink::default();
    let slo = SloEngine::new(&catalog, SloSettings::default()).unwrap();
    let outputs = Outputs::new(slo, vec![Box::new(sink.clone())], Arc::default());
    let pipeline = Pipeline::start(
        PipelineSettings::from_config(&cfg, catalog.clone()),
        Arc::new(LocalDisk::new(dir.path())),
        Arc::new(Metrics::new()),
        Some(outputs),
    )
    .unwrap();
    let t = chrono::Utc::now().timestamp_millis() - 120_000;
    let text: String = ["https://a.test/", "https://b.test/", "https://listed.test/"]
        .iter()
        .map(|url| {
            format!(
                "{{\"kind\":\"http\",\"url\":\"{url}\",\"timestamp\":{t},\"status_code\":200,\"duration_ms\":5}}\n"
            )
        })
        .collect();
    let outcome = pipeline.ingest(IngestBatch::whole(text, "http")).unwrap();
    assert_eq!(outcome.accepted, 3);
    pipeline.shutdown().unwrap();
    let mut services: Vec<String> = sink
        .rows
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.service.clone())
        .collect();
    services.dedup();
    assert_eq!(services, ["https://a.test/", "https://listed.test/"]);
    assert_eq!(
        sink.checks.lock().unwrap().len(),
        3,
        "every result is still stored"
    );
    assert_eq!(pipeline.metrics().events_over_service_limit.get(), 1);
}
