//! Fault injection: make the metadata service slow, failing or throttled on demand, as the
//! real one is in the incidents people have (throttling, link-local packet drops, a service
//! that briefly fails), so that a client's timeouts and retries can be seen at work.
//!
//! A [`Spec`] says what goes wrong (one [`Action`]) and for which requests (a path glob below
//! the version prefix, a method, a probability), for how long and for how many requests. It
//! is written the same way in `[[fault]]`, in a `[[scenario.timeline]]` entry and by
//! `fake-metadata ctl fault add`, and checked once, where it is parsed. The scenario keeps
//! the faults in force; each snapshot carries them as [`Faults`], which a request consults
//! with [`Faults::check`] (never, when there are none: the hot path only tests
//! [`Faults::is_empty`]). The counts and throttle windows live in [`Counters`], shared by
//! every snapshot the fault is in, so a rebuilt snapshot keeps them.

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::HumanDuration;

/// The longest delay a fault may add: a client has long given up by then.
pub const MAX_DELAY: Duration = Duration::from_secs(600);
/// At most this many client addresses are counted per second by a throttle; more are not
/// throttled (memory stays bounded whatever the peers).
const THROTTLE_PEERS: usize = 4096;

/// A fault's id, `fault-N`, numbered from 1 in the order faults start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultId(pub u32);

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault-{}", self.0)
    }
}

impl std::str::FromStr for FaultId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.strip_prefix("fault-")
            .unwrap_or(s)
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(FaultId)
            .ok_or_else(|| format!("`{s}` is not a fault id: ids look like fault-1"))
    }
}

impl Serialize for FaultId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The reply comes this much later: fixed (`min == max`) or uniform in `min..=max`.
    Delay { min: Duration, max: Duration },
    /// This HTTP status instead of the reply, with EC2's body and headers for it.
    Status(u16),
    /// The request is read and never answered: the client times out.
    Drop,
    /// The connection is reset (a TCP RST) instead of answered.
    Reset,
    /// New connections are refused (the listener stops listening) while the fault lasts.
    Refuse,
    /// Beyond this many requests per second from one client address, requests get no
    /// answer, as when EC2 drops packets above its per-interface limit.
    Throttle(u32),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Delay { min, max } if min == max => {
                write!(f, "delay {}", HumanDuration(*min))
            }
            Action::Delay { min, max } => {
                write!(f, "delay {}..{}", HumanDuration(*min), HumanDuration(*max))
            }
            Action::Status(s) => write!(f, "status {s}"),
            Action::Drop => f.write_str("drop"),
            Action::Reset => f.write_str("reset"),
            Action::Refuse => f.write_str("refuse connections"),
            Action::Throttle(n) => write!(f, "throttle above {n} requests/s per client"),
        }
    }
}

/// The methods a fault can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
}

impl Method {
    fn matches(self, m: &http::Method) -> bool {
        match self {
            Method::Get => m == http::Method::GET,
            Method::Put => m == http::Method::PUT,
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "PUT" => Ok(Method::Put),
            _ => Err(format!(
                "`{s}` is not a method a fault can match: use GET or PUT"
            )),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Put => "PUT",
        })
    }
}

/// A path glob, matched against the path below the version prefix (`meta-data/iam/*`,
/// `api/token`): `*` matches any run of characters, `/` included, `?` one character,
/// `[...]` one of a set.
#[derive(Debug, Clone)]
pub struct PathGlob(glob::Pattern);

impl PartialEq for PathGlob {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathGlob {}

const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl PathGlob {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    fn matches(&self, below_version: &str) -> bool {
        self.0.matches_with(below_version, GLOB_OPTIONS)
    }
}

impl std::str::FromStr for PathGlob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err(
                "an empty path glob matches nothing: leave `path` out to match every path".into(),
            );
        }
        crate::types::no_control(s, "a path glob")?;
        if s.starts_with('/') {
            return Err(format!(
                "path glob `{s}` starts with `/`: globs match the path below the version, e.g. `meta-data/iam/*` or `api/token`"
            ));
        }
        glob::Pattern::new(s).map(PathGlob).map_err(|e| {
            format!(
                "`{s}` is not a path glob: {} at character {}",
                e.msg,
                e.pos + 1
            )
        })
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path below the version prefix that globs see: `/latest/meta-data/iam/x` and
/// `/2021-07-15/meta-data/iam/x` give `meta-data/iam/x`; a path without a version is taken
/// whole (without its leading `/`).
pub fn below_version(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    let (first, rest) = p.split_once('/').unwrap_or((p, ""));
    let dated = first.len() == 10
        && first.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if first == "latest" || dated { rest } else { p }
}

/// One fault as written: what goes wrong, to which requests, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Fields", into = "RawSpec")]
pub struct Spec {
    pub path: Option<PathGlob>,
    pub method: Option<Method>,
    /// How long the fault lasts from its start; until cleared when not given.
    pub duration: Option<Duration>,
    /// Only the first N requests it acts on; then it has ended.
    pub count: Option<u32>,
    /// The chance, 0 to 1, that it acts on a matching request.
    pub probability: Option<f64>,
    pub action: Action,
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if self.action != Action::Refuse {
            write!(
                f,
                " on {} {}",
                self.method
                    .map_or("any method".to_string(), |m| m.to_string()),
                self.path.as_ref().map_or("*", PathGlob::as_str)
            )?;
        }
        if let Some(p) = self.probability {
            write!(f, ", probability {p}")?;
        }
        if let Some(n) = self.count {
            write!(f, ", first {n} request(s)")?;
        }
        if let Some(d) = self.duration {
            write!(f, ", for {}", HumanDuration(d))?;
        }
        Ok(())
    }
}

/// A fault as written in TOML or JSON: exactly one of the action keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// `"2s"`, or a range `"100ms..2s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<i64>,
}

const ACTIONS: &str = "`delay`, `status`, `drop`, `reset`, `refuse` or `throttle`";

/// Parses a delay: a duration, or `MIN..MAX`.
fn parse_delay(s: &str) -> Result<Action, String> {
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
    Ok(Action::Delay { min, max })
}

/// Deserializes a checked value from its written form, so that a bad value is reported at
/// its own key (`FILE:LINE:COL` of the value, not of the table).
macro_rules! checked {
    ($(#[$m:meta])* $name:ident($out:ty), $raw:ty, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name(pub $out);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <$raw>::deserialize(d)?;
                ($check)(raw).map($name).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The statuses a fault may answer with: a final status (200 to 599) whose reply needs
/// nothing a fault does not have. A fault's reply is EC2's body for the status, or an empty
/// one, always framed by `Content-Length`; HTTP forbids that, or more, of these (RFC 9110).
fn check_status(s: i64) -> Result<u16, String> {
    const USE: &str = "use 200 to 599 except 204, 206, 304, 405 and 407, e.g. 500 or 503";
    let why = match u16::try_from(s) {
        Ok(100..=199) => "a 1xx status is not a final reply, the request would stay unanswered",
        Ok(204) => "a 204 may carry no content and no Content-Length (RFC 9110 15.3.5)",
        Ok(206) => "a 206 must say which part it carries (Content-Range, RFC 9110 15.3.7)",
        Ok(304) => "a 304 answers a conditional request and carries no content (RFC 9110 15.4.5)",
        Ok(405) => "a 405 must list the methods the path allows (Allow, RFC 9110 15.5.6)",
        Ok(407) => "a 407 must carry a Proxy-Authenticate challenge (RFC 9110 15.5.8)",
        Ok(code @ 200..=599) => return Ok(code),
        _ => {
            return Err(format!("status {s} is not an HTTP status: {USE}"));
        }
    };
    Err(format!(
        "status {s} cannot be a fault's reply: {why}; {USE}"
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

checked!(
    /// An HTTP status a fault can send (see `check_status`).
    Status(u16), i64, check_status
);
checked!(
    /// A number of requests, 1 or more.
    Count(u32), i64, check_count
);
checked!(
    /// A probability, 0 to 1.
    Probability(f64), f64, check_probability
);
checked!(
    /// Requests per second, 1 or more.
    Rate(u32), i64, check_rate
);
checked!(
    /// A delay or a delay range.
    Delay(Action), String, |s: String| parse_delay(&s)
);

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A fault's keys, each checked alone (in TOML, a bad value is reported at its key); how
/// they go together is checked by `Spec::try_from`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Fields {
    #[serde(default)]
    path: Option<PathGlob>,
    #[serde(default)]
    method: Option<Method>,
    #[serde(default, rename = "for")]
    duration: Option<HumanDuration>,
    #[serde(default)]
    count: Option<Count>,
    #[serde(default)]
    probability: Option<Probability>,
    #[serde(default)]
    delay: Option<Delay>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    drop: Option<bool>,
    #[serde(default)]
    reset: Option<bool>,
    #[serde(default)]
    refuse: Option<bool>,
    #[serde(default)]
    throttle: Option<Rate>,
}

impl TryFrom<RawSpec> for Fields {
    type Error = String;
    fn try_from(r: RawSpec) -> Result<Fields, String> {
        Ok(Fields {
            path: r.path.as_deref().map(str::parse).transpose()?,
            method: r.method.as_deref().map(str::parse).transpose()?,
            duration: r.duration,
            count: r.count.map(check_count).transpose()?.map(Count),
            probability: r
                .probability
                .map(check_probability)
                .transpose()?
                .map(Probability),
            delay: r.delay.as_deref().map(parse_delay).transpose()?.map(Delay),
            status: r.status.map(check_status).transpose()?.map(Status),
            drop: r.drop,
            reset: r.reset,
            refuse: r.refuse,
            throttle: r.throttle.map(check_rate).transpose()?.map(Rate),
        })
    }
}

impl TryFrom<RawSpec> for Spec {
    type Error = String;
    fn try_from(r: RawSpec) -> Result<Spec, String> {
        Spec::try_from(Fields::try_from(r)?)
    }
}

impl TryFrom<Fields> for Spec {
    type Error = String;
    fn try_from(r: Fields) -> Result<Spec, String> {
        let set: Vec<&str> = [
            ("delay", r.delay.is_some()),
            ("status", r.status.is_some()),
            ("drop", r.drop.is_some()),
            ("reset", r.reset.is_some()),
            ("refuse", r.refuse.is_some()),
            ("throttle", r.throttle.is_some()),
        ]
        .iter()
        .filter(|k| k.1)
        .map(|k| k.0)
        .collect();
        let off = |key: &str| Err(format!("`{key} = false` does nothing: leave the fault out"));
        let action = match set[..] {
            [] => return Err(format!("a fault needs one of {ACTIONS}")),
            [_] => {
                if let Some(Delay(d)) = r.delay {
                    d
                } else if let Some(Status(code)) = r.status {
                    Action::Status(code)
                } else if let Some(b) = r.drop {
                    if !b {
                        return off("drop");
                    }
                    Action::Drop
                } else if let Some(b) = r.reset {
                    if !b {
                        return off("reset");
                    }
                    Action::Reset
                } else if let Some(b) = r.refuse {
                    if !b {
                        return off("refuse");
                    }
                    Action::Refuse
                } else {
                    Action::Throttle(r.throttle.map_or(1, |Rate(n)| n))
                }
            }
            _ => {
                return Err(format!(
                    "a fault does one thing, this one has {}: add several faults",
                    set.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
        };
        let (path, method) = (r.path, r.method);
        let count = r.count.map(|Count(n)| n);
        let probability = r.probability.map(|Probability(p)| p);
        let duration = r.duration.map(|d| d.0);
        if duration == Some(Duration::ZERO) {
            return Err("a fault `for` 0s would end as it starts: give a longer duration".into());
        }
        match action {
            Action::Refuse if path.is_some() || method.is_some() => {
                return Err("`refuse` acts on new connections, before any request is read: it takes no `path` or `method`".into());
            }
            Action::Refuse | Action::Throttle(_) if count.is_some() || probability.is_some() => {
                return Err(format!(
                    "`{}` lasts for a time, not per request: it takes no `count` or `probability` (use `for`)",
                    if action == Action::Refuse {
                        "refuse"
                    } else {
                        "throttle"
                    }
                ));
            }
            _ => {}
        }
        Ok(Spec {
            path,
            method,
            duration,
            count,
            probability,
            action,
        })
    }
}

impl From<Spec> for RawSpec {
    fn from(s: Spec) -> RawSpec {
        let mut r = RawSpec {
            path: s.path.map(|p| p.as_str().to_string()),
            method: s.method.map(|m| m.to_string()),
            duration: s.duration.map(HumanDuration),
            count: s.count.map(i64::from),
            probability: s.probability,
            ..RawSpec::default()
        };
        match s.action {
            Action::Delay { min, max } if min == max => {
                r.delay = Some(HumanDuration(min).to_string());
            }
            Action::Delay { min, max } => {
                r.delay = Some(format!("{}..{}", HumanDuration(min), HumanDuration(max)));
            }
            Action::Status(c) => r.status = Some(i64::from(c)),
            Action::Drop => r.drop = Some(true),
            Action::Reset => r.reset = Some(true),
            Action::Refuse => r.refuse = Some(true),
            Action::Throttle(n) => r.throttle = Some(i64::from(n)),
        }
        r
    }
}

/// What a fault has done so far, shared by every snapshot it is in.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests (or, for `refuse`, pauses of the listener) it acted on.
    hits: AtomicU64,
    /// Requests it may still act on, when it has a `count`.
    left: AtomicU32,
    /// Per client address, this second's requests (for `throttle`).
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    second: u64,
    seen: std::collections::HashMap<IpAddr, u32>,
}

impl Counters {
    pub fn new(spec: &Spec) -> Arc<Counters> {
        Arc::new(Counters {
            left: AtomicU32::new(spec.count.unwrap_or(0)),
            ..Counters::default()
        })
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Whether a fault with a `count` has used it up.
    pub fn used_up(&self, spec: &Spec) -> bool {
        spec.count.is_some() && self.left.load(Ordering::Relaxed) == 0
    }

    /// Takes one of the remaining requests; false when none is left.
    fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Counts a request from `peer` in this second; true when it is beyond `limit`.
    fn over_limit(&self, peer: IpAddr, limit: u32, now_ms: u64) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let second = now_ms / 1000;
        if w.second != second {
            w.second = second;
            w.seen.clear();
        }
        if w.seen.len() >= THROTTLE_PEERS && !w.seen.contains_key(&peer) {
            return false;
        }
        let n = w.seen.entry(peer).or_insert(0);
        *n = n.saturating_add(1);
        *n > limit
    }
}

/// A fault in force, as a snapshot carries it.
#[derive(Debug, Clone)]
pub struct Armed {
    pub id: FaultId,
    pub spec: Spec,
    /// When it ends, in the clock's milliseconds; `None`: when cleared.
    pub until_ms: Option<u64>,
    pub counters: Arc<Counters>,
}

/// What a fault does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Delay(Duration),
    Status(u16),
    /// No answer (a drop, or a request beyond a throttle's rate).
    Withhold,
    Reset,
}

/// A fault acting on a request: which, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub id: FaultId,
    pub effect: Effect,
}

/// The faults in force, in the order they started: the first that acts on a request wins.
#[derive(Debug, Clone, Default)]
pub struct Faults(Vec<Armed>);

impl Faults {
    pub fn new(armed: Vec<Armed>) -> Faults {
        Faults(armed)
    }

    /// The one test the hot path makes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Armed> {
        self.0.iter()
    }

    /// The `refuse` fault in force at `now_ms`, if any.
    pub fn refusing(&self, now_ms: u64) -> Option<&Armed> {
        self.0
            .iter()
            .find(|a| a.spec.action == Action::Refuse && a.until_ms.is_none_or(|u| now_ms < u))
    }

    /// What the faults do to a request, if anything. `roll` gives a uniform number in
    /// `0..1` (asked only of faults with a probability or a delay range).
    pub fn check(
        &self,
        method: &http::Method,
        path: &str,
        peer: IpAddr,
        now_ms: u64,
        roll: &mut dyn FnMut() -> f64,
    ) -> Option<Hit> {
        if self.0.is_empty() {
            return None;
        }
        let below = below_version(path);
        for a in &self.0 {
            let s = &a.spec;
            if a.until_ms.is_some_and(|u| now_ms >= u)
                || s.action == Action::Refuse
                || s.method.is_some_and(|m| !m.matches(method))
                || s.path.as_ref().is_some_and(|g| !g.matches(below))
            {
                continue;
            }
            let effect = match s.action {
                Action::Throttle(limit) => {
                    if !a.counters.over_limit(peer, limit, now_ms) {
                        continue;
                    }
                    Effect::Withhold
                }
                action => {
                    if s.probability.is_some_and(|p| roll() >= p) {
                        continue;
                    }
                    if s.count.is_some() {
                        if !a.counters.take() {
                            continue;
                        }
                        if a.counters.left.load(Ordering::Relaxed) == 0 {
                            tracing::info!(
                                fault = %a.id,
                                "fault {} ended: its {} request(s) are done",
                                a.id,
                                s.count.unwrap_or_default()
                            );
                        }
                    }
                    match action {
                        Action::Delay { min, max } => {
                            let span = max.saturating_sub(min);
                            if span.is_zero() {
                                Effect::Delay(min)
                            } else {
                                Effect::Delay(min + span.mul_f64(roll()))
                            }
                        }
                        Action::Status(c) => Effect::Status(c),
                        Action::Drop => Effect::Withhold,
                        _ => Effect::Reset,
                    }
                }
            };
            a.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Some(Hit { id: a.id, effect });
        }
        None
    }
}
