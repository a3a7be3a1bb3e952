//! Which API version each category appeared in, as data: AWS's EC2 user guide lists, for every
//! instance metadata category, the "version when category was released". A dated prefix
//! (`/2009-04-04/…`) serves only the categories released at or before that version; `latest`
//! serves everything. Real instances do this: a 2009-04-04 crawl has no `iam/`, `mac`,
//! `metrics/`, `network/` or `services/` (cloud-init issue 2750, 2017), and the 2016-09-02 and
//! 2018-09-24 trees have only `availability-zone` under `placement/` (cloud-init's test data
//! recorded on real instances, 2016–2019).
//!
//! Dates that are not one of [`super::VERSIONS`] (the guide gives some, e.g. 2020-08-24 for
//! `placement/region`) take effect from the next listed version.

use super::VERSIONS;

/// `(path pattern, version)`: a pattern is a path below the version root; `*` stands for one
/// segment (a MAC, a role). The longest matching pattern decides; a path no pattern matches is
/// in every version (e.g. a `[paths]` entry of the user's own).
pub const RELEASED: &[(&str, &str)] = &[
    ("user-data", "1.0"),
    ("meta-data", "1.0"),
    ("meta-data/ami-id", "1.0"),
    // Every revision of the guide (2019–2023) and the 2009 developer guide say 1.0.
    ("meta-data/ami-launch-index", "1.0"),
    ("meta-data/ami-manifest-path", "1.0"),
    ("meta-data/ancestor-ami-ids", "2007-10-10"),
    ("meta-data/autoscaling/target-lifecycle-state", "2021-07-15"),
    ("meta-data/block-device-mapping", "2007-12-15"),
    ("meta-data/elastic-gpus", "2016-11-30"),
    ("meta-data/elastic-inference", "2018-11-29"),
    ("meta-data/events/maintenance", "2018-08-17"),
    ("meta-data/events/recommendations/rebalance", "2020-10-27"),
    // Inferred: in no revision of the guide's table. Hibernation launched in November 2018
    // (2016-11-30, the row before, was elastic-gpus' date): from the first version after it.
    ("meta-data/hibernation/configured", "2018-11-28"),
    ("meta-data/hostname", "1.0"),
    ("meta-data/iam", "2012-01-12"),
    // Not in the guide's table: the extended credentials path is new (the SDKs of 2024–2025
    // ask it under `latest` only); served under `latest` alone.
    ("meta-data/iam/security-credentials-extended", "latest"),
    ("meta-data/identity-credentials/ec2", "2018-05-23"),
    ("meta-data/instance-action", "2008-09-01"),
    ("meta-data/instance-id", "1.0"),
    ("meta-data/instance-life-cycle", "2019-10-01"),
    ("meta-data/instance-type", "2007-08-29"),
    ("meta-data/ipv6", "2021-01-03"),
    ("meta-data/kernel-id", "2008-02-01"),
    ("meta-data/local-hostname", "2007-01-19"),
    ("meta-data/local-ipv4", "1.0"),
    ("meta-data/mac", "2011-01-01"),
    ("meta-data/metrics/vhostmd", "2011-05-01"),
    ("meta-data/network/interfaces/macs", "2011-01-01"),
    // Inferred: in no revision of the guide's table (fidelity audit), served by EC2 for
    // prefix delegation, which launched in July 2021; the first version after is 2021-07-15.
    (
        "meta-data/network/interfaces/macs/*/ipv4-prefix",
        "2021-07-15",
    ),
    (
        "meta-data/network/interfaces/macs/*/ipv6-prefix",
        "2021-07-15",
    ),
    ("meta-data/network/interfaces/macs/*/ipv6s", "2016-06-30"),
    (
        "meta-data/network/interfaces/macs/*/network-card-index",
        "2020-11-01",
    ),
    (
        "meta-data/network/interfaces/macs/*/subnet-ipv6-cidr-blocks",
        "2016-06-30",
    ),
    (
        "meta-data/network/interfaces/macs/*/vpc-ipv4-cidr-blocks",
        "2016-06-30",
    ),
    (
        "meta-data/network/interfaces/macs/*/vpc-ipv6-cidr-blocks",
        "2016-06-30",
    ),
    ("meta-data/placement/availability-zone", "2008-02-01"),
    ("meta-data/placement/availability-zone-id", "2019-10-01"),
    ("meta-data/placement/group-name", "2020-08-24"),
    ("meta-data/placement/host-id", "2020-08-24"),
    ("meta-data/placement/partition-number", "2020-08-24"),
    ("meta-data/placement/region", "2020-08-24"),
    ("meta-data/product-codes", "2007-03-01"),
    // Inferred, a lower bound: not in the guide's table. Every capture lists it, the oldest a
    // 2009-04-04 crawl (2017); it may be older.
    ("meta-data/profile", "2009-04-04"),
    ("meta-data/public-hostname", "2007-01-19"),
    ("meta-data/public-ipv4", "2007-01-19"),
    ("meta-data/public-keys", "1.0"),
    ("meta-data/ramdisk-id", "2007-10-10"),
    ("meta-data/reservation-id", "1.0"),
    ("meta-data/security-groups", "1.0"),
    ("meta-data/services/domain", "2014-02-25"),
    ("meta-data/services/partition", "2015-10-20"),
    ("meta-data/spot/instance-action", "2016-11-15"),
    ("meta-data/spot/termination-time", "2014-11-05"),
    // Inferred, a guess: not in the guide's table. Captures list it since 2023, under
    // `latest`; the 2018-09-24 tree of 2019 has none. From the first version after that.
    ("meta-data/system", "2022-09-24"),
    ("meta-data/tags/instance", "2021-03-23"),
    ("dynamic", "2009-04-04"),
    ("dynamic/fws/instance-monitoring", "2009-04-04"),
    ("dynamic/instance-identity", "2009-04-04"),
];

/// The index in [`VERSIONS`] of the first version that has `path` (a leaf path below the
/// version root).
pub fn since(path: &str) -> usize {
    let mut best: Option<(usize, &str)> = None;
    for &(pattern, version) in RELEASED {
        let depth = pattern.split('/').count();
        if best.is_some_and(|(d, _)| d >= depth) || !matches(pattern, path) {
            continue;
        }
        best = Some((depth, version));
    }
    best.map_or(0, |(_, v)| first_version_from(v))
}

/// The index of the first listed version at or after `version` (a date, `1.0` or `latest`).
fn first_version_from(version: &str) -> usize {
    VERSIONS
        .partition_point(|v| *v < version)
        .min(VERSIONS.len() - 1)
}

/// Whether `pattern` is `path` or one of its ancestors, segment by segment.
fn matches(pattern: &str, path: &str) -> bool {
    let mut segs = path.split('/');
    pattern
        .split('/')
        .all(|p| segs.next().is_some_and(|s| p == "*" || p == s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(path: &str) -> &'static str {
        VERSIONS[since(path)]
    }

    #[test]
    fn the_longest_pattern_decides() {
        assert_eq!(version("meta-data/ami-id"), "1.0");
        assert_eq!(version("meta-data/iam/info"), "2012-01-12");
        assert_eq!(
            version("meta-data/iam/security-credentials-extended/r"),
            "latest"
        );
        assert_eq!(
            version("meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv6s"),
            "2016-06-30"
        );
        assert_eq!(
            version("meta-data/network/interfaces/macs/0e:00:00:00:00:01/mac"),
            "2011-01-01"
        );
        assert_eq!(version("meta-data/placement/region"), "2020-10-27");
        assert_eq!(version("meta-data/custom/thing"), "1.0");
        assert_eq!(version("meta-data/macs"), "1.0", "segments, not prefixes");
        assert_eq!(version("dynamic/instance-identity/document"), "2009-04-04");
    }

    #[test]
    fn every_pattern_names_a_known_version_or_a_date() {
        for (p, v) in RELEASED {
            assert!(
                *v == "1.0" || *v == "latest" || (v.len() == 10 && v.as_bytes()[4] == b'-'),
                "{p}: {v}"
            );
        }
        let mut sorted = VERSIONS.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            sorted, VERSIONS,
            "VERSIONS is sorted (binary search, partition)"
        );
    }
}
