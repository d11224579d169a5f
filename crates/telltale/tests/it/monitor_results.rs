//! URL check results (`"kind":"http"`, issue #17) through a real `telltale process`:
//! POSTed to `/v1/events` beside a line printed by a real `telltale monitor check`, they
//! arrive in the lake's `monitors` table (read back with `telltale query`), in a real
//! InfluxDB 1.x as `http_check` points, and as SLI events of their URL in
//! `/api/v1/slo`, where a failing monitor is red. A bad check line in the batch is a dead
//! letter naming its field; the batch's good lines stay.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use telltale_influx::testing::{Server as Influx, wait_until};

use crate::support::{Server, describe, http, process_command, query_json, repo_root, telltale};

const DB: &str = "telltale";
const UP: &str = "https://up.example/health";
const DOWN: &str = "https://down.example/health";

/// One result line of monitor `id` checking `url` at `at_ms`.
fn result(url: &str, id: &str, at_ms: i64, status: Option<u16>, error: Option<&str>) -> Value {
    let answered = status.is_some();
    json!({
        "kind": "http", "url": url, "monitor_id": id, "every_s": 60,
        "timestamp": chrono::DateTime::from_timestamp_millis(at_ms).unwrap().to_rfc3339(),
        "status_code": status, "duration_ms": if answered { 40.5 } else { 1.5 },
        "dns_ms": 0.5, "connect_ms": if answered { Some(1.0) } else { None },
        "tls_ms": if answered { Some(12.0) } else { None },
        "ttfb_ms": if answered { Some(20.0) } else { None },
        "transfer_ms": if answered { Some(0.3) } else { None },
        "redirects": 0, "body_bytes": if answered { Some(2) } else { None },
        "cert_expiry_days": 30.5, "error": error,
        "error_message": error.map(|_| "Connection refused"),
    })
}

/// The line `telltale monitor check` prints for a port nobody listens on.
fn real_refused_check() -> String {
    let url = format!("http://{}/health", crate::support::closed_port());
    let out = telltale()
        .args(["monitor", "check", &url])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout.clone()).unwrap();
    let v: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("not a result line ({e}): {}", describe(&out)));
    assert_eq!(v["error"], "connect_refused", "{v}");
    line.trim().to_owned()
}

/// `GET /api/v1/slo` until `check` accepts the answer, for at most `limit`; the answer
/// then.
fn wait_for_slo(
    addr: std::net::SocketAddr,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let body = http::get(addr, "/api/v1/slo")
            .and_then(|r| r.body)
            .expect("GET /api/v1/slo answers");
        let v: Value = serde_json::from_str(&body).unwrap();
        if check(&v) {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "not as expected within {limit:?}: {v:#}"
        );
        // Poll interval, not a wait for an outcome: the loop re-checks the condition.
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn service<'a>(slo: &'a Value, name: &str) -> Option<&'a Value> {
    slo["services"]
        .as_array()?
        .iter()
        .find(|s| s["service"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_results_reach_the_lake_influxdb_and_the_slo_status() {
    let dir = tempfile::tempdir().unwrap();
    let influx = Influx::influxd().await;
    influx
        .influxql(DB, &format!("CREATE DATABASE \"{DB}\""))
        .await;
    let services = dir.path().join("services.toml");
    std::fs::write(
        &services,
        format!(
            "[monitor_defaults]\nteam = \"sre\"\n\n[monitors.\"{DOWN}\"]\nteam = \"web\"\nmin_events = 5\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let processor = Server::start(
        process_command(&data)
            .arg("--config")
            .arg(repo_root().join("config/telltale.toml"))
            .arg("--services")
            .arg(&services)
            .env("INFLUX_URL", influx.url())
            .env("INFLUX_API", "v1")
            .env("INFLUX_DATABASE", DB)
            .stderr(Stdio::inherit()),
    );
    let addr = processor.addr;

    // 20 minutes of checks, one a minute each: `up` answers 200, `down` answers 503 or
    // is refused. Then the bad line, then the real checker's line (now, one-off).
    let now_ms = chrono::Utc::now().timestamp_millis();
    let t0 = now_ms / 60_000 * 60_000 - 21 * 60_000;
    let mut lines = Vec::new();
    for i in 0..20 {
        let at = t0 + i * 60_000 + 5_000;
        lines.push(result(UP, "up-1", at, Some(200), None).to_string());
        lines.push(if i % 2 == 0 {
            result(DOWN, "down-1", at, Some(503), None).to_string()
        } else {
            result(DOWN, "down-1", at, None, Some("connect_refused")).to_string()
        });
    }
    let mut bad = result(DOWN, "down-1", t0 + 20 * 60_000, Some(200), None);
    bad["duration_ms"] = json!("slow");
    lines.push(bad.to_string());
    let bad_line = lines.len();
    lines.push(real_refused_check());
    let body = lines.join("\n") + "\n";
    let r = http::request(addr, "POST", "/v1/events", &body).expect("POST /v1/events");
    assert_eq!(r.status, Some(200), "{}", r.raw);
    let answer: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (&answer["accepted"], &answer["rejected"]),
        (&json!(41), &json!(1)),
        "{answer}"
    );
    let e = &answer["errors"][0];
    assert_eq!(
        (&e["line"], &e["field"], &e["reason"]),
        (
            &json!(bad_line),
            &json!("duration_ms"),
            &json!("wrong_type")
        ),
        "{answer}"
    );

    // The SLO status: the failing monitor is red, under its URL and its table's team;
    // the healthy one green, with [monitor_defaults]' team.
    let slo = wait_for_slo(addr, Duration::from_secs(60), |v| {
        service(v, DOWN).is_some_and(|s| s["state"] == "red") && service(v, UP).is_some()
    });
    let (down, up) = (service(&slo, DOWN).unwrap(), service(&slo, UP).unwrap());
    assert_eq!(down["team"], "web", "{down:#}");
    assert_eq!(
        (&up["state"], &up["team"]),
        (&json!("green"), &json!("sre")),
        "{up:#}"
    );
    let availability = down["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sli"] == "availability")
        .expect("an availability SLO");
    assert_eq!(availability["state"], "red", "{down:#}");

    // InfluxDB: one `http_check` point per result.
    let points = wait_for_points(&influx, 41).await;
    let down_points: Vec<_> = points.iter().filter(|p| p["url"] == DOWN).collect();
    assert_eq!(down_points.len(), 20);
    assert!(
        down_points
            .iter()
            .all(|p| p["up"] == 0 && p["monitor_id"] == "down-1")
    );
    assert_eq!(
        down_points
            .iter()
            .filter(|p| p["error"] == "connect_refused" && p["status_class"] == "none")
            .count(),
        10
    );
    assert!(
        down_points
            .iter()
            .any(|p| p["status_code"] == 503 && p["status_class"] == "5xx" && p["error"] == "none")
    );
    let up_points: Vec<_> = points.iter().filter(|p| p["url"] == UP).collect();
    assert_eq!(up_points.len(), 20);
    assert!(
        up_points
            .iter()
            .all(|p| p["up"] == 1 && p["tls_ms"] == 12.0)
    );
    assert!(points.iter().any(|p| p["monitor_id"] == "adhoc"));

    let out = processor.sigterm_and_wait();
    assert!(out.status.success(), "{}", describe(&out));

    // The lake: every result a row of `monitors`, partitioned by monitor id.
    let rows = query_json(
        &data,
        "SELECT monitor_id, count(*) AS n, sum(CASE WHEN up THEN 1 ELSE 0 END) AS ups, \
         count(error) AS errors, coalesce(max(status_code), 0) AS max_status, \
         count(tls_ms) AS tls \
         FROM monitors GROUP BY monitor_id ORDER BY monitor_id",
    );
    assert_eq!(
        rows,
        [
            json!({"monitor_id": "adhoc", "n": 1, "ups": 0, "errors": 1, "max_status": 0, "tls": 0}),
            json!({"monitor_id": "down-1", "n": 20, "ups": 0, "errors": 10, "max_status": 503, "tls": 10}),
            json!({"monitor_id": "up-1", "n": 20, "ups": 20, "errors": 0, "max_status": 200, "tls": 20}),
        ],
        "{rows:#?}"
    );
    let types = query_json(
        &data,
        "SELECT arrow_typeof(timestamp) AS ts, arrow_typeof(dns_ms) AS dns, \
         arrow_typeof(error) AS error, url FROM monitors WHERE monitor_id = 'adhoc'",
    );
    let ts = types[0]["ts"].as_str().unwrap();
    assert!(
        ts.starts_with("Timestamp(") && ts.contains("UTC"),
        "{types:?}"
    );
    assert_eq!(
        (&types[0]["dns"], &types[0]["error"]),
        (&json!("Float64"), &json!("Utf8"))
    );
    assert!(
        types[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );

    // The dead letter: the bad line with line, field and reason.
    let dead: Vec<Value> = crate::support::walk(&data.join("deadletter"))
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "ndjson"))
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(
        (&dead[0]["field"], &dead[0]["reason"]),
        (&json!("duration_ms"), &json!("wrong_type")),
        "{dead:#?}"
    );
    assert!(dead[0]["raw"].as_str().unwrap().contains("\"slow\""));
}

/// The `http_check` points, once there are `n` of them (at most 30 s).
async fn wait_for_points(influx: &Influx, n: usize) -> Vec<serde_json::Map<String, Value>> {
    wait_until("the http_check points", Duration::from_secs(30), || async {
        influx.select_all(DB, "http_check").await.len() >= n
    })
    .await;
    let points = influx.select_all(DB, "http_check").await;
    assert_eq!(points.len(), n);
    points
}

/// `telltale monitor check URL | telltale process --input -`: the checker's own line,
/// piped, is a row of the `monitors` table (one-off: `adhoc`), and a rollup of its URL.
#[test]
fn a_piped_check_result_is_a_monitors_row_and_a_rollup_of_its_url() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let line = real_refused_check();
    let url = serde_json::from_str::<Value>(&line).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut child = crate::support::ChildGuard::spawn(
        telltale()
            .args(["process", "--input", "-", "--data-dir"])
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 accepted, 0 rejected"), "{stderr}");
    let rows = query_json(&data, "SELECT monitor_id, url, error, up FROM monitors");
    assert_eq!(
        rows,
        [json!({"monitor_id": "adhoc", "url": url, "error": "connect_refused", "up": false})]
    );
    let rollups = query_json(
        &data,
        "SELECT service, team, sum(count) AS n, sum(errors) AS errors FROM rollups GROUP BY 1, 2",
    );
    assert_eq!(
        rollups,
        [json!({"service": url, "team": "unowned", "n": 1, "errors": 1})]
    );
}
