//! `[instance]` as the file spells it, with the built-in values.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::super::network_interface::RawNetworkInterface;
use crate::types::{AccountId, Ec2Id, Ipv4Prefix, Ipv6Cidr, Ipv6Prefix, Mac, Region, Zone};

/// A built-in or derived value of a checked type; these are valid by construction.
pub(in crate::config) fn valid<T: TryFrom<String, Error = String>>(s: &str) -> T {
    T::try_from(s.to_string()).unwrap_or_else(|e| unreachable!("built-in value: {e}"))
}

/// `[instance]`: the values the metadata tree and the identity document are made of. Values
/// left out come from this machine (with `from-host`) or are derived from the others (region
/// from the zone, host names from addresses), else the built-in defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(in crate::config) struct RawInstance {
    /// Take what is not set from this machine: the instance id from `/etc/machine-id`, the
    /// primary address, MAC and subnet from the default route's interface, the host name.
    pub(in crate::config) from_host: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) instance_id: Option<Ec2Id<'i'>>,
    /// Unset: `t3.micro`, or `t4g.micro` on an arm64 box (with `from-host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) instance_type: Option<String>,
    pub(in crate::config) ami_id: Ec2Id<'a'>,
    pub(in crate::config) ami_launch_index: u32,
    pub(in crate::config) ami_manifest_path: String,
    /// The AMIs this one was rebundled from, oldest last (`ancestor-ami-ids`); unset: none,
    /// and the key is not served, as on EC2 for an AMI that was never rebundled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::config) ancestor_ami_ids: Vec<Ec2Id<'a'>>,
    pub(in crate::config) account_id: AccountId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) region: Option<Region>,
    pub(in crate::config) availability_zone: Zone,
    /// Unset: derived from the zone (`euw1-az2` for `eu-west-1b`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) availability_zone_id: Option<String>,
    /// The identity document's; unset: from the instance type (`arm64` for Graviton).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) architecture: Option<String>,
    pub(in crate::config) instance_life_cycle: String,
    /// RFC 3339 UTC time the instance launched (`pendingTime` in the identity document).
    pub(in crate::config) pending_time: String,
    pub(in crate::config) reservation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) kernel_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) ramdisk_id: Option<String>,
    pub(in crate::config) product_codes: Vec<String>,
    /// The primary network interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) local_ipv4: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) public_ipv4: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) ipv6: Option<Ipv6Addr>,
    /// The primary interface's subnet IPv6 blocks; unset: the /64 of `ipv6`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::config) subnet_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    /// The VPC's IPv6 blocks; unset: the /56 of `ipv6`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::config) vpc_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    /// The primary interface's delegated IPv4 prefixes (/28); unset: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::config) ipv4_prefixes: Vec<Ipv4Prefix>,
    /// The primary interface's delegated IPv6 prefixes (/80); unset: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::config) ipv6_prefixes: Vec<Ipv6Prefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) mac: Option<Mac>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) hostname: Option<String>,
    /// EC2's form of the name when `hostname` is not set; unset: the box's own name with
    /// `from-host`, else `ip-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) hostname_type: Option<HostnameType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) public_hostname: Option<String>,
    pub(in crate::config) interface_id: String,
    pub(in crate::config) subnet_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) subnet_ipv4_cidr_block: Option<String>,
    pub(in crate::config) vpc_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) vpc_ipv4_cidr_block: Option<String>,
    pub(in crate::config) security_groups: Vec<String>,
    pub(in crate::config) security_group_ids: Vec<String>,
    /// `block-device-mapping/<name>` → device.
    pub(in crate::config) block_device_mapping: BTreeMap<String, String>,
    /// The key pair: served as `public-keys/0=<name>` and `public-keys/0/openssh-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) public_key: Option<PublicKey>,
    /// Secondary network interfaces (the primary one is made of the values above).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::config) network_interfaces: Vec<RawNetworkInterface>,
    /// `profile` (every capture 2016–2025: `default-hvm`).
    pub(in crate::config) profile: String,
    /// `system`; unset, the generation's name (`nitro`, as captured since 2023, or `xen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) system: Option<String>,
    /// Launched with hibernation enabled: serves `hibernation/configured` = `true`.
    pub(in crate::config) hibernation: bool,
    /// The placement group the instance runs in: `placement/group-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) placement_group: Option<String>,
    /// Its partition in a partition placement group (1 to 7): `placement/partition-number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) partition_number: Option<PartitionNumber>,
    /// The Dedicated Host it runs on (`h-` and 17 hex digits): `placement/host-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::config) host_id: Option<Ec2Id<'h'>>,
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

/// Built-in values when neither the config nor the machine gives one.
pub const DEFAULT_INSTANCE_ID: &str = "i-0123456789abcdef0";
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
/// The default on an arm64 box: the smallest Graviton type of the same family tier.
pub const DEFAULT_INSTANCE_TYPE_ARM64: &str = "t4g.micro";
pub const DEFAULT_LOCAL_IPV4: Ipv4Addr = Ipv4Addr::new(172, 31, 16, 10);
pub const DEFAULT_MAC: &str = "0e:49:61:0f:c3:11";
pub const DEFAULT_SUBNET: &str = "172.31.16.0/20";
pub const DEFAULT_VPC: &str = "172.31.0.0/16";

impl Default for RawInstance {
    fn default() -> Self {
        RawInstance {
            from_host: true,
            instance_id: None,
            instance_type: None,
            ami_id: valid("ami-0abcdef1234567890"),
            ami_launch_index: 0,
            ami_manifest_path: "(unknown)".into(),
            ancestor_ami_ids: Vec::new(),
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
            ipv4_prefixes: Vec::new(),
            ipv6_prefixes: Vec::new(),
            mac: None,
            hostname: None,
            hostname_type: None,
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

/// A key pair served under `public-keys/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PublicKey {
    pub name: String,
    pub openssh_key: String,
}

/// An instance's private DNS name form, as EC2's `PrivateDnsNameOptions.HostnameType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostnameType {
    /// `ip-10-0-0-5.ec2.internal`: from the private address.
    IpName,
    /// `i-0123456789abcdef0.ec2.internal`: from the instance id.
    ResourceName,
}
