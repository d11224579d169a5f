//! `[server.rate_limit]` on a real `telltale process`: per client address and per bearer
//! token, 429 with `Retry-After` past the burst, counted in `/metrics`. The rates are one
//! request per 1000 s, so what passes is the burst alone, whatever the machine's speed.

use std::net::SocketAddr;
use std::process::Stdio;

use crate::support::child::{Server, process_command};
use crate::support::client::{Req, send};

const LINE: &str =
    r#"{"service":"auth","timestamp":"2026-12-03T10:00:00Z","status_code":200,"latency_ms":5}"#;

/// POST one line with `token`: the status, `Retry-After` and the body.
fn post(addr: SocketAddr, token: Option<&str>) -> (u16, Option<String>, String) {
    post_from("127.0.0.1", addr, token)
}

/// As [`post`], from the loopback address `from` (127.0.0.0/8 is all this machine's).
fn post_from(from: &str, addr: SocketAddr, token: Option<&str>) -> (u16, Option<String>, String) {
    let req = Req {
        token,
        body: Some(format!("{LINE}\n")),
        from: Some(from),
        ..Req::default()
    };
    let a = send("POST", &format!("http://{addr}/v1/events"), req).expect("an answer");
    (a.status, a.retry_after, a.body)
}

fn start(dir: &std::path::Path, limits: &str, tokens: Option<&str>) -> Server {
    let config = dir.join("telltale.toml");
    std::fs::write(&config, format!("[server.rate_limit]\n{limits}burst = 2\n")).unwrap();
    let mut cmd = process_command(&dir.join("lake"));
    cmd.arg("--config").arg(&config).stderr(Stdio::inherit());
    if let Some(t) = tokens {
        cmd.env("TELLTALE_INGEST_TOKENS", t);
    }
    Server::start(&mut cmd)
}

#[test]
fn one_address_past_its_burst_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "per_address_per_second = 0.001\n", None);
    assert_eq!(post(server.addr, None).0, 200);
    assert_eq!(post(server.addr, None).0, 200);
    let (status, retry_after, body) = post(server.addr, None);
    assert_eq!(status, 429, "{body}");
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    assert!(body.contains("per client address"), "{body}");
    // Another address has a budget of its own.
    assert_eq!(post_from("127.0.0.2", server.addr, None).0, 200);
    assert_eq!(
        crate::support::metric(
            server.addr,
            "telltale_http_ingest_responses_total{code=\"429\"}"
        ),
        1.0
    );
    assert_eq!(
        crate::support::metric(
            server.addr,
            "telltale_events_ingested_total{kind=\"service\"}"
        ),
        3.0,
        "the refused request's line was not taken"
    );
    server.sigterm_and_expect_success();
}

/// Behind a trusted proxy (here 127.0.0.1), each client named by `X-Forwarded-For` has a
/// budget of its own; the header from an untrusted address (127.0.0.2) is ignored.
#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "per_address_per_second = 0.001\ntrusted_proxies = [\"127.0.0.1\"]\n",
        None,
    );
    let via_proxy = |from: &str, client: &str| {
        let req = Req {
            body: Some(format!("{LINE}\n")),
            from: Some(from),
            headers: vec![("x-forwarded-for", client)],
            ..Req::default()
        };
        send("POST", &format!("http://{}/v1/events", server.addr), req)
            .expect("an answer")
            .status
    };
    assert_eq!(via_proxy("127.0.0.1", "203.0.113.1"), 200);
    assert_eq!(via_proxy("127.0.0.1", "203.0.113.1"), 200);
    assert_eq!(via_proxy("127.0.0.1", "203.0.113.1"), 429);
    // Another client behind the same proxy.
    assert_eq!(via_proxy("127.0.0.1", "203.0.113.2"), 200);
    // Not a trusted proxy: its own address counts, whatever it writes.
    for _ in 0..2 {
        assert_eq!(via_proxy("127.0.0.2", "203.0.113.3"), 200);
    }
    assert_eq!(via_proxy("127.0.0.2", "203.0.113.4"), 429);
    server.sigterm_and_expect_success();
}

#[test]
fn each_token_has_a_budget_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "per_token_per_second = 0.001\n",
        Some("sender-a,sender-b"),
    );
    assert_eq!(post(server.addr, Some("sender-a")).0, 200);
    assert_eq!(post(server.addr, Some("sender-a")).0, 200);
    let (status, retry_after, body) = post(server.addr, Some("sender-a"));
    assert_eq!(status, 429, "{body}");
    assert!(retry_after.is_some());
    assert!(body.contains("per token"), "{body}");
    // Same address, another token: its own budget.
    assert_eq!(post(server.addr, Some("sender-b")).0, 200);
    server.sigterm_and_expect_success();
}
