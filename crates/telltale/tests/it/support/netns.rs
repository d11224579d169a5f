//! A routed test network built from Linux network namespaces and veth pairs (CI runs as
//! root): `client → r1 → r2 → server`, forwarding on, ICMP rate limits off, and on request
//! a second path `r1 → r3 → server` and names for every address (the client's
//! `/etc/netns/<ns>/hosts`, which `ip netns exec` mounts over `/etc/hosts`). Removed when
//! dropped.

use std::process::Command;

/// The four hosts of one test's network, on `10.<net>.1-3.0/24` (and r3 on `.4-5.0/24`).
pub struct Path3 {
    prefix: String,
    net: u8,
    hosts: Vec<&'static str>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {} (these tests need root, as CI has)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_ns(ns: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    ip(&all);
}

impl Path3 {
    /// Builds the network; `name` keeps namespaces apart between tests, `net` the
    /// addresses.
    pub fn build(name: &str, net: u8) -> Self {
        let prefix = format!("tt{}{name}", std::process::id() % 10_000);
        let me = Self {
            prefix,
            net,
            hosts: vec!["c", "r1", "r2", "s"],
        };
        for host in ["c", "r1", "r2", "s"] {
            let ns = me.ns(host);
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let link = |a: &str, a_if: &str, b: &str, b_if: &str| {
            ip(&[
                "link",
                "add",
                a_if,
                "netns",
                &me.ns(a),
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                &me.ns(b),
            ]);
        };
        link("c", "c0", "r1", "r1a");
        link("r1", "r1b", "r2", "r2a");
        link("r2", "r2b", "s", "s0");
        let addr = |host: &str, dev: &str, a: &str| {
            let ns = me.ns(host);
            ip(&["-n", &ns, "addr", "add", &format!("{a}/24"), "dev", dev]);
            ip(&["-n", &ns, "link", "set", dev, "up"]);
        };
        addr("c", "c0", &me.addr(1, 2));
        addr("r1", "r1a", &me.addr(1, 1));
        addr("r1", "r1b", &me.addr(2, 1));
        addr("r2", "r2a", &me.addr(2, 2));
        addr("r2", "r2b", &me.addr(3, 1));
        addr("s", "s0", &me.addr(3, 2));
        let route = |host: &str, to: &str, via: String| {
            ip(&["-n", &me.ns(host), "route", "add", to, "via", &via]);
        };
        route("c", "default", me.addr(1, 1));
        route("r1", "default", me.addr(2, 2));
        route("r2", &format!("10.{}.1.0/24", me.net), me.addr(2, 1));
        route("s", "default", me.addr(3, 1));
        for host in ["r1", "r2", "s"] {
            in_ns(
                &me.ns(host),
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.icmp_ratelimit=0",
                    "net.ipv4.conf.all.rp_filter=0",
                ],
            );
        }
        me
    }

    /// Adds the second path: r3 between r1 (`10.<net>.4.0/24`) and the server
    /// (`10.<net>.5.0/24`). Traffic keeps going through r2 until [`Self::switch_to_r3`].
    pub fn add_r3(&mut self) {
        let (r1, r3, s) = (self.ns("r1"), self.ns("r3"), self.ns("s"));
        let _ = Command::new("ip").args(["netns", "del", &r3]).output();
        ip(&["netns", "add", &r3]);
        self.hosts.push("r3");
        ip(&["-n", &r3, "link", "set", "lo", "up"]);
        for (a, a_if, b, b_if) in [(&r1, "r1c", &r3, "r3a"), (&r3, "r3b", &s, "s1")] {
            ip(&[
                "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
            ]);
        }
        for (ns, dev, a) in [
            (&r1, "r1c", self.addr(4, 1)),
            (&r3, "r3a", self.addr(4, 3)),
            (&r3, "r3b", self.addr(5, 3)),
            (&s, "s1", self.addr(5, 2)),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{a}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&[
            "-n",
            &r3,
            "route",
            "add",
            &format!("10.{}.1.0/24", self.net),
            "via",
            &self.addr(4, 1),
        ]);
        ip(&[
            "-n",
            &r3,
            "route",
            "add",
            &format!("10.{}.3.0/24", self.net),
            "via",
            &self.addr(5, 2),
        ]);
        in_ns(
            &r3,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv4.conf.all.rp_filter=0",
            ],
        );
    }

    /// r1 sends traffic to the server through r3 instead of r2: the route changes at
    /// TTL 2.
    pub fn switch_to_r3(&self) {
        self.r1_default_via(&self.addr(4, 3));
    }

    /// r1 sends traffic to the server through r2 again (the route [`Self::build`] sets).
    pub fn switch_to_r2(&self) {
        self.r1_default_via(&self.addr(2, 2));
    }

    fn r1_default_via(&self, next_hop: &str) {
        let r1 = self.ns("r1");
        ip(&["-n", &r1, "route", "replace", "default", "via", next_hop]);
    }

    /// Names for every address, as the client resolves them: `r1.<net>.test`, … and
    /// `server.<net>.test`.
    pub fn name_hosts(&self) {
        self.name_server_at(&self.addr(3, 2));
    }

    /// As [`Self::name_hosts`], with `server.<net>.test` at `server` (one of the server's
    /// addresses: its DNS record changed). The hosts file is rewritten in place, so a
    /// `telltale probe` already running in the client's namespace resolves the new
    /// address at its next probe.
    pub fn name_server_at(&self, server: &str) {
        let dir = self.etc_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for (subnet, host, name) in [(1, 1, "r1"), (2, 2, "r2"), (4, 3, "r3"), (1, 2, "client")] {
            hosts += &format!("{} {name}.{}.test\n", self.addr(subnet, host), self.net);
        }
        hosts += &format!("{server} server.{}.test\n", self.net);
        std::fs::write(dir.join("hosts"), hosts).unwrap();
    }

    fn etc_dir(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(self.ns("c"))
    }

    /// The namespace of `host` (`c`, `r1`, `r2`, `s`).
    pub fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    /// `10.<net>.<subnet>.<host>`.
    pub fn addr(&self, subnet: u8, host: u8) -> String {
        format!("10.{}.{subnet}.{host}", self.net)
    }

    /// Sets the sysctl `net.ipv4.ping_group_range` (one per network namespace) in
    /// `host`'s namespace: the groups that may open unprivileged ICMP sockets there
    /// (`"1 0"`: none, the kernel's default; `"0 2147483647"`: every group up to that).
    pub fn ping_group_range(&self, host: &str, range: &str) {
        in_ns(
            &self.ns(host),
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.ping_group_range={range}"),
            ],
        );
    }

    /// Drops `percent` of the packets arriving at r1 from the client (nftables).
    pub fn drop_at_r1(&self, percent: u8) {
        let ns = self.ns("r1");
        in_ns(&ns, &["nft", "add", "table", "inet", "loss"]);
        in_ns(
            &ns,
            &[
                "nft",
                "add chain inet loss pre { type filter hook prerouting priority 0; }",
            ],
        );
        in_ns(
            &ns,
            &[
                "nft",
                &format!(
                    "add rule inet loss pre iifname \"r1a\" numgen random mod 100 < {percent} drop"
                ),
            ],
        );
    }
}

impl Drop for Path3 {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(host)])
                .output();
        }
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}
