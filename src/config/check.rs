//! The checks that span several keys, run on the file as written and located at the key each
//! blames; single values were checked while they were parsed.

use std::net::Ipv6Addr;

use super::locate::Spans;
use super::{ConfigError, Pod, RawConfig, USER_DATA_MAX};

/// Every problem found, in one error; `Ok` when there is none, with the checked `[[pod]]`s.
pub(super) fn check(c: &RawConfig, spans: &Spans<'_>) -> Result<Vec<Pod>, ConfigError> {
    let mut problems = Vec::new();
    let mut blame = |key: &[&str], message: String| problems.push(spans.blame(key, message));
    if let Some(r) = &c.instance.region
        && c.instance.availability_zone.region() != r.as_str()
    {
        blame(
            &["instance", "availability-zone"],
            format!(
                "availability zone `{}` is not in region `{}`",
                c.instance.availability_zone, r
            ),
        );
    }
    if c.instance.partition_number.is_some() && c.instance.placement_group.is_none() {
        blame(
            &["instance", "partition-number"],
            "`partition-number` needs `placement-group` (the partition placement group)".into(),
        );
    }
    if c.user_data.text.is_some() && c.user_data.file.is_some() {
        blame(
            &["user-data", "file"],
            "user data: set `text` or `file`, not both".into(),
        );
    }
    if let Some(t) = &c.user_data.text
        && t.len() > USER_DATA_MAX
    {
        blame(
            &["user-data", "text"],
            format!("user data is {} bytes; EC2 allows at most 16 KiB", t.len()),
        );
    }
    if let Some(l) = &c.server.listen
        && l.is_empty()
    {
        blame(
            &["server", "listen"],
            "`listen` is empty: give at least one address".into(),
        );
    }
    if let Some(l) = &c.server.listen
        && c.imds.http_protocol_ipv6.is_enabled()
        && !l.iter().any(|a| a.ip() == Ipv6Addr::LOCALHOST)
    {
        blame(
            &["imds", "http-protocol-ipv6"],
            "IPv6 interception delivers to [::1]: add \"[::1]:PORT\" to [server] listen".into(),
        );
    }
    if let Some(why) = super::log::level_problem(&c.log.level) {
        blame(&["log", "level"], why);
    }
    if let Some(why) = super::journal::size_problem(c.journal.size) {
        blame(&["journal", "size"], why);
    }
    // Linear: a path's descendants, if any, sort right after `PATH/`.
    for p in c.paths.keys() {
        let below = format!("{}/", p.as_str());
        if let Some((clash, _)) = c
            .paths
            .range::<str, _>((
                std::ops::Bound::Included(below.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .filter(|(q, _)| q.as_str().starts_with(&below))
        {
            blame(
                &["paths", p.as_str()],
                format!("`{p}` is a value but `{clash}` makes it a directory"),
            );
        }
    }
    if let Some(arn) = &c.iam.instance_profile_arn
        && arn.account() != c.instance.account_id.as_str()
    {
        blame(
            &["iam", "instance-profile-arn"],
            format!(
                "[iam] `instance-profile-arn` is in account {}, but [instance] account-id is {}: an instance's profile is in its own account",
                arn.account(),
                c.instance.account_id
            ),
        );
    }
    if let Some(arn) = &c.iam.instance_profile_arn {
        let (partition, _) = crate::ec2::partition(c.instance.availability_zone.region());
        if arn.partition() != partition {
            blame(
                &["iam", "instance-profile-arn"],
                format!(
                    "[iam] `instance-profile-arn` is in partition {}, but the instance's region is in {partition}: an instance's profile is in its own partition",
                    arn.partition()
                ),
            );
        }
    }
    // `[replay]`: what [`Replay::refused`](super::Replay::refused) refuses, blamed on each leaf.
    if let Some(r) = &c.replay {
        for (p, why) in r.refused() {
            blame(&["replay", "leaves", p.as_str()], why);
        }
    }
    let pods = match super::pod::check_all(&c.pods, spans) {
        Ok(pods) => pods,
        Err(p) => {
            problems.extend(p);
            Vec::new()
        }
    };
    if problems.is_empty() {
        Ok(pods)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}
