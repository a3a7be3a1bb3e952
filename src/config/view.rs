//! `[[view]]`: clients served an instance of their own (containers by address, local users
//! by uid). A view's `[view.instance]` and `[view.iam]` are the box's sections with the
//! view's keys over them (values the box derives, such as host names and the region, are
//! derived again from the result); `[view.tags]` and `[view.user-data]`, when set, replace
//! the box's. The checked [`View`] holds the whole [`Config`] of its instance, so what makes
//! the box's tree, identity document and credentials makes a view's. Tasks, pods, faults
//! and the timeline stay the box's (the ECS agent and Pod Identity are box-wide; events and
//! faults name the view they aim at).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::instance::RawInstance;
use super::locate::{Located, Spans};
use super::user_data::RawUserData;
use super::{ConfigError, RawConfig, UserData};
use crate::credentials::IamConfig;
use crate::machine::MachineFacts;
use crate::types::{TagKey, ViewName};

use super::Config;

/// A view as the file spells it. `instance` and `iam` are parsed as their sections are (a
/// bad key or value is reported where it is written); which keys the view set is read from
/// the file's table ([`Written`]), since a parsed section cannot tell a default from a key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawView {
    name: ViewName,
    #[serde(default)]
    sources: Vec<Source>,
    #[serde(default)]
    uids: Vec<UidOrName>,
    #[serde(default)]
    instance: Option<RawInstance>,
    #[serde(default)]
    iam: Option<IamConfig>,
    #[serde(default)]
    tags: Option<BTreeMap<TagKey, String>>,
    #[serde(default)]
    user_data: Option<RawUserData>,
}

/// A client address a view covers: one address, or a network (`10.1.0.0/24`, `fd00::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Source(IpNet);

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(s: String) -> Result<Source, String> {
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(Source(IpNet::from(a)));
        }
        match s.parse::<IpNet>() {
            // `10.1.0.7/24` is a typo for `10.1.0.0/24` or for `10.1.0.7`: say which it covers.
            Ok(n) if n.network() != n.addr() => Err(format!(
                "`{s}` has host bits set: write the network `{}`, or the address `{}`",
                n.trunc(),
                n.addr()
            )),
            Ok(n) => Ok(Source(n)),
            Err(_) => Err(format!(
                "`{s}` is not an address or a network (`172.18.0.2`, `10.1.0.0/24`, `fd00::/64`)"
            )),
        }
    }
}

impl From<Source> for String {
    fn from(s: Source) -> String {
        s.to_string()
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            n if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            n => write!(f, "{n}"),
        }
    }
}

/// A local user, by uid or by name (looked up when the config is loaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum UidOrName {
    Uid(u32),
    Name(String),
}

/// Which clients a view covers: an address in `sources`, or a local socket whose owner is
/// one of `uids`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Covers {
    sources: Vec<Source>,
    uids: Vec<u32>,
}

impl Covers {
    /// Whether a client at `peer` (whose socket `uid` owns, when it is local and known) is
    /// covered. An IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`) is its IPv4
    /// address.
    pub fn covers(&self, peer: IpAddr, uid: Option<u32>) -> bool {
        let peer = peer.to_canonical();
        self.sources.iter().any(|s| s.0.contains(&peer))
            || uid.is_some_and(|u| self.uids.contains(&u))
    }

    /// Whether a view covers local users (its clients' socket owners must be looked up).
    pub fn by_uid(&self) -> bool {
        !self.uids.is_empty()
    }

    /// What both cover, in words (empty when nothing).
    fn overlap(&self, other: &Covers) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.sources {
            for b in &other.sources {
                if a.0.contains(&b.0.network()) || b.0.contains(&a.0.network()) {
                    out.push(if a == b {
                        a.to_string()
                    } else {
                        format!("{a} and {b}")
                    });
                }
            }
        }
        for u in self.uids.iter().filter(|u| other.uids.contains(u)) {
            out.push(format!("uid {u}"));
        }
        out
    }
}

impl std::fmt::Display for Covers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
        parts.extend(self.uids.iter().map(|u| format!("uid {u}")));
        f.write_str(&parts.join(", "))
    }
}

/// A checked view: its name, the clients it covers, and the instance it is.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    name: ViewName,
    covers: Covers,
    /// The view's instance: the box's config with the view's sections (no views, tasks,
    /// pods, faults or timeline of its own).
    config: Box<Config>,
    /// The view as `print-config` shows it: the keys it set (secrets hidden as `[iam]`'s).
    shown: toml::Table,
}

impl View {
    pub fn name(&self) -> &ViewName {
        &self.name
    }

    pub fn covers(&self) -> &Covers {
        &self.covers
    }

    /// The instance this view is.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(super) fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    pub(super) fn shown(&self) -> &toml::Table {
        &self.shown
    }
}

/// The sections a view wrote, as written (its keys only).
struct Written {
    instance: toml::Table,
    iam: toml::Table,
}

/// The box's `[instance]` and `[iam]` as written, and each view's.
fn written(text: &str, views: usize) -> (Written, Vec<Written>) {
    let doc: toml::Table = toml::from_str(text).unwrap_or_default();
    let section = |t: &toml::Table, name: &str| match t.get(name) {
        Some(toml::Value::Table(s)) => s.clone(),
        _ => toml::Table::new(),
    };
    let of = |t: &toml::Table| Written {
        instance: section(t, "instance"),
        iam: section(t, "iam"),
    };
    let tables: Vec<Written> = match doc.get("view") {
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                toml::Value::Table(t) => of(t),
                _ => of(&toml::Table::new()),
            })
            .collect(),
        _ => Vec::new(),
    };
    debug_assert_eq!(tables.len(), views);
    (of(&doc), tables)
}

/// `over` with the keys of `keys` set over it.
fn over(base: &toml::Table, keys: &toml::Table) -> toml::Table {
    let mut t = base.clone();
    t.extend(keys.iter().map(|(k, v)| (k.clone(), v.clone())));
    t
}

/// Checks and resolves the file's views against the box's `raw` config. Every problem is
/// reported, located in the view (a view's instance that does not hold together says which
/// view and why).
pub(super) fn check_all(
    raw: &RawConfig,
    text: &str,
    spans: &Spans<'_>,
    facts: &MachineFacts,
) -> Result<(Vec<View>, Vec<Located>), ConfigError> {
    let mut problems = unknown_views(raw, spans);
    if raw.views.is_empty() && problems.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (boxed, tables) = written(text, raw.views.len());
    // The box's instance as `print-config` shows it: a view shows what differs from it.
    let box_instance = table_of(
        &super::Instance::resolve(raw.instance.clone(), facts, raw.imds.generation).to_raw(),
    );
    let mut views: Vec<View> = Vec::new();
    for (i, (v, w)) in raw.views.iter().zip(&tables).enumerate() {
        let blame = |key: &str, message: String| spans.blame_in_array("view", i, key, message);
        if let Some(first) = views.iter().position(|o| o.name == v.name) {
            problems.push(blame(
                "name",
                format!(
                    "a view `{}` is already defined (view {})",
                    v.name,
                    first + 1
                ),
            ));
            continue;
        }
        if v.sources.is_empty() && v.uids.is_empty() {
            problems.push(blame(
                "name",
                format!(
                    "view `{}` covers no one: give it `sources` (addresses or networks) or `uids`",
                    v.name
                ),
            ));
            continue;
        }
        if raw.replay.is_some() && v.instance.is_some() {
            problems.push(blame(
                "instance",
                format!(
                    "view `{}`: [view.instance] cannot change a [replay] tree (it serves the crawled instance's values)",
                    v.name
                ),
            ));
            continue;
        }
        let mut uids = Vec::new();
        for u in &v.uids {
            match u {
                UidOrName::Uid(n) => uids.push(*n),
                UidOrName::Name(name) => match nix::unistd::User::from_name(name) {
                    Ok(Some(user)) => uids.push(user.uid.as_raw()),
                    _ => problems.push(blame(
                        "uids",
                        format!("view `{}`: no user `{name}` on this machine", v.name),
                    )),
                },
            }
        }
        let mut own = raw.clone();
        own.views = Vec::new();
        own.tasks = Vec::new();
        own.pods = Vec::new();
        own.faults = Vec::new();
        own.scenario = Default::default();
        let merged = |base: &toml::Table, keys: &toml::Table| toml::Value::Table(over(base, keys));
        if v.instance.is_some() {
            match merged(&boxed.instance, &w.instance).try_into() {
                Ok(i) => own.instance = i,
                Err(e) => problems.push(blame("instance", format!("view `{}`: {e}", v.name))),
            }
        }
        if v.iam.is_some() {
            match merged(&boxed.iam, &w.iam).try_into() {
                Ok(i) => own.iam = i,
                Err(e) => problems.push(blame("iam", format!("view `{}`: {e}", v.name))),
            }
        }
        if let Some(t) = &v.tags {
            own.tags = t.clone();
        }
        if let Some(u) = &v.user_data {
            own.user_data = u.clone();
        }
        // The box's checks, on the view's instance; blamed in the view.
        let problems_of = |e: ConfigError| match e {
            ConfigError::Invalid(found) => found,
            other => vec![spans.blame(&[], other.to_string())],
        };
        let config = super::check::check(&own, spans)
            .map_err(problems_of)
            .and_then(|_| UserData::load(own.user_data.clone(), spans).map_err(problems_of))
            .map(|user_data| Config::resolve(own, user_data, Vec::new(), facts));
        let config = match config {
            Ok(c) => c,
            Err(found) => {
                let about_user_data = found.iter().any(|p| p.message.contains("user data"));
                let key = if v.user_data.is_some() && about_user_data {
                    "user-data"
                } else if v.iam.is_some() {
                    "iam"
                } else {
                    "instance"
                };
                problems.extend(
                    found
                        .into_iter()
                        .map(|p| blame(key, format!("view `{}`: {}", v.name, p.message))),
                );
                continue;
            }
        };
        let shown = shown(v, w, &config, &box_instance);
        views.push(View {
            name: v.name.clone(),
            covers: Covers {
                sources: v.sources.clone(),
                uids,
            },
            config: Box::new(config),
            shown,
        });
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let warnings = overlaps(&views, spans);
    Ok((views, warnings))
}

/// A timeline entry or a fault that names a view the file does not define.
fn unknown_views(raw: &RawConfig, spans: &Spans<'_>) -> Vec<Located> {
    let known = |v: &ViewName| raw.views.iter().any(|d| d.name == *v);
    let defined = || {
        let names: Vec<String> = raw.views.iter().map(|v| format!("`{}`", v.name)).collect();
        if names.is_empty() {
            "the file defines no [[view]]".to_string()
        } else {
            format!("the views are {}", names.join(", "))
        }
    };
    let mut out = Vec::new();
    for v in raw.scenario.views().filter(|v| !known(v)) {
        out.push(spans.blame(
            &["scenario", "timeline", "view"],
            format!("no view `{v}` for this timeline entry: {}", defined()),
        ));
    }
    for (i, f) in raw.faults.iter().enumerate() {
        if let Some(v) = f.view.as_ref().filter(|v| !known(v)) {
            out.push(spans.blame_in_array(
                "fault",
                i,
                "view",
                format!("no view `{v}` for this fault: {}", defined()),
            ));
        }
    }
    out
}

/// A warning for each two views that can cover one client: the first wins.
fn overlaps(views: &[View], spans: &Spans<'_>) -> Vec<Located> {
    let mut out = Vec::new();
    for (j, b) in views.iter().enumerate() {
        for a in &views[..j] {
            let both = a.covers.overlap(&b.covers);
            if !both.is_empty() {
                out.push(spans.blame_in_array(
                    "view",
                    j,
                    "name",
                    format!(
                        "warning: views `{}` and `{}` both cover {}: `{}` (the first) wins there",
                        a.name,
                        b.name,
                        both.join("; "),
                        a.name
                    ),
                ));
            }
        }
    }
    out
}

/// `value` as a TOML table (empty if it is not one).
fn table_of(value: &impl Serialize) -> toml::Table {
    match toml::Value::try_from(value) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

/// The view as `print-config` shows it: its instance where it differs from the box's
/// (values the box writes out, a derived host name among them, would otherwise be the
/// view's when read back), `[view.iam]` as `[iam]` prints (secrets hidden), the user data
/// as the box's prints.
fn shown(v: &RawView, w: &Written, config: &Config, box_instance: &toml::Table) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("name".into(), v.name.to_string().into());
    let list = |items: Vec<toml::Value>| toml::Value::Array(items);
    if !v.sources.is_empty() {
        t.insert(
            "sources".into(),
            list(v.sources.iter().map(|s| s.to_string().into()).collect()),
        );
    }
    if !v.uids.is_empty() {
        let uids = v
            .uids
            .iter()
            .map(|u| match u {
                UidOrName::Uid(n) => toml::Value::Integer(i64::from(*n)),
                UidOrName::Name(s) => s.clone().into(),
            })
            .collect();
        t.insert("uids".into(), list(uids));
    }
    if v.instance.is_some() {
        let own: toml::Table = table_of(&config.instance().to_raw())
            .into_iter()
            .filter(|(k, value)| w.instance.contains_key(k) || box_instance.get(k) != Some(value))
            .collect();
        t.insert("instance".into(), own.into());
    }
    if v.iam.is_some()
        && let Ok(toml::Value::Table(all)) = toml::Value::try_from(config.iam())
    {
        let keys: toml::Table = all
            .into_iter()
            .filter(|(k, _)| w.iam.contains_key(k))
            .collect();
        t.insert("iam".into(), keys.into());
    }
    if let Some(tags) = &v.tags
        && let Ok(v) = toml::Value::try_from(tags)
    {
        t.insert("tags".into(), v);
    }
    if v.user_data.is_some()
        && let Ok(u) = toml::Value::try_from(config.user_data().to_raw())
    {
        t.insert("user-data".into(), u);
    }
    t
}

#[cfg(test)]
mod tests;
