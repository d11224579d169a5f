//! The `telltale` binary end to end, as a user runs it: real processes, real files,
//! real HTTP on loopback.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::http::{self, expect_healthy};
use crate::support::{ChildGuard, LISTEN, Server, ok, query_json, telltale as bin};

#[test]
fn check_config_describes_the_shipped_catalogue() {
    let out = ok(bin().arg("check-config").output().unwrap());
    assert!(out.contains("auth-service"), "{out}");
    assert!(out.contains("identity"), "{out}");
    assert!(out.contains("99.95%"), "{out}");
    assert!(
        out.contains("URL monitors: 0 with [monitors.\"<url>\"]; any other: team \"unowned\", slow over 1000ms"),
        "{out}"
    );
}

#[test]
fn check_config_fails_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("services.toml");
    std::fs::write(&bad, "[services.x]\navailability_objective = 120\n").unwrap();
    let out = bin()
        .arg("check-config")
        .arg("--services")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("services.toml: `services.x.availability_objective`: 120 is not an objective"),
        "{err}"
    );
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.ndjson");
    let b = dir.path().join("b.ndjson");
    for f in [&a, &b] {
        ok(bin()
            .args(["sim", "--seed", "7", "--count", "3000", "--output"])
            .arg(f)
            .output()
            .unwrap());
    }
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 3000);
    assert!(a == b, "same seed must give identical output");
    let stdout = ok(bin()
        .args(["sim", "--seed", "7", "--count", "3000"])
        .output()
        .unwrap());
    assert!(
        stdout.as_bytes() == a.as_slice(),
        "stdout and file output are the same bytes"
    );
}

#[test]
fn sim_then_process_then_query() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    let data = dir.path().join("lake");
    ok(bin()
        .args(["sim", "--seed", "1", "--count", "20000", "--output"])
        .arg(&input)
        .output()
        .unwrap());
    ok(bin()
        .args(["process", "--input"])
        .arg(&input)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap());

    let rows = query_json(&data, "SELECT count(*) AS n FROM events");
    assert_eq!(rows[0]["n"], 20000);
    // Every event is in exactly one rollup window.
    let rows = query_json(&data, "SELECT CAST(sum(count) AS BIGINT) AS n FROM rollups");
    assert_eq!(rows[0]["n"], 20000);
    // Flags agree with the catalogue: auth-service is slow over 250 ms.
    let rows = query_json(
        &data,
        "SELECT count(*) AS n FROM events WHERE service = 'auth-service' AND (is_slow <> (latency_ms > 250.0))",
    );
    assert_eq!(rows[0]["n"], 0);
    let rows = query_json(
        &data,
        "SELECT DISTINCT team FROM events WHERE service = 'checkout-api'",
    );
    assert_eq!(rows, vec![serde_json::json!({"team": "payments"})]);
    // CSV output has a header.
    let csv = ok(bin()
        .args(["query", "--format", "csv", "--data-dir"])
        .arg(&data)
        .arg("SELECT service, count(*) AS n FROM events GROUP BY service ORDER BY service LIMIT 2")
        .output()
        .unwrap());
    assert!(csv.starts_with("service,n\n"), "{csv}");
}

/// `telltale query` runs `telltale-query` from beside itself; a `telltale` installed alone
/// says how to get it instead of failing obscurely.
#[test]
fn query_without_the_query_binary_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("telltale");
    std::fs::copy(crate::support::BIN, &alone).unwrap();
    let out = std::process::Command::new(&alone)
        .args(["query", "SELECT 1"])
        .env("PATH", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cargo build --release -p telltale-query"),
        "names the build command: {err}"
    );
}

#[test]
fn stdin_with_bad_lines_keeps_the_good_ones_and_explains_the_bad() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let now = chrono::Utc::now().to_rfc3339();
    let input = format!(
        "{{\"service\":\"a\",\"timestamp\":\"{now}\",\"status_code\":200,\"latency_ms\":5}}\n\
         {{\"service\":\"a\",\"timestamp\":\"{now}\",\"status_code\":\"ok\",\"latency_ms\":5}}\n\
         \u{1}\u{2}garbage\n\
         {{\"service\":\"a/../b\",\"timestamp\":\"{now}\",\"status_code\":500,\"latency_ms\":5}}\n"
    );
    let mut child = ChildGuard::spawn(
        bin()
            .args(["process", "--input", "-", "--data-dir"])
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("line 2: field `status_code`: expected an integer, got the string \"ok\""),
        "{stderr}"
    );
    assert!(stderr.contains("line 3: malformed JSON"), "{stderr}");
    assert!(stderr.contains("2 accepted, 2 rejected"), "{stderr}");
    // The unsafe name is stored percent-encoded and comes back decoded.
    let rows = query_json(
        &data,
        "SELECT service, is_error FROM events ORDER BY service",
    );
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"service": "a", "is_error": false}),
            serde_json::json!({"service": "a/../b", "is_error": true}),
        ]
    );
    let dirs: Vec<String> = std::fs::read_dir(data.join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(dirs.iter().all(|d| !d.contains('/')), "{dirs:?}");
}

/// Polls until `check` holds on a GET of `path`, for at most `limit`.
fn wait_for(addr: SocketAddr, path: &str, limit: Duration, check: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        if http::get(addr, path).is_some_and(|r| check(&r.raw)) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "GET {path} did not meet the condition within {limit:?}"
        );
        // Poll interval, not a wait for an outcome: the loop re-checks the condition.
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn ingested_service_events(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("telltale_events_ingested_total{kind=\"service\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn run_serves_ingests_and_flushes_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let run = Server::start(
        bin()
            .args(["run", "--rate", "500", "--seed", "3"])
            .args(LISTEN)
            .arg("--data-dir")
            .arg(&data)
            .stderr(Stdio::piped()),
    );
    let addr = run.addr;
    expect_healthy(addr);
    let now = chrono::Utc::now().to_rfc3339();
    let line = format!(
        "{{\"service\":\"external\",\"timestamp\":\"{now}\",\"status_code\":200,\"latency_ms\":5}}\n"
    );
    let resp = http::request(addr, "POST", "/v1/events", &line)
        .unwrap()
        .raw;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // The embedded simulator feeds the pipeline on its own.
    wait_for(addr, "/metrics", Duration::from_secs(60), |r| {
        ingested_service_events(r) > 100
    });
    // Stop it like systemd or docker would.
    let out = run.sigterm_and_wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows = query_json(
        &data,
        "SELECT count(*) AS n FROM events WHERE service = 'external'",
    );
    assert_eq!(
        rows[0]["n"], 1,
        "the acknowledged event is in the lake after shutdown"
    );
    let rows = query_json(&data, "SELECT count(*) AS n FROM events");
    assert!(rows[0]["n"].as_u64().unwrap() > 100, "{rows:?}");
}
