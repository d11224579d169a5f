//! `telltale probe` on a real routed network (`support::netns`: client → r1 → r2 →
//! server in network namespaces, as root): the hops in order with their names, loss where
//! packets are dropped, a route change, hop locations from a test-built `.mmdb`, UDP and
//! TCP tracing, a target that does not resolve beside one that does; and, as a user
//! without any capability, the same hops over unprivileged ICMP sockets where
//! `net.ipv4.ping_group_range` allows, one error naming both fixes where it does not.

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
    assert_rtt_distribution(p);
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
    assert_loss_at_r1_and_after(p);
}

/// The destination's RTT distribution of `p` is there and in order: min <= median <= p95
/// <= max, the last RTT above zero.
fn assert_rtt_distribution(p: &serde_json::Value) {
    let rtt = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k} in {p}"));
    assert!(rtt("rtt_ms") > 0.0, "{p}");
    assert!(rtt("rtt_min_ms") <= rtt("rtt_median_ms"), "{p}");
    assert!(rtt("rtt_median_ms") <= rtt("rtt_p95_ms"), "{p}");
    assert!(rtt("rtt_p95_ms") <= rtt("rtt_max_ms"), "{p}");
}

/// Every hop of `p` (r1 and after) and its destination show the loss dropped at r1. 60
/// packets a hop at 30% loss: none lost has odds of 0.7^60, about 5e-10.
fn assert_loss_at_r1_and_after(p: &serde_json::Value) {
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

/// `setpriv` arguments for user `nobody` with no capability at all: its own group only,
/// the inheritable, ambient and bounding sets emptied.
const NO_CAPABILITIES: [&str; 6] = [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-all",
];

/// `telltale probe` (the runnable copy `bin`) inside the client's namespace as a user
/// without any capability.
fn unprivileged_probe(net: &Path3, bin: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(["netns", "exec", &net.ns("c"), "setpriv"])
        .args(NO_CAPABILITIES)
        .arg(bin)
        .args(["probe", "--count", "1", "--echo-interval", "20ms"])
        .args(args)
        .env("TELLTALE_LOG", "info")
        .output()
        .unwrap()
}

/// Probe lines of a successful run.
fn lines_of(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", describe(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Without any capability, where `net.ipv4.ping_group_range` lets the user's group open
/// ICMP sockets: the same path as with raw sockets (hops in TTL order, names, no loss,
/// the same route hash), for two targets probed at once, each over its own socket.
#[test]
fn without_any_capability_ping_sockets_find_the_same_hops() {
    let net = Path3::build("p", 209);
    net.name_hosts();
    net.ping_group_range("c", "0 2147483647");
    let dir = tempfile::tempdir().unwrap();
    let bin = runnable_copy(dir.path());
    let (server, r2) = (net.addr(3, 2), net.addr(2, 2));
    let targets = format!("{server},{r2}");
    let args = ["--target", &targets, "--echoes", "5", "--agent", "lab-1"];
    let out = unprivileged_probe(&net, &bin, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .matches("tracing ICMP over unprivileged ICMP sockets")
            .count()
            == 1,
        "the mode, said once: {stderr}"
    );
    let lines = lines_of(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let line = |t: &str| lines.iter().find(|l| l["target"] == t).unwrap();
    let p = line(&server);
    assert_eq!(p["kind"], "probe");
    assert_eq!(p["agent"], "lab-1");
    assert_eq!(p["protocol"], "icmp");
    assert_eq!(p["resolved_addr"], server.as_str());
    assert_eq!(p["hop_count"], 3, "{p}");
    assert_eq!(addrs(p), [net.addr(1, 1), r2.clone(), server.clone()]);
    assert_eq!(p["loss_pct"], 0.0, "{p}");
    assert_eq!(
        (p["sent"].as_u64(), p["received"].as_u64()),
        (Some(5), Some(5))
    );
    assert_rtt_distribution(p);
    let hops = p["hops"].as_array().unwrap();
    let names: Vec<&str> = hops
        .iter()
        .map(|h| h["name"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(names, ["r1.209.test", "r2.209.test", "server.209.test"]);
    for hop in hops {
        assert_eq!(hop["scope"], "private", "{hop}");
        assert_eq!(
            (hop["sent"].as_u64(), hop["received"].as_u64()),
            (Some(5), Some(5)),
            "{hop}"
        );
        assert!(hop["best_ms"].as_f64() <= hop["worst_ms"].as_f64(), "{hop}");
    }
    // The other target, traced at the same time: its own answers only.
    let q = line(&r2);
    assert_eq!(addrs(q), [net.addr(1, 1), r2.clone()], "{q}");
    assert_eq!(
        (q["hop_count"].as_u64(), q["loss_pct"].as_f64()),
        (Some(2), Some(0.0))
    );
    // Raw sockets (root) on the same network see the same route.
    let (raw, _) = probe_from(&net, &["--target", &server, "--echoes", "2"]);
    assert_eq!(addrs(&raw[0]), addrs(p));
    let hash = p["route_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 16, "{p}");
    assert_eq!(
        raw[0]["route_hash"], hash,
        "the same route hash as raw sockets give"
    );
    // UDP and TCP need raw sockets: the error names the capability, not the sysctl.
    let udp = unprivileged_probe(&net, &bin, &["--target", &server, "--protocol", "udp"]);
    let stderr = String::from_utf8_lossy(&udp.stderr);
    assert_eq!(udp.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_RAW") && stderr.contains("only --protocol icmp"),
        "{stderr}"
    );
    assert!(udp.stdout.is_empty());
}

/// Loss at r1 shows at r1 and every hop after it over ping sockets too.
#[test]
fn without_any_capability_loss_at_r1_shows_at_r1_and_after_it() {
    let net = Path3::build("q", 210);
    net.ping_group_range("c", "0 2147483647");
    net.drop_at_r1(30);
    let dir = tempfile::tempdir().unwrap();
    let bin = runnable_copy(dir.path());
    let server = net.addr(3, 2);
    let out = unprivileged_probe(
        &net,
        &bin,
        &["--target", &server, "--echoes", "60", "--max-ttl", "6"],
    );
    let lines = lines_of(&out);
    let p = &lines[0];
    assert_eq!(p["hop_count"], 3, "{p}");
    assert_eq!(addrs(p), [net.addr(1, 1), net.addr(2, 2), server.clone()]);
    for hop in p["hops"].as_array().unwrap() {
        assert_eq!(hop["sent"], 60, "{hop}");
    }
    assert_loss_at_r1_and_after(p);
}

/// Without `CAP_NET_RAW` and where `net.ipv4.ping_group_range` allows no group (set so
/// in the client's namespace: the test does not depend on the host's): one clear error
/// naming both the capability and the sysctl, with how to grant each, exit 1.
#[test]
fn without_cap_net_raw_one_error_names_the_capability() {
    let net = Path3::build("n", 211);
    net.ping_group_range("c", "1 0");
    let dir = tempfile::tempdir().unwrap();
    let bin = runnable_copy(dir.path());
    let out = unprivileged_probe(&net, &bin, &["--target", "127.0.0.1", "--echoes", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CAP_NET_RAW"))
        .collect();
    assert_eq!(errors.len(), 1, "one error: {stderr}");
    for fix in [
        "setcap cap_net_raw+ep",
        "cap_add: [NET_RAW]",
        "net.ipv4.ping_group_range",
        "sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"",
    ] {
        assert!(errors[0].contains(fix), "{fix}: {stderr}");
    }
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
    // `telltale run` serves on the host's loopback, so it runs in the host's network
    // namespace: as a group outside the host's `net.ipv4.ping_group_range`, whatever it
    // is, so that no unprivileged ICMP socket opens either.
    let regid = format!("--regid={}", gid_outside_ping_group_range());
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", &regid, "--clear-groups"])
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

/// A group this network namespace's `net.ipv4.ping_group_range` does not let open ICMP
/// sockets.
fn gid_outside_ping_group_range() -> u32 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let [low, high]: [u32; 2] = range
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    if low > high || low > 65534 || high < 65534 {
        65534
    } else if high < 4_294_967_294 {
        high + 1
    } else {
        assert!(low > 0, "every group may open ICMP sockets here: {range}");
        low - 1
    }
}
