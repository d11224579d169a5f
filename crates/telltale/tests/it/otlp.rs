//! OTLP ingest with the real OpenTelemetry SDK exporters (issue #16): Python's
//! `opentelemetry-sdk` makes spans and log records with known start and end times and
//! statuses (`tests/otlp/export.py`), its OTLP/HTTP-protobuf and OTLP/gRPC exporters send
//! them to `telltale process`, and the lake holds each server span or request log record
//! as one event with the right service, latency, status and flags, client and internal
//! spans are not events, and the failing minutes turn the service red in `/api/v1/slo`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use telltale_tls::testing::TestCa;

use crate::support::http::get;
use crate::support::{Server, describe, metric, process_command, query_json, repo_root};

/// 20 minutes of 10 requests, the last 5 minutes failing; every tenth request slow.
const MINUTES: i64 = 20;
const FAIL_LAST: i64 = 5;
const CATALOGUE: &str = "[defaults]\nalert_tiers = [\"page\"]\n\
    [services.checkout-otel]\nteam = \"shop\"\nlatency_threshold_ms = 100.0\navailability_objective = 99.0\n\
    [services.billing-otel]\nteam = \"billing\"\nlatency_threshold_ms = 100.0\n";

/// `tests/otlp/export.py` with `args` (the script's flags), which must succeed: what it
/// says it sent.
fn export(now_ns: i64, service: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/otlp/export.py"))
        .args(["--now-ns", &now_ns.to_string()])
        .args(["--minutes", &MINUTES.to_string()])
        .args(["--fail-last", &FAIL_LAST.to_string()])
        .args(["--service", service])
        .args(args)
        // requests lets these override the exporter's own CA file (session.verify), so
        // they would hide whether `--ca` reached the server's check.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .stderr(Stdio::piped())
        .output()
        .expect("python3 runs (tests/run.sh installs the OpenTelemetry SDK)");
    assert!(out.status.success(), "export.py: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn now_ns() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_nanos()).unwrap()
}

fn processor(dir: &Path, extra: &[&str]) -> Server {
    let services = dir.join("services.toml");
    std::fs::write(&services, CATALOGUE).unwrap();
    Server::start(
        process_command(&dir.join("lake"))
            .arg("--services")
            .arg(&services)
            .args(extra)
            .stderr(Stdio::inherit()),
    )
}

/// `(status_code, is_error, is_slow, n, min latency, max latency)` of `service`'s events.
type Groups = Vec<(i64, bool, bool, i64, f64, f64)>;

fn groups(data: &Path, service: &str) -> Groups {
    query_json(
        data,
        &format!(
            "SELECT status_code, is_error, is_slow, count(*) AS n, min(latency_ms) AS lo, \
             max(latency_ms) AS hi FROM events WHERE service = '{service}' \
             GROUP BY 1, 2, 3 ORDER BY 1, 3"
        ),
    )
    .iter()
    .map(|r| {
        (
            r["status_code"].as_i64().unwrap(),
            r["is_error"].as_bool().unwrap(),
            r["is_slow"].as_bool().unwrap(),
            r["n"].as_i64().unwrap(),
            r["lo"].as_f64().unwrap(),
            r["hi"].as_f64().unwrap(),
        )
    })
    .collect()
}

/// What the SDK sent, as the lake must hold it: 40 ms requests fast, the 300 ms ones slow,
/// the 503s errors.
fn expected() -> Groups {
    let (ok, failing) = (MINUTES - FAIL_LAST, FAIL_LAST);
    vec![
        (200, false, false, ok * 9, 40.0, 40.0),
        (200, false, true, ok, 300.0, 300.0),
        (503, true, false, failing * 9, 40.0, 40.0),
        (503, true, true, failing, 300.0, 300.0),
    ]
}

/// Polls `/api/v1/slo` until `service` is red (the failing minutes burn its budget).
fn wait_until_red(server: &Server, service: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = || -> Option<String> {
        let body = get(server.addr, "/api/v1/slo").and_then(|r| r.body)?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["services"]
            .as_array()?
            .iter()
            .find(|s| s["service"] == service)
            .and_then(|s| s["state"].as_str().map(str::to_owned))
    };
    loop {
        let got = state();
        if got.as_deref() == Some("red") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} not red within 120 s: {got:?}"
        );
        // Poll interval, not a wait for an outcome: the loop re-checks the state.
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn spans_from_the_sdks_http_exporter_are_events_in_the_lake_and_drive_the_slo_engine() {
    let dir = tempfile::tempdir().unwrap();
    let server = processor(dir.path(), &[]);
    let sent = export(
        now_ns(),
        "checkout-otel",
        &["--traces-http", &format!("{}/v1/traces", server.url())],
    );
    assert_eq!(sent["server_spans"], MINUTES * 10, "{sent}");
    // One CLIENT and one INTERNAL span a minute: not requests, only counted.
    for kind in ["client", "internal"] {
        assert_eq!(
            metric(
                server.addr,
                &format!("telltale_otlp_spans_skipped_total{{kind=\"{kind}\"}}")
            ),
            MINUTES as f64,
            "{kind} spans skipped"
        );
    }
    wait_until_red(&server, "checkout-otel");
    server.sigterm_and_expect_success();

    let data = dir.path().join("lake");
    assert_eq!(groups(&data, "checkout-otel"), expected());
    // The trace ids the SDK made, in hex, with the resource's instance and region.
    let ids = sent["trace_ids"].as_array().unwrap();
    let rows = query_json(
        &data,
        "SELECT trace_id, instance, region, endpoint, method, team FROM events \
         WHERE service = 'checkout-otel' ORDER BY timestamp LIMIT 3",
    );
    for (row, id) in rows.iter().zip(ids) {
        assert_eq!(row["trace_id"], *id, "{row}");
        assert_eq!(
            (
                &row["instance"],
                &row["region"],
                &row["endpoint"],
                &row["method"],
                &row["team"]
            ),
            (
                &serde_json::json!("pod-7"),
                &serde_json::json!("eu-west-1"),
                &serde_json::json!("/cart"),
                &serde_json::json!("POST"),
                &serde_json::json!("shop")
            ),
            "{row}"
        );
    }
}

#[test]
fn the_sdks_grpc_exporter_over_tls_and_its_log_exporter_reach_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("otlp test CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let mut server = processor(
        dir.path(),
        &[
            "--otlp-grpc-listen",
            "127.0.0.1:0",
            "--tls-cert",
            pair.cert.to_str().unwrap(),
            "--tls-key",
            pair.key.to_str().unwrap(),
        ],
    );
    let grpc = server.stdout_line("otlp-grpc ");
    let ca = ca_file.to_str().unwrap();
    let now = now_ns();
    let sent = export(
        now,
        "checkout-otel",
        &["--traces-grpc", &format!("https://{grpc}"), "--ca", ca],
    );
    assert_eq!(sent["server_spans"], MINUTES * 10, "{sent}");
    let sent = export(
        now,
        "billing-otel",
        &[
            "--logs-http",
            &format!("https://{}/v1/logs", server.addr),
            "--ca",
            ca,
        ],
    );
    // Every request, and one record that is not a request (no status code).
    assert_eq!(sent["log_records"], MINUTES * 10 + 1, "{sent}");
    server.sigterm_and_expect_success();

    let data = dir.path().join("lake");
    assert_eq!(groups(&data, "checkout-otel"), expected());
    assert_eq!(groups(&data, "billing-otel"), expected());
}
