//! Event time against the clock: senders whose clocks are an hour off, a replayed day, and
//! a restart across midnight UTC, each with the outcome docs/durability.md ("Event time")
//! states: what reaches the lake, the rollups (and so the SLOs), and the counters.

use std::net::SocketAddr;

use crate::support::http::{self, expect_healthy};
use crate::support::{Server, process_command, query_json};

const MINUTE_US: i64 = 60_000_000;

fn processor(data: &std::path::Path) -> Server {
    Server::start(process_command(data).stderr(std::process::Stdio::inherit()))
}

/// `n` events of `service`, one a second from `start_us`.
fn events(service: &str, start_us: i64, n: i64) -> String {
    (0..n)
        .map(|i| {
            let ts = chrono::DateTime::from_timestamp_micros(start_us + i * 1_000_000)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            format!(
                "{{\"service\":\"{service}\",\"timestamp\":\"{ts}\",\"status_code\":200,\"latency_ms\":{i}}}\n"
            )
        })
        .collect()
}

fn post(addr: SocketAddr, body: &str) -> http::Response {
    http::request(addr, "POST", "/v1/events", body).expect("a whole answer")
}

/// `{service: n}` of a `SELECT service, <n> AS n … GROUP BY service` query.
fn by_service(data: &std::path::Path, sql: &str) -> std::collections::BTreeMap<String, u64> {
    query_json(data, sql)
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_owned(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn clocks_an_hour_off_and_a_replayed_day_have_their_documented_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let server = processor(&data);
    let addr = server.addr;
    expect_healthy(addr);
    let now = chrono::Utc::now().timestamp_micros();
    // Live traffic first: it sets the watermark (newest event time − allowed lateness).
    assert_eq!(
        post(addr, &events("live", now - 2 * MINUTE_US, 100)).status,
        Some(200)
    );
    // A sender an hour behind, and yesterday replayed: accepted into the lake, too late
    // for rollups whose windows the watermark has passed.
    assert_eq!(
        post(addr, &events("behind", now - 60 * MINUTE_US, 100)).status,
        Some(200)
    );
    assert_eq!(
        post(addr, &events("replay", now - 24 * 60 * MINUTE_US, 100)).status,
        Some(200)
    );
    // A sender an hour ahead: past validation.max_future_skew (5m), every line rejected.
    let ahead = post(addr, &events("ahead", now + 60 * MINUTE_US, 100));
    assert_eq!(ahead.status, Some(400), "{}", ahead.raw);
    assert!(ahead.raw.contains("timestamp_in_future"), "{}", ahead.raw);
    assert_eq!(
        crate::support::metric(
            addr,
            "telltale_events_rejected_total{reason=\"timestamp_in_future\"}"
        ),
        100.0
    );
    assert_eq!(
        crate::support::metric(addr, "telltale_rollup_late_events_total"),
        200.0
    );
    server.sigterm_and_expect_success();

    let lake = by_service(
        &data,
        "SELECT service, count(*) AS n FROM events GROUP BY service",
    );
    assert_eq!(
        lake,
        [("behind", 100), ("live", 100), ("replay", 100)]
            .map(|(s, n)| (s.to_owned(), n))
            .into()
    );
    let rolled = by_service(
        &data,
        "SELECT service, CAST(sum(count) AS BIGINT) AS n FROM rollups GROUP BY service",
    );
    assert_eq!(
        rolled,
        [("live".to_owned(), 100)].into(),
        "only live traffic is rolled up"
    );
    // The rejected lines are in the dead letter with their reason.
    let dead: usize = crate::support::walk(&data.join("deadletter"))
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"reason\":\"timestamp_in_future\""))
                .count()
        })
        .sum();
    assert_eq!(dead, 100);
}

#[test]
fn a_restart_across_midnight_utc_splits_dates_and_loses_no_window() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let midnight = chrono::DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z")
        .unwrap()
        .timestamp_micros();
    // 23:59:00–23:59:59 before the restart, 00:00:00–00:00:59 after it.
    let server = processor(&data);
    assert_eq!(
        post(server.addr, &events("midnight", midnight - MINUTE_US, 60)).status,
        Some(200)
    );
    server.sigterm_and_expect_success();
    let server = processor(&data);
    assert_eq!(
        post(server.addr, &events("midnight", midnight, 60)).status,
        Some(200)
    );
    server.sigterm_and_expect_success();

    let dates = query_json(
        &data,
        "SELECT date, count(*) AS n FROM events WHERE service = 'midnight' GROUP BY date ORDER BY date",
    );
    assert_eq!(
        dates,
        [
            serde_json::json!({"date": "2026-11-29", "n": 60}),
            serde_json::json!({"date": "2026-11-30", "n": 60}),
        ]
    );
    // Every 10 s window once, each with its 10 events, on both sides of midnight.
    let windows = query_json(
        &data,
        "SELECT count(*) AS windows, CAST(sum(count) AS BIGINT) AS events, \
         count(DISTINCT window_start) AS distinct_windows, min(count) AS least \
         FROM rollups WHERE service = 'midnight'",
    );
    assert_eq!(
        windows,
        [serde_json::json!({"windows": 12, "events": 120, "distinct_windows": 12, "least": 10})]
    );
}
