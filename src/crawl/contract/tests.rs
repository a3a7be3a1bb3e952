//! The renderer against its contract: the attacks an outside run found (issue 27, item 1),
//! then any crawled tree, made at random (fixed seeds) both directly and by driving the real
//! walk with a hostile endpoint's answers.

use std::path::Path;

use bytes::Bytes;

use super::check;
use crate::config::Config;
use crate::crawl::plan::{Crawled, Fetch, Kind, Limits, NotCopied, Outcome, Walk};
use crate::crawl::render::{Header, render};

fn header() -> Header {
    Header {
        source: "http://169.254.169.254".into(),
        taken: "2026-12-03T20:00:00Z".into(),
        tokens_required: false,
    }
}

/// A small crawl whose `path` holds `value`.
fn crawled_with(path: &str, value: &str) -> Crawled {
    let mut c = Crawled::default();
    c.listings
        .insert("meta-data".into(), "instance-id\nmac\niam/".into());
    c.listings
        .insert("meta-data/iam/security-credentials".into(), "web".into());
    c.leaves.insert(
        "meta-data/instance-id".into(),
        Bytes::from_static(b"i-0a33f80f09c96477f"),
    );
    c.leaves.insert(
        "meta-data/mac".into(),
        Bytes::from_static(b"06:17:04:d7:26:09"),
    );
    if path == "meta-data/iam/info" {
        c.iam_info = Some(value.into());
    } else {
        c.leaves
            .insert(path.into(), Bytes::from(value.as_bytes().to_vec()));
    }
    c
}

const TO_PROCESS: &str =
    "x\n[iam]\nsource = \"process\"\ncommand = [\"/bin/sh\", \"-c\", \"id\"]\n";
const TO_LAN: &str = "x\n[server]\nlisten = [\"0.0.0.0:1338\"]\n";

/// What the attack run wrote: a crawled value not kept went into a comment with its
/// newlines, so the rest of it was configuration.
#[test]
fn a_crawled_value_never_leaves_replay() {
    let doc = |field: &str, v: &str| {
        serde_json::json!({ "accountId": "123456789012", field: v }).to_string()
    };
    for evil in [TO_PROCESS, TO_LAN] {
        let profile = serde_json::json!({
            "InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/p",
            "InstanceProfileId": evil,
        })
        .to_string();
        for (path, value) in [
            ("meta-data/iam/info", profile),
            ("meta-data/mac", evil.to_string()),
            (
                "dynamic/instance-identity/document",
                doc("availabilityZone", evil),
            ),
            (
                "dynamic/instance-identity/document",
                doc("instanceId", evil),
            ),
            ("meta-data/tags/instance/Name", evil.to_string()),
        ] {
            let c = crawled_with(path, &value);
            let text = render(&c, &header());
            let cfg = Config::from_toml(&text, Path::new("s.toml"))
                .unwrap_or_else(|e| panic!("{path}: does not load: {e}\n{text}"));
            assert!(cfg.server().listen_is_default(), "{path}:\n{text}");
            assert_eq!(
                cfg.iam().source,
                Config::builtin().iam().source,
                "{path}:\n{text}"
            );
            check(&c, &header(), &text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        }
    }
}

#[test]
fn an_innocent_value_with_a_newline_still_loads() {
    for (path, value) in [
        ("meta-data/mac", "06:17:04:d7:26:09\n"),
        ("meta-data/mac", "06:17:04:d7:26:09\r"),
        (
            "meta-data/iam/info",
            "{\"InstanceProfileId\" : \"AIPA\\r\\nX\"}",
        ),
    ] {
        let c = crawled_with(path, value);
        let text = render(&c, &header());
        check(&c, &header(), &text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
    }
}

/// Pieces hostile text is made of: TOML's own syntax, every kind of line end and control
/// character, and whole sections.
const PIECES: &[&str] = &[
    "\n",
    "\r",
    "\r\n",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "]",
    "[",
    "]]",
    "#",
    "\\",
    "\\n",
    "\\u0000",
    "\u{0}",
    "\u{1}",
    "\u{1b}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "é",
    " ",
    "\t",
    "=",
    ".",
    "/",
    "{",
    "}",
    "a",
    "0",
    TO_PROCESS,
    TO_LAN,
    "i-0123456789abcdef0",
    "06:17:04:d7:26:09",
    "123456789012",
    "us-east-1a",
    "AIPAVMQT32F2Q43IXV2TC",
];

fn text(rng: &mut fastrand::Rng) -> String {
    (0..rng.usize(0..6))
        .map(|_| PIECES[rng.usize(..PIECES.len())])
        .collect()
}

fn bytes(rng: &mut fastrand::Rng) -> Bytes {
    if rng.u8(..) < 40 {
        let n = rng.usize(0..40);
        Bytes::from((0..n).map(|_| rng.u8(..)).collect::<Vec<u8>>())
    } else {
        Bytes::from(text(rng))
    }
}

fn name(rng: &mut fastrand::Rng) -> String {
    match rng.u8(0..4) {
        0 => text(rng),
        _ => ["a", "b", "mac", "x y", "é", "[s]", "k=v", "#c"][rng.usize(..8)].to_string(),
    }
}

fn path(rng: &mut fastrand::Rng) -> String {
    let mut p = ["meta-data", "dynamic", "user-data", "other", ""][rng.usize(..5)].to_string();
    for _ in 0..rng.usize(0..3) {
        p.push('/');
        p.push_str(&name(rng));
    }
    p
}

fn json(rng: &mut fastrand::Rng, fields: &[&str]) -> String {
    let mut m = serde_json::Map::new();
    for f in fields {
        if rng.bool() {
            m.insert(f.to_string(), text(rng).into());
        } else if rng.bool() {
            let v = match *f {
                "accountId" => "123456789012",
                "availabilityZone" => "us-west-2b",
                "instanceId" => "i-0123456789abcdef0",
                "InstanceProfileArn" => "arn:aws:iam::123456789012:instance-profile/p",
                _ => "AIPAVMQT32F2Q43IXV2TC",
            };
            m.insert(f.to_string(), v.into());
        }
    }
    serde_json::Value::Object(m).to_string()
}

const DOC_FIELDS: &[&str] = &[
    "instanceId",
    "instanceType",
    "imageId",
    "accountId",
    "availabilityZone",
    "architecture",
    "pendingTime",
    "privateIp",
];
const INFO_FIELDS: &[&str] = &["InstanceProfileArn", "InstanceProfileId"];

/// Any tree, made directly: paths the loader refuses, values it refuses (too much user data,
/// a value that is also a directory), hostile text everywhere.
fn any_crawled(rng: &mut fastrand::Rng) -> (Crawled, Header) {
    let mut c = Crawled::default();
    for _ in 0..rng.usize(0..12) {
        c.leaves.insert(path(rng), bytes(rng));
    }
    for _ in 0..rng.usize(0..6) {
        c.listings.insert(path(rng), text(rng));
    }
    for _ in 0..rng.usize(0..3) {
        c.leaves
            .insert(format!("meta-data/tags/instance/{}", name(rng)), bytes(rng));
    }
    if rng.bool() {
        c.listings
            .insert("meta-data/tags/instance".into(), text(rng));
    }
    if rng.bool() {
        c.leaves.insert("meta-data/mac".into(), bytes(rng));
    }
    if rng.bool() {
        c.leaves.insert(
            "dynamic/instance-identity/document".into(),
            Bytes::from(json(rng, DOC_FIELDS)),
        );
    }
    if rng.bool() {
        c.iam_info = Some(json(rng, INFO_FIELDS));
    }
    if rng.bool() {
        let role = if rng.bool() { text(rng) } else { "web".into() };
        c.listings
            .insert("meta-data/iam/security-credentials".into(), role);
    }
    if rng.u8(..) < 30 {
        let n = 16 * 1024 + rng.usize(0..2);
        c.leaves
            .insert("user-data".into(), Bytes::from(vec![b'x'; n]));
    }
    for _ in 0..rng.usize(0..3) {
        c.problems.push(text(rng));
    }
    for _ in 0..rng.usize(0..3) {
        c.not_copied
            .entry(NotCopied::TimeBound)
            .or_default()
            .insert(path(rng));
    }
    let h = Header {
        source: format!("http://{}", text(rng)),
        taken: text(rng),
        tokens_required: rng.bool(),
    };
    (c, h)
}

#[test]
fn any_crawled_tree_renders_to_a_file_that_loads_as_exactly_that_tree() {
    for seed in 0..3000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (c, h) = any_crawled(&mut rng);
        let text = render(&c, &h);
        if let Err(e) = check(&c, &h, &text) {
            panic!("seed {seed}: {e}\n{c:#?}\n{text}");
        }
    }
}

/// Drives the real walk against an endpoint that answers `answer`.
pub fn crawl(limits: Limits, mut answer: impl FnMut(&Fetch) -> Outcome) -> Crawled {
    let mut w = Walk::new(limits, true);
    while let Some(f) = w.next_fetch() {
        let o = answer(&f);
        w.record(f, o);
    }
    w.crawled
}

/// A hostile endpoint, made at random: listings of odd names (some refused), leaves of any
/// bytes, documents and `iam/info` with hostile fields, failures.
fn hostile(rng: &mut fastrand::Rng, f: &Fetch) -> Outcome {
    match rng.u8(0..20) {
        0 => return Outcome::Status(404),
        1 => return Outcome::Failed(text(rng)),
        _ => {}
    }
    let body = match (f.kind, f.path.as_str()) {
        (Kind::Listing, "meta-data") => "mac\niam/\ntags/\nx".into(),
        (Kind::Listing, "meta-data/iam") => "info\nsecurity-credentials/".into(),
        (Kind::Listing, "meta-data/tags") => "instance/".into(),
        (Kind::Listing, "dynamic") => "instance-identity/".into(),
        (Kind::Listing, "dynamic/instance-identity") => "document\nsignature".into(),
        (Kind::Listing, _) => {
            let lines: Vec<String> = (0..rng.usize(0..5))
                .map(|_| {
                    let n = name(rng);
                    if rng.bool() { format!("{n}/") } else { n }
                })
                .collect();
            lines.join("\n").into_bytes()
        }
        (Kind::Leaf, "dynamic/instance-identity/document") => json(rng, DOC_FIELDS).into_bytes(),
        (Kind::Leaf, "meta-data/iam/info") => json(rng, INFO_FIELDS).into_bytes(),
        (Kind::Leaf, "user-data") if rng.u8(..) < 40 => vec![b'u'; 16 * 1024 + 1],
        (Kind::Leaf, _) => bytes(rng).to_vec(),
    };
    Outcome::Body(Bytes::from(body))
}

#[test]
fn any_walk_of_a_hostile_endpoint_renders_to_a_file_that_loads_as_exactly_its_tree() {
    let limits = Limits {
        max_paths: 200,
        max_depth: 5,
        ..Limits::default()
    };
    for seed in 0..1500 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let c = crawl(limits, |f| hostile(&mut rng, f));
        let h = Header {
            tokens_required: rng.bool(),
            ..header()
        };
        let text = render(&c, &h);
        if let Err(e) = check(&c, &h, &text) {
            panic!("seed {seed}: {e}\n{c:#?}\n{text}");
        }
        // A walk keeps only what the loader takes: nothing is left out of the file.
        assert!(
            c.leaves
                .get("user-data")
                .is_none_or(|u| u.len() <= 16 * 1024),
            "seed {seed}"
        );
    }
}
