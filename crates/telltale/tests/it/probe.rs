//! `telltale probe` on a real routed network (`support::netns`: client → r1 → r2 →
//! server in network namespaces, as root): the hops in order, loss where packets are
//! dropped, and a target that does not resolve beside one that does.

use crate::support::netns::Path3;
use crate::support::{BIN, describe};

/// `telltale probe` run inside the client's namespace; its probe lines, parsed.
fn probe_from(net: &Path3, args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &net.ns("c"), BIN, "probe", "--count", "1"])
        .args(["--echo-interval", "20ms"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn addrs(line: &serde_json::Value) -> Vec<&str> {
    line["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["addr"].as_str().unwrap_or("*"))
        .collect()
}

#[test]
fn three_hops_in_order_without_loss() {
    let net = Path3::build("a", 201);
    let server = net.addr(3, 2);
    let (lines, _) = probe_from(&net, &["--target", &server, "--echoes", "5"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let p = &lines[0];
    assert_eq!(p["kind"], "probe");
    assert_eq!(p["target"], server.as_str());
    assert_eq!(p["hop_count"], 3, "{p}");
    assert_eq!(addrs(p), [net.addr(1, 1), net.addr(2, 2), server.clone()]);
    assert_eq!(p["loss_pct"], 0.0, "{p}");
    assert!(p["rtt_ms"].as_f64().is_some_and(|r| r > 0.0), "{p}");
}

#[test]
fn loss_at_r1_shows_at_r1_and_after_it() {
    let net = Path3::build("b", 202);
    net.drop_at_r1(30);
    let server = net.addr(3, 2);
    let (lines, _) = probe_from(
        &net,
        &["--target", &server, "--echoes", "60", "--max-ttl", "6"],
    );
    let p = &lines[0];
    assert_eq!(p["hop_count"], 3, "{p}");
    // 60 packets a hop at 30% loss: none lost has odds of 0.7^60, about 5e-10.
    for hop in p["hops"].as_array().unwrap() {
        let loss = hop["loss_pct"].as_f64().unwrap();
        assert!(
            (5.0..80.0).contains(&loss),
            "hop {hop} should show the loss at r1"
        );
    }
    let loss = p["loss_pct"].as_f64().unwrap();
    assert!((5.0..95.0).contains(&loss), "the destination too: {p}");
}

#[test]
fn a_target_that_does_not_resolve_does_not_stop_the_others() {
    let net = Path3::build("c", 203);
    let server = net.addr(3, 2);
    let (lines, stderr) = probe_from(
        &net,
        &[
            "--target",
            &format!("no-such-host.invalid,{server}"),
            "--echoes",
            "3",
        ],
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["target"], server.as_str());
    assert!(
        stderr.contains("no-such-host.invalid") && stderr.contains("does not resolve"),
        "{stderr}"
    );
}

/// Without `CAP_NET_RAW` (here: as user `nobody`, from a copy of the binary it may run):
/// one clear error naming the capability and how to grant it, exit 1.
#[test]
fn without_cap_net_raw_one_error_names_the_capability() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("telltale");
    std::fs::copy(BIN, &bin).unwrap();
    for p in [dir.path(), bin.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args([
            "probe",
            "--target",
            "127.0.0.1",
            "--count",
            "1",
            "--echoes",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_RAW") && stderr.contains("setcap cap_net_raw+ep"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no probe line without a measurement");
}
