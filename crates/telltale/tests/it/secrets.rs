//! Secrets never reach the logs: `telltale run` at debug level, with ingest, admin and
//! InfluxDB tokens set, taking requests with the right, a wrong and a guessed token, and
//! failing to reach its InfluxDB (so the sink logs its errors).

use std::process::Stdio;

use crate::support::child::Server;
use crate::support::client::{Req, send};
use crate::support::{LISTEN, closed_port, telltale};

const INGEST: &str = "ingest-secret-5d1c0a";
const ADMIN: &str = "admin-secret-9f3e27";
const INFLUX: &str = "influx-secret-b8a410";
const GUESS: &str = "guessed-secret-77e2c1";

/// POST `body` to `http://addr{path}` with `Authorization: Bearer token`: the status.
fn post(addr: std::net::SocketAddr, path: &str, token: &str, body: &str) -> u16 {
    let req = Req {
        token: Some(token),
        body: Some(body.to_owned()),
        content_type: Some("application/json"),
        ..Req::default()
    };
    send("POST", &format!("http://{addr}{path}"), req)
        .expect("an answer")
        .status
}

#[test]
fn no_token_or_influx_secret_appears_in_the_debug_log() {
    let dir = tempfile::tempdir().unwrap();
    let run = Server::start(
        telltale()
            .args(["run", "--rate", "50", "--seed", "5", "--no-incidents"])
            .args(LISTEN)
            .arg("--data-dir")
            .arg(dir.path())
            .env("TELLTALE_INGEST_TOKENS", INGEST)
            .env("TELLTALE_ADMIN_TOKENS", ADMIN)
            .env("INFLUX_URL", format!("http://{}", closed_port()))
            .env("INFLUX_ORG", "acme")
            .env("INFLUX_BUCKET", "telltale")
            .env("INFLUX_TOKEN", INFLUX)
            .env("TELLTALE_LOG", "debug")
            .stderr(Stdio::piped()),
    );
    let line =
        r#"{"service":"auth","timestamp":"2026-12-03T10:00:00Z","status_code":200,"latency_ms":5}"#;
    assert_eq!(post(run.addr, "/v1/events", GUESS, line), 401);
    assert_eq!(post(run.addr, "/v1/events", INGEST, line), 200);
    let spike = r#"{"factor":2,"duration":"1s"}"#;
    assert_eq!(post(run.addr, "/control/spike", INGEST, spike), 403);
    assert_eq!(post(run.addr, "/control/spike", ADMIN, spike), 200);
    let out = run.sigterm_and_wait();
    let log = String::from_utf8_lossy(&out.stderr);
    // The log is at debug level and the sink failed: there was plenty to say.
    assert!(log.contains("DEBUG"), "debug logging was on:\n{log}");
    assert!(
        log.to_lowercase().contains("influx"),
        "the InfluxDB sink logged its failures:\n{log}"
    );
    for secret in [INGEST, ADMIN, INFLUX, GUESS] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}
