//! A fault as written: [`Keys`], the one form that `[[fault]]` in the config file, a
//! timeline entry's `fault = { … }`, the control protocol's `fault-add` and the flags of
//! `fake-metadata ctl fault add` all use. Each key has its own type, checked once, by the
//! same function whether it is read by serde (so TOML reports a bad value at its key) or
//! parsed from a flag; how the keys go together is checked by `Spec::try_from`.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::path::PathGlob;
use super::spec::Method;
use crate::endpoint::Endpoint;
use crate::types::{HumanDuration, ViewName};

/// The longest delay a fault may add: a client has long given up by then.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// Why a fault key's value is refused: one line that says what is wrong and what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadKey(pub String);

/// A fault's keys. Every key may be left out; exactly one action key (`delay`, `status`,
/// `drop`, `reset`, `refuse`, `throttle`) must be given. The doc comments are `ctl fault
/// add --help`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Keys {
    /// Only requests to this endpoint: imds (the default).
    #[arg(long, value_name = "NAME", value_parser = endpoint)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Only requests from the clients of this view (`[[view]]`); every client when not given.
    #[arg(long, value_name = "NAME", value_parser = view)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<ViewName>,
    /// Only requests whose path below the version matches, e.g. `meta-data/iam/*`, `api/token`.
    #[arg(long, value_name = "GLOB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathGlob>,
    /// Only GET or only PUT requests.
    #[arg(long, value_name = "GET|PUT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// How long it lasts (`20s`, `500ms`, `1m`); until cleared when not given.
    #[arg(long = "for", value_name = "DURATION")]
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<Lasting>,
    /// Only the first N requests it matches.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// The chance (0 to 1) that it acts on a matching request.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<Probability>,
    /// Answer this much later: a duration, or a range `100ms..2s`.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Answer with this HTTP status instead (e.g. 500, 503).
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Read the request and never answer (the client times out).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<bool>,
    /// Reset the connection instead of answering.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    /// Refuse new connections (the listener stops listening).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse: Option<bool>,
    /// Beyond N requests per second from one client address, answer nothing.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Rate>,
}

/// `--endpoint`, with its error as a [`BadKey`] like the other keys'.
fn endpoint(s: &str) -> Result<Endpoint, BadKey> {
    s.parse()
        .map_err(|e: crate::endpoint::UnknownEndpoint| BadKey(e.to_string()))
}

/// `--view`, with its error as a [`BadKey`] like the other keys'.
fn view(s: &str) -> Result<ViewName, BadKey> {
    ViewName::try_from(s.to_string()).map_err(BadKey)
}

/// A key's type: read from its written form (`$raw`, through `$parse` from a flag) and
/// checked by `$check`, the one place its rule is; written back as `$write` gives it.
macro_rules! key {
    ($(#[$m:meta])* $name:ident($out:ty): $raw:ty, parse $parse:expr, check $check:expr, write $write:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name(pub $out);

        impl $name {
            fn checked(raw: $raw) -> Result<$name, BadKey> {
                ($check)(raw).map($name).map_err(BadKey)
            }
        }

        impl FromStr for $name {
            type Err = BadKey;
            fn from_str(s: &str) -> Result<Self, BadKey> {
                let raw: $raw = ($parse)(s).map_err(BadKey)?;
                $name::checked(raw)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::checked(<$raw>::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ($write)(self.0).serialize(s)
            }
        }
    };
}

const STATUSES: &str = "use 200 to 599 except 204, 206, 304, 405 and 407, e.g. 500 or 503";

key!(
    /// An HTTP status a fault can send (see `check_status`).
    Status(u16): i64,
    parse |s: &str| s.parse::<i64>().map_err(|_| format!("`{s}` is not an HTTP status: {STATUSES}")),
    check check_status,
    write i64::from
);
key!(
    /// A number of requests, 1 or more.
    Count(u32): i64,
    parse |s: &str| s.parse::<i64>().map_err(|_| format!("`{s}` is not a number of requests: use 1 or more")),
    check check_count,
    write i64::from
);
key!(
    /// A probability, 0 to 1.
    Probability(f64): f64,
    parse |s: &str| s.parse::<f64>().map_err(|_| format!("`{s}` is not a probability: use 0 to 1, e.g. 0.25")),
    check check_probability,
    write |p: f64| p
);
key!(
    /// Requests per second, 1 or more.
    Rate(u32): i64,
    parse |s: &str| s.parse::<i64>().map_err(|_| format!("`{s}` is not a rate: give the requests per second let through, 1 or more")),
    check check_rate,
    write i64::from
);
key!(
    /// A delay, or a range `min..max` (a fixed delay has `min == max`).
    Delay((Duration, Duration)): String,
    parse |s: &str| Ok::<_, String>(s.to_string()),
    check |s: String| parse_delay(&s),
    write |(min, max): (Duration, Duration)| if min == max {
        HumanDuration(min).to_string()
    } else {
        format!("{}..{}", HumanDuration(min), HumanDuration(max))
    }
);
key!(
    /// How long a fault lasts: more than nothing.
    Lasting(Duration): HumanDuration,
    parse |s: &str| s.parse::<HumanDuration>(),
    check check_lasting,
    write HumanDuration
);

/// The statuses a fault may answer with: a final status (200 to 599) whose reply needs
/// nothing a fault does not have. A fault's reply is EC2's body for the status, or an empty
/// one, always framed by `Content-Length`; HTTP forbids that, or more, of these (RFC 9110).
fn check_status(s: i64) -> Result<u16, String> {
    let why = match u16::try_from(s) {
        Ok(100..=199) => "a 1xx status is not a final reply, the request would stay unanswered",
        Ok(204) => "a 204 may carry no content and no Content-Length (RFC 9110 15.3.5)",
        Ok(206) => "a 206 must say which part it carries (Content-Range, RFC 9110 15.3.7)",
        Ok(304) => "a 304 answers a conditional request and carries no content (RFC 9110 15.4.5)",
        Ok(405) => "a 405 must list the methods the path allows (Allow, RFC 9110 15.5.6)",
        Ok(407) => "a 407 must carry a Proxy-Authenticate challenge (RFC 9110 15.5.8)",
        Ok(code @ 200..=599) => return Ok(code),
        _ => {
            return Err(format!("status {s} is not an HTTP status: {STATUSES}"));
        }
    };
    Err(format!(
        "status {s} cannot be a fault's reply: {why}; {STATUSES}"
    ))
}

fn check_count(n: i64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "count {n} is not a number of requests: use 1 or more"
        )),
    }
}

fn check_probability(p: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "probability {p} is out of range: use 0 to 1 (0.25 acts on a quarter of the matching requests)"
        ))
    }
}

fn check_rate(n: i64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "throttle {n} is not a rate: give the requests per second let through, 1 or more (to answer none, use `drop`)"
        )),
    }
}

fn check_lasting(d: HumanDuration) -> Result<Duration, String> {
    if d.0.is_zero() {
        Err("a fault `for` 0s would end as it starts: give a longer duration".into())
    } else {
        Ok(d.0)
    }
}

/// Parses a delay: a duration, or `MIN..MAX`.
fn parse_delay(s: &str) -> Result<(Duration, Duration), String> {
    let one = |d: &str| -> Result<Duration, String> {
        let d = d.trim();
        if d.starts_with('-') {
            return Err(format!("delay `{s}` is negative: a delay is 0 or more"));
        }
        let d = d.parse::<HumanDuration>()?.0;
        if d > MAX_DELAY {
            return Err(format!(
                "delay `{s}` is longer than {}: clients have given up long before",
                HumanDuration(MAX_DELAY)
            ));
        }
        Ok(d)
    };
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let d = one(s)?;
            (d, d)
        }
    };
    if min > max {
        return Err(format!(
            "delay range `{s}` runs backwards: write the shorter delay first"
        ));
    }
    Ok((min, max))
}
