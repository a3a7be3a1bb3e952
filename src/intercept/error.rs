//! The installer's error type. Every message names the thing that failed and what a person
//! can do about it, because these errors end up as the one line `fake-metadata install`
//! prints before exiting non-zero.

use std::io;

/// Why installing, removing or checking the interception failed.
#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    /// Port 0 cannot be a REDIRECT target.
    #[error(
        "daemon port 0 cannot be redirected to: set `listen` under [server] to the fixed address \
         `fake-metadata serve` listens on (e.g. \"127.0.0.1:1338\")"
    )]
    InvalidPort,

    /// The iptables binary is not on PATH.
    #[error("`{command}` was not found: install the iptables package (apt-get install iptables)")]
    MissingIptables { command: String },

    /// EPERM from netlink, or iptables' "you must be root".
    #[error("{action}: permission denied: run as root (CAP_NET_ADMIN is needed)")]
    PermissionDenied { action: String },

    /// The other iptables flavour (nft vs legacy) owns the table in the kernel.
    #[error(
        "{action}: `{command}` cannot manage the nat table ({detail}): it was created by the other \
         iptables backend; use the same backend (`update-alternatives --config iptables`) or pass \
         `iptables-legacy`/`iptables-nft` explicitly"
    )]
    BackendMismatch {
        action: String,
        command: String,
        detail: String,
    },

    /// Any other iptables failure; `hint` is empty or starts with "; ".
    #[error("{action}: `{command}` failed ({status}): {stderr}{hint}")]
    Iptables {
        action: String,
        command: String,
        status: String,
        stderr: String,
        hint: &'static str,
    },

    /// The iptables binary exists but could not be started.
    #[error("{action}: could not run `{command}`: {source}")]
    Spawn {
        action: String,
        command: String,
        source: io::Error,
    },

    /// The kernel refuses IPv6 addresses on `lo`.
    #[error(
        "{action}: IPv6 is disabled on lo: set `http-protocol-ipv6 = \"disabled\"` under [imds] in \
         the config, or enable it (sysctl -w net.ipv6.conf.lo.disable_ipv6=0)"
    )]
    Ipv6Disabled { action: String },

    /// Any other netlink failure.
    #[error("{action}: netlink: {message}")]
    Netlink { action: String, message: String },

    /// No `lo` in this network namespace (should never happen on a real system).
    #[error("the loopback interface `lo` does not exist in this network namespace")]
    NoLoopback,

    /// Setting up the netlink connection or its runtime failed.
    #[error("cannot open a netlink socket: {0}")]
    NetlinkSocket(#[source] io::Error),

    /// Install failed and undoing its partial work failed too: the host is not as it was.
    #[error(
        "{cause}; rolling back also failed ({}), so some changes remain: run `fake-metadata uninstall`",
        join(.failures)
    )]
    RollbackIncomplete {
        cause: Box<InterceptError>,
        failures: Vec<InterceptError>,
    },

    /// The HTTP check through the intercepted address got no usable answer.
    #[error(
        "no answer from http://{target}{path}: {message} (is `fake-metadata serve` running, and \
         `fake-metadata install` done?)"
    )]
    Probe {
        target: String,
        path: String,
        message: String,
    },
}

fn join(errors: &[InterceptError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
