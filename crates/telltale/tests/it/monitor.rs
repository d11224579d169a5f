//! `telltale monitor check URL` (issue #17) against real targets: Debian's nginx over
//! HTTP and HTTPS (a valid certificate from a CA made here, an expired one, one from a CA
//! nobody trusts), a redirect chain and a redirect loop, a refused port, a port that
//! accepts and never answers, and a name that does not resolve (in a network namespace of
//! its own with no network, so the lookup fails here and no query leaves the machine).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use telltale_tls::testing::TestCa;

use crate::support::nginx::{Nginx, free_port};
use crate::support::{closed_port, describe, telltale};

/// `telltale monitor check` with `args`: its result line and whether it exited 0.
fn check(args: &[&str]) -> (Value, bool) {
    let out = telltale()
        .args(["monitor", "check"])
        .args(args)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("not a result line ({e}): {}", describe(&out)));
    (value, out.status.success())
}

struct Targets {
    _nginx: Nginx,
    http: u16,
    https: u16,
    expired: u16,
    untrusted: u16,
    ca: std::path::PathBuf,
}

fn targets(dir: &Path) -> Targets {
    let ca = TestCa::new("monitor test CA");
    let ca_file = ca.write_ca(&dir.join("ca.pem"));
    let good = ca.issue_server(dir, "good", &["localhost", "127.0.0.1"]);
    let expired = ca.issue_server_expired(dir, "expired", &["localhost"]);
    let stranger = TestCa::new("nobody trusts this CA");
    let untrusted = stranger.issue_server(dir, "untrusted", &["localhost"]);
    let (http, https, expired_port, untrusted_port) =
        (free_port(), free_port(), free_port(), free_port());
    let tls_server = |port: u16, pair: &telltale_tls::testing::Pair| {
        format!(
            "server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {}; ssl_certificate_key {};\n\
             location = /ok {{ return 200 \"secure\\n\"; }} }}\n",
            pair.cert.display(),
            pair.key.display()
        )
    };
    let http_block = format!(
        "access_log off;\n\
         server {{ listen 127.0.0.1:{http};\n\
         location = /ok {{ return 200 \"hello monitor\\n\"; }}\n\
         location = /fail {{ return 500; }}\n\
         location = /r1 {{ return 302 /r2; }}\n\
         location = /r2 {{ return 301 http://127.0.0.1:{http}/ok; }}\n\
         location = /loop {{ return 302 /loop; }}\n\
         }}\n{}{}{}",
        tls_server(https, &good),
        tls_server(expired_port, &expired),
        tls_server(untrusted_port, &untrusted),
    );
    let nginx = Nginx::start(
        dir,
        &http_block,
        &[http, https, expired_port, untrusted_port],
    );
    Targets {
        _nginx: nginx,
        http,
        https,
        expired: expired_port,
        untrusted: untrusted_port,
        ca: ca_file,
    }
}

#[test]
fn checks_report_status_phases_redirects_certificates_and_each_failure_class() {
    let dir = tempfile::tempdir().unwrap();
    let t = targets(dir.path());
    let ca = t.ca.to_str().unwrap().to_owned();

    // 200 over HTTP: every phase but TLS, the body's size.
    let (r, up) = check(&[&format!("http://127.0.0.1:{}/ok", t.http)]);
    assert!(up, "{r}");
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["body_bytes"], 14, "{r}");
    for phase in [
        "dns_ms",
        "connect_ms",
        "ttfb_ms",
        "transfer_ms",
        "duration_ms",
    ] {
        assert!(r[phase].as_f64().is_some_and(|v| v >= 0.0), "{phase}: {r}");
    }
    assert_eq!(r["tls_ms"], Value::Null);
    assert_eq!(r["cert_expiry_days"], Value::Null);

    // 500: an answer, so no error class, but not up.
    let (r, up) = check(&[&format!("http://127.0.0.1:{}/fail", t.http)]);
    assert!(!up);
    assert_eq!(
        (r["status_code"].as_u64(), &r["error"]),
        (Some(500), &Value::Null)
    );

    // A redirect chain is followed and counted; a loop stops at the limit.
    let (r, up) = check(&[&format!("http://127.0.0.1:{}/r1", t.http)]);
    assert!(up, "{r}");
    assert_eq!(r["redirects"], 2);
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["final_url"], format!("http://127.0.0.1:{}/ok", t.http));
    let (r, _) = check(&[
        "--max-redirects",
        "3",
        &format!("http://127.0.0.1:{}/loop", t.http),
    ]);
    assert_eq!(r["error"], "too_many_redirects", "{r}");
    assert_eq!(r["redirects"], 3);

    // HTTPS with the CA: the handshake timed, the certificate's expiry read (in the
    // future).
    let (r, up) = check(&[
        "--tls-ca",
        &ca,
        &format!("https://localhost:{}/ok", t.https),
    ]);
    assert!(up, "{r}");
    assert!(r["tls_ms"].as_f64().is_some(), "{r}");
    assert!(r["cert_expiry_days"].as_f64().unwrap() > 1.0, "{r}");
    // The same server without the CA: a TLS failure, with the expiry still read.
    let (r, up) = check(&[&format!("https://localhost:{}/ok", t.https)]);
    assert!(!up);
    assert_eq!(r["error"], "tls", "{r}");
    assert!(r["cert_expiry_days"].as_f64().is_some(), "{r}");

    // Expired: refused, and the expiry is in the past.
    let (r, _) = check(&[
        "--tls-ca",
        &ca,
        &format!("https://localhost:{}/ok", t.expired),
    ]);
    assert_eq!(r["error"], "tls", "{r}");
    assert!(
        r["error_message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("expired"),
        "{r}"
    );
    assert!(r["cert_expiry_days"].as_f64().unwrap() < 0.0, "{r}");

    // From a CA nobody here trusts (a self-made one).
    let (r, _) = check(&[
        "--tls-ca",
        &ca,
        &format!("https://localhost:{}/ok", t.untrusted),
    ]);
    assert_eq!(r["error"], "tls", "{r}");
    assert!(
        r["error_message"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{r}"
    );

    // A refused port.
    let (r, up) = check(&[&format!("http://{}/", closed_port())]);
    assert!(!up);
    assert_eq!(r["error"], "connect_refused", "{r}");
}

#[test]
fn a_target_that_never_answers_times_out_with_the_phases_it_reached() {
    // Accepts connections (the kernel does, from the backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let (r, up) = check(&["--timeout", "300ms", &url]);
    assert!(!up);
    assert_eq!(r["error"], "timeout", "{r}");
    assert!(r["connect_ms"].as_f64().is_some(), "{r}");
    assert_eq!(r["ttfb_ms"], Value::Null);
    drop(silent);
}

#[test]
fn a_name_that_does_not_resolve_is_a_dns_failure() {
    // A network namespace with no network: the resolver cannot be reached, so the lookup
    // fails on this machine and nothing is sent anywhere.
    let out = Command::new("unshare")
        .arg("--net")
        .arg(crate::support::BIN)
        .args(["monitor", "check", "http://no-such-host.invalid/"])
        .env("TELLTALE_LOG", "warn")
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a result line ({e}): {}", describe(&out)));
    assert_eq!(r["error"], "dns", "{r}");
    assert!(!out.status.success());
}
