//! Access logs followed like `tail -F` (issue #16): Debian's real nginx serves requests and
//! writes its JSON access log with the `log_format` shipped in
//! `deploy/nginx/access-log-format.conf`; `telltale process --input access.log --follow
//! --format nginx` follows it through a rename rotation (`mv` + `USR1`, what logrotate
//! does) and a restart, and the lake holds every request exactly once with its service,
//! status, latency and error flag; a line that is not the format's is in the dead letter
//! with the field it lacks.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{LISTEN, Server, http, query_json, repo_root, telltale, walk};

const LIMIT: Duration = Duration::from_secs(60);
const LINES: &str = "telltale_lines_received_total{source=\"file\"}";

#[test]
fn an_nginx_access_log_is_followed_through_rotation_and_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("access.log");
    let data = dir.path().join("lake");
    let follow = || {
        Server::start(
            telltale()
                .args(["process", "--follow", "--format", "nginx"])
                .args(["--service", "checkout"])
                .arg("--input")
                .arg(&log)
                .arg("--data-dir")
                .arg(&data)
                .args(LISTEN)
                .args(["--poll-interval", "20ms"]),
        )
    };

    // Requests before telltale starts are read too (from the file's start).
    nginx.get("/ok");
    let first = follow();
    for path in ["/ok", "/ok", "/fail", "/fail?retry=1"] {
        nginx.get(path);
    }
    wait_for_lines(first.addr, 5);

    // logrotate: rename, then tell nginx to reopen its logs (it creates the new file).
    fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    nginx.reopen_logs(&log);
    nginx.get("/ok");
    nginx.get("/fail");
    // Another writer's line that is not nginx's format.
    append(&log, "{\"msg\":\"not a request\"}\n");
    wait_for_lines(first.addr, 8);
    assert!(first.sigterm_and_wait().status.success());

    // While telltale is down, more requests, and another rotation.
    nginx.get("/ok");
    fs::rename(&log, dir.path().join("access.log.2")).unwrap();
    nginx.reopen_logs(&log);
    nginx.get("/fail");
    let second = follow();
    // Only the two lines written while it was down: nothing acknowledged is read again.
    wait_for_lines(second.addr, 2);
    nginx.get("/ok");
    wait_for_lines(second.addr, 3);
    assert!(second.sigterm_and_wait().status.success());
    nginx.stop();

    let rows = query_json(
        &data,
        "SELECT endpoint, method, status_code, is_error, count(*) AS n, min(latency_ms) AS min_ms \
         FROM events WHERE service = 'checkout' GROUP BY 1, 2, 3, 4 ORDER BY 1",
    );
    let got: Vec<(String, String, i64, bool, i64)> = rows
        .iter()
        .map(|r| {
            assert!(r["min_ms"].as_f64().unwrap() >= 0.0, "{r}");
            (
                r["endpoint"].as_str().unwrap().to_owned(),
                r["method"].as_str().unwrap().to_owned(),
                r["status_code"].as_i64().unwrap(),
                r["is_error"].as_bool().unwrap(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/fail".into(), "GET".into(), 503, true, 4),
            ("/ok".into(), "GET".into(), 200, false, 6),
        ],
        "rows: {rows:?}"
    );

    // The foreign line: in the dead letter, with the field nginx's format reads.
    let dead: Vec<String> = walk(&data.join("deadletter"))
        .into_iter()
        .flat_map(|p| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("not a request"), "{}", dead[0]);
    assert!(dead[0].contains("field `time`"), "{}", dead[0]);
}

/// Polls `/metrics` until the follower has received `n` lines (the series appears with
/// the first line read) — and never more, since each line is read once.
fn wait_for_lines(addr: SocketAddr, n: u64) {
    let start = Instant::now();
    loop {
        let body = http::get(addr, "/metrics")
            .and_then(|r| r.body)
            .expect("GET /metrics answers");
        let got = body
            .lines()
            .find_map(|l| l.strip_prefix(LINES)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64);
        assert!(got <= n, "{got} lines received, more than the {n} written");
        if got == n {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{got} of {n} lines received within {LIMIT:?}"
        );
        // Poll interval, not a wait for an outcome: the loop re-checks the count.
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// Debian's nginx serving `/ok` (200) and `/fail` (503) on a port of its own, logging
/// to `access.log` in `dir` with the shipped `log_format telltale`.
struct Nginx {
    server: crate::support::nginx::Nginx,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path) -> Self {
        let port = crate::support::nginx::free_port();
        let http = format!(
            "include {format};\n\
             access_log {log} telltale;\n\
             server {{\n\
             listen 127.0.0.1:{port};\n\
             location = /ok {{ return 200 \"ok\\n\"; }}\n\
             location = /fail {{ return 503; }}\n\
             }}",
            format = repo_root()
                .join("deploy/nginx/access-log-format.conf")
                .display(),
            log = dir.join("access.log").display(),
        );
        Self {
            server: crate::support::nginx::Nginx::start(dir, &http, &[port]),
            port,
        }
    }

    /// One request with `Host: checkout`; nginx has logged it when the answer is read
    /// (it writes the access log line before closing the connection).
    fn get(&self, path: &str) {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: checkout\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }

    fn reopen_logs(&self, log: &Path) {
        self.server.reopen_logs(log);
    }

    fn stop(self) {
        self.server.stop();
    }
}
