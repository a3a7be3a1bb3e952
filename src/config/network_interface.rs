//! `[[instance.network-interfaces]]`: the instance's secondary network interfaces (and the
//! primary one, made of `[instance]`'s own values), each resolved against the instance.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::ruled::Ruled;
use crate::types::{Ipv4Prefix, Ipv6Cidr, Ipv6Prefix, Mac};

/// The prefixes delegated to an interface (IPv4 /28s, IPv6 /80s), as `ipv4-prefix` and
/// `ipv6-prefix` list them (read by the Amazon VPC CNI in prefix mode).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefixes {
    pub ipv4: Vec<Ipv4Prefix>,
    pub ipv6: Vec<Ipv6Prefix>,
}

/// `[[instance.network-interfaces]]`: a secondary interface, as EC2 lists it under
/// `network/interfaces/macs/<mac>/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawNetworkInterface {
    mac: Mac,
    device_number: u32,
    #[serde(default)]
    network_card_index: u32,
    interface_id: String,
    /// Private addresses, the primary first.
    local_ipv4s: Vec<Ipv4Addr>,
    /// Public addresses; the n-th is associated with the n-th private address.
    #[serde(default)]
    public_ipv4s: Vec<Ipv4Addr>,
    #[serde(default)]
    ipv6s: Vec<Ipv6Addr>,
    /// Unset: the /64 of each address in `ipv6s` (EC2 lists them on every interface in an
    /// IPv6 subnet; the VPC CNI treats a 404 there as an error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    subnet_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    /// Unset: the /56 of each address in `ipv6s`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    vpc_ipv6_cidr_blocks: Vec<Ipv6Cidr>,
    /// Delegated IPv4 prefixes (/28); unset: none, and `ipv4-prefix` is not served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ipv4_prefixes: Vec<Ipv4Prefix>,
    /// Delegated IPv6 prefixes (/80); unset: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ipv6_prefixes: Vec<Ipv6Prefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet_ipv4_cidr_block: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    security_groups: Vec<String>,
}

/// The primary interface's addresses, from `[instance]`.
pub(super) struct PrimaryAddresses {
    pub(super) local_ipv4: Ipv4Addr,
    pub(super) public_ipv4: Option<Ipv4Addr>,
    pub(super) ipv6: Option<Ipv6Addr>,
}

/// What a secondary interface takes from the instance when it does not say.
pub(super) struct Inherited<'a> {
    pub(super) subnet_id: &'a str,
    pub(super) subnet_ipv4_cidr_block: &'a str,
    pub(super) security_group_ids: &'a [String],
    pub(super) security_groups: &'a [String],
}

/// A checked network interface: what it does not set is taken from the instance, and its
/// IPv6 blocks from its addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInterface {
    mac: Mac,
    device_number: u32,
    network_card_index: u32,
    interface_id: String,
    local_ipv4s: Vec<Ipv4Addr>,
    public_ipv4s: Vec<Ipv4Addr>,
    ipv6s: Vec<Ipv6Addr>,
    subnet_ipv6_cidr_blocks: Ruled<Vec<Ipv6Cidr>>,
    vpc_ipv6_cidr_blocks: Ruled<Vec<Ipv6Cidr>>,
    prefixes: Prefixes,
    subnet_id: Ruled<String>,
    subnet_ipv4_cidr_block: Ruled<String>,
    security_group_ids: Ruled<Vec<String>>,
    security_groups: Ruled<Vec<String>>,
}

impl NetworkInterface {
    pub(super) fn resolve(raw: RawNetworkInterface, from: &Inherited<'_>) -> NetworkInterface {
        let ipv6s = &raw.ipv6s;
        NetworkInterface {
            subnet_ipv6_cidr_blocks: Ruled::list(raw.subnet_ipv6_cidr_blocks, || blocks(ipv6s, 64)),
            vpc_ipv6_cidr_blocks: Ruled::list(raw.vpc_ipv6_cidr_blocks, || blocks(ipv6s, 56)),
            prefixes: Prefixes {
                ipv4: raw.ipv4_prefixes,
                ipv6: raw.ipv6_prefixes,
            },
            subnet_id: Ruled::new(raw.subnet_id, || from.subnet_id.into()),
            subnet_ipv4_cidr_block: Ruled::new(raw.subnet_ipv4_cidr_block, || {
                from.subnet_ipv4_cidr_block.into()
            }),
            security_group_ids: Ruled::list(raw.security_group_ids, || {
                from.security_group_ids.to_vec()
            }),
            security_groups: Ruled::list(raw.security_groups, || from.security_groups.to_vec()),
            mac: raw.mac,
            device_number: raw.device_number,
            network_card_index: raw.network_card_index,
            interface_id: raw.interface_id,
            local_ipv4s: raw.local_ipv4s,
            public_ipv4s: raw.public_ipv4s,
            ipv6s: raw.ipv6s,
        }
    }

    /// The primary interface, made of `[instance]`'s values.
    pub(super) fn primary(
        mac: Mac,
        interface_id: String,
        addresses: PrimaryAddresses,
        ipv6_blocks: (Vec<Ipv6Cidr>, Vec<Ipv6Cidr>),
        prefixes: Prefixes,
        from: &Inherited<'_>,
    ) -> NetworkInterface {
        NetworkInterface::resolve(
            RawNetworkInterface {
                mac,
                device_number: 0,
                network_card_index: 0,
                interface_id,
                local_ipv4s: vec![addresses.local_ipv4],
                public_ipv4s: addresses.public_ipv4.into_iter().collect(),
                ipv6s: addresses.ipv6.into_iter().collect(),
                subnet_ipv6_cidr_blocks: ipv6_blocks.0,
                vpc_ipv6_cidr_blocks: ipv6_blocks.1,
                ipv4_prefixes: prefixes.ipv4,
                ipv6_prefixes: prefixes.ipv6,
                subnet_id: None,
                subnet_ipv4_cidr_block: None,
                security_group_ids: Vec::new(),
                security_groups: Vec::new(),
            },
            from,
        )
    }

    /// The form `print-config` shows: what the file wrote.
    pub(super) fn to_raw(&self) -> RawNetworkInterface {
        RawNetworkInterface {
            mac: self.mac.clone(),
            device_number: self.device_number,
            network_card_index: self.network_card_index,
            interface_id: self.interface_id.clone(),
            local_ipv4s: self.local_ipv4s.clone(),
            public_ipv4s: self.public_ipv4s.clone(),
            ipv6s: self.ipv6s.clone(),
            subnet_ipv6_cidr_blocks: self.subnet_ipv6_cidr_blocks.written_list(),
            vpc_ipv6_cidr_blocks: self.vpc_ipv6_cidr_blocks.written_list(),
            ipv4_prefixes: self.prefixes.ipv4.clone(),
            ipv6_prefixes: self.prefixes.ipv6.clone(),
            subnet_id: self.subnet_id.written(),
            subnet_ipv4_cidr_block: self.subnet_ipv4_cidr_block.written(),
            security_group_ids: self.security_group_ids.written_list(),
            security_groups: self.security_groups.written_list(),
        }
    }

    /// The IPv6 blocks as the file wrote them (subnet, VPC); empty when derived.
    pub(super) fn written_ipv6_blocks(&self) -> (Vec<Ipv6Cidr>, Vec<Ipv6Cidr>) {
        (
            self.subnet_ipv6_cidr_blocks.written_list(),
            self.vpc_ipv6_cidr_blocks.written_list(),
        )
    }

    pub fn mac(&self) -> &Mac {
        &self.mac
    }

    /// The prefixes delegated to it.
    pub fn prefixes(&self) -> &Prefixes {
        &self.prefixes
    }

    pub fn device_number(&self) -> u32 {
        self.device_number
    }

    pub fn network_card_index(&self) -> u32 {
        self.network_card_index
    }

    pub fn interface_id(&self) -> &str {
        &self.interface_id
    }

    /// Private addresses, the primary first.
    pub fn local_ipv4s(&self) -> &[Ipv4Addr] {
        &self.local_ipv4s
    }

    /// Public addresses; the n-th is associated with the n-th private address.
    pub fn public_ipv4s(&self) -> &[Ipv4Addr] {
        &self.public_ipv4s
    }

    pub fn ipv6s(&self) -> &[Ipv6Addr] {
        &self.ipv6s
    }

    /// As set, else the /64 of each address in `ipv6s` (EC2 lists them on every interface in
    /// an IPv6 subnet; the VPC CNI treats a 404 there as an error).
    pub fn subnet_ipv6_cidr_blocks(&self) -> &[Ipv6Cidr] {
        self.subnet_ipv6_cidr_blocks.get()
    }

    /// As set, else the /56 of each address in `ipv6s`.
    pub fn vpc_ipv6_cidr_blocks(&self) -> &[Ipv6Cidr] {
        self.vpc_ipv6_cidr_blocks.get()
    }

    /// As set, else the instance's.
    pub fn subnet_id(&self) -> &str {
        self.subnet_id.get()
    }

    /// As set, else the instance's.
    pub fn subnet_ipv4_cidr_block(&self) -> &str {
        self.subnet_ipv4_cidr_block.get()
    }

    /// As set, else the instance's.
    pub fn security_group_ids(&self) -> &[String] {
        self.security_group_ids.get()
    }

    /// As set, else the instance's.
    pub fn security_groups(&self) -> &[String] {
        self.security_groups.get()
    }
}

/// The distinct blocks of length `prefix` of the addresses.
fn blocks(ipv6s: &[Ipv6Addr], prefix: u8) -> Vec<Ipv6Cidr> {
    let mut out: Vec<Ipv6Cidr> = Vec::new();
    for ip in ipv6s {
        let b = Ipv6Cidr::of(*ip, prefix);
        if !out.contains(&b) {
            out.push(b);
        }
    }
    out
}
