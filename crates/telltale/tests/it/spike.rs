//! `telltale spike` against real simulators: `telltale sim --control-listen` writing a
//! file in real time, and `telltale run` serving the control API beside the processor.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::expect_healthy;
use crate::support::{
    CONTROL_LISTEN, LISTEN, Server, closed_port, describe as text, ok, telltale as bin,
};

/// `GET path`: (status line, body), or None when nothing listens.
fn get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    let r = crate::support::http::get(addr, path)?;
    Some((r.status_line, r.body?))
}

/// The event times (µs) of every complete line written so far.
fn event_times(path: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_micros()
        })
        .collect()
}

/// Waits (at most `limit`) until the file holds an event at or after `at` (any event when
/// `None`); the first such event time.
fn wait_for_event_time(path: &Path, at: Option<i64>, limit: Duration) -> i64 {
    let start = Instant::now();
    loop {
        if let Some(t) = event_times(path)
            .into_iter()
            .find(|t| at.is_none_or(|a| *t >= a))
        {
            return t;
        }
        assert!(
            start.elapsed() < limit,
            "no event at or after {at:?} within {limit:?}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Starts `telltale sim` in real time at `rate` with the control API on a port it picks.
fn start_sim(rate: &str, output: &Path) -> Server {
    let sim = Server::start(
        bin()
            .args(["sim", "--rate", rate, "--seed", "1", "--no-incidents"])
            .args(CONTROL_LISTEN)
            .arg("--output")
            .arg(output)
            .stderr(Stdio::null()),
    );
    let (status, _) = get(sim.addr, "/control").unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "GET /control: {status}");
    sim
}

fn spike(addr: SocketAddr, args: &[&str]) -> Output {
    bin()
        .arg("spike")
        .arg("--control")
        .arg(format!("http://{addr}"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_spike_makes_the_running_simulator_emit_faster() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let sim = start_sim("50", &file);
    let addr = sim.addr;

    // Rates are read from the events' own timestamps (the simulator stamps each event with
    // its scheduled time), not from when this test happens to look: first three seconds
    // of baseline.
    let first = wait_for_event_time(&file, None, Duration::from_secs(60));
    wait_for_event_time(&file, Some(first + 3_000_000), Duration::from_secs(60));
    let out = ok(spike(addr, &["--factor", "10", "--for", "60s"]));
    assert!(out.starts_with("load spike ×10 until "), "{out}");
    let until = out["load spike ×10 until ".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    let spike_start = chrono::DateTime::parse_from_rfc3339(until)
        .unwrap_or_else(|e| panic!("{until:?} in {out:?}: {e}"))
        .timestamp_micros()
        - 60_000_000;

    // The plan shows it, in text, as JSON from the CLI, and from the API itself.
    let status = ok(spike(addr, &["--status"]));
    assert!(
        status.contains("\nspike               ×10 until "),
        "{status}"
    );
    assert!(status.contains("× 10 spike"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(spike(addr, &["--status", "--json"]))).unwrap();
    assert_eq!(json["spike"]["factor"], 10.0, "{json}");
    let left = json["spike"]["remaining_secs"].as_f64().unwrap();
    assert!(left > 30.0 && left <= 60.0, "{json}");
    let (_, body) = get(addr, "/control").unwrap();
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["spike"]["factor"], 10.0, "{api}");
    assert_eq!(api["base_rate"], 50.0, "{api}");

    // Ten times the rate: the three seconds from one second into the spike hold well over
    // three times the events of the three seconds before it.
    wait_for_event_time(
        &file,
        Some(spike_start + 4_000_000),
        Duration::from_secs(60),
    );
    let times = event_times(&file);
    let count = |from: i64, to: i64| times.iter().filter(|t| (from..to).contains(*t)).count();
    let baseline = count(spike_start - 3_000_000, spike_start);
    let spiked = count(spike_start + 1_000_000, spike_start + 4_000_000);
    // 50/s × a time-of-day factor of 0.5 to 1.5, over 3 s.
    assert!(
        (30..=360).contains(&baseline),
        "baseline {baseline} events in 3 s"
    );
    assert!(
        spiked > 3 * baseline,
        "{spiked} events in 3 s of the spike against {baseline} before it"
    );
    assert!(sim.sigterm_and_wait().status.success());
}

#[test]
fn refusals_and_unreachable_apis_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim("20", &dir.path().join("events.ndjson"));
    let addr = sim.addr;

    let out = spike(
        addr,
        &[
            "--incident",
            "outage",
            "--service",
            "checkout",
            "--for",
            "5m",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(400 Bad Request): invalid `service` \"checkout\": not a simulated service; valid choices: ab-testing, "),
        "{err}"
    );
    assert!(err.contains("checkout-api"), "{err}");
    let out = spike(addr, &["--factor", "5000", "--for", "1m"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid `factor` 5000"),
        "{}",
        text(&out)
    );
    // Nothing changed.
    let (_, body) = get(addr, "/control").unwrap();
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(plan["spike"].is_null(), "{plan}");
    assert_eq!(plan["active_incidents"], serde_json::json!([]), "{plan}");
    assert!(sim.sigterm_and_wait().status.success());

    // Nothing listens: say where we looked and what should run there.
    let closed = closed_port();
    let out = spike(closed, &["--status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot connect to the simulator's control API at http://{closed}"
        )) && err.contains("telltale run")
            && err.contains("--control-listen"),
        "{err}"
    );

    // The control API steers a simulator in real time only.
    let out = bin()
        .args(["sim", "--count", "10", "--control-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--control-listen 127.0.0.1:0 needs --rate"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_serves_the_control_api_beside_the_processor() {
    let dir = tempfile::tempdir().unwrap();
    let run = Server::start(
        bin()
            .args(["run", "--rate", "50", "--seed", "2", "--no-incidents"])
            .args(LISTEN)
            .arg("--data-dir")
            .arg(dir.path().join("lake"))
            .stderr(Stdio::null()),
    );
    let addr = run.addr;
    expect_healthy(addr);

    let out = ok(spike(
        addr,
        &[
            "--incident",
            "error_burst",
            "--service",
            "checkout-api",
            "--magnitude",
            "0.5",
            "--for",
            "5m",
            "--json",
        ],
    ));
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let incident = &plan["active_incidents"][0];
    assert_eq!(
        (
            &incident["service"],
            &incident["kind"],
            &incident["magnitude"]
        ),
        (
            &serde_json::json!("checkout-api"),
            &serde_json::json!("error_burst"),
            &serde_json::json!(0.5)
        ),
        "{plan}"
    );
    let (_, body) = get(addr, "/control").unwrap();
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["active_incidents"][0]["id"], incident["id"], "{api}");
    // The processor's routes are still there.
    assert!(
        get(addr, "/api/v1/slo")
            .unwrap()
            .0
            .starts_with("HTTP/1.1 200")
    );
    assert!(run.sigterm_and_wait().status.success());
}

/// Regression (issue #14): with ingest tokens set, anyone who reached the listener could
/// still `POST /control/spike` and put an outage on every dashboard. Now, once any token
/// is configured, changing the plan needs an admin token: none or an unknown one is 401,
/// an ingest token 403, and `telltale spike` says which token it needs.
#[test]
fn with_ingest_tokens_set_the_control_api_needs_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let run = Server::start(
        bin()
            .args(["run", "--rate", "20", "--seed", "3", "--no-incidents"])
            .args(LISTEN)
            .arg("--data-dir")
            .arg(dir.path().join("lake"))
            .env("TELLTALE_INGEST_TOKENS", "ingest-t")
            .env("TELLTALE_ADMIN_TOKENS", "admin-t")
            .stderr(Stdio::null()),
    );
    let addr = run.addr;
    expect_healthy(addr);
    let change = ["--factor", "3", "--for", "60s", "--json"];
    let refused = |token: Option<&str>, status: &str, says: &str| {
        let mut args: Vec<&str> = change.to_vec();
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        let out = spike(addr, &args);
        let stderr = text(&out);
        assert!(
            !out.status.success(),
            "{token:?} changed the plan: {stderr}"
        );
        assert!(
            stderr.contains(status) && stderr.contains(says),
            "{token:?}: {stderr}"
        );
    };
    refused(None, "401", "--token");
    refused(Some("guess"), "401", "admin token");
    refused(Some("ingest-t"), "403", "admin token");
    let (_, body) = get(addr, "/control").unwrap();
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        plan["spike"].is_null(),
        "reading is open, nothing changed: {plan}"
    );
    let plan: serde_json::Value = serde_json::from_str(&ok(spike(
        addr,
        &[&change[..], &["--token", "admin-t"]].concat(),
    )))
    .unwrap();
    assert_eq!(plan["spike"]["factor"], 3.0, "{plan}");
    assert!(run.sigterm_and_wait().status.success());
}
