//! EC2's naming rules, for the values EC2 derives from others: a zone's region and id (Local
//! Zones and Wavelength Zones included), a region's short code, an instance type's
//! architecture, an address's DNS names. Pure and table-free; nothing here depends on another
//! module of the crate.

use std::net::Ipv4Addr;

/// A zone name taken apart: its parent region and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneName<'a> {
    /// `us-east-1a`: the region and one letter.
    Az { region: &'a str, letter: char },
    /// `us-west-2-lax-1a`: a Local Zone (location code, group number, letter).
    Local {
        region: &'a str,
        location: &'a str,
        group: &'a str,
        letter: char,
    },
    /// `us-east-1-wl1-bos-wlz-1`: a Wavelength Zone (`wl` group, location, zone number).
    Wavelength {
        region: &'a str,
        group: &'a str,
        location: &'a str,
        number: &'a str,
    },
}

fn lower(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase())
}
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A region name: `us-east-1`, `us-gov-west-1`, `ap-southeast-2` (a two-letter area, one or
/// more words, a number).
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && lower(parts[0])
        && parts[1..parts.len() - 1].iter().all(|p| lower(p))
        && digits(parts[parts.len() - 1])
}

impl<'a> ZoneName<'a> {
    /// Parses a zone name; `None` when it is not one of the three forms.
    pub fn parse(s: &'a str) -> Option<ZoneName<'a>> {
        let parts: Vec<&str> = s.split('-').collect();
        // The region ends at the first part that starts with a digit.
        let k = parts
            .iter()
            .position(|p| p.starts_with(|c: char| c.is_ascii_digit()))?;
        let num_len = parts[k].bytes().take_while(u8::is_ascii_digit).count();
        let region_len = parts[..k].iter().map(|p| p.len() + 1).sum::<usize>() + num_len;
        let region = &s[..region_len];
        if !is_region(region) {
            return None;
        }
        let tail = &parts[k][num_len..];
        let rest = &parts[k + 1..];
        let one_letter = |t: &str| {
            let mut c = t.chars();
            match (c.next(), c.next()) {
                (Some(l), None) if l.is_ascii_lowercase() => Some(l),
                _ => None,
            }
        };
        match (tail, rest) {
            (t, []) => one_letter(t).map(|letter| ZoneName::Az { region, letter }),
            ("", [location, gl]) if lower(location) => {
                let n = gl.bytes().take_while(u8::is_ascii_digit).count();
                let letter = one_letter(&gl[n..])?;
                (n > 0).then_some(ZoneName::Local {
                    region,
                    location,
                    group: &gl[..n],
                    letter,
                })
            }
            ("", [group, location, "wlz", number])
                if group.strip_prefix("wl").is_some_and(digits)
                    && lower(location)
                    && digits(number) =>
            {
                Some(ZoneName::Wavelength {
                    region,
                    group,
                    location,
                    number,
                })
            }
            _ => None,
        }
    }

    /// The parent region (a Local or Wavelength Zone belongs to the region it is named after).
    pub fn region(&self) -> &'a str {
        match *self {
            ZoneName::Az { region, .. }
            | ZoneName::Local { region, .. }
            | ZoneName::Wavelength { region, .. } => region,
        }
    }

    /// The zone id EC2 would show: `euw1-az2` for `eu-west-1b`, `usw2-lax1-az1` for
    /// `us-west-2-lax-1a`, `use1-wl1-bos-wlz1` for `us-east-1-wl1-bos-wlz-1`.
    ///
    /// EC2 maps zone letters to ids per account (`us-east-1a` is `use1-az4` in one account
    /// and `use1-az6` in another); with no account to map, the n-th letter is `az<n>`.
    pub fn id(&self) -> String {
        let az = |l: char| u32::from(l) - u32::from('a') + 1;
        match *self {
            ZoneName::Az { region, letter } => format!("{}-az{}", region_code(region), az(letter)),
            ZoneName::Local {
                region,
                location,
                group,
                letter,
            } => format!("{}-{location}{group}-az{}", region_code(region), az(letter)),
            ZoneName::Wavelength {
                region,
                group,
                location,
                number,
            } => format!("{}-{group}-{location}-wlz{number}", region_code(region)),
        }
    }
}

/// A region's short code, as zone ids begin: `use1` (us-east-1), `apse2` (ap-southeast-2),
/// `usgw1` (us-gov-west-1), `cnnw1` (cn-northwest-1). Each word after the area becomes its
/// initials (`northeast` → `ne`); `gov` → `g`, and the ISO words (`iso`, `isob`, `isof`) keep
/// `i` and the letter after `iso` (an inference: no ISO zone id is public).
pub fn region_code(region: &str) -> String {
    let mut parts = region.split('-');
    let mut code = parts.next().unwrap_or_default().to_string();
    for p in parts {
        let short = match p {
            "north" | "south" | "east" | "west" | "central" | "gov" | "iso" => &p[..1],
            "northeast" | "northwest" | "southeast" | "southwest" => {
                code.push_str(&p[..1]);
                &p[5..6]
            }
            _ if p.starts_with("iso") => {
                code.push('i');
                &p[3..]
            }
            _ if digits(p) => p,
            _ => &p[..1],
        };
        code.push_str(short);
    }
    code
}

/// The partition of a region and its DNS suffix (`services/partition`, `services/domain`),
/// as botocore 1.43.11's `data/partitions.json` lists them (its `regionRegex` per partition).
pub fn partition(region: &str) -> (&'static str, &'static str) {
    const BY_PREFIX: [(&str, &str, &str); 6] = [
        ("cn-", "aws-cn", "amazonaws.com.cn"),
        ("us-gov-", "aws-us-gov", "amazonaws.com"),
        ("us-iso-", "aws-iso", "c2s.ic.gov"),
        ("us-isob-", "aws-iso-b", "sc2s.sgov.gov"),
        ("us-isof-", "aws-iso-f", "csp.hci.ic.gov"),
        ("eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"),
    ];
    BY_PREFIX
        .iter()
        .find(|(prefix, ..)| region.starts_with(prefix))
        .map_or(("aws", "amazonaws.com"), |&(_, id, domain)| (id, domain))
}

/// The architecture the identity document names for an instance type: `arm64` for the
/// Graviton families (`a1`, and every family whose generation digit is followed by `g`:
/// `c6g`, `c7gn`, `m6gd`, `t4g`, `im4gn`, `x2gd`, `hpc7g`, `g5g`, `r8g`), else `x86_64`.
pub fn architecture_of(instance_type: &str) -> &'static str {
    let family = instance_type.split('.').next().unwrap_or(instance_type);
    let rest = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let after = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let graviton = family == "a1" || (after.len() < rest.len() && after.starts_with('g'));
    if graviton { "arm64" } else { "x86_64" }
}

/// EC2's private DNS name for an address in `region` (`ip-10-0-0-5.ec2.internal` in
/// us-east-1, `ip-10-0-0-5.eu-west-1.compute.internal` elsewhere).
pub fn private_dns_name(ip: Ipv4Addr, region: &str) -> String {
    let ip = ip.to_string().replace('.', "-");
    match region {
        "us-east-1" => format!("ip-{ip}.ec2.internal"),
        r => format!("ip-{ip}.{r}.compute.internal"),
    }
}

/// EC2's resource-based private DNS name of an instance (`i-0123456789abcdef0.ec2.internal`,
/// `….eu-west-1.compute.internal`), when its hostname type is `resource-name`.
pub fn resource_dns_name(instance_id: &str, region: &str) -> String {
    match region {
        "us-east-1" => format!("{instance_id}.ec2.internal"),
        r => format!("{instance_id}.{r}.compute.internal"),
    }
}

/// EC2's public DNS name for a public address in `region` (`ec2-54-210-10-20.compute-1.
/// amazonaws.com` in us-east-1; elsewhere under the region and its partition's domain, so
/// China's end in `.amazonaws.com.cn`).
pub fn public_dns_name(ip: Ipv4Addr, region: &str) -> String {
    let ip = ip.to_string().replace('.', "-");
    let (_, domain) = partition(region);
    match region {
        "us-east-1" => format!("ec2-{ip}.compute-1.amazonaws.com"),
        r => format!("ec2-{ip}.{r}.compute.{domain}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_follow_the_region_and_letter() {
        // Sources: the fidelity audit (../shared/fidelity-audit.md row 2: `euw1`, `apse1`,
        // `usgw1`, `cnn1`); AWS's "AZ IDs" page shows use1-az1…az6, usw2-az1, apne1-az4.
        for (zone, id) in [
            ("us-east-1a", "use1-az1"),
            ("eu-west-1b", "euw1-az2"),
            ("ap-southeast-1c", "apse1-az3"),
            ("us-gov-west-1a", "usgw1-az1"),
            ("cn-north-1a", "cnn1-az1"),
            ("cn-northwest-1b", "cnnw1-az2"),
            ("ap-northeast-2d", "apne2-az4"),
            ("ca-central-1a", "cac1-az1"),
            ("sa-east-1a", "sae1-az1"),
            ("il-central-1a", "ilc1-az1"),
            ("us-iso-east-1a", "usie1-az1"),
            ("us-isob-east-1a", "usibe1-az1"),
            // Local and Wavelength Zones (AWS's Local Zones and Wavelength user guides).
            ("us-west-2-lax-1a", "usw2-lax1-az1"),
            ("us-west-2-lax-1b", "usw2-lax1-az2"),
            ("us-east-1-wl1-bos-wlz-1", "use1-wl1-bos-wlz1"),
        ] {
            let z = ZoneName::parse(zone).unwrap_or_else(|| panic!("{zone} is a zone"));
            assert_eq!(z.id(), id, "{zone}");
        }
    }

    #[test]
    fn local_and_wavelength_zones_belong_to_their_parent_region() {
        for (zone, region) in [
            ("us-east-1a", "us-east-1"),
            ("us-west-2-lax-1a", "us-west-2"),
            ("ap-northeast-1-tpe-1a", "ap-northeast-1"),
            ("us-east-1-wl1-bos-wlz-1", "us-east-1"),
            ("eu-west-2-wl1-lon-wlz-1", "eu-west-2"),
        ] {
            assert_eq!(
                ZoneName::parse(zone).map(|z| z.region()),
                Some(region),
                "{zone}"
            );
        }
    }

    #[test]
    fn what_is_not_a_zone() {
        for s in [
            "us-east-1",
            "us-east-1ab",
            "us-east-1A",
            "us-east-a",
            "useast-1a",
            "us-west-2-lax-a",
            "us-west-2-lax-1",
            "us-west-2-LAX-1a",
            "us-west-2-lax-1a-x",
            "us-east-1-wl1-bos-wlz",
            "us-east-1-wlx-bos-wlz-1",
            "u-east-1a",
            "",
        ] {
            assert_eq!(ZoneName::parse(s), None, "{s}");
        }
    }

    #[test]
    fn partitions_and_domains_follow_the_region() {
        // botocore 1.43.11, data/partitions.json: each partition's regionRegex and dnsSuffix.
        for (region, part, domain) in [
            ("us-east-1", "aws", "amazonaws.com"),
            ("il-central-1", "aws", "amazonaws.com"),
            ("cn-north-1", "aws-cn", "amazonaws.com.cn"),
            ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
            ("us-iso-east-1", "aws-iso", "c2s.ic.gov"),
            ("us-isob-east-1", "aws-iso-b", "sc2s.sgov.gov"),
            ("us-isof-south-1", "aws-iso-f", "csp.hci.ic.gov"),
            ("eu-isoe-west-1", "aws-iso-e", "cloud.adc-e.uk"),
        ] {
            assert_eq!(partition(region), (part, domain), "{region}");
        }
    }

    #[test]
    fn graviton_families_are_arm64() {
        // Graviton families as EC2 names them (AWS's instance type pages); the identity
        // document of a c6g says `"architecture" : "arm64"` (cloudpanel issue 375, 2023).
        for t in [
            "a1.large",
            "c6g.large",
            "c6gd.xlarge",
            "c6gn.medium",
            "c7g.large",
            "c7gn.large",
            "c8g.large",
            "m6g.large",
            "m7g.medium",
            "m8g.large",
            "r6g.large",
            "r8g.large",
            "t4g.micro",
            "x2gd.large",
            "im4gn.large",
            "is4gen.large",
            "g5g.xlarge",
            "hpc7g.4xlarge",
            "i4g.large",
        ] {
            assert_eq!(architecture_of(t), "arm64", "{t}");
        }
        for t in [
            "t3.micro",
            "t2.nano",
            "m5.large",
            "c6a.large",
            "c6i.large",
            "g4dn.xlarge",
            "g5.xlarge",
            "p4d.24xlarge",
            "inf2.xlarge",
            "trn1.2xlarge",
            "u7i-12tb.224xlarge",
            "m7i-flex.large",
            "hpc6a.48xlarge",
            "mac1.metal",
        ] {
            assert_eq!(architecture_of(t), "x86_64", "{t}");
        }
    }
}
