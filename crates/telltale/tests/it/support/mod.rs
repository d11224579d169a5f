//! Helpers shared by the integration tests that run the real `telltale` binary: where the
//! repository and the binary are, child processes that cannot outlive a failing test,
//! servers on a port the system picks (`--print-address`), `telltale query`, a small
//! blocking HTTP/1.1 client over a plain `TcpStream`, a webhook receiver, and a page in
//! headless Chromium driven over the DevTools Protocol (`browser`).

pub mod browser;
pub mod child;
pub mod client;
pub mod http;
pub mod mmdb;
pub mod netns;
pub mod nginx;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use child::{
    CONTROL_LISTEN, ChildGuard, LISTEN, Server, closed_port, process_command, start_processor,
};

/// The `telltale` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_telltale");

/// The repository root (default config paths resolve from here, as in the README).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `telltale` run from the repository root, so the default config paths resolve as in the
/// README, without the environment variables that would change what a test sees, and with
/// warnings-only logs.
pub fn telltale() -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(repo_root());
    for var in [
        "PROBE_TARGET",
        "TELLTALE_DATA_DIR",
        "TELLTALE_TOKEN",
        "TELLTALE_CONTROL_URL",
        "TELLTALE_CONTROL_LISTEN",
    ] {
        c.env_remove(var);
    }
    c.env("TELLTALE_LOG", "warn");
    c
}

/// Exit status, stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the command succeeded; its stdout.
pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `telltale query --format <format> --data-dir <data> <sql>`, which must succeed; its stdout.
pub fn query(data: &Path, format: &str, sql: &str) -> String {
    ok(telltale()
        .args(["query", "--format", format, "--data-dir"])
        .arg(data)
        .arg(sql)
        .output()
        .unwrap())
}

/// The rows of `telltale query --format json`, one JSON object a line.
pub fn query_json(data: &Path, sql: &str) -> Vec<serde_json::Value> {
    query(data, "json", sql)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The value of the `/metrics` sample whose line starts with `series` (name and labels,
/// e.g. `telltale_wal_write_errors_total` or `…{reason="storage"}`); panics with the page
/// when it is missing, so a renamed metric fails the test instead of reading as zero.
pub fn metric(addr: std::net::SocketAddr, series: &str) -> f64 {
    let body = http::get(addr, "/metrics")
        .and_then(|r| r.body)
        .expect("GET /metrics answers");
    sample(&body, series)
}

/// The value of `series` in a `/metrics` page (see [`metric`]).
pub fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls `series` in `/metrics` until `check` holds, for at most `limit`; its value then.
pub fn wait_for_metric(
    addr: std::net::SocketAddr,
    series: &str,
    limit: std::time::Duration,
    check: impl Fn(f64) -> bool,
) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let value = metric(addr, series);
        if check(value) {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "{series} is {value}, not as expected within {limit:?}"
        );
        // Poll interval, not a wait for an outcome: the loop re-checks the condition.
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    }
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
