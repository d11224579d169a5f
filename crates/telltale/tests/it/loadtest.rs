//! `telltale loadtest` against a real `telltale process`: the report's numbers, and the
//! lake checked independently with `telltale query`.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::support::http::expect_healthy;
use crate::support::{LISTEN, Server, describe, query, repo_root, telltale as bin};

/// Rows of the run's service in the timestamp span of a phase, via `telltale query`.
fn rows_in(data: &Path, service: &str, span: &Value) -> u64 {
    let (first, last) = (span[0].as_str().unwrap(), span[1].as_str().unwrap());
    let out = query(
        data,
        "json",
        &format!(
            "SELECT count(*) AS n FROM events WHERE service = '{service}' \
             AND timestamp BETWEEN '{first}' AND '{last}'"
        ),
    );
    let row: Value = serde_json::from_str(&out).unwrap();
    row["n"].as_u64().unwrap()
}

fn phase<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name:?} in {report:#}"))
}

/// Body limit of the processor under test: small, so the huge-batch phase stays quick.
const MAX_BODY_BYTES: usize = 1 << 20;

#[test]
fn loadtest_finds_every_acknowledged_event_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let config = dir.path().join("telltale.toml");
    let shipped = std::fs::read_to_string(repo_root().join("config/telltale.toml")).unwrap();
    // Short flush age: acknowledged events reach the lake within a second or two.
    let ours = shipped
        .replace("flush_age = \"10s\"", "flush_age = \"1s\"")
        .replace(
            "max_body_bytes = 16777216",
            &format!("max_body_bytes = {MAX_BODY_BYTES}"),
        );
    assert_ne!(ours, shipped);
    std::fs::write(&config, ours).unwrap();
    let processor = Server::start(
        bin()
            .args(["process", "--config"])
            .arg(&config)
            .args(LISTEN)
            .arg("--data-dir")
            .arg(&data)
            .stderr(Stdio::piped()),
    );
    expect_healthy(processor.addr);

    let report_path = dir.path().join("report.json");
    let out = bin()
        .args(["loadtest", "--connections", "2", "--duration", "3s"])
        .args(["--batch-lines", "500", "--slow-client-time", "2s"])
        .arg("--max-body-bytes")
        .arg(MAX_BODY_BYTES.to_string())
        .arg("--url")
        .arg(processor.url())
        .arg("--data-dir")
        .arg(&data)
        .arg("--json")
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no invalid data"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();

    let steady = &report["steady"];
    assert!(steady["requests"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        steady["sustained_events_per_s"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert!(
        steady["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );

    let v = &report["verification"];
    assert!(v["acknowledged"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(v["present_once"], v["acknowledged"], "{report:#}");
    for key in [
        "missing",
        "altered",
        "duplicated",
        "present_but_refused",
        "unexpected_rows",
    ] {
        assert_eq!(v[key], 0, "{key}: {report:#}");
    }
    assert_eq!(v["deadletter_expected"], 3, "{report:#}");
    assert_eq!(
        v["deadletter_found"], 3,
        "the malformed lines are in the dead letter"
    );
    assert_eq!(report["invalid_data"], false);

    for name in [
        "huge (under limit)",
        "huge (over limit)",
        "empty",
        "malformed",
        "slow client",
        "drop mid-body",
    ] {
        assert_eq!(phase(&report, name)["ok"], true, "{name}: {report:#}");
    }
    assert!(
        phase(&report, "huge (over limit)")["got"]
            .as_str()
            .unwrap()
            .starts_with("413"),
        "{report:#}"
    );
    // Independently of the loadtest's own check: the lake as `telltale query` sees it.
    let service = report["service"].as_str().unwrap();
    let drop = &phase(&report, "drop mid-body")["events"];
    assert_eq!(
        rows_in(&data, service, drop),
        0,
        "the cut-off batch is absent"
    );
    let over = &phase(&report, "huge (over limit)")["events"];
    assert_eq!(rows_in(&data, service, over), 0, "the 413 batch is absent");
    let slow = &phase(&report, "slow client")["events"];
    assert_eq!(
        rows_in(&data, service, slow),
        50,
        "the slow batch is present"
    );
    let malformed = &phase(&report, "malformed")["events"];
    assert_eq!(rows_in(&data, service, malformed), 5, "only the good lines");

    // The check is not vacuous: against a lake that is not the processor's, the
    // acknowledged events are missing and the run fails.
    let elsewhere = dir.path().join("not-the-lake");
    let wrong_report = dir.path().join("wrong.json");
    let out = bin()
        .args([
            "loadtest",
            "--phases",
            "malformed",
            "--verify-timeout",
            "2s",
        ])
        .arg("--url")
        .arg(processor.url())
        .arg("--data-dir")
        .arg(&elsewhere)
        .arg("--json")
        .arg(&wrong_report)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid data"),
        "{}",
        describe(&out)
    );
    let wrong: Value =
        serde_json::from_str(&std::fs::read_to_string(&wrong_report).unwrap()).unwrap();
    assert_eq!(wrong["verification"]["missing"], 5, "{wrong:#}");
    assert_eq!(wrong["verification"]["deadletter_found"], 0, "{wrong:#}");

    // Stop it like systemd or docker would.
    let out = processor.sigterm_and_wait();
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn loadtest_refuses_targets_off_this_machine() {
    for url in ["http://192.0.2.10:8080", "http://example.com/v1/events"] {
        let out = bin()
            .args(["loadtest", "--duration", "1s", "--url", url])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a loopback address"), "{stderr}");
    }
}

/// `--protocol otlp`: the same events as OTLP/HTTP protobuf server spans to `/v1/traces`
/// (the OTLP side of the benchmark in docs/benchmarks.md); the lake check finds every
/// acknowledged span as the row its NDJSON line would make, exactly once.
#[test]
fn loadtest_over_otlp_spans_finds_every_acknowledged_event_in_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let config = dir.path().join("telltale.toml");
    let shipped = std::fs::read_to_string(repo_root().join("config/telltale.toml")).unwrap();
    std::fs::write(
        &config,
        shipped.replace("flush_age = \"10s\"", "flush_age = \"1s\""),
    )
    .unwrap();
    let processor = Server::start(
        bin()
            .args(["process", "--config"])
            .arg(&config)
            .args(LISTEN)
            .arg("--data-dir")
            .arg(&data)
            .stderr(Stdio::piped()),
    );
    expect_healthy(processor.addr);
    let report_path = dir.path().join("report.json");
    let out = bin()
        .args(["loadtest", "--protocol", "otlp", "--phases", "steady"])
        .args([
            "--connections",
            "2",
            "--duration",
            "2s",
            "--batch-lines",
            "300",
        ])
        .arg("--url")
        .arg(processor.url())
        .arg("--data-dir")
        .arg(&data)
        .arg("--json")
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert!(
        report["url"].as_str().unwrap().ends_with("/v1/traces"),
        "{report:#}"
    );
    let v = &report["verification"];
    assert!(v["acknowledged"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(v["present_once"], v["acknowledged"], "{report:#}");
    for key in ["missing", "altered", "duplicated", "unexpected_rows"] {
        assert_eq!(v[key], 0, "{key}: {report:#}");
    }
    assert_eq!(
        report["steady"]["status_2xx"], report["steady"]["requests"],
        "{report:#}"
    );
    // Other phases are NDJSON-only: asking for them with otlp is refused with the fix.
    let refused = bin()
        .args(["loadtest", "--protocol", "otlp", "--url"])
        .arg(processor.url())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--phases steady"),
        "{}",
        describe(&refused)
    );
    processor.sigterm_and_expect_success();
}
