//! The instance's own tree, from a checked [`Config`]: every category of EC2's `meta-data/`
//! and `dynamic/`, so that the identity document, `placement/*`, `mac`,
//! `network/interfaces/macs/…` and `local-ipv4` tell one story. Pure: the user data and the
//! identity signatures come in as values.

use serde::Serialize;

use crate::config::{Config, NetworkInterface};
use crate::identity::Signatures;
#[cfg(test)]
use crate::metadata::{Node, Tree};
use crate::metadata::{TreeBuilder, json};

/// Builds the tree's leaves from the configuration, with the identity document's
/// `signatures` when there are any; callers may add more (credentials, events) before
/// [`TreeBuilder::build`].
pub fn builder(cfg: &Config, signatures: Option<&Signatures>) -> TreeBuilder {
    let i = cfg.instance();
    let region = i.region();
    let (partition, domain) = i.partition();
    let hostname = i.hostname();
    let public_hostname = i.public_hostname();
    let mut b = TreeBuilder::default();
    let md = |p: &str| format!("meta-data/{p}");

    for (k, v) in [
        ("ami-id", i.ami_id().to_string()),
        ("ami-launch-index", i.ami_launch_index().to_string()),
        ("ami-manifest-path", i.ami_manifest_path().into()),
        ("hostname", hostname.into()),
        ("instance-action", "none".into()),
        ("instance-id", i.instance_id().to_string()),
        ("instance-life-cycle", i.instance_life_cycle().into()),
        ("instance-type", i.instance_type().to_string()),
        ("local-hostname", hostname.into()),
        ("local-ipv4", i.local_ipv4().to_string()),
        ("mac", i.mac().to_string()),
        ("reservation-id", i.reservation_id().into()),
        ("security-groups", i.security_groups().join("\n")),
        (
            "placement/availability-zone",
            i.availability_zone().to_string(),
        ),
        (
            "placement/availability-zone-id",
            i.availability_zone_id().into(),
        ),
        ("placement/region", region.into()),
        ("services/domain", domain.into()),
        ("services/partition", partition.into()),
        (
            "metrics/vhostmd",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>".into(),
        ),
        ("events/maintenance/scheduled", "[]".into()),
        ("events/maintenance/history", "[]".into()),
    ] {
        b.text(&md(k), v);
    }
    // Placement beyond the zone, only where set (as on EC2: an instance outside a placement
    // group has no group-name).
    for (k, v) in [
        (
            "placement/group-name",
            i.placement_group().map(String::from),
        ),
        (
            "placement/partition-number",
            i.partition_number().map(|n| i64::from(n).to_string()),
        ),
        ("placement/host-id", i.host_id().map(ToString::to_string)),
    ] {
        if let Some(v) = v {
            b.text(&md(k), v);
        }
    }
    current_categories(&mut b, i.profile(), i.system(), i.hibernation());
    for (name, device) in i.block_device_mapping() {
        b.text(&md(&format!("block-device-mapping/{name}")), device.clone());
    }
    if let Some(ip) = i.public_ipv4() {
        b.text(&md("public-ipv4"), ip.to_string());
    }
    if let Some(h) = public_hostname {
        b.text(&md("public-hostname"), h);
    }
    if let Some(ip) = i.ipv6() {
        b.text(&md("ipv6"), ip.to_string());
    }
    if let Some(k) = i.kernel_id() {
        b.text(&md("kernel-id"), k);
    }
    if let Some(r) = i.ramdisk_id() {
        b.text(&md("ramdisk-id"), r);
    }
    if !i.product_codes().is_empty() {
        b.text(&md("product-codes"), i.product_codes().join("\n"));
    }
    if !i.ancestor_ami_ids().is_empty() {
        let ids: Vec<&str> = i.ancestor_ami_ids().iter().map(|id| id.as_str()).collect();
        b.text(&md("ancestor-ami-ids"), ids.join("\n"));
    }
    if let Some(key) = i.public_key() {
        b.text(&md("public-keys/0/openssh-key"), key.openssh_key.clone());
        b.listing(&md("public-keys"), format!("0={}", key.name));
    }

    // The primary network interface, keyed by its MAC, then the secondary ones.
    interface(
        &mut b,
        cfg,
        i.primary_interface(),
        Some(hostname),
        public_hostname,
    );
    for nic in i.network_interfaces() {
        interface(&mut b, cfg, nic, None, None);
    }

    if cfg.imds().instance_metadata_tags().is_enabled() && !cfg.tags().is_empty() {
        for (k, v) in cfg.tags() {
            b.text(&md(&format!("tags/instance/{k}")), v.clone());
        }
    }

    b.text("dynamic/fws/instance-monitoring", "disabled");
    if let Some(s) = signatures {
        b.text("dynamic/instance-identity/signature", s.signature.clone());
        b.text("dynamic/instance-identity/pkcs7", s.pkcs7.clone());
        b.text("dynamic/instance-identity/rsa2048", s.rsa2048.clone());
    }
    b.text("dynamic/instance-identity/document", identity_document(cfg));

    if let Some(data) = cfg.user_data().bytes() {
        b.binary("user-data", data.clone());
    }
    // `[paths]` is applied by [`super::build`], after the credentials, so
    // that a configured path wins over everything.
    b
}

/// The categories every current instance lists (`profile` in every capture 2016–2025,
/// `system` in every one since 2023) and those a launch option adds (`hibernation/`).
fn current_categories(b: &mut TreeBuilder, profile: &str, system: &str, hibernation: bool) {
    b.text("meta-data/profile", profile);
    b.text("meta-data/system", system);
    if hibernation {
        b.text("meta-data/hibernation/configured", "true");
    }
}

/// One interface's entries under `network/interfaces/macs/<mac>/`; what the interface does
/// not set came from the instance (subnet, VPC, security groups) when the config was checked.
fn interface(
    b: &mut TreeBuilder,
    cfg: &Config,
    nic: &NetworkInterface,
    hostname: Option<&str>,
    public_hostname: Option<&str>,
) {
    let i = cfg.instance();
    let region = i.region();
    let lines = |v: &[std::net::Ipv4Addr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = nic.local_ipv4s().first();
    let mut entries = vec![
        ("device-number", nic.device_number().to_string()),
        ("interface-id", nic.interface_id().into()),
        ("local-ipv4s", lines(nic.local_ipv4s())),
        ("mac", nic.mac().to_string()),
        ("network-card-index", nic.network_card_index().to_string()),
        ("owner-id", i.account_id().to_string()),
        ("security-group-ids", nic.security_group_ids().join("\n")),
        ("security-groups", nic.security_groups().join("\n")),
        ("subnet-id", nic.subnet_id().into()),
        (
            "subnet-ipv4-cidr-block",
            nic.subnet_ipv4_cidr_block().into(),
        ),
        ("vpc-id", i.vpc_id().into()),
        ("vpc-ipv4-cidr-block", i.vpc_ipv4_cidr_block().into()),
        ("vpc-ipv4-cidr-blocks", i.vpc_ipv4_cidr_block().into()),
    ];
    let private_dns = |ip: &std::net::Ipv4Addr| crate::ec2::private_dns_name(*ip, region);
    if let Some(h) = hostname
        .map(str::to_string)
        .or_else(|| first.map(private_dns))
    {
        entries.push(("local-hostname", h));
    }
    if !nic.public_ipv4s().is_empty() {
        entries.push(("public-ipv4s", lines(nic.public_ipv4s())));
    }
    // A secondary interface with a public address has its own public name (cloud-init's
    // recorded trees: only a NIC without a public IP lacks `public-hostname`).
    let public_dns = |ip: &std::net::Ipv4Addr| crate::ec2::public_dns_name(*ip, region);
    let own_public = nic.public_ipv4s().first().map(public_dns);
    if let Some(h) = public_hostname.map(str::to_string).or(own_public) {
        entries.push(("public-hostname", h));
    }
    if !nic.ipv6s().is_empty() {
        let v6: Vec<String> = nic.ipv6s().iter().map(ToString::to_string).collect();
        entries.push(("ipv6s", v6.join("\n")));
    }
    // Delegated prefixes, where there are any (the VPC CNI's prefix mode reads them).
    let p = nic.prefixes();
    if !p.ipv4.is_empty() {
        let v: Vec<&str> = p.ipv4.iter().map(|c| c.as_str()).collect();
        entries.push(("ipv4-prefix", v.join("\n")));
    }
    if !p.ipv6.is_empty() {
        let v: Vec<&str> = p.ipv6.iter().map(|c| c.as_str()).collect();
        entries.push(("ipv6-prefix", v.join("\n")));
    }
    // An interface in an IPv6 subnet lists its subnet's and VPC's blocks (every IPv6 capture:
    // cloud-init's 2016-09-02 and 2018-09-24 trees; fidelity audit row 1): as set, else the
    // /64 and the /56 of its addresses.
    for (key, blocks) in [
        ("subnet-ipv6-cidr-blocks", nic.subnet_ipv6_cidr_blocks()),
        ("vpc-ipv6-cidr-blocks", nic.vpc_ipv6_cidr_blocks()),
    ] {
        if !blocks.is_empty() {
            let blocks: Vec<String> = blocks.iter().map(ToString::to_string).collect();
            entries.push((key, blocks.join("\n")));
        }
    }
    let base = format!("meta-data/network/interfaces/macs/{}", nic.mac());
    for (k, v) in entries {
        b.text(&format!("{base}/{k}"), v);
    }
    // The n-th public address is associated with the n-th private one.
    for (public, private) in nic.public_ipv4s().iter().zip(nic.local_ipv4s()) {
        b.text(
            &format!("{base}/ipv4-associations/{public}"),
            private.to_string(),
        );
    }
}

/// The identity document in EC2's field order and style.
pub fn identity_document(cfg: &Config) -> String {
    let i = cfg.instance();
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Document<'a> {
        account_id: &'a str,
        architecture: &'a str,
        availability_zone: &'a str,
        billing_products: Option<()>,
        devpay_product_codes: Option<()>,
        marketplace_product_codes: Option<&'a [String]>,
        image_id: &'a str,
        instance_id: &'a str,
        instance_type: &'a str,
        kernel_id: Option<&'a str>,
        pending_time: &'a str,
        private_ip: String,
        ramdisk_id: Option<&'a str>,
        region: String,
        version: &'a str,
    }
    json::to_ec2_string(&Document {
        account_id: i.account_id().as_str(),
        architecture: i.architecture(),
        availability_zone: i.availability_zone().as_str(),
        billing_products: None,
        devpay_product_codes: None,
        marketplace_product_codes: (!i.product_codes().is_empty()).then_some(i.product_codes()),
        image_id: i.ami_id().as_str(),
        instance_id: i.instance_id(),
        instance_type: i.instance_type(),
        kernel_id: i.kernel_id(),
        pending_time: i.pending_time(),
        private_ip: i.local_ipv4().to_string(),
        ramdisk_id: i.ramdisk_id(),
        region: i.region().into(),
        version: "2017-09-30",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::MachineFacts;
    use std::path::Path;

    fn text(t: &Tree, p: &str) -> String {
        match t.get(p) {
            Some(Node::Leaf { body, .. }) | Some(Node::Dir { listing: body }) => {
                String::from_utf8(body.to_vec()).unwrap()
            }
            None => panic!("{p} missing"),
        }
    }

    #[test]
    fn values_tell_one_story() {
        let cfg = Config::builtin();
        let t = builder(&cfg, None).build();
        let doc: serde_json::Value =
            serde_json::from_str(&text(&t, "dynamic/instance-identity/document")).unwrap();
        assert_eq!(doc["instanceId"], text(&t, "meta-data/instance-id"));
        assert_eq!(
            doc["availabilityZone"],
            text(&t, "meta-data/placement/availability-zone")
        );
        assert_eq!(doc["region"], text(&t, "meta-data/placement/region"));
        assert_eq!(doc["privateIp"], text(&t, "meta-data/local-ipv4"));
        assert_eq!(doc["instanceType"], text(&t, "meta-data/instance-type"));
        assert_eq!(doc["imageId"], text(&t, "meta-data/ami-id"));
        let mac = text(&t, "meta-data/mac");
        assert_eq!(
            text(&t, "meta-data/network/interfaces/macs"),
            format!("{mac}/")
        );
        assert_eq!(
            text(
                &t,
                &format!("meta-data/network/interfaces/macs/{mac}/local-ipv4s")
            ),
            text(&t, "meta-data/local-ipv4")
        );
        assert_eq!(text(&t, ""), "dynamic\nmeta-data");
    }

    #[test]
    fn optional_sections_appear_only_when_set() {
        let cfg = Config::from_toml(
            "[imds]\ninstance-metadata-tags = \"enabled\"\n[tags]\nName = \"web\"\n\
             [instance.public-key]\nname = \"me\"\nopenssh-key = \"ssh-ed25519 AAAA me\"\n\
             [user-data]\ntext = \"#!/bin/sh\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = builder(&cfg, None).build();
        assert_eq!(text(&t, "meta-data/tags/instance"), "Name");
        assert_eq!(text(&t, "meta-data/tags/instance/Name"), "web");
        assert_eq!(text(&t, "meta-data/public-keys"), "0=me");
        assert_eq!(text(&t, "meta-data/public-keys/0"), "openssh-key");
        assert_eq!(text(&t, ""), "dynamic\nmeta-data\nuser-data");
        let plain = builder(&Config::builtin(), None).build();
        assert!(plain.get("meta-data/tags").is_none());
        assert!(plain.get("meta-data/public-keys").is_none());
        assert!(plain.get("user-data").is_none());
    }

    /// Every interface with IPv6 addresses lists its subnet's and VPC's IPv6 blocks, as on EC2
    /// (fidelity audit row 1: cloud-init's 2016-09-02 and 2018-09-24 trees recorded on real
    /// instances list `subnet-ipv6-cidr-blocks` and `vpc-ipv6-cidr-blocks` on the NIC with
    /// IPv6, e.g. `2600:1f16:aeb:b20b::/64` and `2600:1f16:aeb:b200::/56`); the VPC CNI treats
    /// a 404 there as an error. Without IPv6, neither is there.
    /// `placement/group-name`, `partition-number` and `host-id` (released 2020-08-24, the
    /// user guide's table; fidelity audit "categories we cannot serve yet") appear only when
    /// set; a partition needs its group.
    #[test]
    fn placement_group_partition_and_host_only_when_set() {
        let cfg = Config::from_toml(
            "[instance]\nplacement-group = \"web-spread\"\npartition-number = 3\n\
             host-id = \"h-0123456789abcdef0\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = builder(&cfg, None).build();
        assert_eq!(
            text(&t, "meta-data/placement"),
            "availability-zone\navailability-zone-id\ngroup-name\nhost-id\npartition-number\nregion"
        );
        assert_eq!(text(&t, "meta-data/placement/group-name"), "web-spread");
        assert_eq!(text(&t, "meta-data/placement/partition-number"), "3");
        assert_eq!(
            text(&t, "meta-data/placement/host-id"),
            "h-0123456789abcdef0"
        );
        let plain = builder(&Config::builtin(), None).build();
        assert_eq!(
            text(&plain, "meta-data/placement"),
            "availability-zone\navailability-zone-id\nregion"
        );
        for (toml, expect) in [
            (
                "[instance]\npartition-number = 3\n",
                "t.toml:2:1: `partition-number` needs `placement-group`",
            ),
            (
                "[instance]\nplacement-group = \"g\"\npartition-number = 8\n",
                "t.toml:3:20: partition number 8 is out of range",
            ),
            (
                "[instance]\nhost-id = \"i-0123456789abcdef0\"\n",
                "t.toml:2:11: `i-0123456789abcdef0` is not an EC2 id: expected `h-`",
            ),
        ] {
            let e = Config::from_toml(toml, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{toml:?}: {e}");
        }
    }

    /// Delegated prefixes are listed per interface as `ipv4-prefix` and `ipv6-prefix` (IPv4
    /// /28s, IPv6 /80s: EC2's prefix delegation; the VPC CNI reads both), only where set.
    #[test]
    fn delegated_prefixes_are_listed_where_set() {
        let cfg = Config::from_toml(
            "[instance]\nmac = \"0e:00:00:00:00:01\"\n\
             ipv4-prefixes = [\"172.31.16.48/28\", \"172.31.16.64/28\"]\n\
             [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:02\"\ndevice-number = 1\n\
             interface-id = \"eni-0222\"\nlocal-ipv4s = [\"172.31.20.5\"]\n\
             ipv6s = [\"2600:1f16:aeb:b20c::5\"]\nipv6-prefixes = [\"2600:1f16:aeb:b20c:1::/80\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = builder(&cfg, None).build();
        let key = |m: &str, k: &str| format!("meta-data/network/interfaces/macs/{m}/{k}");
        assert_eq!(
            text(&t, &key("0e:00:00:00:00:01", "ipv4-prefix")),
            "172.31.16.48/28\n172.31.16.64/28"
        );
        assert!(t.get(&key("0e:00:00:00:00:01", "ipv6-prefix")).is_none());
        assert_eq!(
            text(&t, &key("0e:00:00:00:00:02", "ipv6-prefix")),
            "2600:1f16:aeb:b20c:1::/80"
        );
        assert!(t.get(&key("0e:00:00:00:00:02", "ipv4-prefix")).is_none());
        // An interface in an IPv6 subnet without an IPv6 address of its own still lists the
        // blocks it is given (the 2025 c6g crawl, fidelity audit row 1).
        let no_address = Config::from_toml(
            "[instance]\nsubnet-ipv6-cidr-blocks = [\"2600:1f16:aeb:b20b::/64\"]\n\
             vpc-ipv6-cidr-blocks = [\"2600:1f16:aeb:b200::/56\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = builder(&no_address, None).build();
        let mac = no_address.instance().primary_interface().mac().to_string();
        assert_eq!(
            text(&t, &key(&mac, "subnet-ipv6-cidr-blocks")),
            "2600:1f16:aeb:b20b::/64"
        );
        assert_eq!(
            text(&t, &key(&mac, "vpc-ipv6-cidr-blocks")),
            "2600:1f16:aeb:b200::/56"
        );
        assert!(t.get(&key(&mac, "ipv6s")).is_none());
        // EC2 delegates /28s and /80s only, on their boundary; a bad one is refused at its value.
        for (toml, bad) in [
            (
                "[instance]\nipv4-prefixes = [\"172.31.16.48/27\"]\n",
                "172.31.16.48/27",
            ),
            (
                "[instance]\nipv4-prefixes = [\"172.31.16.49/28\"]\n",
                "172.31.16.49/28",
            ),
            (
                "[instance]\nipv6-prefixes = [\"2600:1f16::/64\"]\n",
                "2600:1f16::/64",
            ),
        ] {
            let e = Config::from_toml(toml, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("t.toml:2:") && e.contains(bad), "{e}");
        }
    }

    /// A secondary interface with a public address has its own `public-hostname`, in the
    /// region's and partition's form; one without has none (cloud-init's recorded trees,
    /// 2016-09-02 and 2018-09-24: "a second NIC without public IP has NO ... public-hostname").
    #[test]
    fn a_secondary_interface_with_a_public_address_has_its_public_name() {
        let cfg = |zone: &str| {
            Config::from_toml(
                &format!(
                    "[instance]\navailability-zone = \"{zone}\"\nmac = \"0e:00:00:00:00:01\"\n\
                     [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:02\"\ndevice-number = 1\n\
                     interface-id = \"eni-0222\"\nlocal-ipv4s = [\"172.31.20.5\"]\n\
                     public-ipv4s = [\"3.120.1.2\"]\n\
                     [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:03\"\ndevice-number = 2\n\
                     interface-id = \"eni-0333\"\nlocal-ipv4s = [\"172.31.21.5\"]\n"
                ),
                Path::new("t.toml"),
            )
            .unwrap()
        };
        let key = |m: &str, k: &str| format!("meta-data/network/interfaces/macs/{m}/{k}");
        let t = builder(&cfg("us-east-1b"), None).build();
        assert_eq!(
            text(&t, &key("0e:00:00:00:00:02", "public-hostname")),
            "ec2-3-120-1-2.compute-1.amazonaws.com"
        );
        assert_eq!(
            text(&t, &key("0e:00:00:00:00:02", "local-hostname")),
            "ip-172-31-20-5.ec2.internal"
        );
        assert!(
            t.get(&key("0e:00:00:00:00:03", "public-hostname"))
                .is_none()
        );
        let cn = builder(&cfg("cn-north-1a"), None).build();
        assert_eq!(
            text(&cn, &key("0e:00:00:00:00:02", "public-hostname")),
            "ec2-3-120-1-2.cn-north-1.compute.amazonaws.com.cn"
        );
    }

    #[test]
    fn ipv6_interfaces_list_their_subnet_and_vpc_blocks() {
        let cfg = Config::from_toml(
            "[instance]\nmac = \"0e:00:00:00:00:01\"\nipv6 = \"2600:1f16:aeb:b20b:8a3f:1c2d:3e4f:5a6b\"\n\
             [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:02\"\ndevice-number = 1\n\
             interface-id = \"eni-0222\"\nlocal-ipv4s = [\"172.31.20.5\"]\n\
             ipv6s = [\"2600:1f16:aeb:b20c::5\", \"2600:1f16:aeb:b20c::6\"]\n\
             [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:03\"\ndevice-number = 2\n\
             interface-id = \"eni-0333\"\nlocal-ipv4s = [\"172.31.21.5\"]\n\
             ipv6s = [\"2600:1f16:aeb:b20d::5\"]\n\
             subnet-ipv6-cidr-blocks = [\"2600:1f16:aeb:b20d::/64\", \"2600:1f16:aeb:b2ff::/64\"]\n\
             vpc-ipv6-cidr-blocks = [\"2600:1f16:aeb:b200::/56\"]\n\
             [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:04\"\ndevice-number = 3\n\
             interface-id = \"eni-0444\"\nlocal-ipv4s = [\"172.31.22.5\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = builder(&cfg, None).build();
        let nic =
            |m: &str, k: &str| text(&t, &format!("meta-data/network/interfaces/macs/{m}/{k}"));
        let p = "0e:00:00:00:00:01";
        assert_eq!(nic(p, "subnet-ipv6-cidr-blocks"), "2600:1f16:aeb:b20b::/64");
        assert_eq!(nic(p, "vpc-ipv6-cidr-blocks"), "2600:1f16:aeb:b200::/56");
        let two = "0e:00:00:00:00:02";
        assert_eq!(
            nic(two, "subnet-ipv6-cidr-blocks"),
            "2600:1f16:aeb:b20c::/64",
            "one block for two addresses"
        );
        assert_eq!(nic(two, "vpc-ipv6-cidr-blocks"), "2600:1f16:aeb:b200::/56");
        let three = "0e:00:00:00:00:03";
        assert_eq!(
            nic(three, "subnet-ipv6-cidr-blocks"),
            "2600:1f16:aeb:b20d::/64\n2600:1f16:aeb:b2ff::/64"
        );
        let none = "meta-data/network/interfaces/macs/0e:00:00:00:00:04";
        assert!(t.get(&format!("{none}/subnet-ipv6-cidr-blocks")).is_none());
        assert!(t.get(&format!("{none}/vpc-ipv6-cidr-blocks")).is_none());
        assert!(!text(&t, none).contains("ipv6"));
        assert!(
            text(&t, &format!("meta-data/network/interfaces/macs/{two}"))
                .contains("subnet-ipv6-cidr-blocks\n")
        );

        let bad = Config::from_toml(
            "[instance]\nvpc-ipv6-cidr-blocks = [\"2600:1f16::/129\"]\n",
            Path::new("t.toml"),
        );
        assert!(
            bad.unwrap_err().to_string().contains("t.toml:2:"),
            "a bad block is located"
        );
    }

    #[test]
    fn secondary_interfaces_have_their_own_addresses_and_associations() {
        let cfg = Config::from_toml(
            "[instance]\nmac = \"0e:00:00:00:00:01\"\n\
             [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:02\"\ndevice-number = 1\n\
             interface-id = \"eni-0222\"\nlocal-ipv4s = [\"172.31.20.5\", \"172.31.20.6\"]\n\
             public-ipv4s = [\"3.3.3.3\"]\nipv6s = [\"2600:1f18::5\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = builder(&cfg, None).build();
        assert_eq!(
            text(&t, "meta-data/network/interfaces/macs"),
            "0e:00:00:00:00:01/\n0e:00:00:00:00:02/"
        );
        let eni = "meta-data/network/interfaces/macs/0e:00:00:00:00:02";
        assert_eq!(text(&t, &format!("{eni}/device-number")), "1");
        assert_eq!(
            text(&t, &format!("{eni}/local-ipv4s")),
            "172.31.20.5\n172.31.20.6"
        );
        assert_eq!(
            text(&t, &format!("{eni}/ipv4-associations/3.3.3.3")),
            "172.31.20.5"
        );
        assert_eq!(text(&t, &format!("{eni}/ipv6s")), "2600:1f18::5");
        assert_eq!(
            text(&t, &format!("{eni}/local-hostname")),
            "ip-172-31-20-5.ec2.internal"
        );
        assert_eq!(
            text(&t, &format!("{eni}/subnet-id")),
            cfg.instance().subnet_id(),
            "inherited"
        );
        assert_eq!(
            text(&t, "meta-data/mac"),
            "0e:00:00:00:00:01",
            "the primary stays primary"
        );
    }

    /// What EC2 derives, derived the same way when the config does not set it: the zone id
    /// from the zone (fidelity audit row 2), the region of a Local or Wavelength Zone (row 7),
    /// the identity document's architecture from the type (row 9: a c6g's says `arm64`,
    /// cloudpanel issue 375, 2023), and an arm64 box's default type.
    #[test]
    fn zone_id_region_and_architecture_follow_the_zone_and_type() {
        let doc = |t: &crate::metadata::Tree| text(t, "dynamic/instance-identity/document");
        let tree = |toml: &str, facts: &MachineFacts| {
            builder(
                &Config::parse(toml, Path::new("t.toml"), facts).unwrap(),
                None,
            )
            .build()
        };
        let none = MachineFacts::none();
        let t = tree(
            "[instance]\navailability-zone = \"eu-west-1b\"\ninstance-type = \"c6g.large\"\n",
            &none,
        );
        assert_eq!(
            text(&t, "meta-data/placement/availability-zone-id"),
            "euw1-az2"
        );
        assert!(
            doc(&t).contains("\"architecture\" : \"arm64\""),
            "{}",
            doc(&t)
        );

        let t = tree(
            "[instance]\navailability-zone = \"us-west-2-lax-1a\"\n",
            &none,
        );
        assert_eq!(
            text(&t, "meta-data/placement/availability-zone"),
            "us-west-2-lax-1a"
        );
        assert_eq!(
            text(&t, "meta-data/placement/availability-zone-id"),
            "usw2-lax1-az1"
        );
        assert_eq!(text(&t, "meta-data/placement/region"), "us-west-2");
        assert_eq!(
            text(&t, "meta-data/local-hostname"),
            "ip-172-31-16-10.us-west-2.compute.internal"
        );
        assert!(
            doc(&t).contains("\"region\" : \"us-west-2\""),
            "{}",
            doc(&t)
        );
        assert!(
            doc(&t).contains("\"architecture\" : \"x86_64\""),
            "{}",
            doc(&t)
        );

        // China: the public name ends in the partition's suffix (fidelity audit row 6; a
        // belief, no capture); services/ follows the partition (botocore's partitions.json).
        let t = tree("[instance]\navailability-zone = \"cn-north-1a\"\n", &none);
        assert_eq!(
            text(&t, "meta-data/public-hostname"),
            "ec2-54-210-10-20.cn-north-1.compute.amazonaws.com.cn"
        );
        assert_eq!(text(&t, "meta-data/services/partition"), "aws-cn");
        assert_eq!(text(&t, "meta-data/services/domain"), "amazonaws.com.cn");
        let t = tree(
            "[instance]\navailability-zone = \"us-iso-east-1a\"\n",
            &none,
        );
        assert_eq!(text(&t, "meta-data/services/partition"), "aws-iso");
        assert_eq!(text(&t, "meta-data/services/domain"), "c2s.ic.gov");

        // Set values win over derived ones.
        let t = tree(
            "[instance]\navailability-zone-id = \"use1-az4\"\ninstance-type = \"t4g.nano\"\narchitecture = \"x86_64\"\n",
            &none,
        );
        assert_eq!(
            text(&t, "meta-data/placement/availability-zone-id"),
            "use1-az4"
        );
        assert!(doc(&t).contains("\"architecture\" : \"x86_64\""));

        // An arm64 box is a Graviton instance by default; with from-host = false, the defaults.
        let arm = MachineFacts {
            arch: Some("aarch64".into()),
            ..MachineFacts::none()
        };
        let t = tree("", &arm);
        assert_eq!(text(&t, "meta-data/instance-type"), "t4g.micro");
        assert!(doc(&t).contains("\"architecture\" : \"arm64\""));
        let t = tree("[instance]\nfrom-host = false\n", &arm);
        assert_eq!(text(&t, "meta-data/instance-type"), "t3.micro");
    }

    #[test]
    fn facts_from_the_box_fill_only_what_is_not_set() {
        use crate::machine::PrimaryNic;
        let facts = MachineFacts {
            machine_id: Some("0b6a8b1c4f5e4d7a9c2e3f4a5b6c7d8e".into()),
            hostname: Some("box1".into()),
            primary: Some(PrimaryNic {
                name: "eth0".into(),
                ipv4: "192.168.121.77".parse().unwrap(),
                prefix: 24,
                mac: Some("52:54:00:ce:bf:5b".into()),
            }),
            arch: Some("x86_64".into()),
        };
        let c = Config::parse("", Path::new("t.toml"), &facts).unwrap();
        let t = builder(&c, None).build();
        assert_eq!(
            text(&t, "meta-data/instance-id"),
            crate::machine::instance_id("0b6a8b1c4f5e4d7a9c2e3f4a5b6c7d8e")
        );
        assert_eq!(text(&t, "meta-data/local-ipv4"), "192.168.121.77");
        assert_eq!(text(&t, "meta-data/mac"), "52:54:00:ce:bf:5b");
        assert_eq!(text(&t, "meta-data/hostname"), "box1");
        let nic = "meta-data/network/interfaces/macs/52:54:00:ce:bf:5b";
        assert_eq!(
            text(&t, &format!("{nic}/subnet-ipv4-cidr-block")),
            "192.168.121.0/24"
        );
        assert!(
            text(&t, "dynamic/instance-identity/document")
                .contains("\"privateIp\" : \"192.168.121.77\"")
        );
        // Configured values win; `from-host = false` ignores the box.
        let c = Config::parse(
            "[instance]\ninstance-id = \"i-0fedcba9876543210\"\n",
            Path::new("t.toml"),
            &facts,
        )
        .unwrap();
        assert_eq!(c.instance().instance_id(), "i-0fedcba9876543210");
        assert_eq!(c.instance().local_ipv4().to_string(), "192.168.121.77");
        let c = Config::parse(
            "[instance]\nfrom-host = false\n",
            Path::new("t.toml"),
            &facts,
        )
        .unwrap();
        assert_eq!(
            c,
            Config::from_toml("[instance]\nfrom-host = false\n", Path::new("t.toml")).unwrap()
        );
        assert_eq!(c.instance().instance_id(), "i-0123456789abcdef0");
    }
}
