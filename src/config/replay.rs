//! `[replay]`: a tree crawled from a real instance (`fake-metadata snapshot`), served in
//! place of the one `[instance]` makes. It is plain data checked as it is parsed (paths and
//! values are newtypes; [`Replay::refused`] is blamed by the loader), with nothing to derive,
//! so the raw and the checked form are one type; each snapshot applies it, so a reload does.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::USER_DATA_MAX;

/// `[replay]`: paths crawled from a real instance, served byte for byte in place of the
/// tree `[instance]` describes. `fake-metadata snapshot` writes it; it may be written by
/// hand too. The box still signs the identity document, hands out credentials under
/// `[iam] role` and runs the scenario (see `crate::snapshot::replay`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Replay {
    /// The endpoint that was crawled (for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was crawled, RFC 3339 (for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
    /// Set when the crawl did not finish: what is missing and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// Directory → its listing, exactly as crawled (`"meta-data"`, `"meta-data/placement"`).
    #[serde(default)]
    pub listings: BTreeMap<ReplayPath, String>,
    /// Path → its exact bytes: a string, or `{ base64 = "…" }` for bytes that are not UTF-8.
    #[serde(default)]
    pub leaves: BTreeMap<ReplayPath, ReplayValue>,
}

impl Replay {
    /// The leaf at `path`, if replayed.
    pub fn leaf(&self, path: &str) -> Option<&Bytes> {
        self.leaves.get(path).map(|v| &v.0)
    }

    /// The leaves the loader refuses, and why: user data over EC2's cap, a value that other
    /// replayed paths make a directory. The one rule: the loader blames each, and
    /// `snapshot` leaves each out of the file it writes. Linear: a value's descendants, if
    /// any, sort right after `PATH/` in the map.
    pub fn refused(&self) -> Vec<(ReplayPath, String)> {
        let mut out = Vec::new();
        for (p, v) in &self.leaves {
            if p.as_str() == "user-data" && v.0.len() > USER_DATA_MAX {
                out.push((
                    p.clone(),
                    format!(
                        "user data is {} bytes; EC2 allows at most 16 KiB",
                        v.0.len()
                    ),
                ));
            }
            let below = format!("{}/", p.as_str());
            let clash = self.listings.contains_key(p.as_str())
                || self
                    .leaves
                    .range::<str, _>((
                        std::ops::Bound::Included(below.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .next()
                    .is_some_and(|(q, _)| q.as_str().starts_with(&below));
            if clash {
                out.push((
                    p.clone(),
                    format!("`{p}` is a value, but other replayed paths make it a directory"),
                ));
            }
        }
        out
    }
}

/// A path of a replayed tree: `user-data`, or `meta-data`/`dynamic` and what is below them,
/// without empty, `.` or `..` segments and without a leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReplayPath(String);

impl ReplayPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ReplayPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for ReplayPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReplayPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let top = s.split('/').next().unwrap_or_default();
        let ok = (s == "user-data" || top == "meta-data" || top == "dynamic")
            && s.split('/').all(|seg| {
                !seg.is_empty() && seg != "." && seg != ".." && !seg.chars().any(char::is_control)
            });
        if ok {
            Ok(ReplayPath(s))
        } else {
            Err(format!(
                "`{s}` is not a replayed path: it must be `user-data` or start with `meta-data` \
                 or `dynamic`, with no empty, `.` or `..` segment"
            ))
        }
    }
}

impl From<ReplayPath> for String {
    fn from(p: ReplayPath) -> String {
        p.0
    }
}

/// A replayed leaf's exact bytes. Written as a TOML string when they are UTF-8, else as
/// `{ base64 = "…" }` (gzip'd user data, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawReplayValue", into = "RawReplayValue")]
pub struct ReplayValue(pub Bytes);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawReplayValue {
    Text(String),
    Encoded { base64: String },
}

impl TryFrom<RawReplayValue> for ReplayValue {
    type Error = String;
    fn try_from(v: RawReplayValue) -> Result<Self, String> {
        use base64::Engine as _;
        match v {
            RawReplayValue::Text(t) => Ok(ReplayValue(Bytes::from(t))),
            RawReplayValue::Encoded { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64.as_bytes())
                .map(|b| ReplayValue(Bytes::from(b)))
                .map_err(|e| format!("`base64` is not base64: {e}")),
        }
    }
}

impl From<ReplayValue> for RawReplayValue {
    fn from(v: ReplayValue) -> Self {
        use base64::Engine as _;
        match std::str::from_utf8(&v.0) {
            Ok(t) => RawReplayValue::Text(t.to_string()),
            Err(_) => RawReplayValue::Encoded {
                base64: base64::engine::general_purpose::STANDARD.encode(&v.0),
            },
        }
    }
}

super::restart::applied_on_reload!(Replay);
