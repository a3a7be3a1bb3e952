//! The configuration: one TOML file (kebab-case keys, unknown keys rejected), the environment
//! and command-line flags, merged with precedence flag > env > file > built-in default.
//!
//! Every value is validated while it is parsed (newtypes with `try_from`), so a bad value is
//! reported by the TOML parser with the span of the offending key or value, and
//! [`ConfigError`] renders it as `FILE:LINE:COL: message`. A `Config` that exists is valid.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::host::HostFacts;

/// The default port the daemon listens on (loopback only).
pub const DEFAULT_PORT: u16 = 1338;
/// EC2 caps raw user data at 16 KiB.
pub const USER_DATA_MAX: usize = 16 * 1024;

/// The whole configuration, after defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    pub server: Server,
    pub imds: Imds,
    pub instance: Instance,
    #[serde(skip_serializing_if = "UserData::is_unset")]
    pub user_data: UserData,
    /// Instance tags, served under `tags/instance/` when `instance-metadata-tags` is enabled.
    pub tags: BTreeMap<TagKey, String>,
    /// Extra or overriding leaves: `"meta-data/some/path" = "value"`.
    pub paths: BTreeMap<MetaPath, String>,
    /// The IAM role and where its credentials come from.
    pub iam: crate::credentials::IamConfig,
    pub log: Log,
    /// Spot notices, events, rebalance and ASG state on a timeline from the daemon's start.
    #[serde(skip_serializing_if = "crate::scenario::ScenarioConfig::is_empty")]
    pub scenario: crate::scenario::ScenarioConfig,
    /// The control socket `fake-metadata ctl` talks to.
    pub control: crate::control::ControlConfig,
}

/// `[server]`: where and how the daemon listens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// `[imds]`: EC2's instance metadata options, by the same names and meanings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Imds {
    pub http_endpoint: Toggle,
    pub http_tokens: HttpTokens,
    pub http_put_response_hop_limit: HopLimit,
    pub http_protocol_ipv6: Toggle,
    pub instance_metadata_tags: Toggle,
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
    pub instance_type: String,
    pub ami_id: Ec2Id<'a'>,
    pub ami_launch_index: u32,
    pub ami_manifest_path: String,
    pub account_id: AccountId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    pub availability_zone: Zone,
    pub availability_zone_id: String,
    pub architecture: String,
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
pub const DEFAULT_LOCAL_IPV4: Ipv4Addr = Ipv4Addr::new(172, 31, 16, 10);
pub const DEFAULT_MAC: &str = "0e:49:61:0f:c3:11";
pub const DEFAULT_SUBNET: &str = "172.31.16.0/20";
pub const DEFAULT_VPC: &str = "172.31.0.0/16";

impl Default for Instance {
    fn default() -> Self {
        Instance {
            from_host: true,
            instance_id: None,
            instance_type: "t3.micro".into(),
            ami_id: Ec2Id("ami-0abcdef1234567890".into()),
            ami_launch_index: 0,
            ami_manifest_path: "(unknown)".into(),
            account_id: AccountId("123456789012".into()),
            region: None,
            availability_zone: Zone("us-east-1a".into()),
            availability_zone_id: "use1-az1".into(),
            architecture: "x86_64".into(),
            instance_life_cycle: "on-demand".into(),
            pending_time: "2026-01-01T00:00:00Z".into(),
            reservation_id: "r-0fedcba9876543210".into(),
            kernel_id: None,
            ramdisk_id: None,
            product_codes: Vec::new(),
            local_ipv4: None,
            public_ipv4: Some(Ipv4Addr::new(54, 210, 10, 20)),
            ipv6: None,
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
        }
    }
}

impl Instance {
    /// The region: configured, or the zone without its trailing letter.
    pub fn region(&self) -> String {
        match &self.region {
            Some(r) => r.0.clone(),
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
        Some(match self.region().as_str() {
            "us-east-1" => format!("ec2-{ip}.compute-1.amazonaws.com"),
            r => format!("ec2-{ip}.{r}.compute.amazonaws.com"),
        })
    }

    /// The AWS partition and its DNS suffix, from the region.
    pub fn partition(&self) -> (&'static str, &'static str) {
        let r = self.region();
        if r.starts_with("cn-") {
            ("aws-cn", "amazonaws.com.cn")
        } else if r.starts_with("us-gov-") {
            ("aws-us-gov", "amazonaws.com")
        } else {
            ("aws", "amazonaws.com")
        }
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
    fn resolve(&mut self, facts: &HostFacts) {
        let none = HostFacts::none();
        let facts = if self.from_host { facts } else { &none };
        if self.instance_id.is_none() {
            self.instance_id =
                Some(Ec2Id(facts.machine_id.as_deref().map_or(
                    DEFAULT_INSTANCE_ID.into(),
                    crate::host::instance_id,
                )));
        }
        if self.local_ipv4.is_none() {
            let nic = facts.primary.as_ref();
            self.local_ipv4 = Some(nic.map_or(DEFAULT_LOCAL_IPV4, |n| n.ipv4));
            if let Some(n) = nic {
                let subnet = crate::host::network(n.ipv4, n.prefix);
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
                    .unwrap_or(Mac(DEFAULT_MAC.into())),
            );
        }
        self.subnet_ipv4_cidr_block
            .get_or_insert(DEFAULT_SUBNET.into());
        self.vpc_ipv4_cidr_block.get_or_insert(DEFAULT_VPC.into());
        if self.hostname.is_none() {
            self.hostname = facts.hostname.clone();
        }
        self.region
            .get_or_insert_with(|| Region(self.availability_zone.region().into()));
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
    fn is_unset(&self) -> bool {
        self.text.is_none() && self.file.is_none()
    }
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

/// An EC2 resource id with its prefix (`i-…`, `ami-…`): the prefix and 8 or 17 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ec2Id<const KIND: char>(String);

impl<const KIND: char> Ec2Id<KIND> {
    fn prefix() -> &'static str {
        match KIND {
            'i' => "i-",
            _ => "ami-",
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const KIND: char> TryFrom<String> for Ec2Id<KIND> {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let p = Self::prefix();
        let ok = s.strip_prefix(p).is_some_and(|hex| {
            matches!(hex.len(), 8 | 17)
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if ok {
            Ok(Ec2Id(s))
        } else {
            Err(format!(
                "`{s}` is not an EC2 id: expected `{p}` and 8 or 17 lower-case hex digits, e.g. `{p}0123456789abcdef0`"
            ))
        }
    }
}

impl<const KIND: char> From<Ec2Id<KIND>> for String {
    fn from(v: Ec2Id<KIND>) -> String {
        v.0
    }
}

impl<const KIND: char> fmt::Display for Ec2Id<KIND> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! checked_string {
    ($(#[$m:meta])* $name:ident, $check:expr, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                let check: fn(&str) -> bool = $check;
                if check(&s) {
                    Ok($name(s))
                } else {
                    Err(format!(concat!("`{}` is not ", $what), s))
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A 12-digit AWS account id.
    AccountId,
    |s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()),
    "an AWS account id: 12 digits"
);
checked_string!(
    /// A region name such as `eu-west-1`.
    Region,
    is_region,
    "a region name such as `us-east-1`"
);
checked_string!(
    /// An availability zone: a region followed by one letter, e.g. `us-east-1a`.
    Zone,
    |s| s.len() > 1 && s.ends_with(|c: char| c.is_ascii_lowercase()) && is_region(&s[..s.len() - 1]),
    "an availability zone such as `us-east-1a` (a region and one letter)"
);
checked_string!(
    /// A MAC address in EC2's form: six lower-case hex pairs separated by `:`.
    Mac,
    |s| s.len() == 17
        && s.split(':').all(|p| p.len() == 2 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))),
    "a MAC address in EC2's form, e.g. `0e:49:61:0f:c3:11` (lower-case hex)"
);
checked_string!(
    /// A tag key as EC2 allows it in instance metadata: `[a-zA-Z0-9+-=.,_:@]`, 1..=128,
    /// never `.`, `..` or `_index`.
    TagKey,
    |s| !s.is_empty()
        && s.len() <= 128
        && !matches!(s, "." | ".." | "_index")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-=.,_:@".contains(&b)),
    "a tag key EC2 can serve: 1 to 128 of `a-z A-Z 0-9 + - = . , _ : @`, and not `.`, `..` or `_index`"
);
checked_string!(
    /// An extra path in the tree: under `meta-data/` or `dynamic/`, no empty, `.` or `..` segment.
    MetaPath,
    |s| (s.starts_with("meta-data/") || s.starts_with("dynamic/"))
        && s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."),
    "a metadata path: it must start with `meta-data/` or `dynamic/` and have no empty, `.` or `..` segment"
);

fn is_region(s: &str) -> bool {
    let mut parts = s.split('-');
    let ok = parts
        .next()
        .is_some_and(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_lowercase()));
    let rest: Vec<&str> = parts.collect();
    ok && rest.len() >= 2
        && rest
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && rest[..rest.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

impl Zone {
    /// The zone's region: the zone without its trailing letter.
    pub fn region(&self) -> &str {
        &self.0[..self.0.len() - 1]
    }
}

/// One problem in a configuration file, located where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
    #[error("{0}")]
    Env(String),
}

/// Overrides from the environment and the command line (flag > env, merged by clap).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub http_tokens: Option<HttpTokens>,
}

impl Config {
    /// Parses TOML text; `file` names it in error messages. Values not set take the built-in
    /// defaults (no facts from the machine: see [`Config::load`]).
    pub fn from_toml(text: &str, file: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, file, &HostFacts::none())
    }

    /// Parses TOML text, filling what is not set from `facts`.
    pub fn parse(text: &str, file: &Path, facts: &HostFacts) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Invalid(vec![Located {
                file: file.to_path_buf(),
                line,
                col,
                message: e.message().trim().to_string(),
            }])
        })?;
        cfg.check(text, file)?;
        cfg.instance.resolve(facts);
        Ok(cfg)
    }

    /// Reads and parses a file (with the built-in defaults, no facts from the machine).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::read(path, &HostFacts::none())
    }

    fn read(path: &Path, facts: &HostFacts) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, facts)
    }

    /// The built-in defaults, with derived values filled in.
    pub fn builtin() -> Config {
        Config::builtin_with(&HostFacts::none())
    }

    fn builtin_with(facts: &HostFacts) -> Config {
        let mut c = Config::default();
        c.instance.resolve(facts);
        c
    }

    /// Loads the effective configuration as the daemon uses it: built-in defaults, facts
    /// of this machine (unless `[instance] from-host = false`), the file (if any), then the
    /// overrides.
    pub fn load(path: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let facts = HostFacts::gather();
        let mut c = match path {
            Some(p) => Config::read(p, &facts)?,
            None => Config::builtin_with(&facts),
        };
        if !o.listen.is_empty() {
            c.server.listen = Some(o.listen.clone());
        }
        if let Some(t) = o.http_tokens {
            c.imds.http_tokens = t;
        }
        Ok(c)
    }

    /// Checks that span several keys, located at the key they blame.
    fn check(&self, text: &str, file: &Path) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut blame = |key: &str, message: String| {
            let (line, col) = find_key(text, key);
            problems.push(Located {
                file: file.to_path_buf(),
                line,
                col,
                message,
            });
        };
        if let Some(r) = &self.instance.region
            && self.instance.availability_zone.region() != r.as_str()
        {
            blame(
                "availability-zone",
                format!(
                    "availability zone `{}` is not in region `{}`",
                    self.instance.availability_zone, r
                ),
            );
        }
        if self.user_data.text.is_some() && self.user_data.file.is_some() {
            blame("file", "user data: set `text` or `file`, not both".into());
        }
        if let Some(t) = &self.user_data.text
            && t.len() > USER_DATA_MAX
        {
            blame(
                "text",
                format!("user data is {} bytes; EC2 allows at most 16 KiB", t.len()),
            );
        }
        if let Some(l) = &self.server.listen
            && l.is_empty()
        {
            blame(
                "listen",
                "`listen` is empty: give at least one address".into(),
            );
        }
        if let Some(l) = &self.server.listen
            && self.imds.http_protocol_ipv6.is_enabled()
            && !l.iter().any(|a| a.ip() == Ipv6Addr::LOCALHOST)
        {
            blame(
                "http-protocol-ipv6",
                "IPv6 interception delivers to [::1]: add \"[::1]:PORT\" to [server] listen".into(),
            );
        }
        if let Err(e) = self
            .log
            .level
            .parse::<tracing_subscriber::filter::Targets>()
        {
            blame(
                "level",
                format!("`{}` is not a log filter: {e}", self.log.level),
            );
        }
        for p in self.paths.keys() {
            if let Some(clash) = self
                .paths
                .keys()
                .find(|q| q.as_str().starts_with(&format!("{}/", p.as_str())))
            {
                blame(
                    p.as_str(),
                    format!("`{p}` is a value but `{clash}` makes it a directory"),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The raw user data bytes, read from the file if one is configured.
    pub fn user_data_bytes(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if let Some(t) = &self.user_data.text {
            return Ok(Some(t.clone().into_bytes()));
        }
        let Some(path) = &self.user_data.file else {
            return Ok(None);
        };
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        if bytes.len() > USER_DATA_MAX {
            return Err(ConfigError::Env(format!(
                "user data file {} is {} bytes; EC2 allows at most 16 KiB",
                path.display(),
                bytes.len()
            )));
        }
        Ok(Some(bytes))
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.server.listen = Some(self.server.listen_addrs());
        toml::to_string(&shown).expect("a Config always serializes")
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where a key is written in the text (bare or quoted), for cross-key errors.
fn find_key(text: &str, key: &str) -> (usize, usize) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let k = t.trim_start_matches('"');
        if k.starts_with(key)
            && k[key.len()..]
                .trim_start_matches('"')
                .trim_start()
                .starts_with('=')
        {
            return line_col(text, offset + (line.len() - t.len()));
        }
        offset += line.len();
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        Config::from_toml(s, Path::new("c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::builtin());
    }

    #[test]
    fn unknown_key_is_located() {
        let e = parse("[imds]\nhttp-tokens = \"optional\"\nbogus = 1\n").unwrap_err();
        assert!(e.starts_with("c.toml:3:1: unknown field `bogus`"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = parse("[imds]\nhttp-tokens = \"sometimes\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2:15: unknown variant `sometimes`"),
            "{e}"
        );
        let e = parse("[imds]\nhttp-put-response-hop-limit = 65\n").unwrap_err();
        assert_eq!(
            e,
            "c.toml:2:31: hop limit 65 is out of range: EC2 allows 1 to 64"
        );
        let e = parse("[instance]\ninstance-id = \"x-1\"\n").unwrap_err();
        assert!(e.starts_with("c.toml:2:15: `x-1` is not an EC2 id"), "{e}");
        let e = parse("[tags]\n\"_index\" = \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2:1: `_index` is not a tag key"),
            "{e}"
        );
    }

    #[test]
    fn cross_key_problems_name_the_key() {
        let e = parse("[instance]\nregion = \"eu-west-1\"\navailability-zone = \"us-east-1a\"\n")
            .unwrap_err();
        assert_eq!(
            e,
            "c.toml:3:1: availability zone `us-east-1a` is not in region `eu-west-1`"
        );
    }

    #[test]
    fn derived_values_follow_the_zone_and_address() {
        let c =
            parse("[instance]\navailability-zone = \"eu-west-1b\"\nlocal-ipv4 = \"10.0.0.5\"\n")
                .unwrap();
        assert_eq!(c.instance.region(), "eu-west-1");
        assert_eq!(
            c.instance.hostname(),
            "ip-10-0-0-5.eu-west-1.compute.internal"
        );
    }

    #[test]
    fn printed_config_parses_back_to_itself() {
        let c = parse("[tags]\nName = \"web\"\n[paths]\n\"meta-data/custom/x\" = \"1\"\n").unwrap();
        let again = parse(&c.to_toml()).unwrap();
        let mut expect = c.clone();
        expect.server.listen = Some(c.server.listen_addrs());
        assert_eq!(again, expect);
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            listen: vec!["127.0.0.1:9".parse().unwrap()],
            http_tokens: Some(HttpTokens::Required),
        };
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.server.listen_addrs(), o.listen);
        assert_eq!(c.imds.http_tokens, HttpTokens::Required);
    }
}
