//! What a fault means: [`Spec`], one [`Action`] and the requests it acts on, made from its
//! written [`Keys`] once they are known to go together.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::keys::{BadKey, Count, Delay, Keys, Lasting, Probability, Rate, Status};
use super::path::PathGlob;
use crate::endpoint::Endpoint;
use crate::types::{HumanDuration, ViewName};

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
    pub(super) fn matches(self, m: &http::Method) -> bool {
        match self {
            Method::Get => m == http::Method::GET,
            Method::Put => m == http::Method::PUT,
        }
    }
}

impl std::str::FromStr for Method {
    type Err = BadKey;
    fn from_str(s: &str) -> Result<Self, BadKey> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "PUT" => Ok(Method::Put),
            _ => Err(BadKey(format!(
                "`{s}` is not a method a fault can match: use GET or PUT"
            ))),
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

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One fault: what goes wrong, to which requests, for how long. Written as its [`Keys`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Keys", into = "Keys")]
pub struct Spec {
    /// The endpoint whose requests (or, for `refuse`, listeners) it acts on.
    pub endpoint: Endpoint,
    /// Only the clients of this view; every client when `None`.
    pub view: Option<ViewName>,
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

/// What it does and to which requests; the endpoint is shown beside it (`Faults` listings).
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
        if let Some(v) = &self.view {
            write!(f, ", view {v}")?;
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

const ACTIONS: &str = "`delay`, `status`, `drop`, `reset`, `refuse` or `throttle`";

/// How the keys go together (each is checked alone as it is read).
impl TryFrom<Keys> for Spec {
    type Error = String;
    fn try_from(k: Keys) -> Result<Spec, String> {
        let set: Vec<&str> = [
            ("delay", k.delay.is_some()),
            ("status", k.status.is_some()),
            ("drop", k.drop.is_some()),
            ("reset", k.reset.is_some()),
            ("refuse", k.refuse.is_some()),
            ("throttle", k.throttle.is_some()),
        ]
        .iter()
        .filter(|a| a.1)
        .map(|a| a.0)
        .collect();
        let on = |key: &str, b: bool, action| {
            if b {
                Ok(action)
            } else {
                Err(format!("`{key} = false` does nothing: leave the fault out"))
            }
        };
        let action = match (k.delay, k.status, k.drop, k.reset, k.refuse, k.throttle) {
            _ if set.len() > 1 => {
                return Err(format!(
                    "a fault does one thing, this one has {}: add several faults",
                    set.iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
            (Some(Delay((min, max))), ..) => Action::Delay { min, max },
            (_, Some(Status(c)), ..) => Action::Status(c),
            (_, _, Some(b), ..) => on("drop", b, Action::Drop)?,
            (_, _, _, Some(b), ..) => on("reset", b, Action::Reset)?,
            (_, _, _, _, Some(b), _) => on("refuse", b, Action::Refuse)?,
            (.., Some(Rate(n))) => Action::Throttle(n),
            _ => return Err(format!("a fault needs one of {ACTIONS}")),
        };
        let (path, method) = (k.path, k.method);
        let count = k.count.map(|Count(n)| n);
        let probability = k.probability.map(|Probability(p)| p);
        match action {
            Action::Refuse if k.view.is_some() => {
                return Err("`refuse` closes the listener for every client: it takes no `view` (a `drop` or `reset` fault can aim at one view)".into());
            }
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
            endpoint: k.endpoint.unwrap_or(Endpoint::Imds),
            view: k.view,
            path,
            method,
            duration: k.duration.map(|Lasting(d)| d),
            count,
            probability,
            action,
        })
    }
}

/// The keys that give the same fault back (the default endpoint left out).
impl From<Spec> for Keys {
    fn from(s: Spec) -> Keys {
        let mut k = Keys {
            endpoint: (s.endpoint != Endpoint::Imds).then_some(s.endpoint),
            view: s.view,
            path: s.path,
            method: s.method,
            duration: s.duration.map(Lasting),
            count: s.count.map(Count),
            probability: s.probability.map(Probability),
            ..Keys::default()
        };
        match s.action {
            Action::Delay { min, max } => k.delay = Some(Delay((min, max))),
            Action::Status(c) => k.status = Some(Status(c)),
            Action::Drop => k.drop = Some(true),
            Action::Reset => k.reset = Some(true),
            Action::Refuse => k.refuse = Some(true),
            Action::Throttle(n) => k.throttle = Some(Rate(n)),
        }
        k
    }
}
