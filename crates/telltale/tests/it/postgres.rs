//! URL monitor results into a real PostgreSQL through a real `telltale process` (issue
//! #17): result lines POSTed to `/v1/events` land in `monitor_results` (and its view)
//! exactly once, also across PostgreSQL being `kill -9`ed mid-run and started again; the
//! schema is the processor's own migration; `/metrics` counts what happened; the password
//! never reaches the log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use telltale_postgres::testing::{PASSWORD, TestPostgres};

use crate::support::{Server, http, metric, process_command};

const MONITOR: &str = "00000000000000e1";

/// Result lines `from..to` of one 1-minute monitor, one minute apart from `base_ms`, as
/// NDJSON.
fn results(base_ms: i64, from: i64, to: i64) -> String {
    (from..to)
        .map(|n| {
            json!({
                "kind": "http", "url": "https://shop.example/health", "monitor_id": MONITOR,
                "every_s": 60,
                "timestamp": chrono::DateTime::from_timestamp_millis(base_ms + n * 60_000).unwrap().to_rfc3339(),
                "status_code": if n % 4 == 0 { 503 } else { 200 }, "duration_ms": 30.0 + n as f64,
                "dns_ms": 1.0, "connect_ms": 2.0, "tls_ms": 9.0, "ttfb_ms": 15.0, "transfer_ms": 0.5,
                "redirects": 0, "body_bytes": 2, "cert_expiry_days": 61.5, "error": null,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn post(server: &Server, body: &str) {
    let r = http::request(server.addr, "POST", "/v1/events", body).expect("POST /v1/events");
    assert_eq!(r.status, Some(200), "{:?}", r.body);
}

/// Polls `/metrics` until `series` is `want` (bounded; a poll interval, not a wait for an
/// outcome).
fn wait_for_metric(server: &Server, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = metric(server.addr, series);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} = {got}, not {want}, within 60 s"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn monitor_results_reach_postgresql_exactly_once_across_a_killed_server() {
    let mut pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        process_command(&dir.path().join("lake"))
            .env("POSTGRES_URL", pg.url("disable"))
            .env("POSTGRES_PASSWORD", PASSWORD)
            .env("TELLTALE_LOG", "info,tokio_postgres=debug")
            .stderr(Stdio::piped()),
    );
    let base = chrono::Utc::now().timestamp_millis() - 3 * 3_600_000;
    post(&server, &results(base, 0, 30));
    wait_for_metric(&server, "telltale_postgres_results_inserted_total", 30.0);

    pg.kill();
    post(&server, &results(base, 30, 60));
    // The same results again (a sender's retry): stored once.
    post(&server, &results(base, 20, 40));
    wait_for_metric(&server, "telltale_postgres_spooled_results", 50.0);
    pg.restart();
    wait_for_metric(&server, "telltale_postgres_results_inserted_total", 60.0);
    wait_for_metric(&server, "telltale_postgres_spooled_results", 0.0);
    assert_eq!(
        metric(server.addr, "telltale_postgres_results_duplicate_total"),
        20.0
    );

    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*), count(DISTINCT start_time), sum(CASE WHEN up THEN 0 ELSE 1 END) \
             FROM view_1m WHERE monitor_id = '{MONITOR}'"
        )),
        "60|60|15"
    );
    assert_eq!(
        pg.psql("SELECT urltarget, monitor_frequency FROM urltargets"),
        "https://shop.example/health|1"
    );
    let out = server.sigterm_and_wait();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        &log[log.len().saturating_sub(3000)..]
    );
    assert!(log.contains("PostgreSQL connected"), "{log}");
    assert!(!log.contains(PASSWORD), "the password is in the log");
}

/// `POST`/`DELETE /api/v1/monitors` with `body`; the status and the JSON answer.
fn api(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let req = crate::support::client::Req {
        body: body.map(|b| b.to_string()),
        content_type: Some("application/json"),
        ..Default::default()
    };
    let a = crate::support::client::send(method, &format!("{}{path}", server.url()), req).unwrap();
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(serde_json::Value::Null),
    )
}

/// With `[postgres]` on, the monitor list lives in `urltargets`: a monitor added through
/// the API is a row, survives a restart of the processor that has no monitors file, is
/// checked at once with its result in `monitor_results`, and a removal keeps the row
/// (with `removed_at`) and its results.
#[test]
fn with_postgres_the_monitors_live_in_urltargets_across_restarts() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let config = dir.path().join("telltale.toml");
        std::fs::write(&config, "[monitors]\njitter = 0.0\n").unwrap();
        Server::start(
            process_command(&dir.path().join("lake"))
                .arg("--config")
                .arg(&config)
                .env("POSTGRES_URL", pg.url("disable"))
                .env("POSTGRES_PASSWORD", PASSWORD)
                .stderr(Stdio::inherit()),
        )
    };
    let server = start();
    // Nothing listens there: the check is a result with error connect_refused.
    let url = format!("http://{}/health", crate::support::closed_port());
    let (status, added) = api(
        &server,
        "POST",
        "/api/v1/monitors",
        Some(json!({"url": url, "every": "2m"})),
    );
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(
        pg.psql(&format!("SELECT urltarget, monitor_frequency, removed_at IS NULL FROM urltargets WHERE monitor_id = '{id}'")),
        format!("{url}|2|t")
    );
    wait_for_metric(&server, "telltale_postgres_results_inserted_total", 1.0);
    server.sigterm_and_expect_success();

    // The file store is not what kept it: remove the file, restart.
    let _ = std::fs::remove_file(dir.path().join("lake/monitors/monitors.json"));
    let server = start();
    let listed = api(&server, "GET", "/api/v1/monitors", None).1;
    assert_eq!(listed["monitors"][0]["id"], id.as_str(), "{listed}");
    let (status, _) = api(&server, "DELETE", &format!("/api/v1/monitors/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(
        pg.psql(&format!(
            "SELECT removed_at IS NOT NULL FROM urltargets WHERE monitor_id = '{id}'"
        )),
        "t"
    );
    assert_eq!(
        pg.psql("SELECT error FROM view_2m LIMIT 1"),
        "connect_refused"
    );
    server.sigterm_and_expect_success();
}

/// Results the lake holds but PostgreSQL does not — what a `kill -9` of telltale between
/// the acknowledgement and the insert leaves, or results from before `[postgres]` was
/// turned on — are written at the next start (the last day's), and a second start adds
/// nothing.
#[test]
fn results_in_the_lake_but_not_in_postgresql_are_written_at_the_next_start() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let base = chrono::Utc::now().timestamp_millis() - 3 * 3_600_000;
    let without = Server::start(process_command(&lake).stderr(Stdio::inherit()));
    post(&without, &results(base, 0, 25));
    // kill -9: acknowledged means in the write-ahead log, replayed into the lake below.
    without.kill_and_wait();
    let with = || {
        Server::start(
            process_command(&lake)
                .env("POSTGRES_URL", pg.url("disable"))
                .env("POSTGRES_PASSWORD", PASSWORD)
                .stderr(Stdio::inherit()),
        )
    };
    let server = with();
    wait_for_metric(&server, "telltale_postgres_results_inserted_total", 25.0);
    server.sigterm_and_expect_success();
    let server = with();
    wait_for_metric(&server, "telltale_postgres_results_duplicate_total", 25.0);
    assert_eq!(
        metric(server.addr, "telltale_postgres_results_inserted_total"),
        0.0
    );
    server.sigterm_and_expect_success();
    assert_eq!(
        pg.psql("SELECT count(*), count(DISTINCT start_time) FROM monitor_results"),
        "25|25"
    );
}
