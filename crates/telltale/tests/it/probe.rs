//! `telltale probe` on a real routed network (`support::netns`: client → r1 → r2 →
//! server in network namespaces, as root): the hops in order with their names, loss where
//! packets are dropped, a route change, hop locations from a test-built `.mmdb`, UDP and
//! TCP tracing, and a target that does not resolve beside one that does.

use std::io::BufRead;

use crate::support::netns::Path3;
use crate::support::{BIN, describe};

/// A copy of the binary in `dir` that any user may run (the build's own is under a
/// directory other users cannot enter, and setcap must not touch it): for the tests that
/// drop root.
fn runnable_copy(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("telltale");
    std::fs::copy(BIN, &bin).unwrap();
    for p in [dir, bin.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

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

/// The hop addresses of a probe line in TTL order, `*` for a hop that did not answer.
pub(crate) fn addrs(line: &serde_json::Value) -> Vec<&str> {
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
    net.name_hosts();
    let server = net.addr(3, 2);
    let (lines, _) = probe_from(
        &net,
        &["--target", &server, "--echoes", "5", "--agent", "lab-1"],
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    let p = &lines[0];
    assert_eq!(p["kind"], "probe");
    assert_eq!(p["target"], server.as_str());
    assert_eq!(p["agent"], "lab-1");
    assert_eq!(p["protocol"], "icmp");
    assert_eq!(p["resolved_addr"], server.as_str());
    assert_eq!(p["hop_count"], 3, "{p}");
    assert_eq!(addrs(p), [net.addr(1, 1), net.addr(2, 2), server.clone()]);
    assert_eq!(p["loss_pct"], 0.0, "{p}");
    assert_eq!(
        (p["sent"].as_u64(), p["received"].as_u64()),
        (Some(5), Some(5))
    );
    let rtt = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k} in {p}"));
    assert!(rtt("rtt_ms") > 0.0, "{p}");
    assert!(rtt("rtt_min_ms") <= rtt("rtt_median_ms"), "{p}");
    assert!(rtt("rtt_median_ms") <= rtt("rtt_p95_ms"), "{p}");
    assert!(rtt("rtt_p95_ms") <= rtt("rtt_max_ms"), "{p}");
    assert!(
        p["rtt_stddev_ms"].is_number() && p["jitter_ms"].is_number(),
        "{p}"
    );
    let hops = p["hops"].as_array().unwrap();
    // Names from the client's hosts file: reverse DNS through the system resolver.
    let names: Vec<&str> = hops
        .iter()
        .map(|h| h["name"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(names, ["r1.201.test", "r2.201.test", "server.201.test"]);
    for hop in hops {
        assert_eq!(hop["scope"], "private", "{hop}");
        assert_eq!(
            (hop["sent"].as_u64(), hop["received"].as_u64()),
            (Some(5), Some(5))
        );
        assert!(hop["best_ms"].as_f64() <= hop["worst_ms"].as_f64(), "{hop}");
        assert!(hop.get("city").is_none(), "no .mmdb, no location: {hop}");
    }
}

/// Hop locations from an `.mmdb` built here: the test network's addresses mapped to
/// cities and an ASN, as GeoLite2-City and GeoLite2-ASN files would.
#[test]
fn hops_are_located_from_an_mmdb_file() {
    let net = Path3::build("g", 206);
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = crate::support::mmdb::write_test_databases(dir.path(), 206);
    let server = net.addr(3, 2);
    let (lines, _) = probe_from(
        &net,
        &[
            "--target",
            &server,
            "--echoes",
            "2",
            "--geoip-city",
            city.to_str().unwrap(),
            "--geoip-asn",
            asn.to_str().unwrap(),
        ],
    );
    let hops = lines[0]["hops"].as_array().unwrap();
    let cities: Vec<&str> = hops
        .iter()
        .map(|h| h["city"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(cities, ["Frankfurt am Main", "Amsterdam", "London"]);
    assert_eq!(hops[2]["country"], "GB");
    assert_eq!(hops[2]["latitude"], 51.5072);
    assert_eq!(hops[2]["longitude"], -0.1276);
    assert_eq!(hops[0]["asn"], 64_501);
    assert_eq!(hops[0]["as_org"], "Test Transit 1");
    // The database is asked for what it has: 10.206.1.0/24 has no ASN in it.
    assert!(hops[1].get("asn").is_none(), "{}", hops[1]);
}

/// A route changed between probes (r1 now forwards through r3) gives exactly one
/// route-change mark, on the first probe of the new route.
#[test]
fn a_route_change_mid_test_is_one_route_change_event() {
    let mut net = Path3::build("r", 207);
    net.add_r3();
    let server = net.addr(3, 2);
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.ns("c"),
            BIN,
            "probe",
            "--target",
            &server,
        ])
        .args(["--count", "4", "--echoes", "3", "--echo-interval", "20ms"])
        // Rounds start 3 s apart; each takes well under a second, so the route is
        // switched between the second round's line and the third round's start.
        .args(["--interval", "3s", "--no-reverse-dns"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        lines.push(line);
        if lines.len() == 2 {
            net.switch_to_r3();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(lines.len(), 4, "{lines:?}");
    let changes: Vec<bool> = lines
        .iter()
        .map(|l| l.get("previous_route_hash").is_some())
        .collect();
    assert_eq!(changes.iter().filter(|c| **c).count(), 1, "{lines:#?}");
    let at = changes.iter().position(|c| *c).unwrap();
    let changed = &lines[at];
    assert_eq!(addrs(changed)[1], net.addr(4, 3), "through r3: {changed}");
    assert_eq!(
        changed["previous_route_hash"], lines[0]["route_hash"],
        "the mark names the old route"
    );
    assert_ne!(changed["route_hash"], lines[0]["route_hash"]);
    assert_eq!(addrs(&lines[0])[1], net.addr(2, 2));
}

/// UDP (classic traceroute) and TCP SYN tracing find the same three hops.
#[test]
fn udp_and_tcp_tracing_find_the_same_hops() {
    let net = Path3::build("u", 208);
    let server = net.addr(3, 2);
    for protocol in ["udp", "tcp"] {
        let (lines, _) = probe_from(
            &net,
            &[
                "--target",
                &server,
                "--echoes",
                "3",
                "--protocol",
                protocol,
                "--no-reverse-dns",
            ],
        );
        let p = &lines[0];
        assert_eq!(p["protocol"], protocol);
        assert_eq!(p["hop_count"], 3, "{protocol}: {p}");
        assert_eq!(
            addrs(p),
            [net.addr(1, 1), net.addr(2, 2), server.clone()],
            "{protocol}"
        );
    }
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

/// A name that does not resolve and an address that does not answer are results too,
/// and neither holds back the target that answers: its line comes first, as soon as its
/// probe ends (the silent one waits out every echo's timeout).
#[test]
fn targets_that_do_not_resolve_or_answer_do_not_stop_the_others() {
    let net = Path3::build("c", 203);
    let server = net.addr(3, 2);
    let silent = net.addr(3, 99);
    let (lines, stderr) = probe_from(
        &net,
        &[
            "--target",
            &format!("no-such-host.invalid,{silent},{server}"),
            "--echoes",
            "3",
            "--max-ttl",
            "5",
            "--no-reverse-dns",
        ],
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    let at = |t: &str| lines.iter().position(|l| l["target"] == t).unwrap();
    let bad = &lines[at("no-such-host.invalid")];
    assert!(
        bad["dns_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{bad}"
    );
    assert_eq!(
        (bad["loss_pct"].as_f64(), bad["hop_count"].as_u64()),
        (Some(100.0), Some(0))
    );
    // Every planned echo counts as lost (what a probe target's availability SLO counts).
    assert_eq!(
        (bad["sent"].as_u64(), bad["received"].as_u64()),
        (Some(3), Some(0))
    );
    let quiet = &lines[at(&silent)];
    // r2 answers "host unreachable" for the silent address at every TTL past its own:
    // the path ends at r2, not at --max-ttl.
    assert_eq!(quiet["hop_count"], 2, "{quiet}");
    assert_eq!(quiet["loss_pct"], 100.0, "{quiet}");
    assert_eq!(quiet["received"], 0, "{quiet}");
    assert!(quiet["rtt_ms"].is_null(), "{quiet}");
    assert_eq!(lines[at(&server)]["hop_count"], 3);
    assert!(at(&server) < at(&silent), "{lines:#?}");
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
    let bin = runnable_copy(dir.path());
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

/// The compose probe service, natively: a non-root user (10001) with every capability
/// dropped but `NET_RAW` (`cap_drop: [ALL]`, `cap_add: [NET_RAW]`), running the image's
/// binary (`setcap cap_net_raw+p`), sending its lines to a processor over HTTP.
#[test]
fn non_root_with_only_cap_net_raw_probes_into_a_processor() {
    let dir = tempfile::tempdir().unwrap();
    let bin = runnable_copy(dir.path());
    let setcap = std::process::Command::new("setcap")
        .arg("cap_net_raw+p")
        .arg(&bin)
        .output()
        .expect("setcap (libcap2-bin) runs");
    assert!(setcap.status.success(), "{}", describe(&setcap));
    let data = tempfile::tempdir().unwrap();
    let processor = crate::support::child::start_processor(
        data.path(),
        &crate::support::repo_root().join("config/telltale.toml"),
    );
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=10001", "--regid=10001", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all,+net_raw"])
        .arg(&bin)
        .args([
            "probe",
            "--target",
            "127.0.0.1",
            "--count",
            "1",
            "--echoes",
            "2",
        ])
        .args([
            "--echo-interval",
            "20ms",
            "--agent",
            "compose-probe",
            "--output",
        ])
        .arg(format!("{}/v1/events", processor.url()))
        .env("TELLTALE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    crate::support::wait_for_metric(
        processor.addr,
        "telltale_events_ingested_total{kind=\"probe\"}",
        std::time::Duration::from_secs(30),
        |n| n >= 1.0,
    );
    processor.sigterm_and_expect_success();
}

/// The README's run command keeps working for a user without root: with a probe target
/// set, one warning naming the capability, and the rest of `telltale run` serves.
#[test]
fn telltale_run_without_the_privilege_warns_once_and_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let bin = runnable_copy(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--print-address",
            "--rate",
            "20",
        ])
        .args([
            "--no-incidents",
            "--probe-target",
            "127.0.0.1",
            "--data-dir",
        ])
        .arg(&data)
        .current_dir(crate::support::repo_root())
        .env("TELLTALE_LOG", "warn")
        .stderr(std::process::Stdio::piped());
    let server = crate::support::child::Server::start(&mut cmd);
    crate::support::wait_for_metric(
        server.addr,
        "telltale_events_ingested_total{kind=\"service\"}",
        std::time::Duration::from_secs(30),
        |n| n >= 1.0,
    );
    let probes = crate::support::metric(
        server.addr,
        "telltale_events_ingested_total{kind=\"probe\"}",
    );
    let out = server.sigterm_and_wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        stderr.lines().filter(|l| l.contains("CAP_NET_RAW")).count(),
        1,
        "one warning: {stderr}"
    );
    assert!(stderr.contains("setcap cap_net_raw+ep"), "{stderr}");
    assert_eq!(
        probes, 0.0,
        "no real probes, and no simulated ones in their place"
    );
}
