//! Times as scenarios write them: `+30s` (after a base: the daemon's start for a timeline
//! entry, the moment a change happens for the times inside it, now for `ctl`) or an absolute
//! RFC 3339 time; and as EC2 prints them: RFC 3339 UTC to the second for spot and rebalance
//! notices, `21 Jan 2019 09:00:43 GMT` (always UTC) for maintenance events.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::types::HumanDuration;

/// A point in time relative to a base, or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// `+DURATION` after the base.
    After(Duration),
    /// An absolute time (kept to the second).
    At(SystemTime),
}

impl Moment {
    /// The moment now (`+0s`).
    pub const NOW: Moment = Moment::After(Duration::ZERO);

    /// The absolute time, counting a relative moment from `base`; whole seconds.
    pub fn resolve(self, base: SystemTime) -> SystemTime {
        match self {
            Moment::After(d) => whole_seconds(base + d),
            Moment::At(t) => t,
        }
    }
}

impl FromStr for Moment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "`{s}` is not a time: use `+DURATION` (e.g. \"+30s\", \"+1h30m\", \"+2d\") or an RFC 3339 time (e.g. \"2026-01-02T03:04:05Z\")"
            )
        };
        if t == "now" {
            return Ok(Moment::NOW);
        }
        if let Some(d) = t.strip_prefix('+') {
            return d
                .parse::<HumanDuration>()
                .map(|d| Moment::After(d.0))
                .map_err(|_| bad());
        }
        if let Ok(dt) = OffsetDateTime::parse(t, &Rfc3339) {
            return Ok(Moment::At(whole_seconds(dt.into())));
        }
        t.parse::<HumanDuration>()
            .map(|d| Moment::After(d.0))
            .map_err(|_| bad())
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::After(d) => write!(f, "+{}", HumanDuration(*d)),
            Moment::At(t) => f.write_str(&rfc3339(*t)),
        }
    }
}

impl Serialize for Moment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Moment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Drops the sub-second part: EC2's notices are to the second, and a time shown twice (spot
/// `instance-action` and `termination-time`) must be the same.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `2017-09-18T08:22:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(whole_seconds(t))
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("a UTC time always formats")
}

/// `21 Jan 2019 09:00:43 GMT`: the maintenance events' format, always UTC.
pub fn event_time(t: SystemTime) -> String {
    OffsetDateTime::from(whole_seconds(t))
        .format(format_description!(
            "[day padding:none] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .expect("a UTC time always formats")
}

/// `in 25s` / `25s ago`, for `status`.
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(d) => format!(
            "in {}",
            HumanDuration(Duration::from_secs(d.as_millis().div_ceil(1000) as u64))
        ),
        Err(e) => format!(
            "{} ago",
            HumanDuration(Duration::from_secs(e.duration().as_secs()))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_parse_and_print_back() {
        let base = UNIX_EPOCH + Duration::from_millis(1_767_323_045_700);
        for (text, shown) in [
            ("+30s", "+30s"),
            ("+1h30m", "+1h30m"),
            ("90", "+1m30s"),
            ("now", "+0s"),
            ("2026-01-02T04:05:06Z", "2026-01-02T04:05:06Z"),
            ("2026-01-02T05:05:06+01:00", "2026-01-02T04:05:06Z"),
        ] {
            let m: Moment = text.parse().unwrap();
            assert_eq!(m.to_string(), shown, "{text}");
            assert_eq!(m.to_string().parse::<Moment>().unwrap(), m);
        }
        let m: Moment = "+2m".parse().unwrap();
        assert_eq!(rfc3339(m.resolve(base)), "2026-01-02T03:06:05Z");
        assert!(
            "soon"
                .parse::<Moment>()
                .unwrap_err()
                .contains("is not a time")
        );
        assert!("+-1s".parse::<Moment>().is_err());
    }

    #[test]
    fn ec2_formats_are_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_548_061_243); // 2019-01-21T09:00:43Z
        assert_eq!(event_time(t), "21 Jan 2019 09:00:43 GMT");
        assert_eq!(rfc3339(t), "2019-01-21T09:00:43Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_767_323_045); // 2026-01-02T03:04:05Z
        assert_eq!(event_time(t), "2 Jan 2026 03:04:05 GMT");
    }
}
