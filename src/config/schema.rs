//! The file's sections as it spells them (kebab-case, unknown keys rejected), with their
//! built-in defaults and the values derived from others.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::locate::Spans;
use super::{ConfigError, DEFAULT_PORT, USER_DATA_MAX};
use crate::machine::MachineFacts;
use crate::types::{AccountId, Ec2Id, Ipv6Cidr, Mac, Region, Zone};

/// A built-in or derived value of a checked type; these are valid by construction.
fn valid<T: TryFrom<String, Error = String>>(s: &str) -> T {
    T::try_from(s.to_string()).unwrap_or_else(|e| unreachable!("built-in value: {e}"))
}

/// `[server]`: where and how the daemon listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Server {
    /// Addresses to listen on. Default: `127.0.0.1:1338` and, where IPv6 exists, `[::1]:1338`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<SocketAddr>>,
    /// EC2 answers every request with `Connection: close`; `true` keeps connections open
    /// instead (faster for benchmarks and keep-alive clients, less faithful).
    pub keep_alive: bool,
    /// Where the daemon keeps its identity signing key and certificate. Default:
    /// `$STATE_DIRECTORY` (systemd), else `/var/lib/fake-metadata` for root or when it exists,
    /// else `$XDG_STATE_HOME/fake-metadata` (`~/.local/state/fake-metadata`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_directory: Option<PathBuf>,
    /// Connections served at once (EC2 also limits them per instance). Beyond it, new
    /// connections wait in the kernel's listen backlog until one ends.
    pub max_connections: MaxConnections,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: None,
            keep_alive: false,
            state_directory: None,
            max_connections: MaxConnections::DEFAULT,
        }
    }
}

/// How many connections the daemon serves at once: 1..=65536. The default, 512, stays well
/// under the file descriptor limit a service gets by default (1024 under systemd), so
/// accepting never fails for want of one, and far above what the agents of one machine use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct MaxConnections(u32);

impl MaxConnections {
    pub const DEFAULT: MaxConnections = MaxConnections(512);

    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl TryFrom<i64> for MaxConnections {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=65536 => Ok(MaxConnections(v as u32)),
            _ => Err(format!("max-connections {v} is out of range: 1 to 65536")),
        }
    }
}

impl From<MaxConnections> for i64 {
    fn from(m: MaxConnections) -> i64 {
        m.0.into()
    }
}

impl Server {
    /// The configured addresses, or the defaults (the IPv6 one may fail to bind and is then
    /// skipped; see [`Server::listen_is_default`]).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        match &self.listen {
            Some(l) => l.clone(),
            None => vec![
                SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, DEFAULT_PORT)),
            ],
        }
    }

    /// Whether the addresses are the built-in defaults (a missing IPv6 stack is then no error).
    pub fn listen_is_default(&self) -> bool {
        self.listen.is_none()
    }

    /// The state directory, configured or by the default rule.
    pub fn state_directory(&self) -> PathBuf {
        if let Some(d) = &self.state_directory {
            return d.clone();
        }
        if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
            // systemd may list several, separated by ':'; ours is the first.
            let first = d
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string();
            return PathBuf::from(first);
        }
        let system = PathBuf::from("/var/lib/fake-metadata");
        if nix::unistd::Uid::effective().is_root() || system.is_dir() {
            return system;
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("fake-metadata")
    }

    /// The port the interception REDIRECT should point at: that of the first IPv4 address.
    pub fn redirect_port(&self) -> u16 {
        let addrs = self.listen_addrs();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .map_or(DEFAULT_PORT, SocketAddr::port)
    }
}

/// `[intercept]`: what `fake-metadata install` routes to the daemon besides the box's own
/// connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Intercept {
    /// Containers on the container networks (Docker, compose, podman, k3s's and other CNI
    /// bridges, kind; LXC, libvirt and others through `container-interfaces`) reach
    /// 169.254.169.254 through the box, as on EC2, where the token reply's hop limit
    /// decides IMDSv2 for them. `false` keeps them out: they then get no metadata at all (use
    /// it when they must not see this box's identity and credentials, or when another
    /// metadata proxy serves them).
    pub containers: bool,
    /// Container networks whose connections reach the daemon, besides the defaults
    /// (`docker0`, `br-+`, `podman+`, `cni+`; iptables names, `+` = any suffix): e.g. `cbr0`
    /// (kubenet), `lxcbr0`, `virbr+`, `veth+` (containers routed without a bridge). Traffic
    /// from any other interface (the LAN, whatever its uplink is called) is dropped.
    pub container_interfaces: Vec<crate::intercept::InterfacePattern>,
    /// Interfaces whose traffic never reaches the daemon, even if a container pattern matches
    /// them (a LAN bridge named `br-lan`). Default: none, the allow-list above keeps the LAN
    /// out. (Before the allow-list, this listed the LAN's NIC names; such a list still works.)
    pub lan_interfaces: Vec<crate::intercept::InterfacePattern>,
}

impl Default for Intercept {
    fn default() -> Self {
        Intercept {
            containers: true,
            container_interfaces: Vec::new(),
            lan_interfaces: Vec::new(),
        }
    }
}

impl Intercept {
    /// The container networks admitted: the defaults, then the configured ones not already
    /// among them.
    pub fn admitted(&self) -> Vec<crate::intercept::InterfacePattern> {
        let mut all = crate::intercept::InterfacePattern::container_defaults();
        for p in &self.container_interfaces {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        all
    }
}

/// `[imds]`: EC2's instance metadata options, by the same names and meanings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Imds {
    pub http_endpoint: Toggle,
    pub http_tokens: HttpTokens,
    pub http_put_response_hop_limit: HopLimit,
    pub http_protocol_ipv6: Toggle,
    pub instance_metadata_tags: Toggle,
    /// `nitro` | `xen`: how refusals look (empty, or an XHTML page under HTTP/1.0) and the
    /// `system` category; unset, the instance type's family decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<crate::imds::Generation>,
}

impl Default for Imds {
    fn default() -> Self {
        Imds {
            http_endpoint: Toggle::Enabled,
            // cloud-init in a Vagrant box speaks IMDSv1 only, so `required` must not be default.
            http_tokens: HttpTokens::Optional,
            http_put_response_hop_limit: HopLimit(1),
            http_protocol_ipv6: Toggle::Disabled,
            instance_metadata_tags: Toggle::Disabled,
            generation: None,
        }
    }
}

/// `enabled` | `disabled`, as EC2 spells its switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Enabled,
    Disabled,
}

impl Toggle {
    pub fn is_enabled(self) -> bool {
        self == Toggle::Enabled
    }
}

/// `optional` (IMDSv1 and v2) | `required` (IMDSv2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpTokens {
    Optional,
    Required,
}

impl std::str::FromStr for HttpTokens {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "optional" => Ok(HttpTokens::Optional),
            "required" => Ok(HttpTokens::Required),
            _ => Err(format!("`{s}` is not `optional` or `required`")),
        }
    }
}

/// The IP TTL of a token reply: 1..=64, as on EC2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct HopLimit(u8);

impl HopLimit {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for HopLimit {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=64 => Ok(HopLimit(v as u8)),
            _ => Err(format!("hop limit {v} is out of range: EC2 allows 1 to 64")),
        }
    }
}

impl From<HopLimit> for i64 {
    fn from(h: HopLimit) -> i64 {
        h.0.into()
    }
}

/// `[instance]`: the values the metadata tree and the identity document are made of. Values
/// left out come from this machine (with `from-host`) or are derived from the others (region
/// from the zone, host names from addresses), else the built-in defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Instance {
    /// Take what is not set from this machine: the instance id from `/etc/machine-id`, the
    /// primary address, MAC and subnet from the default route's interface, the host name.
    pub from_host: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Ec2Id<'i'>>,
    /// Unset: `t3.micro`, or `t4g.micro` on an arm64 box (with `from-host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    pub ami_id: Ec2Id<'a'>,
    pub ami_launch_index: u32,
    pub ami_manifest_path: String,
    pub account_id: AccountId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    pub availability_zone: Zone,
    /// Unset: derived from the zone (`euw1-az2` for `eu-west-1b`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone_id: Option<String>,
    /// The identity document's; unset: from the instance type (`arm64` for Graviton).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    pub instance_life_cycle: String,
    /// RFC 3339 UTC time the instance launched (`pendingTime` in the identity document).
    pub pending_time: String,
    pub reservation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramdisk_id: Option<String>,
    pub product_codes: Vec<String>,
    /// The primary network interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_ipv4: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ipv4: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The primary interface's subnet IPv6 blocks; unset: the /64 of `ipv6`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subnet_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    /// The VPC's IPv6 blocks; unset: the /56 of `ipv6`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vpc_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_hostname: Option<String>,
    pub interface_id: String,
    pub subnet_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_ipv4_cidr_block: Option<String>,
    pub vpc_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_ipv4_cidr_block: Option<String>,
    pub security_groups: Vec<String>,
    pub security_group_ids: Vec<String>,
    /// `block-device-mapping/<name>` → device.
    pub block_device_mapping: BTreeMap<String, String>,
    /// The key pair: served as `public-keys/0=<name>` and `public-keys/0/openssh-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKey>,
    /// Secondary network interfaces (the primary one is made of the values above).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// `profile` (every capture 2016–2025: `default-hvm`).
    pub profile: String,
    /// `system`; unset, the generation's name (`nitro`, as captured since 2023, or `xen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Launched with hibernation enabled: serves `hibernation/configured` = `true`.
    pub hibernation: bool,
    /// The placement group the instance runs in: `placement/group-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_group: Option<String>,
    /// Its partition in a partition placement group (1 to 7): `placement/partition-number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_number: Option<PartitionNumber>,
    /// The Dedicated Host it runs on (`h-` and 17 hex digits): `placement/host-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<Ec2Id<'h'>>,
}

/// A partition of a partition placement group: EC2 allows 1 to 7 per zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct PartitionNumber(u8);

impl TryFrom<i64> for PartitionNumber {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=7 => Ok(PartitionNumber(v as u8)),
            _ => Err(format!(
                "partition number {v} is out of range: EC2 allows 1 to 7"
            )),
        }
    }
}

impl From<PartitionNumber> for i64 {
    fn from(p: PartitionNumber) -> i64 {
        p.0.into()
    }
}

/// `[[instance.network-interfaces]]`: a secondary interface, as EC2 lists it under
/// `network/interfaces/macs/<mac>/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkInterface {
    pub mac: Mac,
    pub device_number: u32,
    #[serde(default)]
    pub network_card_index: u32,
    pub interface_id: String,
    /// Private addresses, the primary first.
    pub local_ipv4s: Vec<Ipv4Addr>,
    /// Public addresses; the n-th is associated with the n-th private address.
    #[serde(default)]
    pub public_ipv4s: Vec<Ipv4Addr>,
    #[serde(default)]
    pub ipv6s: Vec<Ipv6Addr>,
    /// Unset: the /64 of each address in `ipv6s` (EC2 lists them on every interface in an
    /// IPv6 subnet; the VPC CNI treats a 404 there as an error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    /// Unset: the /56 of each address in `ipv6s`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_ipv4_cidr_block: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
}

/// Built-in values when neither the config nor the machine gives one.
pub const DEFAULT_INSTANCE_ID: &str = "i-0123456789abcdef0";
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
/// The default on an arm64 box: the smallest Graviton type of the same family tier.
pub const DEFAULT_INSTANCE_TYPE_ARM64: &str = "t4g.micro";
pub const DEFAULT_LOCAL_IPV4: Ipv4Addr = Ipv4Addr::new(172, 31, 16, 10);
pub const DEFAULT_MAC: &str = "0e:49:61:0f:c3:11";
pub const DEFAULT_SUBNET: &str = "172.31.16.0/20";
pub const DEFAULT_VPC: &str = "172.31.0.0/16";

impl Default for Instance {
    fn default() -> Self {
        Instance {
            from_host: true,
            instance_id: None,
            instance_type: None,
            ami_id: valid("ami-0abcdef1234567890"),
            ami_launch_index: 0,
            ami_manifest_path: "(unknown)".into(),
            account_id: valid("123456789012"),
            region: None,
            availability_zone: valid("us-east-1a"),
            availability_zone_id: None,
            architecture: None,
            instance_life_cycle: "on-demand".into(),
            pending_time: "2026-01-01T00:00:00Z".into(),
            reservation_id: "r-0fedcba9876543210".into(),
            kernel_id: None,
            ramdisk_id: None,
            product_codes: Vec::new(),
            local_ipv4: None,
            public_ipv4: Some(Ipv4Addr::new(54, 210, 10, 20)),
            ipv6: None,
            subnet_ipv6_cidr_blocks: Vec::new(),
            vpc_ipv6_cidr_blocks: Vec::new(),
            mac: None,
            hostname: None,
            public_hostname: None,
            interface_id: "eni-0f1e2d3c4b5a69788".into(),
            subnet_id: "subnet-0a1b2c3d4e5f67890".into(),
            subnet_ipv4_cidr_block: None,
            vpc_id: "vpc-0a1b2c3d4e5f67890".into(),
            vpc_ipv4_cidr_block: None,
            security_groups: vec!["default".into()],
            security_group_ids: vec!["sg-0a1b2c3d4e5f67890".into()],
            block_device_mapping: [("ami", "/dev/xvda"), ("root", "/dev/xvda")]
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            public_key: None,
            network_interfaces: Vec::new(),
            profile: "default-hvm".into(),
            system: None,
            hibernation: false,
            placement_group: None,
            partition_number: None,
            host_id: None,
        }
    }
}

impl Instance {
    /// The region: configured, or the zone without its trailing letter.
    pub fn region(&self) -> String {
        match &self.region {
            Some(r) => r.to_string(),
            None => self.availability_zone.region().to_string(),
        }
    }

    /// EC2's private DNS name for the primary address.
    pub fn hostname(&self) -> String {
        if let Some(h) = &self.hostname {
            return h.clone();
        }
        let ip = self.local_ipv4().to_string().replace('.', "-");
        match self.region().as_str() {
            "us-east-1" => format!("ip-{ip}.ec2.internal"),
            r => format!("ip-{ip}.{r}.compute.internal"),
        }
    }

    /// EC2's public DNS name, when there is a public address.
    pub fn public_hostname(&self) -> Option<String> {
        if let Some(h) = &self.public_hostname {
            return Some(h.clone());
        }
        let ip = self.public_ipv4?.to_string().replace('.', "-");
        let (_, domain) = self.partition();
        Some(match self.region().as_str() {
            "us-east-1" => format!("ec2-{ip}.compute-1.amazonaws.com"),
            // China's names end in its partition's suffix: ec2-…cn-north-1.compute.amazonaws.com.cn
            r => format!("ec2-{ip}.{r}.compute.{domain}"),
        })
    }

    /// The AWS partition and its DNS suffix, from the region.
    pub fn partition(&self) -> (&'static str, &'static str) {
        crate::ec2::partition(&self.region())
    }

    pub fn instance_type(&self) -> &str {
        self.instance_type
            .as_deref()
            .unwrap_or(DEFAULT_INSTANCE_TYPE)
    }

    pub fn availability_zone_id(&self) -> String {
        self.availability_zone_id
            .clone()
            .unwrap_or_else(|| self.availability_zone.id())
    }

    pub fn architecture(&self) -> &str {
        self.architecture
            .as_deref()
            .unwrap_or_else(|| crate::ec2::architecture_of(self.instance_type()))
    }

    pub fn instance_id(&self) -> &str {
        self.instance_id
            .as_ref()
            .map_or(DEFAULT_INSTANCE_ID, Ec2Id::as_str)
    }

    pub fn local_ipv4(&self) -> Ipv4Addr {
        self.local_ipv4.unwrap_or(DEFAULT_LOCAL_IPV4)
    }

    pub fn mac(&self) -> &str {
        self.mac.as_ref().map_or(DEFAULT_MAC, Mac::as_str)
    }

    pub fn subnet_ipv4_cidr_block(&self) -> &str {
        self.subnet_ipv4_cidr_block
            .as_deref()
            .unwrap_or(DEFAULT_SUBNET)
    }

    pub fn vpc_ipv4_cidr_block(&self) -> &str {
        self.vpc_ipv4_cidr_block.as_deref().unwrap_or(DEFAULT_VPC)
    }

    /// Fills in what is not set, from the machine's facts (with `from-host`) or derived from
    /// other values, so that `print-config` shows the effective values.
    pub(super) fn resolve(&mut self, facts: &MachineFacts) {
        let none = MachineFacts::none();
        let facts = if self.from_host { facts } else { &none };
        if self.instance_type.is_none() {
            let arm = facts.arch.as_deref() == Some("aarch64");
            self.instance_type = Some(
                if arm {
                    DEFAULT_INSTANCE_TYPE_ARM64
                } else {
                    DEFAULT_INSTANCE_TYPE
                }
                .into(),
            );
        }
        self.availability_zone_id
            .get_or_insert_with(|| self.availability_zone.id());
        if self.architecture.is_none() {
            self.architecture = Some(self.architecture().to_string());
        }
        if self.instance_id.is_none() {
            self.instance_id =
                Some(valid(&facts.machine_id.as_deref().map_or(
                    DEFAULT_INSTANCE_ID.into(),
                    crate::machine::instance_id,
                )));
        }
        if self.local_ipv4.is_none() {
            let nic = facts.primary.as_ref();
            self.local_ipv4 = Some(nic.map_or(DEFAULT_LOCAL_IPV4, |n| n.ipv4));
            if let Some(n) = nic {
                let subnet = crate::machine::network(n.ipv4, n.prefix);
                let in_default_vpc = n.ipv4.octets()[..2] == [172, 31];
                self.subnet_ipv4_cidr_block.get_or_insert(subnet.clone());
                self.vpc_ipv4_cidr_block.get_or_insert(if in_default_vpc {
                    DEFAULT_VPC.into()
                } else {
                    subnet
                });
            }
        }
        if self.mac.is_none() {
            let mac = facts.primary.as_ref().and_then(|n| n.mac.clone());
            self.mac = Some(
                mac.and_then(|m| Mac::try_from(m).ok())
                    .unwrap_or_else(|| valid(DEFAULT_MAC)),
            );
        }
        self.subnet_ipv4_cidr_block
            .get_or_insert(DEFAULT_SUBNET.into());
        self.vpc_ipv4_cidr_block.get_or_insert(DEFAULT_VPC.into());
        if self.hostname.is_none() {
            self.hostname = facts.hostname.clone();
        }
        self.region
            .get_or_insert_with(|| valid(self.availability_zone.region()));
        if self.hostname.is_none() {
            self.hostname = Some(self.hostname());
        }
        if self.public_hostname.is_none() {
            self.public_hostname = self.public_hostname();
        }
    }
}

/// A key pair served under `public-keys/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PublicKey {
    pub name: String,
    pub openssh_key: String,
}

/// `[user-data]`: inline `text` or a `file` of raw bytes (at most 16 KiB), never both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl UserData {
    pub(super) fn is_unset(&self) -> bool {
        self.text.is_none() && self.file.is_none()
    }

    /// The bytes to serve. A `file` is read now, once: at most the 16 KiB EC2 allows (one
    /// byte more tells that it is too long), only a regular file (a FIFO or a device would
    /// block or never end), opened without blocking; a problem names the `file` key.
    pub(super) fn load(&self, spans: &Spans<'_>) -> Result<Option<Bytes>, ConfigError> {
        if let Some(t) = &self.text {
            return Ok(Some(Bytes::from(t.clone())));
        }
        let Some(path) = &self.file else {
            return Ok(None);
        };
        let blame = |what: String| {
            ConfigError::Invalid(vec![spans.blame(
                &["user-data", "file"],
                format!("user data file {}: {what}", path.display()),
            )])
        };
        let f = open_regular(path, "user data").map_err(blame)?;
        let mut bytes = Vec::new();
        f.take(USER_DATA_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| blame(format!("cannot read it: {e}")))?;
        if bytes.len() > USER_DATA_MAX {
            return Err(blame(
                "is over 16 KiB; EC2 allows at most 16 KiB of user data".into(),
            ));
        }
        Ok(Some(Bytes::from(bytes)))
    }
}

/// Opens `path` for reading if it is a regular file, without blocking on a FIFO; `what` it
/// must be, for the message.
pub(super) fn open_regular(path: &std::path::Path, what: &str) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "is not a regular file (a FIFO, device or directory cannot be {what})"
        ));
    }
    Ok(f)
}

/// `[log]`: where the daemon writes besides journald/stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Log {
    /// A file the daemon also logs to, reopened on SIGHUP (for logrotate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Log one line per request (method, path, status; never a token).
    pub requests: bool,
    /// A tracing filter, e.g. `info` or `fake_metadata=debug`.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            file: None,
            requests: false,
            level: "info".into(),
        }
    }
}

/// Where the control socket is by default: the systemd unit's `RuntimeDirectory`.
pub const DEFAULT_SOCKET: &str = "/run/fake-metadata/control.sock";
/// The group whose members may use the control socket (the package creates it).
pub const DEFAULT_GROUP: &str = "fake-metadata-ctl";

/// `[control]`: the socket `fake-metadata ctl` talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ControlConfig {
    /// `false` turns the control socket off.
    pub enabled: bool,
    /// The socket's path. Default: `/run/fake-metadata/control.sock`, else
    /// `$XDG_RUNTIME_DIR/fake-metadata/control.sock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// The group given the socket, whose members may use it.
    pub group: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            enabled: true,
            socket: None,
            group: DEFAULT_GROUP.into(),
        }
    }
}

impl ControlConfig {
    /// Where to look for the socket, in order: the configured path, or the default and the
    /// per-user fallback.
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.socket {
            return vec![p.clone()];
        }
        let mut v = vec![PathBuf::from(DEFAULT_SOCKET)];
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
            v.push(PathBuf::from(x).join("fake-metadata/control.sock"));
        }
        v
    }
}

// ---- `[replay]`: a tree crawled from a real instance (`fake-metadata snapshot`) ----

/// `[replay]`: paths crawled from a real instance, served byte for byte in place of the
/// tree `[instance]` describes. `fake-metadata snapshot` writes it; it may be written by
/// hand too. The box still signs the identity document, hands out credentials under
/// `[iam] role` and runs the scenario (see `crate::snapshot::replay`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Replay {
    /// The endpoint that was crawled (for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was crawled, RFC 3339 (for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
    /// Set when the crawl did not finish: what is missing and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// Directory → its listing, exactly as crawled (`"meta-data"`, `"meta-data/placement"`).
    #[serde(default)]
    pub listings: BTreeMap<ReplayPath, String>,
    /// Path → its exact bytes: a string, or `{ base64 = "…" }` for bytes that are not UTF-8.
    #[serde(default)]
    pub leaves: BTreeMap<ReplayPath, ReplayValue>,
}

impl Replay {
    /// The leaf at `path`, if replayed.
    pub fn leaf(&self, path: &str) -> Option<&Bytes> {
        self.leaves.get(path).map(|v| &v.0)
    }

    /// The leaves the loader refuses, and why: user data over EC2's cap, a value that other
    /// replayed paths make a directory. The one rule: the loader blames each, and
    /// `snapshot` leaves each out of the file it writes. Linear: a value's descendants, if
    /// any, sort right after `PATH/` in the map.
    pub fn refused(&self) -> Vec<(ReplayPath, String)> {
        let mut out = Vec::new();
        for (p, v) in &self.leaves {
            if p.as_str() == "user-data" && v.0.len() > USER_DATA_MAX {
                out.push((
                    p.clone(),
                    format!(
                        "user data is {} bytes; EC2 allows at most 16 KiB",
                        v.0.len()
                    ),
                ));
            }
            let below = format!("{}/", p.as_str());
            let clash = self.listings.contains_key(p.as_str())
                || self
                    .leaves
                    .range::<str, _>((
                        std::ops::Bound::Included(below.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .next()
                    .is_some_and(|(q, _)| q.as_str().starts_with(&below));
            if clash {
                out.push((
                    p.clone(),
                    format!("`{p}` is a value, but other replayed paths make it a directory"),
                ));
            }
        }
        out
    }
}

/// A path of a replayed tree: `user-data`, or `meta-data`/`dynamic` and what is below them,
/// without empty, `.` or `..` segments and without a leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReplayPath(String);

impl ReplayPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ReplayPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for ReplayPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReplayPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let top = s.split('/').next().unwrap_or_default();
        let ok = (s == "user-data" || top == "meta-data" || top == "dynamic")
            && s.split('/').all(|seg| {
                !seg.is_empty() && seg != "." && seg != ".." && !seg.chars().any(char::is_control)
            });
        if ok {
            Ok(ReplayPath(s))
        } else {
            Err(format!(
                "`{s}` is not a replayed path: it must be `user-data` or start with `meta-data` \
                 or `dynamic`, with no empty, `.` or `..` segment"
            ))
        }
    }
}

impl From<ReplayPath> for String {
    fn from(p: ReplayPath) -> String {
        p.0
    }
}

/// A replayed leaf's exact bytes. Written as a TOML string when they are UTF-8, else as
/// `{ base64 = "…" }` (gzip'd user data, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawReplayValue", into = "RawReplayValue")]
pub struct ReplayValue(pub Bytes);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawReplayValue {
    Text(String),
    Encoded { base64: String },
}

impl TryFrom<RawReplayValue> for ReplayValue {
    type Error = String;
    fn try_from(v: RawReplayValue) -> Result<Self, String> {
        use base64::Engine as _;
        match v {
            RawReplayValue::Text(t) => Ok(ReplayValue(Bytes::from(t))),
            RawReplayValue::Encoded { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64.as_bytes())
                .map(|b| ReplayValue(Bytes::from(b)))
                .map_err(|e| format!("`base64` is not base64: {e}")),
        }
    }
}

impl From<ReplayValue> for RawReplayValue {
    fn from(v: ReplayValue) -> Self {
        use base64::Engine as _;
        match std::str::from_utf8(&v.0) {
            Ok(t) => RawReplayValue::Text(t.to_string()),
            Err(_) => RawReplayValue::Encoded {
                base64: base64::engine::general_purpose::STANDARD.encode(&v.0),
            },
        }
    }
}
