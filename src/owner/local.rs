//! Whether a peer's address is this host's, so that its socket is in our socket table: a
//! container on a bridge, or another machine, has its own. Asked before anything else:
//! loopback and the endpoints' addresses are ours; another address is asked of the kernel's
//! routing once and the answer kept for [`REMEMBER`], so a busy container costs no system call.
//! Not by listing the host's addresses (`getifaddrs`): that needs NETLINK_ROUTE, and the unit
//! allows netlink for sock_diag alone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;

/// How long an address's answer is kept.
pub const REMEMBER: Duration = Duration::from_secs(10);
/// Addresses remembered at most; past that the cache starts over.
pub const MAX_ADDRESSES: usize = 4096;

/// An IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`) as the IPv4 address it is: its
/// own socket is an IPv4 one.
pub fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Loopback, or the address of an endpoint (on `lo` while intercepting: the source of a
/// REDIRECTed connection).
pub fn always_local(ip: IpAddr) -> bool {
    ip.is_loopback()
        || Endpoint::ALL
            .iter()
            .any(|e| ip == IpAddr::V4(e.ipv4()) || e.ipv6().is_some_and(|v6| ip == IpAddr::V6(v6)))
}

/// Which addresses are the host's, as lately asked.
#[derive(Debug, Default)]
pub struct HostAddresses {
    answers: Mutex<HashMap<IpAddr, (bool, Instant)>>,
}

impl HostAddresses {
    /// Whether `ip` (unmapped) is this host's.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        if always_local(ip) {
            return true;
        }
        if let Some(&(local, asked)) = self.lock().get(&ip)
            && asked.elapsed() < REMEMBER
        {
            return local;
        }
        let local = is_own_address(ip);
        let mut answers = self.lock();
        if answers.len() >= MAX_ADDRESSES {
            answers.clear();
        }
        answers.insert(ip, (local, Instant::now()));
        local
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (bool, Instant)>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `ip` is one of this host's addresses, as the kernel's routing says, without
/// netlink: a UDP socket connected to one of our own addresses is routed through the local
/// table and takes that very address as its source (for IPv6, RFC 6724 rule 1: the same
/// address); connected anywhere else, it takes the source of its route, another address, or
/// fails without a route. Connecting a UDP socket sends nothing. (The server's token check,
/// `server::conn`, asks the same way.)
fn is_own_address(ip: IpAddr) -> bool {
    let peer = SocketAddr::new(ip, 9);
    let domain = socket2::Domain::for_address(peer);
    socket2::Socket::new(domain, socket2::Type::DGRAM, None)
        .and_then(|sock| {
            sock.connect(&peer.into())?;
            sock.local_addr()
        })
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|source| source.ip() == ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_ipv4_and_the_rest_is_kept() {
        let mapped: SocketAddr = "[::ffff:169.254.169.254]:4000".parse().unwrap();
        assert_eq!(unmapped(mapped), "169.254.169.254:4000".parse().unwrap());
        for a in ["[::1]:80", "127.0.0.1:80", "[fd00:ec2::254]:80"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(unmapped(a), a);
        }
    }

    #[test]
    fn loopback_and_endpoints_are_local_others_are_not_without_a_read() {
        for ip in [
            "127.0.0.1",
            "127.3.2.1",
            "::1",
            "169.254.169.254",
            "fd00:ec2::254",
            "169.254.170.2",
            "169.254.170.23",
        ] {
            assert!(always_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.1.2.3", "172.17.0.2", "169.254.169.253", "fd00:ec2::253"] {
            assert!(!always_local(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_made_up_address_is_not_local_and_its_answer_is_kept() {
        let hosts = HostAddresses::default();
        // TEST-NET-2: never an address of this host.
        let far: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!hosts.is_local(far));
        let asked = hosts.lock().get(&far).copied();
        assert!(
            matches!(asked, Some((false, _))),
            "the answer is kept: {asked:?}"
        );
        assert!(!hosts.is_local(far));
        assert_eq!(
            hosts.lock().get(&far).copied(),
            asked,
            "not asked again within REMEMBER"
        );
    }
}
