//! The sink against real servers (see `telltale_influx::testing`): InfluxDB 1.x for exact InfluxQL
//! read-back, outages and refusals; VictoriaMetrics for the v2 write API. One protocol
//! check (`Retry-After`) uses a tiny axum server, because neither real server can be
//! made to answer 429 on demand.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use telltale_core::slo::{AlertLevel, Sli, SloState, SloStatus};
use telltale_core::{ProbeEvent, ProbeHop, RollupRow};
use telltale_influx::testing::{Server, free_port, wait_until};
use telltale_influx::{
    InfluxApi, InfluxConfig, InfluxSink, InfluxStats, PipelinePoint, ToLineProtocol,
};

const DB: &str = "telltale";
const DEADLINE: Duration = Duration::from_secs(60);

fn v1_config(url: &str) -> InfluxConfig {
    InfluxConfig {
        url: url.into(),
        api: InfluxApi::V1,
        database: DB.into(),
        flush_interval: Duration::from_millis(50),
        retry_initial_backoff: Duration::from_millis(50),
        retry_max_backoff: Duration::from_millis(400),
        request_timeout: Duration::from_secs(5),
        ..InfluxConfig::default()
    }
}

async fn influxd_with_db() -> Server {
    let s = Server::influxd().await;
    s.influxql(DB, &format!("CREATE DATABASE \"{DB}\"")).await;
    s
}

/// Waits until the sink has nothing left in memory or on disk, and returns its stats.
async fn drained(sink: &InfluxSink, min_sent: u64) -> InfluxStats {
    wait_until("the sink to deliver everything", DEADLINE, || async {
        let s = sink.stats();
        s.points_sent + s.points_dead_lettered >= min_sent
            && s.queued_points == 0
            && s.spooled_points == 0
    })
    .await;
    sink.stats()
}

fn rollup(service: &str, team: &str, window_start_us: i64, count: u64) -> RollupRow {
    RollupRow {
        service: service.into(),
        team: team.into(),
        window_start_us,
        window_seconds: 10,
        count,
        errors: count / 10,
        slow: count / 20,
        latency_avg_ms: 41.25 + count as f64 / 7.0,
        latency_p50_ms: 30.5,
        latency_p95_ms: 120.0,
        latency_p99_ms: 250.125,
        latency_max_ms: 1e-3 + count as f64,
    }
}

/// What InfluxDB should hold for a rollup: written independently of the encoder.
fn rollup_row(r: &RollupRow, service_as_stored: &str) -> Map<String, Value> {
    let m = json!({
        "time": r.window_start_us / 1000,
        "service": service_as_stored,
        "team": r.team,
        "count": r.count, "errors": r.errors, "slow": r.slow,
        "error_rate": r.error_rate(), "slow_rate": r.slow_rate(),
        "latency_avg_ms": r.latency_avg_ms, "latency_p50_ms": r.latency_p50_ms,
        "latency_p95_ms": r.latency_p95_ms, "latency_p99_ms": r.latency_p99_ms,
        "latency_max_ms": r.latency_max_ms, "window_seconds": r.window_seconds,
    });
    m.as_object().unwrap().clone()
}

/// JSON numbers compare as f64 (Go writes the float 120.0 as `120`); field types are
/// checked separately with `SHOW FIELD KEYS`.
fn normalize(row: &Map<String, Value>) -> BTreeMap<String, String> {
    row.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Number(n) => format!("{:?}", n.as_f64().unwrap()),
                Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn assert_same_rows(what: &str, got: &[Map<String, Value>], want: &[Map<String, Value>]) {
    let mut got: Vec<_> = got.iter().map(normalize).collect();
    let mut want: Vec<_> = want.iter().map(normalize).collect();
    got.sort();
    want.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: row count\n got: {got:#?}\nwant: {want:#?}"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{what}");
    }
}

async fn field_types(server: &Server, measurement: &str) -> BTreeMap<String, String> {
    let v = server
        .influxql(DB, &format!("SHOW FIELD KEYS FROM \"{measurement}\""))
        .await;
    v["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().to_owned(),
                kv[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn probe(target: &str, timestamp_us: i64) -> ProbeEvent {
    ProbeEvent {
        target: target.into(),
        timestamp_us,
        rtt_ms: Some(23.5),
        loss_pct: 12.5,
        hop_count: 2,
        hops: vec![
            ProbeHop {
                ttl: 1,
                addr: Some("10.0.0.1".into()),
                rtt_ms: Some(0.375),
                loss_pct: 0.0,
                ..ProbeHop::default()
            },
            ProbeHop {
                ttl: 2,
                addr: None,
                rtt_ms: None,
                loss_pct: 100.0,
                ..ProbeHop::default()
            },
        ],
        ..ProbeEvent::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_write_then_influxql_reads_back_exactly_what_was_written() {
    let server = influxd_with_db().await;
    let data = tempfile::tempdir().unwrap();
    let (sink, task) = InfluxSink::start(&v1_config(&server.url()), data.path()).unwrap();

    let t0: i64 = 1_714_471_200_000_000; // 2024-04-30T10:00:00Z, µs
    // (service as sent, service as stored): everything that needs escaping, plus the one
    // case with no portable spelling (a trailing backslash, stored as `/`).
    let services = [
        ("auth-service", "auth-service"),
        ("search api,v2=beta", "search api,v2=beta"),
        (r"win\svc", r"win\svc"),
        ("café ☕ \"quoted\"", "café ☕ \"quoted\""),
        ("line\nbreak", "line break"),
        (r"C:\legacy\", r"C:\legacy/"),
    ];
    let rollups: Vec<RollupRow> = services
        .iter()
        .enumerate()
        .map(|(i, (s, _))| {
            rollup(
                s,
                "team =blue,",
                t0 + i as i64 * 10_000_000,
                1000 + i as u64,
            )
        })
        .collect();
    sink.send(&rollups);

    let slo = telltale_influx::testing::slo_status(
        "checkout api",
        Sli::Availability,
        AlertLevel::Page,
        [18.0, 15.5, 14.625, 9.0, 6.125, 2.0, 0.75],
        t0 + 1_234_000,
    );
    let slo_ok = SloStatus {
        sli: Sli::Latency,
        state: SloState::Green,
        alert: AlertLevel::Ok,
        ..slo.clone()
    };
    sink.send(&[slo.clone(), slo_ok.clone()]);
    let p = probe("api.example.com", t0 + 2_500);
    sink.send(&[&p]);
    let pipe = PipelinePoint {
        at_us: t0 + 5_000_000,
        ingest_rate: 412.5,
        accepted_total: 10_234,
        rejected_total: 7,
        rejected_by_reason: [
            ("invalid_json".to_owned(), 5),
            ("bad reason,=x".to_owned(), 2),
        ]
        .into_iter()
        .collect(),
        lag_seconds: 0.75,
        queue_depth: 2,
        buffered_rows: 2311,
        files_written_total: 61,
        offered_bytes_rate: 1_572_864.0,
        accepted_bytes_rate: 1_048_576.5,
        overload_rejected_total: 17,
        workers: 3,
        scale_ups_total: 4,
        scale_downs_total: 1,
        parse_backlog: 9,
        cpu_cores_used: 1.75,
    };
    sink.send(&[&pipe]);

    let expected_lines = 6 + 2 + 3 + 3;
    let stats = drained(&sink, expected_lines).await;
    assert_eq!(stats.points_sent, expected_lines, "{stats:?}");
    assert_eq!(stats.points_dead_lettered, 0, "{stats:?}");

    // service_rollup: every tag and field of every row.
    let want: Vec<_> = rollups
        .iter()
        .zip(services)
        .map(|(r, (_, stored))| rollup_row(r, stored))
        .collect();
    assert_same_rows(
        "service_rollup",
        &server.select_all(DB, "service_rollup").await,
        &want,
    );
    let types = field_types(&server, "service_rollup").await;
    for k in ["count", "errors", "slow", "window_seconds"] {
        assert_eq!(types[k], "integer", "{k} is a count");
    }
    for k in ["error_rate", "latency_p99_ms"] {
        assert_eq!(types[k], "float", "{k}");
    }

    let slo_row = |s: &SloStatus, tier: &str| {
        let b = &s.burn_rates;
        json!({
            "time": s.at_us / 1000, "service": s.service, "team": s.team, "sli": s.sli.as_str(),
            "state": s.state.code(), "sli_value": s.sli_value, "objective": s.objective,
            "budget_remaining": s.budget_remaining, "burn_rate_5m": b.burn_rate_5m,
            "burn_rate_30m": b.burn_rate_30m, "burn_rate_1h": b.burn_rate_1h,
            "burn_rate_2h": b.burn_rate_2h, "burn_rate_6h": b.burn_rate_6h,
            "burn_rate_1d": b.burn_rate_1d, "burn_rate_3d": b.burn_rate_3d,
        "alert_tier": tier,
        })
        .as_object()
        .unwrap()
        .clone()
    };
    assert_same_rows(
        "slo_status",
        &server.select_all(DB, "slo_status").await,
        &[slo_row(&slo, "page"), slo_row(&slo_ok, "none")],
    );
    assert_eq!(
        field_types(&server, "slo_status").await["alert_tier"],
        "string"
    );

    let ms = p.timestamp_us / 1000;
    let probe_row = json!({
        "time": ms, "target": p.target, "rtt_ms": 23.5, "loss_pct": 12.5, "hop_count": 2,
        "route_hash": format!("{:016x}", p.route_hash()),
    });
    assert_same_rows(
        "probe",
        &server.select_all(DB, "probe").await,
        &[probe_row.as_object().unwrap().clone()],
    );
    let hops = [
        json!({"time": ms, "target": p.target, "ttl": "1", "addr": "10.0.0.1", "rtt_ms": 0.375, "loss_pct": 0.0}),
        json!({"time": ms, "target": p.target, "ttl": "2", "addr": "*", "loss_pct": 100.0}),
    ];
    let hops: Vec<_> = hops
        .iter()
        .map(|h| h.as_object().unwrap().clone())
        .collect();
    assert_same_rows(
        "probe_hop",
        &server.select_all(DB, "probe_hop").await,
        &hops,
    );

    let pms = pipe.at_us / 1000;
    let pipeline_row = json!({
        "time": pms, "ingest_rate": 412.5, "accepted": 10_234, "rejected": 7,
        "lag_seconds": 0.75, "queue_depth": 2, "buffered_rows": 2311, "files_written": 61,
        "offered_bytes_rate": 1_572_864.0, "accepted_bytes_rate": 1_048_576.5,
        "overload_rejected": 17, "workers": 3, "scale_ups": 4, "scale_downs": 1,
        "parse_backlog": 9, "cpu_cores_used": 1.75,
    });
    assert_same_rows(
        "pipeline",
        &server.select_all(DB, "pipeline").await,
        &[pipeline_row.as_object().unwrap().clone()],
    );
    let types = field_types(&server, "pipeline").await;
    for k in [
        "overload_rejected",
        "workers",
        "scale_ups",
        "scale_downs",
        "parse_backlog",
    ] {
        assert_eq!(types[k], "integer", "{k} is a count");
    }
    for k in [
        "offered_bytes_rate",
        "accepted_bytes_rate",
        "cpu_cores_used",
    ] {
        assert_eq!(types[k], "float", "{k}");
    }
    let rejects: Vec<_> = [("invalid_json", 5), ("bad reason,=x", 2)]
        .iter()
        .map(|(r, n)| {
            json!({"time": pms, "reason": r, "rejected": n})
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    assert_same_rows(
        "pipeline_rejects",
        &server.select_all(DB, "pipeline_rejects").await,
        &rejects,
    );

    // Re-sending a rollup (same series and window) overwrites: still one row.
    let mut corrected = rollups[0].clone();
    corrected.count += 1;
    sink.send(&[corrected.clone()]);
    drained(&sink, expected_lines + 1).await;
    let rows = server
        .influxql(
            DB,
            "SELECT \"count\" FROM service_rollup WHERE service = 'auth-service'",
        )
        .await;
    assert_eq!(
        rows["results"][0]["series"][0]["values"],
        json!([[corrected.window_start_us / 1000, corrected.count]])
    );

    sink.shutdown().await;
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_write_to_victoria_metrics_reads_back() {
    let server = Server::victoria_metrics().await;
    let data = tempfile::tempdir().unwrap();
    let cfg = InfluxConfig {
        url: server.url(),
        api: InfluxApi::V2,
        org: "my-org".into(),
        bucket: "telemetry".into(),
        flush_interval: Duration::from_millis(50),
        ..InfluxConfig::default()
    }
    .with_env(|k| (k == "INFLUX_TOKEN").then(|| "vm-ignores-this".to_owned()))
    .unwrap();
    let (sink, task) = InfluxSink::start(&cfg, data.path()).unwrap();

    // VictoriaMetrics refuses samples outside its retention: use recent windows.
    let now_us = chrono::Utc::now().timestamp_micros();
    let t0 = now_us - now_us.rem_euclid(10_000_000) - 600_000_000;
    let services = [
        "auth-service",
        "search api,v2=beta",
        r"win\svc",
        "café ☕ \"q\"",
    ];
    let rollups: Vec<RollupRow> = services
        .iter()
        .enumerate()
        .map(|(i, s)| rollup(s, "team =blue,", t0 + i as i64 * 10_000_000, 500 + i as u64))
        .collect();
    sink.send(&rollups);
    sink.send(&[probe("api.example.com", t0 + 1_000)]);
    let stats = drained(&sink, rollups.len() as u64 + 3).await;
    assert_eq!(stats.points_dead_lettered, 0);

    // VictoriaMetrics names a series <measurement>_<field> and keeps tags as labels.
    let series = server.export(r#"{__name__=~"service_rollup_.*"}"#).await;
    let mut got = BTreeMap::new();
    for s in &series {
        let m = &s["metric"];
        let name = m["__name__"].as_str().unwrap().to_owned();
        let service = m["service"].as_str().unwrap().to_owned();
        assert_eq!(m["team"], "team =blue,", "{s}");
        for (ts, v) in s["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(s["values"].as_array().unwrap())
        {
            got.insert(
                (name.clone(), service.clone(), ts.as_i64().unwrap()),
                v.as_f64().unwrap(),
            );
        }
    }
    for r in &rollups {
        let ts = r.window_start_us / 1000;
        for (field, value) in [
            ("count", r.count as f64),
            ("errors", r.errors as f64),
            ("error_rate", r.error_rate()),
            ("latency_avg_ms", r.latency_avg_ms),
            ("latency_p99_ms", r.latency_p99_ms),
            ("latency_max_ms", r.latency_max_ms),
        ] {
            let key = (format!("service_rollup_{field}"), r.service.clone(), ts);
            let stored = *got
                .get(&key)
                .unwrap_or_else(|| panic!("{key:?} missing in {got:#?}"));
            // VictoriaMetrics keeps about 12 significant decimal digits of a float.
            assert!(
                (stored - value).abs() <= value.abs() * 1e-11,
                "{key:?}: stored {stored}, sent {value}"
            );
        }
    }
    assert_eq!(
        got.len(),
        rollups.len() * 11,
        "11 numeric fields per rollup"
    );

    let hops = server.export(r#"{__name__="probe_hop_loss_pct"}"#).await;
    let mut by_ttl: Vec<(String, String, f64)> = hops
        .iter()
        .map(|s| {
            (
                s["metric"]["ttl"].as_str().unwrap().to_owned(),
                s["metric"]["addr"].as_str().unwrap().to_owned(),
                s["values"][0].as_f64().unwrap(),
            )
        })
        .collect();
    by_ttl.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_ttl,
        vec![
            ("1".into(), "10.0.0.1".into(), 0.0),
            ("2".into(), "*".into(), 100.0)
        ]
    );

    sink.shutdown().await;
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_write_over_https_verified_by_the_ca_file_reads_back() {
    let server = Server::victoria_metrics_https().await;
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let data = tempfile::tempdir().unwrap();
    let ca_file = server.tls_ca().unwrap().display().to_string();
    let cfg = |ca: Option<String>| InfluxConfig {
        url: server.url(),
        api: InfluxApi::V2,
        org: "my-org".into(),
        bucket: "telemetry".into(),
        flush_interval: Duration::from_millis(50),
        tls: telltale_core::config::ClientTlsConfig {
            ca_file: ca,
            ..Default::default()
        },
        ..InfluxConfig::default()
    };
    let now_us = chrono::Utc::now().timestamp_micros();
    let t0 = now_us - now_us.rem_euclid(10_000_000) - 600_000_000;

    let (sink, task) = InfluxSink::start(&cfg(Some(ca_file)), data.path()).unwrap();
    let row = rollup("tls-service", "team-a", t0, 321);
    sink.send(std::slice::from_ref(&row));
    let stats = drained(&sink, 1).await;
    assert_eq!(stats.points_dead_lettered, 0);
    let series = server
        .export(r#"{__name__="service_rollup_count",service="tls-service"}"#)
        .await;
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0]["values"], json!([321]));
    sink.shutdown().await;
    task.await.unwrap();

    // Without the CA the server's certificate is not trusted: nothing is delivered.
    let other = tempfile::tempdir().unwrap();
    let (sink, task) = InfluxSink::start(&cfg(None), other.path()).unwrap();
    sink.send(&[rollup("untrusted", "team-a", t0, 1)]);
    sink.shutdown().await;
    task.await.unwrap();
    assert!(
        server
            .export(r#"{__name__="service_rollup_count",service="untrusted"}"#)
            .await
            .is_empty(),
        "a client without the CA must not deliver"
    );
    assert!(
        !spool_files(other.path()).is_empty(),
        "what was not delivered is spooled for the next start, not dropped"
    );
}

/// One rollup per index: a unique (service, window) and a count that identifies it.
fn stream_row(i: u64) -> RollupRow {
    let t0: i64 = 1_714_471_200_000_000;
    rollup(
        &format!("svc-{}", i % 7),
        "team-a",
        t0 + (i / 7) as i64 * 10_000_000,
        i,
    )
}

fn spool_files(data: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data.join(telltale_influx::SPOOL_SUBDIR))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_replays_in_order_exactly_once() {
    let mut server = influxd_with_db().await;
    let data = tempfile::tempdir().unwrap();
    let cfg = InfluxConfig {
        batch_max_lines: 40,
        batch_max_bytes: 4096,
        // Small, so the outage spills to disk after a few hundred points.
        buffer_max_bytes: 8192,
        ..v1_config(&server.url())
    };
    let (sink, task) = InfluxSink::start(&cfg, data.path()).unwrap();
    // Paced like a live producer: 10 points every 10 ms.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut next: u64 = 0;
    let send_ten = |next: &mut u64| {
        let rows: Vec<RollupRow> = (*next..*next + 10).map(stream_row).collect();
        sink.send(&rows);
        *next += 10;
    };

    // Phase 1: the server is up.
    while next < 300 {
        tick.tick().await;
        send_ten(&mut next);
    }
    wait_until("some points to arrive", DEADLINE, || async {
        sink.stats().points_sent > 0
    })
    .await;

    // Phase 2: SIGKILL mid-stream; keep sending until points are on disk.
    server.kill();
    let outage_start = next;
    while next < outage_start + 1500 || sink.stats().points_spilled == 0 {
        tick.tick().await;
        send_ten(&mut next);
        assert!(
            next < outage_start + 20_000,
            "never spilled: {:?}",
            sink.stats()
        );
    }
    // Corrections of rows sent during the outage, sent after them: replay must keep the
    // order for these to win.
    let corrections: Vec<RollupRow> = (outage_start..outage_start + 20)
        .map(|i| RollupRow {
            count: 1_000_000 + i,
            ..stream_row(i)
        })
        .collect();
    sink.send(&corrections);
    assert!(
        !spool_files(data.path()).is_empty(),
        "points are spooled on disk"
    );
    let during = sink.stats();
    assert!(during.retries > 0, "{during:?}");
    assert!(
        during.spooled_points >= 1000,
        "the outage went to disk: {during:?}"
    );

    // Phase 3: the server comes back on the same port and data; sending goes on.
    server.start().await;
    let resume = next;
    while next < resume + 300 {
        tick.tick().await;
        send_ten(&mut next);
    }
    let total = next;
    let stats = drained(&sink, total + corrections.len() as u64).await;
    assert_eq!(stats.points_dropped, 0, "{stats:?}");
    assert_eq!(stats.points_dead_lettered, 0, "{stats:?}");
    assert!(
        spool_files(data.path()).is_empty(),
        "{:?}",
        spool_files(data.path())
    );

    // Every point exactly once, with the corrected values where corrected.
    let rows = server.select_all(DB, "service_rollup").await;
    assert_eq!(rows.len() as u64, total, "one row per point sent");
    let mut want: BTreeMap<(String, i64), u64> = (0..total)
        .map(stream_row)
        .map(|r| ((r.service.clone(), r.window_start_us / 1000), r.count))
        .collect();
    for c in &corrections {
        want.insert((c.service.clone(), c.window_start_us / 1000), c.count);
    }
    let got: BTreeMap<(String, i64), u64> = rows
        .iter()
        .map(|r| {
            (
                (
                    r["service"].as_str().unwrap().to_owned(),
                    r["time"].as_i64().unwrap(),
                ),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "read back differs from what was sent");

    sink.shutdown().await;
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_spools_what_it_cannot_send_and_the_next_start_replays_it() {
    let port = free_port(); // nothing listens here yet
    let data = tempfile::tempdir().unwrap();
    let cfg = InfluxConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..v1_config(&format!("http://127.0.0.1:{port}"))
    };
    let rows: Vec<RollupRow> = (0..50).map(stream_row).collect();
    {
        let (sink, task) = InfluxSink::start(&cfg, data.path()).unwrap();
        sink.send(&rows);
        wait_until("a failed attempt", DEADLINE, || async {
            sink.stats().retries > 0
        })
        .await;
        let stats = sink.shutdown().await;
        task.await.unwrap();
        assert_eq!(stats.points_sent, 0);
        assert_eq!(stats.spooled_points, 50, "{stats:?}");
        // Points sent after shutdown still reach the spool.
        sink.send(&[stream_row(50)]);
        assert_eq!(sink.stats().spooled_points, 51);
    }

    let server = Server::influxd_on(port).await;
    server
        .influxql(DB, &format!("CREATE DATABASE \"{DB}\""))
        .await;
    let (sink, task) = InfluxSink::start(&cfg, data.path()).unwrap();
    let stats = drained(&sink, 51).await;
    assert_eq!(stats.points_sent, 51, "{stats:?}");
    assert_eq!(server.select_all(DB, "service_rollup").await.len(), 51);
    assert!(spool_files(data.path()).is_empty());
    sink.shutdown().await;
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_goes_to_a_dead_letter_and_the_sink_keeps_going() {
    let server = influxd_with_db().await;
    let t0_ms: i64 = 1_714_471_200_000;
    // Make `count` a string field in this shard, so a rollup (integer count) conflicts.
    let (status, body) = server
        .write_raw(
            DB,
            &format!("service_rollup,service=x,team=y count=\"oops\" {t0_ms}\n"),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    let data = tempfile::tempdir().unwrap();
    let (sink, task) = InfluxSink::start(&v1_config(&server.url()), data.path()).unwrap();
    let bad = rollup("auth-service", "identity", (t0_ms + 10_000) * 1000, 5);
    sink.send(&[&bad]);
    wait_until("the dead letter", DEADLINE, || async {
        sink.stats().points_dead_lettered == 1
    })
    .await;

    let date = chrono::Utc::now().format("date=%Y-%m-%d").to_string();
    let dir = data
        .path()
        .join(telltale_influx::DEADLETTER_SUBDIR)
        .join(date);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "lp"));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("# status: 400 Bad Request"), "{text}");
    assert!(
        text.contains("field type conflict"),
        "the server's message is kept: {text}"
    );
    let mut line = String::new();
    bad.write_lines(&mut line);
    assert!(text.ends_with(&line), "the batch itself is kept: {text}");

    // The sink carries on with the next batch.
    sink.send(&[probe("after-the-refusal", (t0_ms + 20_000) * 1000)]);
    let stats = drained(&sink, 4).await;
    assert_eq!(stats.points_sent, 3, "{stats:?}");
    assert_eq!(server.select_all(DB, "probe").await.len(), 1);
    sink.shutdown().await;
    task.await.unwrap();
}

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: tokio::time::Instant,
    query: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_requests_are_well_formed() {
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/api/v2/write",
        axum::routing::post(
            move |uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let log = Arc::clone(&log);
                async move {
                    let mut log = log.lock().unwrap();
                    log.push(Seen {
                        at: tokio::time::Instant::now(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        headers,
                        body: body.to_vec(),
                    });
                    if log.len() == 1 {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "1")],
                            "slow down",
                        )
                            .into_response()
                    } else {
                        StatusCode::NO_CONTENT.into_response()
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let data = tempfile::tempdir().unwrap();
    let cfg = InfluxConfig {
        url: format!("http://{addr}"),
        api: InfluxApi::V2,
        org: "my org".into(),
        bucket: "telemetry".into(),
        flush_interval: Duration::from_millis(20),
        // Without Retry-After the retry would come after ~10 ms.
        retry_initial_backoff: Duration::from_millis(10),
        ..InfluxConfig::default()
    }
    .with_env(|k| (k == "INFLUX_TOKEN").then(|| "t0ken".to_owned()))
    .unwrap();
    let (sink, task) = InfluxSink::start(&cfg, data.path()).unwrap();
    let row = rollup("auth-service", "identity", 1_714_471_200_000_000, 3);
    sink.send(&[&row]);
    let stats = drained(&sink, 1).await;
    assert_eq!((stats.points_sent, stats.retries), (1, 1), "{stats:?}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_secs(5),
        "retried after {gap:?}, not after the 1 s the server asked for"
    );
    let mut want = String::new();
    row.write_lines(&mut want);
    for s in &seen {
        assert_eq!(s.query, "org=my+org&bucket=telemetry&precision=ms");
        assert_eq!(s.headers["authorization"], "Token t0ken");
        assert_eq!(s.headers["content-encoding"], "gzip");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&s.body[..]), &mut text)
            .unwrap();
        assert_eq!(text, want, "the same batch, gzipped");
    }
    sink.shutdown().await;
    task.await.unwrap();
    server.abort();
}
