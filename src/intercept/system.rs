//! The real [`Host`]: addresses on `lo` through rtnetlink, rules (`nat OUTPUT`, `nat
//! PREROUTING`, `filter INPUT`) through the `iptables`/`ip6tables` binaries.
//!
//! iptables is run with `std::process::Command` rather than the `iptables` crate: the crate
//! wants a `&'static str` command name (we need it configurable per backend), adds regex and
//! lazy_static, and folds failures into a string, while we need the exit status and stderr to
//! turn them into a hint ("run as root", "other backend"). There is no maintained netfilter-NAT
//! netlink crate, so a subprocess it is; `-w 10` waits for the xtables lock instead of failing.
//!
//! rtnetlink is async. [`SystemHost`] is synchronous: it owns a current-thread tokio runtime
//! and blocks on it for each call, so install/uninstall run as plain code from `main` and the
//! netlink socket lives on the calling thread (which matters for per-thread network namespaces
//! in tests). Do not create or use it from inside an async task (tokio panics when a runtime
//! blocks inside another); from async code use `tokio::task::spawn_blocking`.

use std::io;
use std::process::{Command, ExitStatus, Stdio};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressMessage;

use super::{Chain, Family, Host, InterceptError, LoAddress, Position, Rule};

// errno values (Linux) that get their own message.
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const ENODEV: i32 = 19;
const EADDRNOTAVAIL: i32 = 99;

/// Seconds iptables waits for the xtables lock held by another program.
const LOCK_WAIT_SECS: &str = "10";

/// The kernel of the network namespace this was created in.
pub struct SystemHost {
    runtime: tokio::runtime::Runtime,
    netlink: rtnetlink::Handle,
    iptables: String,
    ip6tables: String,
}

impl SystemHost {
    /// Opens a netlink socket in the calling thread's network namespace; rules go through
    /// `iptables`/`ip6tables` (whatever backend `update-alternatives` selected).
    pub fn new() -> Result<SystemHost, InterceptError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(InterceptError::NetlinkSocket)?;
        let netlink = runtime
            .block_on(async {
                let (connection, handle, _) = rtnetlink::new_connection()?;
                tokio::spawn(connection);
                Ok::<_, io::Error>(handle)
            })
            .map_err(InterceptError::NetlinkSocket)?;
        Ok(SystemHost {
            runtime,
            netlink,
            iptables: "iptables".into(),
            ip6tables: "ip6tables".into(),
        })
    }

    /// Uses other iptables commands, e.g. `iptables-legacy`/`ip6tables-legacy` or a full path.
    pub fn with_iptables(mut self, v4: impl Into<String>, v6: impl Into<String>) -> SystemHost {
        self.iptables = v4.into();
        self.ip6tables = v6.into();
        self
    }

    /// The iptables command used for `family`.
    pub fn iptables_command(&self, family: Family) -> &str {
        match family {
            Family::V4 => &self.iptables,
            Family::V6 => &self.ip6tables,
        }
    }

    /// Runs `<iptables> -w 10 -t <table> <args>`; returns stdout, or the failure as a hint.
    fn iptables(
        &self,
        family: Family,
        table: &str,
        action: &str,
        args: &[&str],
    ) -> Result<String, InterceptError> {
        let command = self.iptables_command(family);
        let output = Command::new(command)
            .args(["-w", LOCK_WAIT_SECS, "-t", table])
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => InterceptError::MissingIptables {
                    command: command.to_string(),
                },
                _ => InterceptError::Spawn {
                    action: action.to_string(),
                    command: command.to_string(),
                    source,
                },
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(iptables_error(action, command, output.status, &stderr))
    }

    /// The index of `lo`.
    async fn lo_index(netlink: &rtnetlink::Handle, action: &str) -> Result<u32, InterceptError> {
        let link = netlink
            .link()
            .get()
            .match_name("lo")
            .execute()
            .try_next()
            .await
            .map_err(|e| netlink_error(action, None, e))?;
        link.map(|l| l.header.index)
            .ok_or(InterceptError::NoLoopback)
    }

    /// The kernel's record of `addr` on `lo`, if assigned.
    async fn find_address(
        netlink: &rtnetlink::Handle,
        addr: &LoAddress,
        action: &str,
    ) -> Result<Option<AddressMessage>, InterceptError> {
        let index = Self::lo_index(netlink, action).await?;
        netlink
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(addr.ip)
            .set_prefix_length_filter(addr.prefix_len)
            .execute()
            .try_next()
            .await
            .map_err(|e| netlink_error(action, Some(addr.family()), e))
    }
}

impl Host for SystemHost {
    fn has_address(&mut self, addr: &LoAddress) -> Result<bool, InterceptError> {
        let action = format!("look up {addr} on lo");
        let found = self
            .runtime
            .block_on(Self::find_address(&self.netlink, addr, &action))?;
        Ok(found.is_some())
    }

    fn add_address(&mut self, addr: &LoAddress) -> Result<(), InterceptError> {
        let action = format!("add {addr} to lo");
        let netlink = &self.netlink;
        self.runtime.block_on(async {
            let index = Self::lo_index(netlink, &action).await?;
            netlink
                .address()
                .add(index, addr.ip, addr.prefix_len)
                .replace()
                .execute()
                .await
                .map_err(|e| netlink_error(&action, Some(addr.family()), e))
        })
    }

    fn delete_address(&mut self, addr: &LoAddress) -> Result<(), InterceptError> {
        let action = format!("remove {addr} from lo");
        let netlink = &self.netlink;
        self.runtime.block_on(async {
            let Some(message) = Self::find_address(netlink, addr, &action).await? else {
                return Ok(()); // already gone
            };
            match netlink.address().del(message).execute().await {
                Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(()), // gone meanwhile
                other => other.map_err(|e| netlink_error(&action, Some(addr.family()), e)),
            }
        })
    }

    fn list_rules(&mut self, family: Family, chain: Chain) -> Result<Vec<String>, InterceptError> {
        let action = format!("list {chain} rules");
        let stdout = self.iptables(family, chain.table, &action, &["-S", chain.name])?;
        Ok(stdout.lines().map(str::to_string).collect())
    }

    fn add_rule(&mut self, rule: &Rule) -> Result<(), InterceptError> {
        let action = format!("add {rule}");
        let mut args = match rule.position() {
            Position::Append => vec!["-A", rule.chain.name],
            Position::First => vec!["-I", rule.chain.name, "1"],
        };
        args.extend(rule.args.iter().map(String::as_str));
        self.iptables(rule.family, rule.chain.table, &action, &args)
            .map(drop)
    }

    fn delete_rule(&mut self, rule: &Rule) -> Result<(), InterceptError> {
        let action = format!("remove {rule}");
        let mut args = vec!["-D", rule.chain.name];
        args.extend(rule.args.iter().map(String::as_str));
        self.iptables(rule.family, rule.chain.table, &action, &args)
            .map(drop)
    }
}

/// The positive errno of a netlink error reply.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Turns a netlink failure into an error that says what to do.
fn netlink_error(action: &str, family: Option<Family>, e: rtnetlink::Error) -> InterceptError {
    let action = action.to_string();
    match (errno(&e), family) {
        (Some(EPERM), _) => InterceptError::PermissionDenied { action },
        // The kernel answers EACCES when IPv6 is disabled on the device.
        (Some(EACCES), Some(Family::V6)) => InterceptError::Ipv6Disabled { action },
        (Some(EACCES), _) => InterceptError::PermissionDenied { action },
        (Some(ENODEV), _) => InterceptError::NoLoopback,
        (Some(code), _) => InterceptError::Netlink {
            action,
            message: io::Error::from_raw_os_error(code).to_string(),
        },
        (None, _) => InterceptError::Netlink {
            action,
            message: e.to_string(),
        },
    }
}

/// Turns a failed iptables run into an error that says what to do, from its stderr.
fn iptables_error(action: &str, command: &str, status: ExitStatus, stderr: &str) -> InterceptError {
    let action = action.to_string();
    let command = command.to_string();
    let stderr = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let has = |needle: &str| stderr.contains(needle);
    if has("you must be root") || has("Permission denied") {
        return InterceptError::PermissionDenied { action };
    }
    if has("incompatible, use 'nft' tool") {
        return InterceptError::BackendMismatch {
            action,
            command,
            detail: stderr,
        };
    }
    let hint = if has("xtables lock") {
        "; another program holds the xtables lock: retry when it is done"
    } else if has("Table does not exist") {
        "; the kernel has no nat table for this family: load iptable_nat/ip6table_nat or try the \
         other iptables backend (iptables-legacy/iptables-nft)"
    } else if has("rule set generation id") || has("Protocol not supported") {
        "; the kernel has no nf_tables: use iptables-legacy \
         (update-alternatives --set iptables /usr/sbin/iptables-legacy)"
    } else if has("REDIRECT")
        || has("DNAT")
        || has("comment")
        || has("conntrack")
        || has("No chain/target/match")
    {
        "; the kernel lacks the REDIRECT/DNAT target or the comment/conntrack match \
         (CONFIG_NETFILTER_XT_TARGET_REDIRECT, CONFIG_NETFILTER_XT_NAT, \
         CONFIG_NETFILTER_XT_MATCH_COMMENT, CONFIG_NETFILTER_XT_MATCH_CONNTRACK)"
    } else {
        ""
    };
    InterceptError::Iptables {
        action,
        command,
        status: status.to_string(),
        stderr,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn iptables_failures_become_hints() {
        let e = iptables_error(
            "list",
            "iptables",
            exit(4),
            "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n",
        );
        assert_eq!(
            e.to_string(),
            "list: permission denied: run as root (CAP_NET_ADMIN is needed)"
        );

        let e = iptables_error(
            "list",
            "iptables-nft",
            exit(1),
            "iptables v1.8.9 (nf_tables): chain `OUTPUT' in table `nat' is incompatible, use 'nft' tool.\n",
        );
        assert!(matches!(e, InterceptError::BackendMismatch { .. }));
        assert!(
            e.to_string()
                .contains("update-alternatives --config iptables"),
            "{e}"
        );

        let e = iptables_error(
            "add",
            "iptables",
            exit(4),
            "Another app is currently holding the xtables lock.\n",
        );
        assert!(e.to_string().ends_with("retry when it is done"), "{e}");

        let e = iptables_error("add", "iptables", exit(1), "weird\n\nthing\n");
        assert_eq!(
            e.to_string(),
            "add: `iptables` failed (exit status: 1): weird; thing"
        );
    }

    #[test]
    fn netlink_errnos_become_hints() {
        let nl = |code: i32| {
            let mut m = rtnetlink::packet_core::ErrorMessage::default();
            m.code = std::num::NonZeroI32::new(-code);
            rtnetlink::Error::NetlinkError(m)
        };
        let e = netlink_error("add x", Some(Family::V4), nl(EPERM));
        assert!(e.to_string().contains("run as root"), "{e}");
        let e = netlink_error("add x", Some(Family::V6), nl(EACCES));
        assert!(
            e.to_string()
                .contains(r#"set `http-protocol-ipv6 = "disabled"` under [imds]"#),
            "{e}"
        );
        let e = netlink_error("add x", Some(Family::V4), nl(17));
        assert_eq!(e.to_string(), "add x: netlink: File exists (os error 17)");
    }

    #[test]
    fn missing_binary_says_install_iptables() {
        let host = SystemHost::new()
            .unwrap()
            .with_iptables("/nonexistent/iptables", "x");
        let e = host
            .iptables(Family::V4, "nat", "list", &["-S", "OUTPUT"])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`/nonexistent/iptables` was not found: install the iptables package (apt-get install iptables)"
        );
    }
}
