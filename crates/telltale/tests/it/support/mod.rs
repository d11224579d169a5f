//! Helpers shared by the integration tests that run the real `telltale` binary: where the
//! repository and the binary are, child processes that cannot outlive a failing test,
//! servers on a port the system picks (`--print-address`), `telltale query`, and a small
//! blocking HTTP/1.1 client over a plain `TcpStream`.

pub mod child;
pub mod http;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use child::{CONTROL_LISTEN, ChildGuard, LISTEN, Server, closed_port, start_processor};

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
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
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
