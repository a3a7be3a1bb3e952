//! `[instance]`: the values the metadata tree and the identity document are made of. What
//! the file leaves out comes from this machine (with `from-host`), is derived from the other
//! values (region from the zone, host names from addresses, `system` from the generation),
//! or takes the built-in default, all when the config is checked. Each snapshot applies the
//! section, so a reload does.

mod raw;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) use raw::RawInstance;
use raw::valid;
pub use raw::{
    DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_TYPE, DEFAULT_INSTANCE_TYPE_ARM64, DEFAULT_LOCAL_IPV4,
    DEFAULT_MAC, DEFAULT_SUBNET, DEFAULT_VPC, HostnameType, PartitionNumber, PublicKey,
};

use super::network_interface::{Inherited, NetworkInterface, Prefixes, PrimaryAddresses};
use super::ruled::Ruled;
use crate::imds::Generation;
use crate::machine::MachineFacts;
use crate::types::{AccountId, Ec2Id, Mac, Region, Zone};

/// The checked `[instance]`: every value resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    from_host: bool,
    instance_id: Ec2Id<'i'>,
    instance_type: String,
    ami_id: Ec2Id<'a'>,
    ami_launch_index: u32,
    ami_manifest_path: String,
    ancestor_ami_ids: Vec<Ec2Id<'a'>>,
    account_id: AccountId,
    region: Region,
    availability_zone: Zone,
    availability_zone_id: String,
    architecture: String,
    instance_life_cycle: String,
    pending_time: String,
    reservation_id: String,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
    product_codes: Vec<String>,
    local_ipv4: Ipv4Addr,
    public_ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    hostname: String,
    hostname_type: Option<HostnameType>,
    public_hostname: Option<String>,
    subnet_id: String,
    subnet_ipv4_cidr_block: String,
    vpc_id: String,
    vpc_ipv4_cidr_block: String,
    security_groups: Vec<String>,
    security_group_ids: Vec<String>,
    block_device_mapping: BTreeMap<String, String>,
    public_key: Option<PublicKey>,
    /// The primary interface, made of the values above.
    primary: NetworkInterface,
    network_interfaces: Vec<NetworkInterface>,
    profile: String,
    system: Ruled<String>,
    hibernation: bool,
    placement_group: Option<String>,
    partition_number: Option<PartitionNumber>,
    host_id: Option<Ec2Id<'h'>>,
}

impl Instance {
    /// Fills in what the file leaves out: from `facts` (with `from-host`), derived from the
    /// other values, else the built-in defaults; `generation` is `[imds] generation`.
    pub(super) fn resolve(
        r: RawInstance,
        facts: &MachineFacts,
        generation: Option<Generation>,
    ) -> Instance {
        let none = MachineFacts::none();
        let facts = if r.from_host { facts } else { &none };
        let instance_type = r.instance_type.unwrap_or_else(|| {
            let arm = facts.arch.as_deref() == Some("aarch64");
            if arm {
                raw::DEFAULT_INSTANCE_TYPE_ARM64
            } else {
                raw::DEFAULT_INSTANCE_TYPE
            }
            .into()
        });
        let architecture = r
            .architecture
            .unwrap_or_else(|| crate::ec2::architecture_of(&instance_type).into());
        let instance_id = r.instance_id.unwrap_or_else(|| {
            valid(
                &facts
                    .machine_id
                    .as_deref()
                    .map_or(raw::DEFAULT_INSTANCE_ID.into(), crate::machine::instance_id),
            )
        });
        let (mut subnet_cidr, mut vpc_cidr) = (r.subnet_ipv4_cidr_block, r.vpc_ipv4_cidr_block);
        let local_ipv4 = match (r.local_ipv4, facts.primary.as_ref()) {
            (Some(ip), _) => ip,
            (None, None) => raw::DEFAULT_LOCAL_IPV4,
            (None, Some(n)) => {
                let subnet = crate::machine::network(n.ipv4, n.prefix);
                let in_default_vpc = n.ipv4.octets()[..2] == [172, 31];
                subnet_cidr.get_or_insert(subnet.clone());
                vpc_cidr.get_or_insert(if in_default_vpc {
                    raw::DEFAULT_VPC.into()
                } else {
                    subnet
                });
                n.ipv4
            }
        };
        let mac = r.mac.unwrap_or_else(|| {
            let mac = facts.primary.as_ref().and_then(|n| n.mac.clone());
            mac.and_then(|m| Mac::try_from(m).ok())
                .unwrap_or_else(|| valid(raw::DEFAULT_MAC))
        });
        let region = r
            .region
            .unwrap_or_else(|| valid(r.availability_zone.region()));
        // With `from-host`, the box's own name: software in the box (cloud-init setting the
        // host name from `local-hostname`) then leaves it as it is. EC2's forms on request.
        let hostname = r
            .hostname
            .or_else(|| match r.hostname_type {
                Some(HostnameType::ResourceName) => Some(crate::ec2::resource_dns_name(
                    instance_id.as_str(),
                    region.as_str(),
                )),
                Some(HostnameType::IpName) => None,
                None => facts.hostname.clone(),
            })
            .unwrap_or_else(|| crate::ec2::private_dns_name(local_ipv4, region.as_str()));
        let public_hostname = r
            .public_hostname
            .or_else(|| Some(crate::ec2::public_dns_name(r.public_ipv4?, region.as_str())));
        let subnet_ipv4_cidr_block = subnet_cidr.unwrap_or_else(|| raw::DEFAULT_SUBNET.into());
        let vpc_ipv4_cidr_block = vpc_cidr.unwrap_or_else(|| raw::DEFAULT_VPC.into());
        let generation = generation.unwrap_or_else(|| Generation::of_instance_type(&instance_type));
        let inherited = Inherited {
            subnet_id: &r.subnet_id,
            subnet_ipv4_cidr_block: &subnet_ipv4_cidr_block,
            security_group_ids: &r.security_group_ids,
            security_groups: &r.security_groups,
        };
        let primary = NetworkInterface::primary(
            mac,
            r.interface_id,
            PrimaryAddresses {
                local_ipv4,
                public_ipv4: r.public_ipv4,
                ipv6: r.ipv6,
            },
            (r.subnet_ipv6_cidr_blocks, r.vpc_ipv6_cidr_blocks),
            Prefixes {
                ipv4: r.ipv4_prefixes,
                ipv6: r.ipv6_prefixes,
            },
            &inherited,
        );
        let network_interfaces = r
            .network_interfaces
            .into_iter()
            .map(|n| NetworkInterface::resolve(n, &inherited))
            .collect();
        Instance {
            from_host: r.from_host,
            instance_id,
            availability_zone_id: r
                .availability_zone_id
                .unwrap_or_else(|| r.availability_zone.id()),
            instance_type,
            ami_id: r.ami_id,
            ami_launch_index: r.ami_launch_index,
            ami_manifest_path: r.ami_manifest_path,
            ancestor_ami_ids: r.ancestor_ami_ids,
            account_id: r.account_id,
            region,
            availability_zone: r.availability_zone,
            architecture,
            instance_life_cycle: r.instance_life_cycle,
            pending_time: r.pending_time,
            reservation_id: r.reservation_id,
            kernel_id: r.kernel_id,
            ramdisk_id: r.ramdisk_id,
            product_codes: r.product_codes,
            local_ipv4,
            public_ipv4: r.public_ipv4,
            ipv6: r.ipv6,
            hostname,
            hostname_type: r.hostname_type,
            public_hostname,
            subnet_id: r.subnet_id,
            subnet_ipv4_cidr_block,
            vpc_id: r.vpc_id,
            vpc_ipv4_cidr_block,
            security_groups: r.security_groups,
            security_group_ids: r.security_group_ids,
            block_device_mapping: r.block_device_mapping,
            public_key: r.public_key,
            primary,
            network_interfaces,
            profile: r.profile,
            system: Ruled::new(r.system, || generation.as_str().into()),
            hibernation: r.hibernation,
            placement_group: r.placement_group,
            partition_number: r.partition_number,
            host_id: r.host_id,
        }
    }

    /// The form `print-config` shows: the values resolved from the machine and from the
    /// zone and address; those whose rule is not worth printing (the IPv6 blocks of the
    /// addresses, the generation's `system`, what an interface takes from the instance) as
    /// the file wrote them.
    pub(super) fn to_raw(&self) -> RawInstance {
        let primary = &self.primary;
        let (subnet_ipv6_cidr_blocks, vpc_ipv6_cidr_blocks) = primary.written_ipv6_blocks();
        RawInstance {
            from_host: self.from_host,
            instance_id: Some(self.instance_id.clone()),
            instance_type: Some(self.instance_type.clone()),
            ami_id: self.ami_id.clone(),
            ami_launch_index: self.ami_launch_index,
            ami_manifest_path: self.ami_manifest_path.clone(),
            ancestor_ami_ids: self.ancestor_ami_ids.clone(),
            account_id: self.account_id.clone(),
            region: Some(self.region.clone()),
            availability_zone: self.availability_zone.clone(),
            availability_zone_id: Some(self.availability_zone_id.clone()),
            architecture: Some(self.architecture.clone()),
            instance_life_cycle: self.instance_life_cycle.clone(),
            pending_time: self.pending_time.clone(),
            reservation_id: self.reservation_id.clone(),
            kernel_id: self.kernel_id.clone(),
            ramdisk_id: self.ramdisk_id.clone(),
            product_codes: self.product_codes.clone(),
            local_ipv4: Some(self.local_ipv4),
            public_ipv4: self.public_ipv4,
            ipv6: self.ipv6,
            subnet_ipv6_cidr_blocks,
            vpc_ipv6_cidr_blocks,
            ipv4_prefixes: primary.prefixes().ipv4.clone(),
            ipv6_prefixes: primary.prefixes().ipv6.clone(),
            mac: Some(primary.mac().clone()),
            hostname: Some(self.hostname.clone()),
            hostname_type: self.hostname_type,
            public_hostname: self.public_hostname.clone(),
            interface_id: primary.interface_id().into(),
            subnet_id: self.subnet_id.clone(),
            subnet_ipv4_cidr_block: Some(self.subnet_ipv4_cidr_block.clone()),
            vpc_id: self.vpc_id.clone(),
            vpc_ipv4_cidr_block: Some(self.vpc_ipv4_cidr_block.clone()),
            security_groups: self.security_groups.clone(),
            security_group_ids: self.security_group_ids.clone(),
            block_device_mapping: self.block_device_mapping.clone(),
            public_key: self.public_key.clone(),
            network_interfaces: self
                .network_interfaces
                .iter()
                .map(NetworkInterface::to_raw)
                .collect(),
            profile: self.profile.clone(),
            system: self.system.written(),
            hibernation: self.hibernation,
            placement_group: self.placement_group.clone(),
            partition_number: self.partition_number,
            host_id: self.host_id.clone(),
        }
    }

    /// Whether what the file leaves out was taken from this machine.
    pub fn from_host(&self) -> bool {
        self.from_host
    }

    pub fn instance_id(&self) -> &str {
        self.instance_id.as_str()
    }

    pub fn instance_type(&self) -> &str {
        &self.instance_type
    }

    pub fn ami_id(&self) -> &Ec2Id<'a'> {
        &self.ami_id
    }

    /// `ancestor-ami-ids`: served only when set.
    pub fn ancestor_ami_ids(&self) -> &[Ec2Id<'a'>] {
        &self.ancestor_ami_ids
    }

    pub fn ami_launch_index(&self) -> u32 {
        self.ami_launch_index
    }

    pub fn ami_manifest_path(&self) -> &str {
        &self.ami_manifest_path
    }

    pub fn account_id(&self) -> &AccountId {
        &self.account_id
    }

    /// The region: configured, or the zone's.
    pub fn region(&self) -> &str {
        self.region.as_str()
    }

    /// The AWS partition and its DNS suffix, from the region.
    pub fn partition(&self) -> (&'static str, &'static str) {
        crate::ec2::partition(self.region.as_str())
    }

    pub fn availability_zone(&self) -> &Zone {
        &self.availability_zone
    }

    /// Configured, or derived from the zone (`euw1-az2` for `eu-west-1b`).
    pub fn availability_zone_id(&self) -> &str {
        &self.availability_zone_id
    }

    /// The identity document's: configured, or from the instance type (`arm64` for Graviton).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    pub fn instance_life_cycle(&self) -> &str {
        &self.instance_life_cycle
    }

    /// RFC 3339 UTC time the instance launched (`pendingTime` in the identity document).
    pub fn pending_time(&self) -> &str {
        &self.pending_time
    }

    pub fn reservation_id(&self) -> &str {
        &self.reservation_id
    }

    pub fn kernel_id(&self) -> Option<&str> {
        self.kernel_id.as_deref()
    }

    pub fn ramdisk_id(&self) -> Option<&str> {
        self.ramdisk_id.as_deref()
    }

    pub fn product_codes(&self) -> &[String] {
        &self.product_codes
    }

    /// The primary interface's private address.
    pub fn local_ipv4(&self) -> Ipv4Addr {
        self.local_ipv4
    }

    pub fn public_ipv4(&self) -> Option<Ipv4Addr> {
        self.public_ipv4
    }

    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }

    /// The primary interface's MAC.
    pub fn mac(&self) -> &str {
        self.primary.mac().as_str()
    }

    /// EC2's private DNS name for the primary address (or the configured or host's name).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// EC2's public DNS name, when there is a public address.
    pub fn public_hostname(&self) -> Option<&str> {
        self.public_hostname.as_deref()
    }

    pub fn subnet_id(&self) -> &str {
        &self.subnet_id
    }

    pub fn subnet_ipv4_cidr_block(&self) -> &str {
        &self.subnet_ipv4_cidr_block
    }

    pub fn vpc_id(&self) -> &str {
        &self.vpc_id
    }

    pub fn vpc_ipv4_cidr_block(&self) -> &str {
        &self.vpc_ipv4_cidr_block
    }

    pub fn security_groups(&self) -> &[String] {
        &self.security_groups
    }

    pub fn security_group_ids(&self) -> &[String] {
        &self.security_group_ids
    }

    /// `block-device-mapping/<name>` → device.
    pub fn block_device_mapping(&self) -> &BTreeMap<String, String> {
        &self.block_device_mapping
    }

    /// The key pair: served as `public-keys/0=<name>` and `public-keys/0/openssh-key`.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.public_key.as_ref()
    }

    /// The primary network interface, made of the values above.
    pub fn primary_interface(&self) -> &NetworkInterface {
        &self.primary
    }

    /// The secondary network interfaces.
    pub fn network_interfaces(&self) -> &[NetworkInterface] {
        &self.network_interfaces
    }

    /// `profile` (every capture 2016–2025: `default-hvm`).
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// `system`: configured, else the generation's name (`nitro` or `xen`).
    pub fn system(&self) -> &str {
        self.system.get()
    }

    /// Launched with hibernation enabled: serves `hibernation/configured` = `true`.
    pub fn hibernation(&self) -> bool {
        self.hibernation
    }

    /// The placement group the instance runs in: `placement/group-name`.
    pub fn placement_group(&self) -> Option<&str> {
        self.placement_group.as_deref()
    }

    /// Its partition in a partition placement group: `placement/partition-number`.
    pub fn partition_number(&self) -> Option<PartitionNumber> {
        self.partition_number
    }

    /// The Dedicated Host it runs on: `placement/host-id`.
    pub fn host_id(&self) -> Option<&Ec2Id<'h'>> {
        self.host_id.as_ref()
    }
}

impl Default for Instance {
    fn default() -> Self {
        Instance::resolve(RawInstance::default(), &MachineFacts::none(), None)
    }
}

super::restart::applied_on_reload!(Instance);
