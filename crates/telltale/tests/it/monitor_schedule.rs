//! Scheduled URL monitors (issue #17) on a real server: `/api/v1/monitors` and its
//! errors, a new monitor checked at once with its result in the pipeline, monitors that
//! survive a restart, monitors of the config file, `telltale monitor add/list/remove`,
//! a target that never answers beside one that does, and the status page's form and
//! table in headless Chromium. Targets are Debian's nginx and a listener that accepts
//! and never answers.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::browser::Page;
use crate::support::child::Server;
use crate::support::client::{Req, send};
use crate::support::nginx::{Nginx, free_port};
use crate::support::{LISTEN, describe, metric, telltale, wait_for_metric};

const READ: &str = "monitor-read-41";
const WRITE: &str = "monitor-write-42";
const ADMIN: &str = "monitor-admin-43";
const LIMIT: Duration = Duration::from_secs(60);

/// nginx on a free port: `/ok` answers 200, `/fail` 500.
fn target(dir: &Path) -> (Nginx, u16) {
    let port = free_port();
    let http = format!(
        "access_log off;\nserver {{ listen 127.0.0.1:{port};\n\
         location = /ok {{ return 200 \"ok\\n\"; }}\n\
         location = /fail {{ return 500; }}\n}}\n"
    );
    (Nginx::start(&dir.join("nginx"), &http, &[port]), port)
}

/// Monitors checked at offset 0: a monitor loaded at start is checked at once too.
const NO_JITTER: &str = "jitter = 0.0\n";

/// `telltale process` over `dir/lake` with `monitors` as the `[monitors]` table's lines
/// (after [`NO_JITTER`] unless they set `jitter`), and tokens when `tokens`.
fn server(dir: &Path, monitors: &str, tokens: bool) -> Server {
    let config = dir.join("telltale.toml");
    let jitter = if monitors.contains("jitter") {
        ""
    } else {
        NO_JITTER
    };
    std::fs::write(&config, format!("[monitors]\n{jitter}{monitors}\n")).unwrap();
    let mut cmd = telltale();
    cmd.arg("process")
        .args(LISTEN)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("lake"))
        .stderr(Stdio::inherit());
    if tokens {
        cmd.env("TELLTALE_READ_TOKENS", READ)
            .env("TELLTALE_INGEST_TOKENS", WRITE)
            .env("TELLTALE_ADMIN_TOKENS", ADMIN);
    }
    Server::start(&mut cmd)
}

fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let req = Req {
        token,
        body: body.map(|b| b.to_string()),
        content_type: Some("application/json"),
        ..Req::default()
    };
    let a = send(method, &format!("http://{addr}{path}"), req).unwrap();
    let v = serde_json::from_str(&a.body).unwrap_or(Value::String(a.body.clone()));
    (a.status, v)
}

fn add(addr: SocketAddr, url: &str, every: &str, token: Option<&str>) -> (u16, Value) {
    let body = serde_json::json!({"url": url, "every": every});
    call(addr, "POST", "/api/v1/monitors", Some(body), token)
}

fn list(addr: SocketAddr) -> Vec<Value> {
    let (status, v) = call(addr, "GET", "/api/v1/monitors", None, Some(READ));
    assert_eq!(status, 200, "{v}");
    v["monitors"].as_array().unwrap().clone()
}

/// The listed monitor `id`, once `check` accepts it.
fn wait_for(addr: SocketAddr, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let found = list(addr).into_iter().find(|m| m["id"] == id);
        if let Some(m) = found.filter(|m| check(m)) {
            return m;
        }
        assert!(
            start.elapsed() < LIMIT,
            "monitor {id} never got there: {:?}",
            list(addr)
        );
        // Poll interval, not a wait for an outcome: the loop re-checks the API.
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn the_api_refuses_bad_urls_frequencies_duplicates_unknown_ids_and_missing_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), "", true);
    let a = s.addr;
    let (st, v) = add(a, "ftp://example.com/", "5m", Some(ADMIN));
    assert_eq!((st, v["field"].as_str()), (400, Some("url")), "{v}");
    let (st, v) = add(a, "example.com", "5m", Some(ADMIN));
    assert_eq!((st, v["field"].as_str()), (400, Some("url")), "{v}");
    let (st, v) = add(a, "http://127.0.0.1:9/", "3m", Some(ADMIN));
    assert_eq!((st, v["field"].as_str()), (400, Some("every")), "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("\"1m\", \"2m\", \"5m\", \"10m\", \"20m\", \"30m\""),
        "the message names the allowed values: {v}"
    );
    let (st, v) = add(a, "http://127.0.0.1:9/", "30m", None);
    assert_eq!(st, 401, "no token: {v}");
    let (st, v) = add(a, "http://127.0.0.1:9/", "30m", Some(WRITE));
    assert_eq!(st, 403, "an ingest token may not: {v}");
    let (st, v) = add(a, "http://127.0.0.1:9/", "30m", Some(ADMIN));
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (st, v) = add(a, "http://127.0.0.1:9", "30m", Some(ADMIN));
    assert_eq!(
        (st, v["field"].as_str()),
        (409, Some("url")),
        "the same URL normalised: {v}"
    );
    assert!(
        v["error"].as_str().unwrap().contains(&id),
        "names the monitor: {v}"
    );
    let (st, v) = call(
        a,
        "DELETE",
        "/api/v1/monitors/0000000000000000",
        None,
        Some(ADMIN),
    );
    assert_eq!((st, v["field"].as_str()), (404, Some("id")), "{v}");
    let (st, _) = call(a, "DELETE", &format!("/api/v1/monitors/{id}"), None, None);
    assert_eq!(st, 401);
    let (st, _) = call(
        a,
        "DELETE",
        &format!("/api/v1/monitors/{id}"),
        None,
        Some(READ),
    );
    assert_eq!(st, 403);
    let not_json = send(
        "POST",
        &format!("http://{a}/api/v1/monitors"),
        Req {
            token: Some(ADMIN),
            body: Some("url=x".into()),
            content_type: Some("application/x-www-form-urlencoded"),
            ..Req::default()
        },
    )
    .unwrap();
    assert_eq!(not_json.status, 415, "{}", not_json.body);
    let (st, v) = call(
        a,
        "POST",
        "/api/v1/monitors",
        Some(serde_json::json!({"every": "5m"})),
        Some(ADMIN),
    );
    assert_eq!(st, 422, "no url: {v}");
    let (st, v) = call(
        a,
        "DELETE",
        &format!("/api/v1/monitors/{id}"),
        None,
        Some(ADMIN),
    );
    assert_eq!((st, v["id"].as_str()), (200, Some(id.as_str())), "{v}");
    assert!(list(a).is_empty());
    s.sigterm_and_expect_success();
}

#[test]
fn an_added_monitor_is_checked_at_once_its_result_ingested_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = target(dir.path());
    // Offsets of up to 15 minutes: only the immediate first check comes within the test.
    let s = server(dir.path(), "jitter = 0.5\nmax_jitter = \"15m\"\n", false);
    let received = |addr| {
        let body = crate::support::http::get(addr, "/metrics")
            .and_then(|r| r.body)
            .unwrap();
        body.contains("telltale_lines_received_total{source=\"monitor\"}")
            .then(|| {
                crate::support::sample(&body, "telltale_lines_received_total{source=\"monitor\"}")
            })
    };
    assert_eq!(
        received(s.addr),
        None,
        "no monitor line before the first check"
    );
    // Every 30 minutes: a result within the test's minute is the first, immediate check.
    let (st, v) = add(s.addr, &format!("http://127.0.0.1:{port}/ok"), "30m", None);
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let m = wait_for(s.addr, id, |m| !m["last"].is_null());
    assert_eq!(m["last"]["status_code"], 200, "{m}");
    assert_eq!(m["last"]["monitor_id"], id);
    assert_eq!(m["last"]["every_s"], 1800);
    assert_eq!(
        (m["checks"].as_u64(), m["availability"].as_f64()),
        (Some(1), Some(1.0))
    );
    assert_eq!(
        metric(s.addr, "telltale_monitor_checks_total{result=\"up\"}"),
        1.0
    );
    // The result line went into the pipeline's ingest like any line.
    let start = std::time::Instant::now();
    while received(s.addr).is_none_or(|n| n < 1.0) {
        assert!(
            start.elapsed() < LIMIT,
            "the result line never reached the pipeline"
        );
        // Poll interval, not a wait for an outcome: the loop re-checks /metrics.
        std::thread::park_timeout(Duration::from_millis(50));
    }
    assert_eq!(metric(s.addr, "telltale_monitors"), 1.0);
    s.sigterm_and_expect_success();
}

#[test]
fn monitors_survive_a_restart_and_those_of_the_config_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = target(dir.path());
    let listed =
        format!("[[monitors.targets]]\nurl = \"http://127.0.0.1:{port}/fail\"\nevery = \"10m\"\n");
    let s = server(dir.path(), &listed, false);
    let all = list(s.addr);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["source"], "config");
    let config_id = all[0]["id"].as_str().unwrap().to_owned();
    // Offset 0 (jitter 0): the config's monitor is checked at start; nginx says 500.
    let m = wait_for(s.addr, &config_id, |m| !m["last"].is_null());
    assert_eq!(
        (
            m["last"]["status_code"].as_u64(),
            m["availability"].as_f64()
        ),
        (Some(500), Some(0.0))
    );
    let (st, v) = call(
        s.addr,
        "DELETE",
        &format!("/api/v1/monitors/{config_id}"),
        None,
        None,
    );
    assert_eq!((st, v["field"].as_str()), (409, Some("id")), "{v}");
    let (st, v) = add(s.addr, &format!("http://127.0.0.1:{port}/ok"), "20m", None);
    assert_eq!(st, 201, "{v}");
    let added = v["id"].as_str().unwrap().to_owned();
    s.sigterm_and_expect_success();
    assert!(dir.path().join("lake/monitors/monitors.json").exists());

    let again = server(dir.path(), &listed, false);
    let ids: Vec<(String, String)> = list(again.addr)
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![(config_id, "config".into()), (added.clone(), "api".into())]
    );
    // Loaded at start, checked at its offset (0 here).
    wait_for(again.addr, &added, |m| m["last"]["status_code"] == 200);
    again.sigterm_and_expect_success();
}

#[test]
fn the_cli_adds_lists_and_removes_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = target(dir.path());
    let s = server(dir.path(), "", true);
    let url = format!("http://127.0.0.1:{port}/ok");
    let cli = |args: &[&str], token: Option<&str>| {
        let mut c = telltale();
        c.arg("monitor").args(args).args(["--server", &s.url()]);
        c.env_remove("TELLTALE_ADMIN_TOKEN");
        if let Some(t) = token {
            c.args(["--token", t]);
        }
        c.output().unwrap()
    };
    let refused = cli(&["add", &url, "--every", "5m"], None);
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        describe(&refused)
    );
    let bad = cli(&["add", &url, "--every", "7m"], Some(ADMIN));
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("\"1m\", \"2m\", \"5m\", \"10m\", \"20m\", \"30m\""),
        "the server's message: {}",
        describe(&bad)
    );
    let added = cli(&["add", &url, "--every", "5m"], Some(ADMIN));
    assert!(added.status.success(), "{}", describe(&added));
    let out = String::from_utf8_lossy(&added.stdout).to_string();
    let id = out.split_whitespace().nth(2).unwrap().to_owned();
    wait_for(s.addr, &id, |m| !m["last"].is_null());
    let listed = cli(&["list"], Some(READ));
    assert!(listed.status.success(), "{}", describe(&listed));
    let table = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(table.starts_with("ID"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("5m")
            && row.contains("up 200")
            && row.contains("100.0% of 1")
            && row.contains(&url),
        "{row}"
    );
    let removed = cli(&["remove", &id], Some(ADMIN));
    assert!(removed.status.success(), "{}", describe(&removed));
    let again = cli(&["remove", &id], Some(ADMIN));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("404"),
        "{}",
        describe(&again)
    );
    let empty = cli(&["list"], Some(READ));
    assert!(
        String::from_utf8_lossy(&empty.stdout).contains("no monitors"),
        "{}",
        describe(&empty)
    );
    s.sigterm_and_expect_success();
}

#[test]
fn a_target_that_never_answers_does_not_delay_another_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = target(dir.path());
    // Accepts connections (the kernel does, from the backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    // A pool of two and a timeout far beyond the test: the silent check holds its slot.
    let s = server(dir.path(), "timeout = \"10m\"\nmax_concurrent = 2\n", false);
    let (st, v) = add(s.addr, &silent_url, "1m", None);
    assert_eq!(st, 201, "{v}");
    let silent_id = v["id"].as_str().unwrap().to_owned();
    wait_for_metric(s.addr, "telltale_monitor_checks_in_flight", LIMIT, |n| {
        n == 1.0
    });
    let (st, v) = add(s.addr, &format!("http://127.0.0.1:{port}/ok"), "1m", None);
    assert_eq!(st, 201, "{v}");
    let fast = wait_for(s.addr, v["id"].as_str().unwrap(), |m| !m["last"].is_null());
    assert_eq!(fast["last"]["status_code"], 200);
    let hung = list(s.addr)
        .into_iter()
        .find(|m| m["id"] == silent_id.as_str())
        .unwrap();
    assert!(
        hung["last"].is_null(),
        "still waiting for the silent target: {hung}"
    );
    assert_eq!(metric(s.addr, "telltale_monitor_checks_in_flight"), 1.0);
    drop(silent);
    s.sigterm_and_expect_success();
}

/// The status page's monitor rows: id, state and the cells as text.
const MONITOR_ROWS: &str = r#"JSON.stringify([...document.querySelectorAll('#monitor-rows tr[data-id]')].map(r => ({
    id: r.dataset.id, state: r.dataset.state, cells: [...r.cells].map(c => c.textContent.trim()),
})))"#;

#[test]
fn the_status_page_adds_shows_and_removes_a_monitor_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = target(dir.path());
    let s = server(dir.path(), "", true);
    let url = format!("http://127.0.0.1:{port}/fail");
    let mut page = Page::open(&format!("{}/", s.url()), &dir.path().join("profile"));
    let rows = |page: &mut Page, check: &dyn Fn(&Vec<Value>) -> bool| -> Vec<Value> {
        let v = page.eval_until(MONITOR_ROWS, LIMIT, |v| {
            let rows: Vec<Value> =
                serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap_or_default();
            check(&rows)
        });
        serde_json::from_str(v.as_str().unwrap()).unwrap()
    };
    page.eval_until(
        "[...document.querySelectorAll('#monitor-every option')].map(o => o.value).join(',')",
        LIMIT,
        |v| v == "1m,2m,5m,10m,20m,30m",
    );
    // Without the admin token the server refuses, and the page says why.
    page.eval(&format!(
        "document.getElementById('monitor-url').value = {url:?}; document.getElementById('monitor-every').value = '10m'; document.getElementById('monitor-add').click()"
    ));
    page.eval_until(
        "document.getElementById('monitor-error').textContent",
        LIMIT,
        |v| v.as_str().is_some_and(|t| t.contains("bearer token")),
    );
    assert!(list(s.addr).is_empty());
    page.eval(&format!(
        "document.getElementById('monitor-token').value = {ADMIN:?}; document.getElementById('monitor-add').click()"
    ));
    let shown = rows(&mut page, &|r| r.len() == 1 && r[0]["state"] == "down");
    let cells = shown[0]["cells"].as_array().unwrap();
    assert_eq!(cells[1], url.as_str());
    assert_eq!(cells[2], "10m");
    assert_eq!(cells[3], "500", "the last status");
    assert_eq!(cells[6], "0.0% of 1", "availability");
    let api = list(s.addr);
    assert_eq!(api.len(), 1);
    assert_eq!(shown[0]["id"], api[0]["id"]);
    page.eval(&format!(
        "document.querySelector('button[data-remove=\"{}\"]').click()",
        api[0]["id"].as_str().unwrap()
    ));
    rows(&mut page, &|r| r.is_empty());
    assert!(list(s.addr).is_empty(), "removed on the server too");
    drop(page);
    s.sigterm_and_expect_success();
}
