//! Finds who owns the other end of a local TCP connection, once per accepted connection.
//!
//! - **Is the peer on this host?** Loopback, an endpoint's address, or one of the host's
//!   addresses ([`local`]); anything else (a container on a bridge, another machine) has its
//!   socket in another network namespace: nothing is asked.
//! - **Its socket**: the peer's socket is (peer → what the peer dialled). Behind the box's
//!   `nat OUTPUT REDIRECT` the server sees `169.254.169.254:PORT → 127.0.0.1:1338` while the
//!   client's socket is `169.254.169.254:PORT → 169.254.169.254:80`, so the destination is
//!   conntrack's original one (`SO_ORIGINAL_DST`, `IP6T_SO_ORIGINAL_DST`), else the
//!   connection's own address.
//! - **uid, inode, cgroup id**: the kernel's socket table, by sock_diag's exact lookup
//!   ([`diag`]): O(1), unprivileged, a few µs; `/proc/net/tcp` is parsed whole, grows with the
//!   sockets open (`examples/owner_cost.rs` measures both) and is hidden by the unit's
//!   `ProcSubset=pid`.
//! - **user** ([`users`]) and **cgroup path** ([`cgroup`]): cached, so neither the user
//!   database nor `/sys/fs/cgroup` is read per connection.
//! - **process** ([`process`]): where the daemon may read it (its own uid's processes), later,
//!   on a thread of its own; a process that ended first is recorded without one.
//!
//! Side effects only; what it finds is a [`crate::client::Owner`].

pub mod cgroup;
pub mod diag;
pub mod local;
pub mod process;
pub mod users;

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::client::Owner;

/// The lookups of one daemon: its netlink socket and caches, shared by every listener.
#[derive(Debug)]
pub struct Lookup {
    /// `None` where the kernel cannot be asked (said once, by [`Lookup::new`]).
    diag: Option<diag::SockDiag>,
    hosts: local::HostAddresses,
    users: users::Users,
    cgroups: cgroup::Cgroups,
    processes: process::Resolver,
    /// The uid whose processes the daemon may read.
    euid: u32,
    /// Whether a failed lookup was logged.
    warned: AtomicBool,
}

impl Default for Lookup {
    fn default() -> Self {
        Lookup::new()
    }
}

impl Lookup {
    /// Never fails: where the kernel cannot be asked, every lookup finds nothing (and the
    /// log says why, once).
    pub fn new() -> Lookup {
        let diag = diag::SockDiag::open()
            .inspect_err(|e| tracing::warn!("clients' owners will not be known: {e}"))
            .ok();
        Lookup {
            diag,
            hosts: local::HostAddresses::default(),
            users: users::Users::default(),
            cgroups: cgroup::Cgroups::new(),
            processes: process::Resolver::default(),
            euid: nix::unistd::geteuid().as_raw(),
            warned: AtomicBool::new(false),
        }
    }

    /// The owner of the other end of `socket`, an accepted TCP connection from `peer`;
    /// `None` when the peer is not on this host or the kernel does not say.
    pub fn owner(&self, socket: BorrowedFd<'_>, peer: SocketAddr) -> Option<Arc<Owner>> {
        let found = self.socket(socket, peer)?;
        let owner = Arc::new(Owner {
            uid: found.uid,
            user: self.users.name(found.uid),
            cgroup: found.cgroup.and_then(|id| self.cgroups.path(id)),
            process: OnceLock::new(),
        });
        if found.uid == self.euid {
            self.processes.find(found.inode, &owner);
        }
        Some(owner)
    }

    /// What the kernel's socket table says of the peer's socket.
    pub fn socket(&self, socket: BorrowedFd<'_>, peer: SocketAddr) -> Option<diag::Found> {
        let peer = local::unmapped(peer);
        if !self.hosts.is_local(peer.ip()) {
            return None;
        }
        let diag = self.diag.as_ref()?;
        let dialled = local::unmapped(dialled(socket, peer)?);
        diag.find(peer, dialled)
            .inspect_err(|e| {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!("a client's owner is not known (said once): {e}");
                }
            })
            .ok()
            .flatten()
    }
}

/// What the peer connected to: conntrack's original destination (before a REDIRECT or
/// DNAT), else the connection's own address.
fn dialled(socket: BorrowedFd<'_>, peer: SocketAddr) -> Option<SocketAddr> {
    use nix::sys::socket::{getsockopt, sockopt};
    let original = if peer.is_ipv4() {
        getsockopt(&socket, sockopt::OriginalDst).ok().map(|a| {
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            SocketAddr::new(ip.into(), u16::from_be(a.sin_port))
        })
    } else {
        getsockopt(&socket, sockopt::Ip6tOriginalDst).ok().map(|a| {
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            SocketAddr::new(ip.into(), u16::from_be(a.sin6_port))
        })
    };
    original.or_else(|| {
        socket2::SockRef::from(&socket)
            .local_addr()
            .ok()?
            .as_socket()
    })
}

#[cfg(test)]
mod tests;
