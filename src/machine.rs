//! Facts about the machine we run on, for defaults that make each box a different instance:
//! the instance id from `/etc/machine-id`, the primary address and MAC from the interface of
//! the default route, the host name. Gathering is the only side effect here; turning facts
//! into values is pure and tested.

use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

/// What the box tells about itself; every part may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineFacts {
    pub machine_id: Option<String>,
    pub hostname: Option<String>,
    pub primary: Option<PrimaryNic>,
    /// The CPU architecture as Rust names it (`x86_64`, `aarch64`): an arm64 box is served
    /// as a Graviton instance type by default.
    pub arch: Option<String>,
}

/// The interface of the default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryNic {
    pub name: String,
    pub ipv4: Ipv4Addr,
    pub prefix: u8,
    pub mac: Option<String>,
}

impl MachineFacts {
    /// No facts: the built-in defaults apply (tests, reproducible setups).
    pub fn none() -> MachineFacts {
        MachineFacts::default()
    }

    /// Reads the facts of this machine. Never fails: what cannot be read is left out.
    pub fn gather() -> MachineFacts {
        let machine_id = std::fs::read_to_string("/etc/machine-id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty() && h != "localhost");
        let primary = std::fs::read_to_string("/proc/net/route")
            .ok()
            .and_then(|t| nic(&t));
        MachineFacts {
            machine_id,
            hostname,
            primary,
            arch: Some(std::env::consts::ARCH.to_string()),
        }
    }
}

/// One line of `/proc/net/route`: interface, destination, gateway, metric, mask. The kernel
/// prints each address as the raw 32-bit word in hex, so its bytes in memory order are the
/// address.
struct Route<'a> {
    iface: &'a str,
    dest: Ipv4Addr,
    gateway: Ipv4Addr,
    metric: u32,
    mask: Ipv4Addr,
}

fn routes(route_table: &str) -> impl Iterator<Item = Route<'_>> {
    let addr = |h: &str| {
        u32::from_str_radix(h, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    route_table.lines().skip(1).filter_map(move |l| {
        // Iface Destination Gateway Flags RefCnt Use Metric Mask …
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7).then_some(())?;
        Some(Route {
            iface: f[0],
            dest: addr(f[1])?,
            gateway: addr(f[2])?,
            metric: f[6].parse().unwrap_or(u32::MAX),
            mask: addr(f[7])?,
        })
    })
}

/// The IPv4 default route with the lowest metric: its interface and gateway.
pub fn default_route(route_table: &str) -> Option<(String, Ipv4Addr)> {
    routes(route_table)
        .filter(|r| r.dest.is_unspecified() && r.mask.is_unspecified())
        .min_by_key(|r| r.metric)
        .map(|r| (r.iface.to_string(), r.gateway))
}

/// The prefix length of `iface`'s on-link route that holds `ip` (the longest), if any.
pub fn on_link_prefix(route_table: &str, iface: &str, ip: Ipv4Addr) -> Option<u8> {
    routes(route_table)
        .filter(|r| r.iface == iface && r.gateway.is_unspecified() && !r.mask.is_unspecified())
        .filter(|r| u32::from(ip) & u32::from(r.mask) == u32::from(r.dest))
        .map(|r| u32::from(r.mask).count_ones() as u8)
        .max()
}

/// The default route's interface: its address, network and MAC. Without netlink (the daemon
/// asks it for nothing but sock_diag, and must work where it is refused; `getifaddrs` needs
/// it): the
/// address is the source the kernel picks for the default route (a UDP socket connected to the
/// gateway; connecting sends nothing), the prefix that of the on-link route holding it.
fn nic(route_table: &str) -> Option<PrimaryNic> {
    let (name, gateway) = default_route(route_table)?;
    // A default route without a gateway (point-to-point): any address it carries will do.
    let via = if gateway.is_unspecified() {
        Ipv4Addr::new(192, 0, 2, 1)
    } else {
        gateway
    };
    let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    probe.connect((via, 9)).ok()?;
    let std::net::IpAddr::V4(ipv4) = probe.local_addr().ok()?.ip() else {
        return None;
    };
    let prefix = on_link_prefix(route_table, &name, ipv4).unwrap_or(32);
    let mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .ok()
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00");
    Some(PrimaryNic {
        name,
        ipv4,
        prefix,
        mac,
    })
}

/// A stable EC2-shaped instance id for a machine id: the same box always gets the same id,
/// two boxes get two ids.
pub fn instance_id(machine_id: &str) -> String {
    let digest = Sha256::digest(format!("fake-metadata instance-id {machine_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("i-{}", &hex[..17])
}

/// The network of an address, as `a.b.c.d/n`.
pub fn network(ip: Ipv4Addr, prefix: u8) -> String {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    format!("{}/{prefix}", Ipv4Addr::from(u32::from(ip) & mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_stable_and_distinct() {
        let a = instance_id("4c4c4544004d3510804eb4c04f483432");
        assert_eq!(a, instance_id("4c4c4544004d3510804eb4c04f483432"));
        assert_ne!(a, instance_id("0b6a8b1c4f5e4d7a9c2e3f4a5b6c7d8e"));
        assert!(a.starts_with("i-") && a.len() == 19);
        assert!(
            a[2..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    // A little-endian machine's /proc/net/route (x86_64, aarch64).
    #[cfg(target_endian = "little")]
    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
            eth0\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
            eth0\t0000000A\t00000000\t0001\t0\t0\t100\t000000FF\t0\t0\t0\n\
            eth1\t0001A8C0\t00000000\t0001\t0\t0\t200\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            default_route(table),
            Some(("eth0".into(), Ipv4Addr::new(10, 0, 2, 2)))
        );
        assert_eq!(default_route("Iface\tDestination\n"), None);
        // The longest on-link route of that interface holding the address.
        let ip = Ipv4Addr::new(10, 0, 2, 15);
        assert_eq!(on_link_prefix(table, "eth0", ip), Some(24));
        assert_eq!(on_link_prefix(table, "eth1", ip), None);
        assert_eq!(
            on_link_prefix(table, "eth0", Ipv4Addr::new(10, 9, 9, 9)),
            Some(8)
        );
    }

    #[test]
    fn networks() {
        assert_eq!(network(Ipv4Addr::new(10, 0, 2, 15), 24), "10.0.2.0/24");
        assert_eq!(
            network(Ipv4Addr::new(192, 168, 121, 77), 20),
            "192.168.112.0/20"
        );
        assert_eq!(network(Ipv4Addr::new(1, 2, 3, 4), 0), "0.0.0.0/0");
    }
}
