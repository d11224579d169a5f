//! How a probe is made: the protocol and the options every trace takes.

use std::time::Duration;

/// How the path is traced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// ICMP echo requests (as `mtr` and `traceroute -I`).
    #[default]
    Icmp,
    /// UDP datagrams to high ports (classic `traceroute`).
    Udp,
    /// TCP SYNs to a port (`tcptraceroute`): gets through firewalls that drop ICMP.
    Tcp,
}

impl Protocol {
    /// `icmp`, `udp` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Icmp => "icmp",
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// How a trace's packets are sent and its answers read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TraceMode {
    /// Raw sockets, with trippy-core: ICMP, UDP and TCP. Needs `CAP_NET_RAW` (or root).
    #[default]
    Raw,
    /// Linux's unprivileged ICMP ("ping") sockets, for a group that the sysctl
    /// `net.ipv4.ping_group_range` allows: ICMP only.
    PingSocket,
}

impl TraceMode {
    /// `raw socket` or `ping socket`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw socket",
            Self::PingSocket => "ping socket",
        }
    }
}

/// How a probe is made.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Traceroute rounds per probe: every hop, the destination included, gets this many
    /// packets.
    pub echoes: usize,
    /// Highest TTL tried.
    pub max_ttl: u8,
    /// Shortest time a round takes (the pace of the echoes).
    pub round_interval: Duration,
    /// How long a round waits for late answers.
    pub round_timeout: Duration,
    /// ICMP, UDP or TCP.
    pub protocol: Protocol,
    /// Destination port for UDP and TCP (TCP default 80; UDP varies it per probe).
    pub port: Option<u16>,
    /// Look up hop names (reverse DNS).
    pub reverse_dns: bool,
    /// The vantage point's name, on every result.
    pub agent: Option<String>,
    /// Raw or ping sockets: [`crate::trace_mode`] tells which this process may use.
    pub mode: TraceMode,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            echoes: 20,
            max_ttl: 30,
            round_interval: Duration::from_secs(1),
            round_timeout: Duration::from_secs(2),
            protocol: Protocol::Icmp,
            port: None,
            reverse_dns: true,
            agent: None,
            mode: TraceMode::Raw,
        }
    }
}
