//! Which requests a fault's `path` picks: a glob, and the part of a request's path it is
//! matched against, which is a property of the endpoint (IMDS's paths start with a version).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::keys::BadKey;
use crate::endpoint::Endpoint;

/// A path glob, matched against the part of the path that [`glob_path`] gives for the
/// fault's endpoint (for IMDS, below the version: `meta-data/iam/*`, `api/token`): `*`
/// matches any run of characters, `/` included, `?` one character, `[...]` one of a set.
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

    /// Whether `path`, as [`glob_path`] gives it, matches.
    pub(super) fn matches(&self, path: &str) -> bool {
        self.0.matches_with(path, GLOB_OPTIONS)
    }
}

impl std::str::FromStr for PathGlob {
    type Err = BadKey;
    fn from_str(s: &str) -> Result<Self, BadKey> {
        if s.is_empty() {
            return Err(BadKey(
                "an empty path glob matches nothing: leave `path` out to match every path".into(),
            ));
        }
        crate::types::no_control(s, "a path glob").map_err(BadKey)?;
        if s.starts_with('/') {
            return Err(BadKey(format!(
                "path glob `{s}` starts with `/`: globs match the path below the version, e.g. `meta-data/iam/*` or `api/token`"
            )));
        }
        glob::Pattern::new(s).map(PathGlob).map_err(|e| {
            BadKey(format!(
                "`{s}` is not a path glob: {} at character {}",
                e.msg,
                e.pos + 1
            ))
        })
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PathGlob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The part of a request's path that the globs of `endpoint`'s faults see. An endpoint added
/// to [`Endpoint`] says here how its paths are matched (one without a version prefix: the
/// path without its leading `/`).
pub fn glob_path(endpoint: Endpoint, path: &str) -> &str {
    match endpoint {
        Endpoint::Imds => below_version(path),
        // Their paths carry no version prefix: `v2/credentials/…`, `v4/…`, `v1/credentials`.
        Endpoint::Ecs | Endpoint::PodIdentity => path.trim_start_matches('/'),
    }
}

/// The path below IMDS's version prefix: `/latest/meta-data/iam/x` and
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
