//! The vocabulary: small checked value types that every layer speaks (EC2 ids, account,
//! region and zone, MAC, tag keys, metadata paths, human durations). Each is valid once it
//! exists: parsing is where a bad value is refused, with a message that says what is expected.
//! Only [`crate::ec2`]'s naming rules are used here.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ec2::{self, is_region};

/// An EC2 resource id with its prefix (`i-…`, `ami-…`): the prefix and 8 or 17 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ec2Id<const KIND: char>(String);

impl<const KIND: char> Ec2Id<KIND> {
    fn prefix() -> &'static str {
        match KIND {
            'i' => "i-",
            'h' => "h-",
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

/// Where a value has a control character (a newline, an escape), which no id, path, key or
/// glob has a use for and which would let the value forge lines in a log or a listing: the
/// 1-based character position and the character.
pub fn control_char(s: &str) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|(_, c)| c.is_control())
        .map(|(i, c)| (i + 1, c))
}

/// Refuses a value with a control character, saying which and where (the value is shown
/// escaped, so the message itself stays one line); `what` names the value (`a path glob`).
pub fn no_control(s: &str, what: &str) -> Result<(), String> {
    match control_char(s) {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "\"{}\" has a control character ({}) at character {at}: {what} cannot hold one",
            s.escape_debug(),
            c.escape_debug()
        )),
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
                no_control(&s, $what.split(':').next().unwrap_or($what))?;
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

        /// Ordered as its text, so a sorted map of them can be searched by a `str` range.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
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
    /// A zone: a region and one letter (`us-east-1a`), a Local Zone (`us-west-2-lax-1a`) or a
    /// Wavelength Zone (`us-east-1-wl1-bos-wlz-1`).
    Zone,
    |s| ec2::ZoneName::parse(s).is_some(),
    "an availability zone such as `us-east-1a` (a region and one letter), a Local Zone such as `us-west-2-lax-1a` or a Wavelength Zone such as `us-east-1-wl1-bos-wlz-1`"
);
checked_string!(
    /// A MAC address in EC2's form: six lower-case hex pairs separated by `:`.
    Mac,
    |s| s.len() == 17
        && s.split(':').all(|p| p.len() == 2 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))),
    "a MAC address in EC2's form, e.g. `0e:49:61:0f:c3:11` (lower-case hex)"
);
checked_string!(
    /// An IPv6 network in CIDR form, e.g. `2600:1f16:aeb:b20b::/64`.
    Ipv6Cidr,
    |s| s.split_once('/').is_some_and(|(a, n)| {
        a.parse::<std::net::Ipv6Addr>().is_ok() && n.parse::<u8>().is_ok_and(|n| n <= 128)
    }),
    "an IPv6 CIDR block such as `2600:1f16:aeb:b20b::/64`"
);

checked_string!(
    /// An IPv4 prefix delegated to an interface: EC2 delegates /28s, e.g. `172.31.16.48/28`
    /// (the EC2 user guide, "Assign prefixes to Amazon EC2 network interfaces").
    Ipv4Prefix,
    |s| s.split_once('/').is_some_and(|(a, n)| {
        n == "28" && a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| u32::from(ip) & 0xf == 0)
    }),
    "an IPv4 prefix as EC2 delegates them: a /28 network such as `172.31.16.48/28`"
);
checked_string!(
    /// An IPv6 prefix delegated to an interface: EC2 delegates /80s, e.g.
    /// `2600:1f16:aeb:b20b:1::/80`.
    Ipv6Prefix,
    |s| s.split_once('/').is_some_and(|(a, n)| {
        n == "80"
            && a.parse::<std::net::Ipv6Addr>()
                .is_ok_and(|ip| u128::from(ip) & ((1u128 << 48) - 1) == 0)
    }),
    "an IPv6 prefix as EC2 delegates them: a /80 network such as `2600:1f16:aeb:b20b:1::/80`"
);

impl Ipv6Cidr {
    /// The network of `ip` with `prefix` bits, as EC2 writes it (compressed):
    /// `2600:1f16:aeb:b20b::/64`.
    pub fn of(ip: std::net::Ipv6Addr, prefix: u8) -> Ipv6Cidr {
        let prefix = prefix.min(128);
        let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
        Ipv6Cidr(format!(
            "{}/{prefix}",
            std::net::Ipv6Addr::from(u128::from(ip) & mask)
        ))
    }
}

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
    /// A view's name (`[[view]] name`): 1 to 63 of `A-Z a-z 0-9 . _ -`, not `box` (the box
    /// itself, in `ctl` and the journal).
    ViewName,
    |s| !s.is_empty()
        && s.len() <= 63
        && s != "box"
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
    "a view name: 1 to 63 of `A-Z a-z 0-9 . _ -`, and not `box` (the box itself)"
);
checked_string!(
    /// An extra path in the tree: under `meta-data/` or `dynamic/`, no empty, `.` or `..` segment.
    MetaPath,
    |s| (s.starts_with("meta-data/") || s.starts_with("dynamic/"))
        && s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."),
    "a metadata path: it must start with `meta-data/` or `dynamic/` and have no empty, `.` or `..` segment"
);

impl Zone {
    fn name(&self) -> ec2::ZoneName<'_> {
        ec2::ZoneName::parse(&self.0).unwrap_or_else(|| unreachable!("checked when made"))
    }

    /// The zone's region: `us-east-1` for `us-east-1a`, the parent region of a Local or
    /// Wavelength Zone.
    pub fn region(&self) -> &str {
        self.name().region()
    }

    /// The zone id EC2 would show for it (see [`ec2::ZoneName::id`]).
    pub fn id(&self) -> String {
        self.name().id()
    }
}

/// A duration written as whole seconds (`3600`) or with units (`"6h"`, `"45m"`, `"1h30m"`,
/// `"90s"`, `"1d"`); printed back with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The longest duration accepted anywhere (lifetimes, timeouts, scenario offsets): ten
    /// years. Longer ones mean nothing here, and added to a clock they would overflow.
    pub const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

    fn checked(secs: u64, shown: &dyn fmt::Display) -> Result<Self, String> {
        let d = Duration::from_secs(secs);
        if d > Self::MAX {
            return Err(format!(
                "`{shown}` is too long for a duration: at most 10 years ({}s)",
                Self::MAX.as_secs()
            ));
        }
        Ok(HumanDuration(d))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a duration: use seconds (3600) or units d/h/m/s/ms, e.g. \"6h\", \"45m\", \"1h30m\" or \"500ms\""
            )
        };
        if let Ok(n) = s.parse::<u64>() {
            return HumanDuration::checked(n, &s);
        }
        // In milliseconds, so `ms` can be added to the other units.
        let (mut total, mut digits) = (0u64, String::new());
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400_000,
                'h' => 3_600_000,
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                'm' => 60_000,
                's' => 1000,
                _ => return Err(bad()),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            digits.clear();
        }
        if !digits.is_empty() || s.is_empty() {
            return Err(bad());
        }
        let d = HumanDuration::checked(total / 1000, &s)?;
        Ok(HumanDuration(d.0 + Duration::from_millis(total % 1000)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, ms) = (self.0.as_secs(), self.0.subsec_millis());
        if s == 0 && ms == 0 {
            return f.write_str("0s");
        }
        for (n, unit) in [
            (s / 3600, "h"),
            (s / 60 % 60, "m"),
            (s % 60, "s"),
            (u64::from(ms), "ms"),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: seconds (3600) or a string such as \"6h\" or \"45m\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                let s = u64::try_from(v)
                    .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))?;
                HumanDuration::checked(s, &v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                HumanDuration::checked(v, &v).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}
