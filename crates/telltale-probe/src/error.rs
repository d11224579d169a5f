//! Why a probe gave no measurement, with the fix for a missing privilege.

use crate::options::Protocol;

/// How to grant raw sockets.
const RAW_FIX: &str = "run as root, or grant it once with `sudo setcap cap_net_raw+ep <path \
                       to telltale>` (in a container: `cap_add: [NET_RAW]`)";

/// Why a probe gave no measurement.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Raw sockets are not allowed to this process.
    #[error(
        "probing {target} needs raw sockets, which need the CAP_NET_RAW capability: {RAW_FIX}. \
         The tracer said: {reason}"
    )]
    Privilege {
        /// The target.
        target: String,
        /// The tracer's error.
        reason: String,
    },
    /// This process may open neither raw sockets (no `CAP_NET_RAW`) nor, for ICMP,
    /// unprivileged ICMP sockets (its group is outside `net.ipv4.ping_group_range`).
    #[error("{}", no_privilege_message(.targets, *.protocol))]
    NoPrivilege {
        /// The targets, comma-separated.
        targets: String,
        /// The protocol asked for: only ICMP can do without raw sockets.
        protocol: Protocol,
    },
    /// The tracer failed for another reason.
    #[error("probing {target}: {reason}")]
    Trace {
        /// The target.
        target: String,
        /// The tracer's error.
        reason: String,
    },
}

fn no_privilege_message(targets: &str, protocol: Protocol) -> String {
    match protocol {
        Protocol::Icmp => format!(
            "probing {targets} needs raw sockets or unprivileged ICMP sockets, and this \
             process may open neither. Either give it the CAP_NET_RAW capability: {RAW_FIX}; \
             or let its group open ICMP sockets with the sysctl net.ipv4.ping_group_range: \
             `sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` (the range must \
             include the process's group; it is per network namespace: in a container, \
             `sysctls: [net.ipv4.ping_group_range=0 2147483647]`)"
        ),
        Protocol::Udp | Protocol::Tcp => format!(
            "probing {targets} with --protocol {} needs raw sockets, which need the \
             CAP_NET_RAW capability, and this process does not have it: {RAW_FIX}. Without \
             it, only --protocol icmp can trace, over unprivileged ICMP sockets where the \
             sysctl net.ipv4.ping_group_range allows the process's group",
            protocol.as_str()
        ),
    }
}

impl ProbeError {
    /// The error for a process that may use neither raw sockets nor (for ICMP)
    /// unprivileged ICMP sockets, before any probe is tried.
    pub fn no_privilege(targets: &[String], protocol: Protocol) -> Self {
        Self::NoPrivilege {
            targets: targets.join(","),
            protocol,
        }
    }

    /// Whether probing cannot go on without a privilege granted.
    pub fn is_privilege(&self) -> bool {
        matches!(self, Self::Privilege { .. } | Self::NoPrivilege { .. })
    }

    pub(crate) fn from_tracer(target: &str, e: trippy_core::Error) -> Self {
        let reason = e.to_string();
        let privilege = matches!(e, trippy_core::Error::PrivilegeError(_))
            || reason.contains("Operation not permitted")
            || reason.contains("Permission denied");
        let target = target.to_owned();
        if privilege {
            Self::Privilege { target, reason }
        } else {
            Self::Trace { target, reason }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without either privilege, the one error names both fixes for ICMP, and only the
    /// capability (with the ICMP alternative) for UDP and TCP.
    #[test]
    fn the_no_privilege_error_names_the_fixes() {
        let t = ["a.example".to_owned(), "10.0.0.1".to_owned()];
        let icmp = ProbeError::no_privilege(&t, Protocol::Icmp).to_string();
        for part in [
            "a.example,10.0.0.1",
            "CAP_NET_RAW",
            "setcap cap_net_raw+ep",
            "cap_add: [NET_RAW]",
            "net.ipv4.ping_group_range",
            "sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"",
            "group",
        ] {
            assert!(icmp.contains(part), "{part}: {icmp}");
        }
        let udp = ProbeError::no_privilege(&t, Protocol::Udp).to_string();
        assert!(udp.contains("--protocol udp") && udp.contains("setcap cap_net_raw+ep"));
        assert!(udp.contains("only --protocol icmp"), "{udp}");
        assert!(
            !udp.contains("sysctl -w"),
            "no fix that would not help: {udp}"
        );
    }
}
