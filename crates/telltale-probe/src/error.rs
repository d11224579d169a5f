//! Why a probe gave no measurement, with the fix for a missing privilege.

/// Why a probe gave no measurement.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Raw sockets are not allowed to this process.
    #[error(
        "probing {target} needs raw sockets, which need the CAP_NET_RAW capability: run as \
         root, or grant it once with `sudo setcap cap_net_raw+ep <path to telltale>` (in a \
         container: `cap_add: [NET_RAW]`). The tracer said: {reason}"
    )]
    Privilege {
        /// The target.
        target: String,
        /// The tracer's error.
        reason: String,
    },
    /// This process has no `CAP_NET_RAW`: found before any probe is tried.
    #[error(
        "probing {targets} needs raw sockets, which need the CAP_NET_RAW capability, and this \
         process does not have it: run as root, or grant it once with `sudo setcap \
         cap_net_raw+ep <path to telltale>` (in a container: `cap_add: [NET_RAW]`). Linux's \
         unprivileged ICMP sockets (sysctl net.ipv4.ping_group_range) cannot trace a path \
         with trippy-core"
    )]
    NoPrivilege {
        /// The targets, comma-separated.
        targets: String,
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

impl ProbeError {
    /// The error for a process without `CAP_NET_RAW`, before any probe is tried.
    pub fn no_privilege(targets: &[String]) -> Self {
        Self::NoPrivilege {
            targets: targets.join(","),
        }
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
