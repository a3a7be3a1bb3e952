//! What a file `snapshot` writes must be, whatever the crawled endpoint sent: it loads; its
//! `[replay]` is exactly the crawled tree (every path the loader takes, byte for byte); and
//! nothing else in it comes from the endpoint but the few values the renderer means to keep
//! (`[instance]` from the identity document, `[iam]` from the role listing and `iam/info`,
//! `[tags]`), each at its own key with the crawled value. So a crawled value can never set
//! `[server]`, `[iam] source` or anything else; and each line of the file stands alone (no
//! value spans lines). [`check`] states it for the renderer's tests and the `snapshot` fuzz
//! target.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;

use crate::config::{Config, Replay, ReplayPath, ReplayValue};

use super::plan::Crawled;
use super::render::Header;

/// The `[instance]` keys the renderer may write, and the identity document's field each
/// comes from (`mac` comes from `meta-data/mac`).
const INSTANCE: &[(&str, &str)] = &[
    ("instance-id", "instanceId"),
    ("instance-type", "instanceType"),
    ("ami-id", "imageId"),
    ("account-id", "accountId"),
    ("availability-zone", "availabilityZone"),
    ("architecture", "architecture"),
    ("pending-time", "pendingTime"),
    ("local-ipv4", "privateIp"),
];

fn json_str(json: Option<&serde_json::Value>, field: &str) -> Option<String> {
    json?.get(field)?.as_str().map(str::to_string)
}

fn utf8(b: Option<&Bytes>) -> Option<String> {
    std::str::from_utf8(b?).ok().map(str::to_string)
}

/// Checks `text`, rendered from `c` and `h`, against the contract; `Err` says how it broke.
pub fn check(c: &Crawled, h: &Header, text: &str) -> Result<(), String> {
    let cfg = Config::from_toml(text, Path::new("snapshot.toml"))
        .map_err(|e| format!("the file does not load: {e}"))?;
    let table: toml::Table =
        toml::from_str(text).map_err(|e| format!("the file is not TOML: {e}"))?;
    // Each line is the renderer's own: a comment, a table header, or a whole `key = value`.
    for (n, line) in text.lines().enumerate() {
        let alone = line.is_empty()
            || line.starts_with('#')
            || (line.starts_with('[') && !line.contains(" = "))
            || toml::from_str::<toml::Table>(line).is_ok_and(|t| t.len() == 1);
        if !alone {
            return Err(format!("line {} is not one on its own: {line:?}", n + 1));
        }
    }

    let doc: Option<serde_json::Value> = c
        .leaves
        .get("dynamic/instance-identity/document")
        .and_then(|d| serde_json::from_slice(d).ok())
        .filter(|d: &serde_json::Value| !d.is_null());
    let info: Option<serde_json::Value> = c
        .iam_info
        .as_deref()
        .and_then(|i| serde_json::from_str(i).ok());
    let mac = utf8(c.leaves.get("meta-data/mac"));
    let arn_account = json_str(info.as_ref(), "InstanceProfileArn")
        .and_then(|a| a.split(':').nth(4).map(str::to_string));
    let role = c
        .listings
        .get("meta-data/iam/security-credentials")
        .and_then(|l| l.lines().find(|r| !r.is_empty()).map(str::to_string));

    // What each kept value may be: the crawled value it comes from.
    let mut may: BTreeMap<(&str, String), Option<String>> = BTreeMap::new();
    for (k, field) in INSTANCE {
        may.insert(("instance", k.to_string()), json_str(doc.as_ref(), field));
    }
    if doc.is_none() {
        may.insert(("instance", "account-id".into()), arn_account);
    }
    may.insert(("instance", "mac".into()), mac);
    may.insert(
        ("iam", "role".into()),
        Some(role.clone().unwrap_or_default()),
    );
    may.insert(
        ("iam", "instance-profile-id".into()),
        json_str(info.as_ref(), "InstanceProfileId"),
    );
    may.insert(
        ("iam", "instance-profile-arn".into()),
        json_str(info.as_ref(), "InstanceProfileArn").filter(|_| role.is_some()),
    );
    for (p, v) in &c.leaves {
        if let Some(k) = p.strip_prefix("meta-data/tags/instance/") {
            may.insert(("tags", k.to_string()), utf8(Some(v)));
        }
    }
    let tags_listed = c.listings.contains_key("meta-data/tags/instance");
    let tokens = h.tokens_required.then(|| "required".to_string());
    may.insert(("imds", "http-tokens".into()), tokens);
    may.insert(
        ("imds", "instance-metadata-tags".into()),
        tags_listed.then(|| "enabled".to_string()),
    );

    for (section, value) in &table {
        let section = section.as_str();
        if section == "replay" {
            continue;
        }
        let toml::Value::Table(t) = value else {
            return Err(format!("top-level `{section}` is not a table"));
        };
        if !["instance", "imds", "iam", "tags"].contains(&section) {
            return Err(format!("[{section}] is written"));
        }
        for (k, v) in t {
            if (section, k.as_str()) == ("instance", "from-host") {
                if v.as_bool() != Some(false) {
                    return Err("[instance] from-host is not false".into());
                }
                continue;
            }
            match may.get(&(section, k.clone())) {
                Some(Some(want)) if v.as_str() == Some(want) => {}
                Some(want) => {
                    return Err(format!(
                        "[{section}] {k:?} = {v} is not the crawled value {want:?}"
                    ));
                }
                None => return Err(format!("[{section}] {k:?} is written")),
            }
        }
    }

    // [replay]: exactly the crawled tree the loader takes.
    let r = cfg.replay().ok_or("no [replay]")?;
    let mut want = Replay {
        source: Some(h.source.clone()),
        taken: Some(h.taken.clone()),
        partial: (!c.problems.is_empty()).then(|| c.problems.join("; ")),
        listings: c
            .listings
            .iter()
            .filter_map(|(d, l)| Some((ReplayPath::try_from(d.clone()).ok()?, l.clone())))
            .collect(),
        leaves: c
            .leaves
            .iter()
            .filter_map(|(p, v)| {
                Some((
                    ReplayPath::try_from(p.clone()).ok()?,
                    ReplayValue(v.clone()),
                ))
            })
            .collect(),
    };
    for (p, _) in want.refused() {
        want.leaves.remove(p.as_str());
    }
    if r != &want {
        let diff = |a: &Replay, b: &Replay| {
            let mut d: Vec<String> = Vec::new();
            for (p, v) in &a.leaves {
                if b.leaves.get(p) != Some(v) {
                    d.push(format!("leaf {p:?}: {v:?} vs {:?}", b.leaves.get(p)));
                }
            }
            for (p, v) in &a.listings {
                if b.listings.get(p) != Some(v) {
                    d.push(format!("listing {p:?}: {v:?} vs {:?}", b.listings.get(p)));
                }
            }
            d
        };
        let mut d = diff(r, &want);
        d.extend(diff(&want, r));
        if r.source != want.source || r.taken != want.taken || r.partial != want.partial {
            d.push(format!(
                "provenance {:?} vs {:?}",
                (&r.source, &r.taken, &r.partial),
                (&want.source, &want.taken, &want.partial)
            ));
        }
        return Err(format!(
            "[replay] is not the crawled tree: {}",
            d.join("; ")
        ));
    }
    let built = Config::builtin();
    if cfg.server() != built.server()
        || cfg.log() != built.log()
        || cfg.control() != built.control()
        || !cfg.paths().is_empty()
        || !cfg.faults().is_empty()
        || cfg.user_data() != built.user_data()
        || cfg.intercept() != built.intercept()
        || cfg.iam().source != built.iam().source
    {
        return Err("a section the renderer never writes differs from the defaults".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
