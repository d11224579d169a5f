//! `telltale spike` against real simulators: `telltale sim --control-listen` writing a
//! file in real time, and `telltale run` serving the control API beside the processor.

mod common;

use common::{free_port, repo_root};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_telltale"));
    // Run from the repo root so the default config paths resolve as in the README.
    c.current_dir(repo_root());
    c.env_remove("PROBE_TARGET")
        .env_remove("TELLTALE_DATA_DIR")
        .env_remove("TELLTALE_CONTROL_URL")
        .env_remove("TELLTALE_CONTROL_LISTEN")
        .env("TELLTALE_LOG", "warn");
    c
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A child process that is killed if the test fails before stopping it.
struct Running(Option<Child>);

impl Running {
    /// SIGTERM, as systemd or docker would send, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `GET path` over a plain TcpStream: (status line, body), or None when nothing listens.
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// Polls `GET path` until it answers 200, for at most `limit`; returns the body.
fn wait_for_200(port: u16, path: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Some((status, body)) = get(port, path)
            && status.starts_with("HTTP/1.1 200")
        {
            return body;
        }
        assert!(
            start.elapsed() < limit,
            "GET {path} on port {port} did not answer 200 within {limit:?}"
        );
        // Poll interval, not a wait for an outcome: the loop re-checks the condition.
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn lines_in(path: &Path) -> u64 {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64)
}

/// Starts `telltale sim` in real time at `rate` with the control API on a free port.
fn start_sim(rate: &str, output: &Path) -> (Running, u16) {
    let port = free_port();
    let child = bin()
        .args(["sim", "--rate", rate, "--seed", "1", "--no-incidents"])
        .arg("--control-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--output")
        .arg(output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(Some(child));
    wait_for_200(port, "/control", Duration::from_secs(30));
    (running, port)
}

fn spike(port: u16, args: &[&str]) -> Output {
    bin()
        .arg("spike")
        .arg("--control")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_spike_makes_the_running_simulator_emit_faster() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let (sim, port) = start_sim("50", &file);

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

    let out = ok(spike(port, &["--factor", "10", "--for", "60s"]));
    assert!(out.starts_with("load spike ×10 until "), "{out}");
    let (spiked_lines, spiked_at) = (lines_in(&file), Instant::now());

    // The plan shows it, in text, as JSON from the CLI, and from the API itself.
    let status = ok(spike(port, &["--status"]));
    assert!(
        status.contains("\nspike               ×10 until "),
        "{status}"
    );
    assert!(status.contains("× 10 spike"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(spike(port, &["--status", "--json"]))).unwrap();
    assert_eq!(json["spike"]["factor"], 10.0, "{json}");
    let left = json["spike"]["remaining_secs"].as_f64().unwrap();
    assert!(left > 30.0 && left <= 60.0, "{json}");
    let (_, body) = get(port, "/control").unwrap();
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
    assert!(sim.stop().success());
}

#[test]
fn refusals_and_unreachable_apis_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, port) = start_sim("20", &dir.path().join("events.ndjson"));

    let out = spike(
        port,
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
    let out = spike(port, &["--factor", "5000", "--for", "1m"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid `factor` 5000"),
        "{}",
        text(&out)
    );
    // Nothing changed.
    let (_, body) = get(port, "/control").unwrap();
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(plan["spike"].is_null(), "{plan}");
    assert_eq!(plan["active_incidents"], serde_json::json!([]), "{plan}");
    assert!(sim.stop().success());

    // Nothing listens: say where we looked and what should run there.
    let closed = free_port();
    let out = spike(closed, &["--status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot connect to the simulator's control API at http://127.0.0.1:{closed}"
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
    let port = free_port();
    let child = bin()
        .args(["run", "--rate", "50", "--seed", "2", "--no-incidents"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("lake"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = Running(Some(child));
    wait_for_200(port, "/healthz", Duration::from_secs(60));

    let out = ok(spike(
        port,
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
    let (_, body) = get(port, "/control").unwrap();
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["active_incidents"][0]["id"], incident["id"], "{api}");
    // The processor's routes are still there.
    assert!(
        get(port, "/api/v1/slo")
            .unwrap()
            .0
            .starts_with("HTTP/1.1 200")
    );
    assert!(run.stop().success());
}
