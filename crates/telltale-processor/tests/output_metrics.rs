//! The outputs' own counters on the processor's `/metrics`: an InfluxDB sink delivering
//! to a real `influxd` (Debian's package, on a free loopback port), and Alertmanager
//! delivery.

use std::time::Duration;

use telltale_core::RollupRow;
use telltale_influx::points::SERVICE_ROLLUP;
use telltale_influx::testing::{Server, free_port, wait_until};
use telltale_influx::{InfluxApi, InfluxConfig, InfluxSink};
use telltale_processor::Metrics;
use telltale_processor::metrics::OutputStats;
use telltale_processor::sinks::alertmanager::{Notifier, NotifierSettings};

const DB: &str = "telltale";

/// The value of an unlabelled series in Prometheus text, or `None` when absent.
fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

fn rollup(window_start_us: i64) -> RollupRow {
    RollupRow {
        service: "checkout".into(),
        team: "payments".into(),
        window_start_us,
        window_seconds: 10,
        count: 100,
        errors: 1,
        slow: 2,
        latency_avg_ms: 40.0,
        latency_p50_ms: 30.0,
        latency_p95_ms: 90.0,
        latency_p99_ms: 120.0,
        latency_max_ms: 200.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influx_and_alertmanager_counters_are_on_metrics() {
    let server = Server::influxd().await;
    server
        .influxql(DB, &format!("CREATE DATABASE \"{DB}\""))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = InfluxConfig {
        url: server.url(),
        api: InfluxApi::V1,
        database: DB.into(),
        flush_interval: Duration::from_millis(50),
        ..InfluxConfig::default()
    };
    let (sink, _task) = InfluxSink::start(&cfg, dir.path()).unwrap();
    let (notifier, _delivery) = Notifier::start(NotifierSettings {
        url: format!("http://127.0.0.1:{}", free_port()),
        resend_interval: Duration::from_secs(60),
        generator_url: String::new(),
        tls: Default::default(),
    })
    .unwrap();
    let metrics = Metrics::new().with_outputs(OutputStats {
        influx: Some(sink.stats_reader()),
        alertmanager: Some(notifier.shared_stats()),
        slo: Some(std::sync::Arc::default()),
        postgres: None,
    });

    // Every series is there from the start, at zero.
    let text = metrics.encode();
    for series in [
        "telltale_influx_points_received_total",
        "telltale_influx_points_sent_total",
        "telltale_influx_points_dropped_total",
        "telltale_influx_queued_points",
        "telltale_influx_spooled_points",
        "telltale_alertmanager_posts_ok_total",
        "telltale_alertmanager_posts_failed_total",
        "telltale_slo_untracked_rows_total",
        "telltale_slo_services",
    ] {
        assert_eq!(value_of(&text, series), Some(0.0), "{series} in:\n{text}");
    }
    assert!(
        text.contains("# TYPE telltale_influx_points_sent counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE telltale_influx_queued_points gauge"),
        "{text}"
    );

    let t0 = 1_735_689_600_000_000;
    sink.send(&[rollup(t0), rollup(t0 + 10_000_000), rollup(t0 + 20_000_000)]);
    wait_until(
        "influxd to acknowledge the points",
        Duration::from_secs(60),
        || async { sink.stats().points_sent >= 3 },
    )
    .await;
    let text = metrics.encode();
    let stats = sink.stats();
    assert_eq!(
        value_of(&text, "telltale_influx_points_received_total"),
        Some(3.0)
    );
    assert_eq!(
        value_of(&text, "telltale_influx_points_sent_total"),
        Some(stats.points_sent as f64)
    );
    assert!(
        value_of(&text, "telltale_influx_requests_sent_total") >= Some(1.0),
        "{text}"
    );
    assert!(
        value_of(&text, "telltale_influx_bytes_sent_total") > Some(0.0),
        "{text}"
    );
    // What the server holds agrees with what the metrics say was sent.
    let q = format!("SELECT count(\"count\") FROM \"{SERVICE_ROLLUP}\"");
    let rows = server.influxql(DB, &q).await;
    assert_eq!(rows["results"][0]["series"][0]["values"][0][1], 3, "{rows}");
    sink.shutdown().await;
}
