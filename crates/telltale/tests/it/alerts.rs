//! SLO alerts from the binary to a real Alertmanager (Debian's `prometheus-alertmanager`),
//! routed by `team` to webhook receivers: what a user's Alertmanager does with the
//! engine's own alerts (`SloErrorBudgetBurn`, `severity=critical`), not hand-built ones.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::webhook::{Notification, Receiver};
use crate::support::{ChildGuard, describe, telltale};

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
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while crate::support::http::get(format!("127.0.0.1:{port}").parse().unwrap(), "/-/ready")
        .is_none_or(|r| r.status != Some(200))
    {
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

#[test]
fn regression_a_page_still_firing_at_the_end_of_an_input_reaches_the_team_that_owns_it() {
    let hooks = Receiver::start();
    let am = start_alertmanager(&hooks);
    let dir = tempfile::tempdir().unwrap();
    let (input, services) = (
        dir.path().join("events.ndjson"),
        dir.path().join("services.toml"),
    );
    let now_us = chrono::Utc::now().timestamp_micros();
    std::fs::write(&input, outage_file(now_us)).unwrap();
    std::fs::write(&services, CATALOGUE).unwrap();

    let out = telltale()
        .args(["process", "--input"])
        .arg(&input)
        .arg("--services")
        .arg(&services)
        .arg("--data-dir")
        .arg(dir.path().join("lake"))
        .env("ALERTMANAGER_URL", &am.url)
        .env("TELLTALE_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    // profile's page fired and resolved in old history: logged only.
    assert!(log.contains("alert change is from old data"), "{log}");

    // The process has exited: what it posted before exiting is all Alertmanager has.
    let got = hooks.wait_for(Duration::from_secs(60), |got| {
        ["identity", "payments"]
            .iter()
            .all(|p| got.iter().any(|n| n.path == *p))
    });
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
