//! Whether a peer's address is this host's, so that its socket is in our socket table: a
//! container on a bridge, or another machine, has its own. Asked before anything else, and
//! answered without a system call for loopback, the endpoints' addresses and the host's own
//! addresses as last read (`getifaddrs`, re-read at most every [`REREAD`] when a peer is not
//! among them, so a new address is seen and a busy container costs nothing).

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;

/// How often the host's addresses may be re-read, at most.
pub const REREAD: Duration = Duration::from_secs(5);

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

/// The host's addresses as last read.
#[derive(Debug, Default)]
pub struct HostAddresses {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    addresses: Vec<IpAddr>,
    read: Option<Instant>,
}

impl HostAddresses {
    /// Whether `ip` (unmapped) is this host's.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        if always_local(ip) {
            return true;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.addresses.contains(&ip) {
            return true;
        }
        if state.read.is_some_and(|t| t.elapsed() < REREAD) {
            return false;
        }
        state.read = Some(Instant::now());
        state.addresses = own_addresses();
        state.addresses.contains(&ip)
    }
}

/// Every address of every interface (through netlink, in libc).
fn own_addresses() -> Vec<IpAddr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(list) => list
            .filter_map(|i| {
                let a = i.address?;
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the host's addresses");
            Vec::new()
        }
    }
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
    fn a_made_up_address_is_not_local_and_is_reread_only_after_a_while() {
        let hosts = HostAddresses::default();
        // TEST-NET-2: never an address of this host.
        let far: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!hosts.is_local(far));
        let read = hosts.state.lock().unwrap().read;
        assert!(read.is_some(), "the first miss reads the host's addresses");
        assert!(!hosts.is_local(far));
        assert_eq!(
            hosts.state.lock().unwrap().read,
            read,
            "no second read within REREAD"
        );
    }
}
