//! Fault injection: make the metadata service slow, failing or throttled on demand, as the
//! real one is in the incidents people have (throttling, link-local packet drops, a service
//! that briefly fails), so that a client's timeouts and retries can be seen at work.
//!
//! A [`Spec`] says what goes wrong (one [`Action`]) and for which requests (an endpoint, a
//! path glob, a method, a probability), for how long and for how many requests. It is
//! written as its [`Keys`], the same in `[[fault]]`, in a `[[scenario.timeline]]` entry, in
//! the control protocol and as the flags of `fake-metadata ctl fault add`, each key checked
//! once, where it is read. The scenario keeps the faults in force as [`Armed`] records; each
//! snapshot carries them as [`Faults`], which a request consults with [`Faults::check`]
//! (never, when there are none: the hot path only tests [`Faults::is_empty`]). The counts and
//! throttle windows live in [`Counters`], shared by every snapshot the fault is in, so a
//! rebuilt snapshot keeps them.

mod counters;
mod keys;
mod path;
mod spec;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;

pub use counters::Counters;
pub use keys::{BadKey, Count, Delay, Keys, Lasting, MAX_DELAY, Probability, Rate, Status};
pub use path::{PathGlob, below_version, glob_path};
pub use spec::{Action, Method, Spec};

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

/// A fault in force: the one record of it, kept by the scenario and carried by snapshots.
#[derive(Debug, Clone)]
pub struct Armed {
    pub id: FaultId,
    pub spec: Spec,
    /// When it started, in the clock's milliseconds.
    pub started_ms: u64,
    /// When it ends, in the clock's milliseconds; `None`: when cleared.
    pub until_ms: Option<u64>,
    pub counters: Arc<Counters>,
}

impl Armed {
    /// Whether it has ended by `now_ms` (its time is over).
    pub fn over(&self, now_ms: u64) -> bool {
        self.until_ms.is_some_and(|u| now_ms >= u)
    }
}

/// The same fault: the same record and the very same counters.
impl PartialEq for Armed {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.spec == other.spec
            && self.started_ms == other.started_ms
            && self.until_ms == other.until_ms
            && Arc::ptr_eq(&self.counters, &other.counters)
    }
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

/// Who sent a request, as faults tell clients apart: its address (`throttle` counts per
/// address) and the `[[view]]` that serves it (`None`: the box).
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub peer: IpAddr,
    pub view: Option<&'a str>,
}

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

    /// The `refuse` fault on `endpoint` in force at `now_ms`, if any.
    pub fn refusing(&self, endpoint: Endpoint, now_ms: u64) -> Option<&Armed> {
        self.0.iter().find(|a| {
            a.spec.action == Action::Refuse && a.spec.endpoint == endpoint && !a.over(now_ms)
        })
    }

    /// What the faults do to a request to `endpoint`, if anything. `roll` gives a uniform
    /// number in `0..1` (asked only of faults with a probability or a delay range).
    pub fn check(
        &self,
        endpoint: Endpoint,
        method: &http::Method,
        path: &str,
        from: Sender<'_>,
        now_ms: u64,
        roll: &mut dyn FnMut() -> f64,
    ) -> Option<Hit> {
        if self.0.is_empty() {
            return None;
        }
        let path = glob_path(endpoint, path);
        for a in &self.0 {
            let s = &a.spec;
            if a.over(now_ms)
                || s.endpoint != endpoint
                || s.action == Action::Refuse
                || s.view
                    .as_ref()
                    .is_some_and(|v| Some(v.as_str()) != from.view)
                || s.method.is_some_and(|m| !m.matches(method))
                || s.path.as_ref().is_some_and(|g| !g.matches(path))
            {
                continue;
            }
            let effect = match s.action {
                Action::Throttle(limit) => {
                    if !a.counters.over_limit(from.peer, limit, now_ms) {
                        continue;
                    }
                    Effect::Withhold
                }
                action => {
                    if s.probability.is_some_and(|p| roll() >= p) {
                        continue;
                    }
                    if s.count.is_some() {
                        let Some(last) = a.counters.take() else {
                            continue;
                        };
                        if last {
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
            a.counters.hit();
            return Some(Hit { id: a.id, effect });
        }
        None
    }
}
