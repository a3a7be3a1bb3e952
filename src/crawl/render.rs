//! The config file a crawl becomes: comments saying what was and was not copied and why,
//! `[instance]`/`[iam]`/`[tags]` values the box's own parts need (account, role, tags for
//! `ctl`), and `[replay]` with every crawled path.
//!
//! Everything the endpoint sent is data, never file structure: every key and value is a
//! single-line TOML basic string with each control character escaped ([`basic`]), and
//! crawled text in a comment has its control characters escaped ([`comment`]), so each line
//! of the file is one the renderer began: no newline of the endpoint's ever starts one. Each `[instance]`/`[iam]`/`[tags]` line is kept only if the
//! config parser takes it, and a replayed path the loader would refuse is left out (with a
//! comment), so the file always loads: [`super::contract`] states and checks it.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Config, Replay, ReplayPath, ReplayValue};

use super::plan::{Crawled, NotCopied};

/// What the file says about where the crawl came from.
#[derive(Debug, Clone)]
pub struct Header {
    pub source: String,
    pub taken: String,
    /// The endpoint refused a GET without a token.
    pub tokens_required: bool,
}

/// A single-line TOML basic string for `s` (a value or a quoted key): `"` and `\` escaped,
/// and every control character (newlines included), so it is one token on one line.
pub fn basic(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A TOML key for `s`: bare when it can be, else a [`basic`] string.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        basic(s)
    }
}

/// `s` made safe to follow `#` on one line: each control character (a newline, a lone
/// carriage return, which TOML refuses in a comment) written as its Rust escape.
pub fn comment(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            o.extend(c.escape_default());
        } else {
            o.push(c);
        }
    }
    o
}

/// Whether `line` is accepted after `section` (a table header, and any lines the check
/// needs before it) by the config parser.
fn accepted(section: &str, line: &str) -> Result<(), String> {
    Config::from_toml(&format!("{section}\n{line}\n"), Path::new("snapshot"))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Appends `key = value` under `section` if the parser takes it, else as a comment saying
/// why not; tells whether it was kept.
fn value_line(out: &mut String, section: &str, key: &str, value: &str) -> bool {
    let line = format!("{} = {}", self::key(key), basic(value));
    match accepted(section, &line) {
        Ok(()) => {
            let _ = writeln!(out, "{line}");
            true
        }
        Err(e) => {
            let why = e.split_once(": ").map_or(e.as_str(), |(_, m)| m);
            let _ = writeln!(out, "# not kept ({}): {}", comment(why), comment(&line));
            false
        }
    }
}

fn json_field(doc: &serde_json::Value, k: &str) -> Option<String> {
    doc.get(k)?.as_str().map(str::to_string)
}

fn text<'a>(c: &'a Crawled, path: &str) -> Option<&'a str> {
    std::str::from_utf8(c.leaves.get(path)?).ok()
}

/// The file, from what a crawl collected.
pub fn render(c: &Crawled, h: &Header) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# fake-metadata snapshot of {}, taken {}.",
        comment(&h.source),
        comment(&h.taken)
    );
    o.push_str(
        "# In the box: fake-metadata serve --config THIS-FILE (or install it as\n\
         # /etc/fake-metadata/config.toml). Every path under [replay] answers byte for byte\n\
         # what the crawl saw, listings included; the box's own values (machine id,\n\
         # addresses) do not change them. A path set under [paths] wins over them.\n#\n",
    );
    if !c.problems.is_empty() {
        let _ = writeln!(
            o,
            "# PARTIAL: the crawl did not finish; {} problem(s):",
            c.problems.len()
        );
        for p in &c.problems {
            let _ = writeln!(o, "#   {}", comment(p));
        }
        o.push_str("#\n");
    }
    o.push_str("# Not copied, and why:\n");
    for (why, paths) in &c.not_copied {
        let reason = match why {
            NotCopied::Credentials => {
                "credentials: keys, secrets and tokens are never fetched nor written; the box \
                 hands out its own under the same role ([iam] below, instance profile ARN and \
                 id kept) and its own identity credentials"
            }
            NotCopied::Signatures => {
                "identity signatures: the box signs the replayed document with its own key \
                 (`fake-metadata identity-cert` prints the certificate)"
            }
            NotCopied::TimeBound => {
                "time-bound state (spot, events, rebalance, ASG): starts empty, driven by \
                 [scenario] and `fake-metadata ctl`"
            }
            NotCopied::UserData => "user data: --no-user-data",
        };
        let _ = writeln!(o, "# - {reason}:");
        for p in paths {
            let _ = writeln!(o, "#     {}", comment(p));
        }
    }
    o.push('\n');

    let doc: serde_json::Value = text(c, "dynamic/instance-identity/document")
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    o.push_str("[instance]\n# The replay is this instance: nothing is taken from the box.\n");
    o.push_str("from-host = false\n");
    let section = "[instance]";
    // The account the file gives [instance], which the profile ARN must agree with.
    let mut account = None;
    for (key, value) in [
        ("instance-id", json_field(&doc, "instanceId")),
        ("instance-type", json_field(&doc, "instanceType")),
        ("ami-id", json_field(&doc, "imageId")),
        ("account-id", json_field(&doc, "accountId")),
        ("availability-zone", json_field(&doc, "availabilityZone")),
        ("architecture", json_field(&doc, "architecture")),
        ("pending-time", json_field(&doc, "pendingTime")),
        ("local-ipv4", json_field(&doc, "privateIp")),
        ("mac", text(c, "meta-data/mac").map(str::to_string)),
    ] {
        if let Some(v) = value
            && value_line(&mut o, section, key, &v)
            && key == "account-id"
        {
            account = Some(v);
        }
    }
    if doc.is_null() {
        // No document: the account may still be in the instance profile's ARN.
        let from_arn =
            iam_info(c, "InstanceProfileArn").and_then(|a| a.split(':').nth(4).map(str::to_string));
        if let Some(a) = from_arn
            && value_line(&mut o, section, "account-id", &a)
        {
            account = Some(a);
        }
    }
    o.push('\n');

    o.push_str("[imds]\n");
    if h.tokens_required {
        o.push_str("# The instance refused IMDSv1.\nhttp-tokens = \"required\"\n");
    }
    let tags: Vec<(&str, &str)> = c
        .leaves
        .iter()
        .filter_map(|(p, v)| {
            let k = p.strip_prefix("meta-data/tags/instance/")?;
            Some((k, std::str::from_utf8(v).ok()?))
        })
        .collect();
    if c.listings.contains_key("meta-data/tags/instance") {
        o.push_str("instance-metadata-tags = \"enabled\"\n");
    }
    o.push('\n');

    o.push_str("[iam]\n");
    let role = c
        .listings
        .get("meta-data/iam/security-credentials")
        .and_then(|l| l.lines().find(|r| !r.is_empty()));
    match role {
        Some(r) => {
            value_line(&mut o, "[iam]", "role", r);
        }
        None => o.push_str("# The instance has no instance profile.\nrole = \"\"\n"),
    }
    if let Some(id) = iam_info(c, "InstanceProfileId") {
        value_line(&mut o, "[iam]", "instance-profile-id", &id);
    }
    // Kept as served: the profile's name may differ from the role's and carry a path.
    if role.is_some()
        && let Some(arn) = iam_info(c, "InstanceProfileArn")
    {
        let context = account.map_or_else(
            || "[iam]".to_string(),
            |a| format!("[instance]\naccount-id = {}\n[iam]", basic(&a)),
        );
        value_line(&mut o, &context, "instance-profile-arn", &arn);
    }
    o.push('\n');

    if !tags.is_empty() {
        o.push_str("# The base `fake-metadata ctl tags` changes start from.\n[tags]\n");
        for (k, v) in tags {
            value_line(&mut o, "[tags]", k, v);
        }
        o.push('\n');
    }

    replay_section(&mut o, c, h);
    o
}

/// `[replay]`: every crawled path the loader takes, as crawled; one it would refuse (user
/// data over EC2's cap, a value that other paths make a directory: the loader's own rule,
/// [`Replay::refused`]) is a comment instead, so the file always loads.
fn replay_section(o: &mut String, c: &Crawled, h: &Header) {
    let mut replay = Replay {
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
    let refused = replay.refused();
    for (path, _) in &refused {
        replay.leaves.remove(path.as_str());
    }
    o.push_str("[replay]\n");
    for (k, v) in [
        ("source", &replay.source),
        ("taken", &replay.taken),
        ("partial", &replay.partial),
    ] {
        if let Some(v) = v {
            let _ = writeln!(o, "{k} = {}", basic(v));
        }
    }
    for (path, why) in &refused {
        let _ = writeln!(
            o,
            "# not kept ({}): {}",
            comment(why),
            comment(path.as_str())
        );
    }
    o.push_str("\n# Directory → its listing, as crawled.\n[replay.listings]\n");
    for (dir, listing) in &replay.listings {
        let _ = writeln!(o, "{} = {}", basic(dir.as_str()), basic(listing));
    }
    o.push_str("\n# Path → its bytes, as crawled ({ base64 = \"…\" } when not UTF-8).\n");
    o.push_str("[replay.leaves]\n");
    for (path, body) in &replay.leaves {
        let _ = writeln!(o, "{} = {}", basic(path.as_str()), replayed(&body.0));
    }
}

/// A replayed value as [`ReplayValue`] reads it: a [`basic`] string when the bytes are
/// UTF-8, else `{ base64 = "…" }`.
fn replayed(bytes: &[u8]) -> String {
    use base64::Engine as _;
    match std::str::from_utf8(bytes) {
        Ok(t) => basic(t),
        Err(_) => format!(
            "{{ base64 = {} }}",
            basic(&base64::engine::general_purpose::STANDARD.encode(bytes))
        ),
    }
}

fn iam_info(c: &Crawled, field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(c.iam_info.as_deref()?).ok()?;
    json_field(&v, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn crawled() -> Crawled {
        let mut c = Crawled::default();
        let leaves: &[(&str, &[u8])] = &[
            ("meta-data/instance-id", b"i-0a33f80f09c96477f"),
            ("meta-data/mac", b"06:17:04:d7:26:09"),
            ("meta-data/odd", b"line \"one\"\n\ttab\\ \x01 \xc3\xa9"),
            (
                "meta-data/crlf",
                b"\r\nwindows\r\nline\r lone cr\n\n\"\"\"\n",
            ),
            ("meta-data/quotes", b"'''\"\"\"'\\n"),
            ("meta-data/tags/instance/Name", b"web"),
            ("meta-data/tags/instance/bad key?", b"x"),
            ("user-data", b"\x1f\x8b\x08\x00\xff"),
            (
                "dynamic/instance-identity/document",
                b"{\n  \"accountId\" : \"123456789012\",\n  \"instanceId\" : \"not-an-id\",\n  \
                  \"availabilityZone\" : \"us-west-2b\"\n}",
            ),
        ];
        for (p, v) in leaves {
            c.leaves.insert(p.to_string(), Bytes::from_static(v));
        }
        c.listings
            .insert("meta-data".into(), "instance-id\nmac\nodd\ntags/\n".into());
        c.listings
            .insert("meta-data/tags/instance".into(), "Name\nbad key?".into());
        c.listings.insert(
            "meta-data/iam/security-credentials".into(),
            "web-role".into(),
        );
        c.iam_info = Some("{\"InstanceProfileArn\" : \"arn:aws:iam::123456789012:instance-profile/ops/web-profile\",\"InstanceProfileId\" : \"AIPAVMQT32F2Q43IXV2TC\"}".into());
        c
    }

    fn header() -> Header {
        Header {
            source: "http://169.254.169.254".into(),
            taken: "2026-12-03T20:00:00Z".into(),
            tokens_required: true,
        }
    }

    #[test]
    fn the_file_loads_and_gives_back_every_byte() {
        let c = crawled();
        let text = render(&c, &header());
        let cfg =
            Config::from_toml(&text, Path::new("s.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let r = cfg.replay().unwrap();
        for (p, v) in &c.leaves {
            assert_eq!(r.leaf(p), Some(v), "{p}");
        }
        for (p, l) in &c.listings {
            assert_eq!(r.listings.get(p.as_str()), Some(l), "{p}");
        }
        assert!(text.contains("\"user-data\" = { base64 = "), "{text}");
        assert_eq!(r.partial, None);
        // Values the parser refuses are comments, never a file that does not load.
        assert!(text.contains("# not kept ("), "{text}");
        assert_eq!(cfg.instance().account_id().as_str(), "123456789012");
        assert_eq!(cfg.instance().availability_zone().as_str(), "us-west-2b");
        assert_eq!(cfg.instance().mac(), "06:17:04:d7:26:09");
        assert_eq!(cfg.iam().role.as_ref().unwrap().to_string(), "web-role");
        assert_eq!(
            cfg.iam().instance_profile_id.as_str(),
            "AIPAVMQT32F2Q43IXV2TC"
        );
        assert_eq!(
            cfg.iam().instance_profile_arn.as_ref().unwrap().as_str(),
            "arn:aws:iam::123456789012:instance-profile/ops/web-profile"
        );
        assert!(cfg.imds().instance_metadata_tags().is_enabled());
        assert_eq!(cfg.tags().len(), 1);
        assert_eq!(
            cfg.imds().http_tokens(),
            crate::config::HttpTokens::Required
        );
        assert!(!cfg.instance().from_host());
    }

    /// The ARN is checked against the account the file gives `[instance]`: the document's, or
    /// the ARN's own when there is no document.
    #[test]
    fn the_profile_arn_is_kept_when_it_agrees_with_the_account() {
        let mut c = crawled();
        let other = "arn:aws:iam::210987654321:instance-profile/p";
        c.iam_info = Some(format!("{{\"InstanceProfileArn\" : \"{other}\"}}"));
        let text = render(&c, &header());
        let cfg = Config::from_toml(&text, Path::new("s.toml")).unwrap();
        assert_eq!(cfg.iam().instance_profile_arn, None);
        assert!(
            text.contains(&format!("is in account 210987654321, but [instance] account-id is 123456789012: an instance's profile is in its own account): instance-profile-arn = \"{other}\"")),
            "{text}"
        );

        c.leaves.remove("dynamic/instance-identity/document");
        let cfg = Config::from_toml(&render(&c, &header()), Path::new("s.toml")).unwrap();
        assert_eq!(cfg.instance().account_id().as_str(), "210987654321");
        assert_eq!(
            cfg.iam().instance_profile_arn.as_ref().unwrap().as_str(),
            other
        );

        // No role listed: no profile, whatever iam/info said.
        c.listings.remove("meta-data/iam/security-credentials");
        let cfg = Config::from_toml(&render(&c, &header()), Path::new("s.toml")).unwrap();
        assert_eq!(
            (&cfg.iam().role, &cfg.iam().instance_profile_arn),
            (&None, &None)
        );
    }

    #[test]
    fn a_partial_crawl_says_so_and_no_role_means_none() {
        let mut c = Crawled::default();
        c.listings.insert("meta-data".into(), "ami-id".into());
        c.problems
            .push("/latest/meta-data/ami-id: timed out after 5s".into());
        c.not_copied
            .entry(NotCopied::TimeBound)
            .or_default()
            .insert("meta-data/spot".into());
        let text = render(&c, &header());
        let cfg = Config::from_toml(&text, Path::new("s.toml")).unwrap();
        assert!(text.contains("# PARTIAL: the crawl did not finish; 1 problem(s):"));
        assert!(text.contains("#     meta-data/spot"));
        assert_eq!(
            cfg.replay().unwrap().partial.as_deref(),
            Some("/latest/meta-data/ami-id: timed out after 5s")
        );
        assert_eq!(cfg.iam().role, None);
    }
}
