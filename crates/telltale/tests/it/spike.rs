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

fn lines_in(path: &Path) -> u64 {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64)
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

    // Baseline: lines per second over a 3 s window, once lines flow.
    let start = Instant::now();
    while lines_in(&file) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no line within 30s"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
    let (before_lines, before_at) = (lines_in(&file), Instant::now());
    while before_at.elapsed() < Duration::from_secs(3) {
        std::thread::park_timeout(Duration::from_millis(100));
    }
    let baseline = (lines_in(&file) - before_lines) as f64 / before_at.elapsed().as_secs_f64();
    // 50/s × a time-of-day factor of 0.5 to 1.5.
    assert!((10.0..120.0).contains(&baseline), "baseline {baseline}/s");

    let out = ok(spike(addr, &["--factor", "10", "--for", "60s"]));
    assert!(out.starts_with("load spike ×10 until "), "{out}");
    let (spiked_lines, spiked_at) = (lines_in(&file), Instant::now());

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

    // Ten times the rate: well over three times the baseline once 2 s have passed.
    let deadline = Duration::from_secs(20);
    loop {
        let elapsed = spiked_at.elapsed().as_secs_f64();
        let rate = (lines_in(&file) - spiked_lines) as f64 / elapsed;
        if elapsed >= 2.0 && rate > 3.0 * baseline {
            break;
        }
        assert!(
            spiked_at.elapsed() < deadline,
            "after the spike: {rate:.1} lines/s over {elapsed:.1}s, baseline {baseline:.1}/s"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
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
