//! Every route `telltale run` serves, walked from the route tables the binary's guard
//! enforces (the processor's and the simulator control API's), against the rule: once
//! any token is configured, nothing that changes state is reachable without a token of
//! its role; reading is open unless closed by config; `/healthz` is always open.
//! A route served without a table entry is refused by the guard (its unit test).

use std::net::SocketAddr;
use std::process::Stdio;

use telltale_core::auth::{Access, Role, RouteAccess};

use crate::support::child::Server;
use crate::support::client::{Req, send};
use crate::support::{LISTEN, telltale};

const READ: &str = "read-token-31";
const WRITE: &str = "write-token-32";
const ADMIN: &str = "admin-token-33";

/// `method path` with `token`: the status.
fn call(addr: SocketAddr, route: &RouteAccess, token: Option<&str>) -> u16 {
    let url = format!("http://{addr}{}", route.path);
    let req = Req {
        token,
        ..Req::default()
    };
    send(route.method, &url, req).expect("an answer").status
}

fn table() -> Vec<RouteAccess> {
    let mut t = telltale_processor::api::routes();
    t.extend_from_slice(telltale_sim::CONTROL_ROUTES);
    t
}

fn start(dir: &std::path::Path, reads_closed: bool) -> Server {
    let config = dir.join("telltale.toml");
    std::fs::write(
        &config,
        format!("[server]\nread_requires_token = {reads_closed}\n"),
    )
    .unwrap();
    Server::start(
        telltale()
            .args(["run", "--rate", "20", "--seed", "2", "--no-incidents"])
            .args(LISTEN)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("lake"))
            .env("TELLTALE_READ_TOKENS", READ)
            .env("TELLTALE_INGEST_TOKENS", WRITE)
            .env("TELLTALE_ADMIN_TOKENS", ADMIN)
            .stderr(Stdio::inherit()),
    )
}

/// Walks every route with no token, a wrong token and each role's token.
fn walk(addr: SocketAddr, reads_closed: bool) {
    let table = table();
    assert!(
        table.iter().any(|r| r.path == "/control/spike"),
        "the walk covers the control API too"
    );
    assert!(
        table.iter().any(|r| r.path == "/api/v1/monitors/{id}"
            && r.method == "DELETE"
            && r.access == Access::Needs(Role::Admin)),
        "the walk covers the URL monitors' API, its changes admin-only"
    );
    for auth in ["/auth/login", "/auth/callback", "/auth/logout"] {
        assert!(
            table
                .iter()
                .any(|r| r.path == auth && r.access == Access::Open),
            "the single sign-on route {auth} is tabled (open: it is how a session is made)"
        );
    }
    for route in &table {
        let what = format!("{} {}", route.method, route.path);
        let anonymous = call(addr, route, None);
        let wrong = call(addr, route, Some("not-a-token"));
        let as_read = call(addr, route, Some(READ));
        let as_write = call(addr, route, Some(WRITE));
        let as_admin = call(addr, route, Some(ADMIN));
        let needs_token = match route.access {
            Access::Open => false,
            Access::Read => reads_closed,
            Access::Needs(_) => true,
        };
        if needs_token {
            assert_eq!(anonymous, 401, "{what} without a token");
            assert_eq!(wrong, 401, "{what} with an unknown token");
        } else {
            assert!(![401, 403].contains(&anonymous), "{what}: {anonymous}");
        }
        // A state-changing route refuses a token of a lesser role with 403...
        match route.access {
            Access::Needs(Role::Admin) => {
                assert_eq!(as_read, 403, "{what} as read");
                assert_eq!(as_write, 403, "{what} as write");
            }
            Access::Needs(Role::Write) => assert_eq!(as_read, 403, "{what} as read"),
            _ => {
                assert!(![401, 403].contains(&as_read), "{what} as read: {as_read}");
                assert!(
                    ![401, 403].contains(&as_write),
                    "{what} as write: {as_write}"
                );
            }
        }
        // ...and the admin token passes the guard everywhere (the handler may still
        // refuse the empty body: a 4xx other than 401/403).
        assert!(
            ![401, 403].contains(&as_admin),
            "{what} as admin: {as_admin}"
        );
        assert_ne!(as_admin, 500, "{what}: a route without an access rule");
    }
}

#[test]
fn every_route_keeps_its_rule_with_reading_open() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), false);
    walk(run.addr, false);
    run.sigterm_and_expect_success();
}

#[test]
fn every_route_keeps_its_rule_with_reading_closed() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), true);
    walk(run.addr, true);
    run.sigterm_and_expect_success();
}
