//! SLO alerts from the binary to a real Alertmanager (Debian's `prometheus-alertmanager`),
//! routed by `team` to webhook receivers: what a user's Alertmanager does with the
//! engine's own alerts (`SloErrorBudgetBurn`, `severity=critical`), not hand-built ones.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::webhook::{Notification, Receiver};
use crate::support::{ChildGuard, describe, telltale};
use telltale_tls::testing::{Pair, TestCa};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const MINUTE_US: i64 = 60_000_000;

/// A running Alertmanager whose route sends `team="identity"` and `team="payments"` to
/// their own webhook paths and everything else to `unrouted`.
struct Alertmanager {
    url: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

fn start_alertmanager(hooks: &Receiver) -> Alertmanager {
    start_alertmanager_with(hooks, None)
}

/// As [`start_alertmanager`], serving https only with `tls`'s certificate (its
/// `--web.config.file`) when given.
fn start_alertmanager_with(hooks: &Receiver, tls: Option<&Pair>) -> Alertmanager {
    assert!(
        std::path::Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} is missing: `apt-get install prometheus-alertmanager` (./tests/run.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    let mut yml = String::from(
        "route:\n  receiver: unrouted\n  group_by: ['alertname', 'service', 'sli']\n  \
         group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n",
    );
    for team in ["identity", "payments"] {
        writeln!(
            yml,
            "    - matchers: ['team=\"{team}\"']\n      receiver: {team}"
        )
        .unwrap();
    }
    yml.push_str("receivers:\n");
    for name in ["unrouted", "identity", "payments"] {
        writeln!(
            yml,
            "  - name: {name}\n    webhook_configs:\n      - url: {}\n        send_resolved: true",
            hooks.url(name)
        )
        .unwrap();
    }
    std::fs::write(&config, yml).unwrap();
    let web_config = dir.path().join("web.yml");
    if let Some(pair) = tls {
        std::fs::write(
            &web_config,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                pair.cert.display(),
                pair.key.display()
            ),
        )
        .unwrap();
    }
    // Alertmanager cannot report a port it picked, so this one is chosen here.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = ChildGuard::spawn(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .args(tls.map(|_| format!("--web.config.file={}", web_config.display())))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{port}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Over https the port answers once it is open; plain HTTP there gets a 400.
    let ready = || match tls {
        None => crate::support::http::get(addr, "/-/ready").is_some_and(|r| r.status == Some(200)),
        Some(_) => std::net::TcpStream::connect(addr).is_ok(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "alertmanager did not become ready on {url}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Alertmanager {
        url,
        _child: child,
        _dir: dir,
    }
}

/// 150 minutes of three services, 30 events a minute, ending seconds ago: `login`
/// (identity) and `pay` (payments) fail with 503 for the last 30 minutes and are still
/// failing; `profile` (identity) failed for 10 minutes two and a half hours ago and has
/// been healthy since.
fn outage_file(now_us: i64) -> String {
    let mut out = String::new();
    for m in 0..150i64 {
        for i in 0..30i64 {
            let ts = now_us - (150 - m) * MINUTE_US + i * 2_000_000;
            let ts = chrono::DateTime::from_timestamp_micros(ts)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            for (service, failing) in [("login", m >= 120), ("pay", m >= 120), ("profile", m < 10)]
            {
                let status = if failing { 503 } else { 200 };
                writeln!(
                    out,
                    r#"{{"service":"{service}","timestamp":"{ts}","status_code":{status},"latency_ms":12}}"#
                )
                .unwrap();
            }
        }
    }
    out
}

const CATALOGUE: &str = "[defaults]\nalert_tiers = [\"page\"]\n\
    [services.login]\nteam = \"identity\"\n\
    [services.pay]\nteam = \"payments\"\n\
    [services.profile]\nteam = \"identity\"\n";

fn alerts_of(n: &Notification) -> Vec<&serde_json::Value> {
    n.body["alerts"].as_array().unwrap().iter().collect()
}

/// `telltale process --input` over [`outage_file`]`(now_us)` and [`CATALOGUE`], in `dir`,
/// logging at info; `to_alertmanager` adds how it reaches the Alertmanager.
fn process_outage(
    dir: &std::path::Path,
    now_us: i64,
    to_alertmanager: impl FnOnce(&mut Command),
) -> std::process::Output {
    let (input, services) = (dir.join("events.ndjson"), dir.join("services.toml"));
    std::fs::write(&input, outage_file(now_us)).unwrap();
    std::fs::write(&services, CATALOGUE).unwrap();
    let mut cmd = telltale();
    cmd.args(["process", "--input"])
        .arg(&input)
        .arg("--services")
        .arg(&services)
        .arg("--data-dir")
        .arg(dir.join("lake"))
        .env("TELLTALE_LOG", "info");
    to_alertmanager(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    out
}

/// What the receivers got once both teams have a notification.
fn wait_for_both_teams(hooks: &Receiver) -> Vec<Notification> {
    hooks.wait_for(Duration::from_secs(60), |got| {
        ["identity", "payments"]
            .iter()
            .all(|p| got.iter().any(|n| n.path == *p))
    })
}

#[test]
fn regression_a_page_still_firing_at_the_end_of_an_input_reaches_the_team_that_owns_it() {
    let hooks = Receiver::start();
    let am = start_alertmanager(&hooks);
    let dir = tempfile::tempdir().unwrap();
    let now_us = chrono::Utc::now().timestamp_micros();
    let out = process_outage(dir.path(), now_us, |cmd| {
        cmd.env("ALERTMANAGER_URL", &am.url);
    });
    let log = String::from_utf8_lossy(&out.stderr);
    // profile's page fired and resolved in old history: logged only.
    assert!(log.contains("alert change is from old data"), "{log}");

    // The process has exited: what it posted before exiting is all Alertmanager has.
    let got = wait_for_both_teams(&hooks);
    for (path, service) in [("identity", "login"), ("payments", "pay")] {
        let n = got.iter().find(|n| n.path == path).unwrap();
        assert_eq!(n.body["status"], "firing", "{n:#?}");
        let alerts = alerts_of(n);
        assert_eq!(alerts.len(), 1, "{n:#?}");
        let a = alerts[0];
        let labels = &a["labels"];
        assert_eq!(labels["alertname"], "SloErrorBudgetBurn", "{a}");
        assert_eq!(labels["service"], service, "{a}");
        assert_eq!(labels["team"], path, "{a}");
        assert_eq!(labels["severity"], "critical", "{a}");
        assert_eq!(labels["sli"], "availability", "{a}");
        // startsAt is when the outage's page began (about 30 minutes ago), not when it
        // was delivered.
        let starts = chrono::DateTime::parse_from_rfc3339(a["startsAt"].as_str().unwrap())
            .unwrap()
            .timestamp_micros();
        assert!(
            (now_us - 31 * MINUTE_US..now_us - 20 * MINUTE_US).contains(&starts),
            "startsAt {} is not when the outage began: {a}",
            a["startsAt"]
        );
    }
    assert!(
        got.iter().all(|n| n.path != "unrouted"
            && alerts_of(n)
                .iter()
                .all(|a| a["labels"]["service"] != "profile")),
        "only the two firing pages, each to its team: {got:#?}"
    );
}

#[test]
fn alerts_reach_an_alertmanager_over_https_verified_by_the_ca_file() {
    let hooks = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Alertmanager test CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let pair = ca.issue_server(dir.path(), "alertmanager", &["127.0.0.1"]);
    let am = start_alertmanager_with(&hooks, Some(&pair));
    assert!(am.url.starts_with("https://"), "{}", am.url);
    let config = dir.path().join("telltale.toml");
    std::fs::write(
        &config,
        format!(
            "[alertmanager]\nurl = {:?}\n[alertmanager.tls]\nca_file = {:?}\n",
            am.url,
            ca_file.display().to_string()
        ),
    )
    .unwrap();

    process_outage(dir.path(), chrono::Utc::now().timestamp_micros(), |cmd| {
        cmd.arg("--config").arg(&config);
    });
    let got = wait_for_both_teams(&hooks);
    for (path, service) in [("identity", "login"), ("payments", "pay")] {
        let n = got.iter().find(|n| n.path == path).unwrap();
        assert_eq!(n.body["status"], "firing", "{n:#?}");
        assert!(
            alerts_of(n)
                .iter()
                .any(|a| a["labels"]["service"] == service),
            "{n:#?}"
        );
    }
}
