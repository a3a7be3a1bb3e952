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
            .and_then(|t| default_route_interface(&t))
            .and_then(|name| nic(&name));
        MachineFacts {
            machine_id,
            hostname,
            primary,
            arch: Some(std::env::consts::ARCH.to_string()),
        }
    }
}

/// The interface of the IPv4 default route in `/proc/net/route` text (lowest metric).
pub fn default_route_interface(route_table: &str) -> Option<String> {
    route_table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask …
            (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000")
                .then(|| (f[6].parse::<u32>().unwrap_or(u32::MAX), f[0].to_string()))
        })
        .min()
        .map(|(_, name)| name)
}

fn nic(name: &str) -> Option<PrimaryNic> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let (ipv4, prefix) = addrs.filter(|a| a.interface_name == name).find_map(|a| {
        let ip = a.address?.as_sockaddr_in()?.ip();
        let mask = a.netmask.and_then(|m| m.as_sockaddr_in().map(|m| m.ip()));
        Some((ip, mask.map_or(32, |m| u32::from(m).count_ones() as u8)))
    })?;
    let mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .ok()
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00");
    Some(PrimaryNic {
        name: name.to_string(),
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

    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
            eth0\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_interface(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
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
