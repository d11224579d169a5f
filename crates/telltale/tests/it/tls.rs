//! HTTPS end to end between telltale's own binaries: `telltale process --tls-cert` taking
//! `telltale sim --output https://… --tls-ca`'s lines, client certificates (mTLS), and a
//! plain-HTTP client on the TLS port getting an answer that says what to do.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use telltale_tls::testing::{Pair, TestCa};

use crate::support::child::{Server, process_command};
use crate::support::client::{Req, send};
use crate::support::{describe, http, sample, telltale};

/// GET `https://addr{path}` trusting `ca`, presenting `identity`: the status and body, or
/// the client's error (a refused handshake).
fn https_get(
    addr: SocketAddr,
    path: &str,
    ca: &Path,
    identity: Option<&Pair>,
) -> Result<(u16, String), String> {
    let req = Req {
        ca: Some(ca),
        identity,
        ..Req::default()
    };
    send("GET", &format!("https://{addr}{path}"), req).map(|a| (a.status, a.body))
}

/// The value of `series` in `/metrics`, read over https.
fn https_metric(addr: SocketAddr, ca: &Path, identity: Option<&Pair>, series: &str) -> f64 {
    let (status, body) = https_get(addr, "/metrics", ca, identity).expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    sample(&body, series)
}

/// `telltale sim` sending `count` lines (seed `seed`) to `processor` over https, warnings
/// only; the caller adds the TLS flags.
fn sim_to(processor: &Server, count: &str, seed: &str) -> std::process::Command {
    let mut c = telltale();
    c.args(["sim", "--count", count, "--seed", seed, "--output"])
        .arg(format!("https://{}/v1/events", processor.addr))
        .env("TELLTALE_LOG", "warn")
        .stdout(Stdio::null());
    c
}

const INGESTED: &str = "telltale_events_ingested_total{kind=\"service\"}";

#[test]
fn a_processor_over_https_takes_a_simulators_lines_verified_by_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("telltale test CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let processor = Server::start(
        process_command(&dir.path().join("lake"))
            .arg("--tls-cert")
            .arg(&pair.cert)
            .arg("--tls-key")
            .arg(&pair.key)
            .stderr(Stdio::inherit()),
    );

    let out = sim_to(&processor, "300", "7")
        .arg("--tls-ca")
        .arg(&ca_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    // What the simulator sent was acknowledged, so it is counted by now.
    assert_eq!(
        https_metric(processor.addr, &ca_file, None, INGESTED),
        300.0
    );

    // Without the CA the simulator stops at once and says what to pass, rather than
    // retrying a certificate no retry can change.
    let mut sim = sim_to(&processor, "50", "8")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a simulator that retried forever would fail here, not hang the suite.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sim.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = sim.kill();
            panic!("the simulator kept retrying an untrusted certificate");
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
    let out = sim.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not trusted") && err.contains("--tls-ca") && err.contains("not delivered"),
        "{err}"
    );
    assert_eq!(
        https_metric(processor.addr, &ca_file, None, INGESTED),
        300.0
    );

    // A plain-HTTP client on the TLS port is told what to do, not left hanging.
    let plain = http::get(processor.addr, "/healthz").expect("an answer over plain HTTP");
    assert_eq!(plain.status, Some(400), "{}", plain.raw);
    assert!(plain.raw.contains("HTTPS only"), "{}", plain.raw);
    processor.sigterm_and_expect_success();
}

#[test]
fn with_a_client_ca_the_processor_admits_only_senders_with_a_certificate_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let senders = TestCa::new("senders CA");
    let senders_file = senders.write_ca(&dir.path().join("senders.pem"));
    let sender = senders.issue_client(dir.path(), "sender", "simulator-1");
    let processor = Server::start(
        process_command(&dir.path().join("lake"))
            .env("TELLTALE_TLS_CERT", &pair.cert)
            .env("TELLTALE_TLS_KEY", &pair.key)
            .env("TELLTALE_TLS_CLIENT_CA", &senders_file)
            .stderr(Stdio::inherit()),
    );

    let out = sim_to(&processor, "120", "3")
        .arg("--tls-ca")
        .arg(&ca_file)
        .arg("--tls-client-cert")
        .arg(&sender.cert)
        .arg("--tls-client-key")
        .arg(&sender.key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        https_metric(processor.addr, &ca_file, Some(&sender), INGESTED),
        120.0
    );

    let anonymous = https_get(processor.addr, "/healthz", &ca_file, None);
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    let stranger = TestCa::new("another CA").issue_client(dir.path(), "stranger", "someone");
    let refused = https_get(processor.addr, "/healthz", &ca_file, Some(&stranger));
    assert!(refused.is_err(), "a certificate of another CA: {refused:?}");
    processor.sigterm_and_expect_success();
}

#[test]
fn check_config_reads_the_certificate_files_as_the_listener_would() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("telltale test CA");
    let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let other = ca.issue_server(dir.path(), "other", &["127.0.0.1"]);
    let config = dir.path().join("telltale.toml");
    // `check-config` over a config naming `cert` and `key`.
    let check = |cert: &Path, key: &Path| {
        std::fs::write(
            &config,
            format!(
                "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            ),
        )
        .unwrap();
        telltale()
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = check(&pair.cert, &pair.key);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("server.tls: HTTPS with"),
        "{}",
        describe(&out)
    );

    let out = check(&pair.cert, &other.key);
    assert!(
        !out.status.success(),
        "a key of another certificate must fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not make a usable pair"), "{err}");
}
