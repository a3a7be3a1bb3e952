//! The walk, without sockets: which paths to fetch next, what a listing names, what is
//! never copied (and why), and the bounds that end a walk whatever the endpoint answers
//! (paths, depth, entry shape; the leaf size is the fetcher's, from [`Limits`]).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use bytes::Bytes;

use crate::config::{CONFIG_MAX, USER_DATA_MAX};

/// Bounds on a walk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Fetches in all; a bigger tree is cut there (a real instance has a few hundred).
    pub max_paths: usize,
    /// Path segments below `meta-data`/`dynamic`; deeper means listings that loop.
    pub max_depth: usize,
    /// Bytes of one reply; user data has the loader's own cap ([`Limits::max_body_of`]).
    pub max_body: usize,
    /// Bytes kept in all (bodies, paths, problems): the written file, whose escaping at
    /// most sextuples them (a control byte becomes `\u0001`), stays under the loader's
    /// [`CONFIG_MAX`].
    pub max_kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_paths: 5000,
            max_depth: 12,
            max_body: 64 * 1024,
            max_kept: CONFIG_MAX / 8,
        }
    }
}

impl Limits {
    /// The most a reply to `path` may hold: the loader refuses user data over EC2's 16 KiB
    /// ([`USER_DATA_MAX`]), so the crawl does not keep more.
    pub fn max_body_of(&self, path: &str) -> usize {
        if path == "user-data" {
            self.max_body.min(USER_DATA_MAX)
        } else {
            self.max_body
        }
    }
}

/// One GET: a directory's listing or a leaf, by its path below the version root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub path: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Listing,
    Leaf,
}

impl Fetch {
    /// The request path below the endpoint (`/latest/meta-data/`, `/latest/user-data`).
    pub fn uri_path(&self) -> String {
        match self.kind {
            Kind::Listing => format!("/latest/{}/", self.path),
            Kind::Leaf => format!("/latest/{}", self.path),
        }
    }
}

/// What a fetch got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with these bytes.
    Body(Bytes),
    /// Any other status.
    Status(u16),
    /// No complete reply: why (timed out, cut short, over the size limit, refused).
    Failed(String),
}

/// Why a path is not copied. Each is said once, with the paths, in the written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotCopied {
    /// IAM and identity credentials: keys, secrets and tokens are never fetched.
    Credentials,
    /// The identity document's signatures: the box signs the document with its own key.
    Signatures,
    /// Spot notices, events, rebalance, ASG state: the scenario and `ctl` drive them.
    TimeBound,
    /// `--no-user-data`.
    UserData,
}

/// What to do with a path found in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Copy,
    /// Fetched but kept out of the tree: read for `[iam]` (`iam/info`).
    ReadOnly,
    Skip(NotCopied),
}

/// What is never copied. `iam/security-credentials/` is listed (the role's name) but none
/// of its leaves is fetched: a key never enters this process.
fn rule(path: &str, kind: Kind) -> Rule {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if path == "meta-data/iam/info" {
        Rule::ReadOnly
    } else if path == "meta-data/iam" || path == "meta-data/iam/security-credentials" {
        if kind == Kind::Listing {
            Rule::Copy
        } else {
            Rule::Skip(NotCopied::Credentials)
        }
    } else if under("meta-data/iam") || under("meta-data/identity-credentials") {
        Rule::Skip(NotCopied::Credentials)
    } else if ["signature", "pkcs7", "rsa2048"]
        .iter()
        .any(|s| path == format!("dynamic/instance-identity/{s}"))
    {
        Rule::Skip(NotCopied::Signatures)
    } else if under("meta-data/spot") || under("meta-data/events") || under("meta-data/autoscaling")
    {
        Rule::Skip(NotCopied::TimeBound)
    } else {
        Rule::Copy
    }
}

/// The longest name a listing line may give (EC2's are a few dozen bytes; tag keys 128): a
/// path is then at most `max_depth` of them.
pub const MAX_NAME: usize = 255;

/// How a listing line reads: a sub-directory (`name/`, or `0=key-name` under
/// `public-keys/`), a leaf, or nothing (an empty line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir(String),
    Leaf(String),
    Blank,
}

/// Parses one line of a listing; `Err` says why it cannot be a name in a tree (a `/` inside
/// it, `.` or `..`, a control character: a listing that tries to leave its directory).
pub fn entry(line: &str) -> Result<Entry, String> {
    if line.is_empty() {
        return Ok(Entry::Blank);
    }
    let (name, dir) = match line.strip_suffix('/') {
        Some(n) => (n, true),
        None => match line.split_once('=') {
            Some((n, _)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => (n, true),
            _ => (line, false),
        },
    };
    if name.len() > MAX_NAME {
        let start: String = line.chars().take(32).collect();
        return Err(format!(
            "`{}…` is longer than {MAX_NAME} bytes",
            start.escape_debug()
        ));
    }
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(format!("`{}` is not a name", line.escape_debug()));
    }
    Ok(if dir {
        Entry::Dir(name.into())
    } else {
        Entry::Leaf(name.into())
    })
}

/// What a walk collected.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Crawled {
    pub listings: BTreeMap<String, String>,
    pub leaves: BTreeMap<String, Bytes>,
    /// `meta-data/iam/info`, read for the instance profile (not replayed).
    pub iam_info: Option<String>,
    /// Paths seen in listings and not copied, by reason.
    pub not_copied: BTreeMap<NotCopied, BTreeSet<String>>,
    /// What went wrong: the file is then marked partial.
    pub problems: Vec<String>,
    /// Fetches made.
    pub fetched: usize,
}

/// A walk in progress: hands out fetches, takes their outcomes.
#[derive(Debug)]
pub struct Walk {
    limits: Limits,
    queue: VecDeque<Fetch>,
    seen: HashSet<String>,
    issued: usize,
    stopped: bool,
    /// Bytes kept so far, against `limits.max_kept`.
    kept: usize,
    pub crawled: Crawled,
}

impl Walk {
    /// A walk of `meta-data/`, `dynamic/` and, if asked, `user-data`.
    pub fn new(limits: Limits, user_data: bool) -> Walk {
        let mut w = Walk {
            limits,
            queue: VecDeque::new(),
            seen: HashSet::new(),
            issued: 0,
            stopped: false,
            kept: 0,
            crawled: Crawled::default(),
        };
        w.push("meta-data".into(), Kind::Listing);
        w.push("dynamic".into(), Kind::Listing);
        if user_data {
            w.push("user-data".into(), Kind::Leaf);
        } else {
            w.crawled
                .not_copied
                .entry(NotCopied::UserData)
                .or_default()
                .insert("user-data".into());
        }
        w
    }

    fn push(&mut self, path: String, kind: Kind) {
        if self.seen.insert(path.clone()) {
            self.queue.push_back(Fetch { path, kind });
        } else {
            self.problem(format!("{path} is listed twice (a loop in the listings?)"));
        }
    }

    fn problem(&mut self, p: String) {
        if self.full() {
            return;
        }
        // Written twice: a comment and `partial`.
        self.keep(2 * p.len());
        self.crawled.problems.push(p);
    }

    fn full(&self) -> bool {
        self.kept > self.limits.max_kept
    }

    /// Counts `n` more bytes kept; past `max_kept` the walk ends, with what it has, and
    /// records nothing more but the bodies of fetches already in flight.
    fn keep(&mut self, n: usize) {
        let was_full = self.full();
        self.kept += n;
        if self.full() && !was_full {
            self.crawled.problems.push(format!(
                "stopped at over {} bytes kept, more than any instance's tree holds; {} listed \
                 paths not fetched",
                self.limits.max_kept,
                self.queue.len()
            ));
            self.queue.clear();
            self.stopped = true;
        }
    }

    /// The next fetch, if any is left within the bounds.
    pub fn next_fetch(&mut self) -> Option<Fetch> {
        if self.stopped {
            return None;
        }
        let f = self.queue.pop_front()?;
        if self.issued >= self.limits.max_paths {
            self.stopped = true;
            let left = self.queue.len() + 1;
            self.queue.clear();
            self.problem(format!(
                "stopped after {} paths, {left} more were listed: the tree is bigger than any \
                 instance's (a loop in the listings?)",
                self.limits.max_paths
            ));
            return None;
        }
        self.issued += 1;
        Some(f)
    }

    /// Ends the walk early (a deadline): what was not fetched is a problem.
    pub fn stop(&mut self, why: &str) {
        if !self.queue.is_empty() {
            self.problem(format!(
                "{why}; {} listed paths not fetched",
                self.queue.len()
            ));
        }
        self.queue.clear();
        self.stopped = true;
    }

    /// Records what a fetch got; a listing queues its children.
    pub fn record(&mut self, f: Fetch, outcome: Outcome) {
        self.crawled.fetched += 1;
        let max = self.limits.max_body_of(&f.path);
        let body = match outcome {
            Outcome::Body(b) if b.len() > max => {
                return self.problem(format!(
                    "{}: the reply is {} bytes, over the {max}-byte limit",
                    f.uri_path(),
                    b.len()
                ));
            }
            Outcome::Body(b) => b,
            Outcome::Status(404) if f.path == "user-data" => return,
            Outcome::Status(s) => {
                return self.problem(format!("{} answered {s}", f.uri_path()));
            }
            Outcome::Failed(why) => return self.problem(format!("{}: {why}", f.uri_path())),
        };
        self.keep(f.path.len() + body.len());
        if f.path == "meta-data/iam/info" {
            self.crawled.iam_info = String::from_utf8(body.to_vec()).ok();
            return;
        }
        match f.kind {
            Kind::Leaf => {
                self.crawled.leaves.insert(f.path, body);
            }
            Kind::Listing => self.listing(f.path, body),
        }
    }

    fn listing(&mut self, dir: String, body: Bytes) {
        let Ok(text) = String::from_utf8(body.to_vec()) else {
            return self.problem(format!("the listing of {dir}/ is not text"));
        };
        let depth = dir.split('/').count();
        for line in text.split('\n') {
            let (name, kind) = match entry(line) {
                Ok(Entry::Blank) => continue,
                Ok(Entry::Dir(n)) => (n, Kind::Listing),
                Ok(Entry::Leaf(n)) => (n, Kind::Leaf),
                Err(e) => {
                    self.problem(format!("the listing of {dir}/ has an entry that {e}"));
                    continue;
                }
            };
            let path = format!("{dir}/{name}");
            if depth >= self.limits.max_depth {
                self.problem(format!(
                    "{path} is more than {} levels deep: not followed (a loop in the listings?)",
                    self.limits.max_depth
                ));
                continue;
            }
            match rule(&path, kind) {
                Rule::Skip(why) => {
                    self.keep(path.len());
                    self.crawled.not_copied.entry(why).or_default().insert(path);
                }
                Rule::Copy | Rule::ReadOnly => self.push(path, kind),
            }
        }
        self.crawled.listings.insert(dir, text);
    }

    /// Whether nothing is left to hand out.
    pub fn is_done(&self) -> bool {
        self.stopped || self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(w: &mut Walk, mut answer: impl FnMut(&Fetch) -> Outcome) -> Vec<String> {
        let mut asked = Vec::new();
        while let Some(f) = w.next_fetch() {
            asked.push(f.uri_path());
            let o = answer(&f);
            w.record(f, o);
        }
        asked
    }

    fn body(s: &str) -> Outcome {
        Outcome::Body(Bytes::from(s.to_string()))
    }

    #[test]
    fn listing_lines_name_dirs_and_leaves() {
        assert_eq!(entry("placement/"), Ok(Entry::Dir("placement".into())));
        assert_eq!(entry("0=my-key"), Ok(Entry::Dir("0".into())));
        assert_eq!(entry("a=b"), Ok(Entry::Leaf("a=b".into())));
        assert_eq!(entry("ami-id"), Ok(Entry::Leaf("ami-id".into())));
        assert_eq!(entry(""), Ok(Entry::Blank));
        for bad in ["../", "..", "./", "a/b", "/", "x\r"] {
            assert!(entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_signatures_and_time_bound_state_are_never_fetched() {
        let mut w = Walk::new(Limits::default(), true);
        let asked = drive(&mut w, |f| match f.path.as_str() {
            "meta-data" => {
                body("ami-id\niam/\nidentity-credentials/\nspot/\nevents/\npublic-keys/")
            }
            "meta-data/iam" => body("info\nsecurity-credentials/"),
            "meta-data/iam/security-credentials" => body("web-role"),
            "meta-data/iam/info" => body("{\"InstanceProfileId\" : \"AIPA\"}"),
            "meta-data/public-keys" => body("0=me"),
            "meta-data/public-keys/0" => body("openssh-key"),
            "dynamic" => body("instance-identity/"),
            "dynamic/instance-identity" => body("document\npkcs7\nrsa2048\nsignature"),
            "user-data" => Outcome::Status(404),
            _ => body("v"),
        });
        assert!(
            asked
                .iter()
                .all(|p| !p.contains("security-credentials/web-role")
                    && !p.contains("identity-credentials")
                    && !p.contains("spot")
                    && !p.contains("events")
                    && !p.contains("signature")
                    && !p.contains("pkcs7")),
            "{asked:?}"
        );
        let c = &w.crawled;
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.listings["meta-data/iam/security-credentials"], "web-role");
        assert_eq!(
            c.iam_info.as_deref(),
            Some("{\"InstanceProfileId\" : \"AIPA\"}")
        );
        assert!(!c.leaves.contains_key("meta-data/iam/info"));
        assert_eq!(c.leaves["meta-data/public-keys/0/openssh-key"], "v");
        assert!(
            c.not_copied[&NotCopied::Credentials]
                .contains("meta-data/iam/security-credentials/web-role")
        );
        assert!(c.not_copied[&NotCopied::TimeBound].contains("meta-data/spot"));
        assert!(c.not_copied[&NotCopied::Signatures].contains("dynamic/instance-identity/pkcs7"));
        assert!(!c.leaves.contains_key("user-data"), "404: no user data");
    }

    #[test]
    fn loops_and_bad_entries_end_the_walk_with_problems() {
        // Every directory lists itself again: the depth bound ends it.
        let mut w = Walk::new(Limits::default(), false);
        let asked = drive(&mut w, |f| match f.kind {
            Kind::Listing => body("again/\n../\nx"),
            Kind::Leaf => body("1"),
        });
        assert!(asked.len() < 60, "{}", asked.len());
        let p = w.crawled.problems.join("\n");
        assert!(p.contains("levels deep"), "{p}");
        assert!(p.contains("`../` is not a name"), "{p}");
        // A wide tree: the path bound ends it.
        let limits = Limits {
            max_paths: 100,
            ..Limits::default()
        };
        let mut w = Walk::new(limits, false);
        let wide: String = (0..1000).map(|i| format!("d{i}/\n")).collect();
        let asked = drive(&mut w, |_| body(&wide));
        assert_eq!(asked.len(), 100);
        assert!(
            w.crawled
                .problems
                .iter()
                .any(|p| p.contains("stopped after 100 paths"))
        );
    }

    #[test]
    fn failures_are_problems_and_the_rest_is_kept() {
        let mut w = Walk::new(Limits::default(), true);
        drive(&mut w, |f| match f.path.as_str() {
            "meta-data" => body("a\nb"),
            "meta-data/a" => Outcome::Failed("the reply was cut short".into()),
            "dynamic" => Outcome::Status(500),
            "user-data" => Outcome::Body(Bytes::from_static(&[0x1f, 0x8b, 0xff])),
            _ => body("2"),
        });
        let c = &w.crawled;
        assert_eq!(c.leaves["meta-data/b"], "2");
        assert_eq!(
            c.leaves["user-data"],
            Bytes::from_static(&[0x1f, 0x8b, 0xff])
        );
        let p = c.problems.join("\n");
        assert_eq!(c.problems.len(), 2, "{p}");
        assert!(
            p.contains("/latest/meta-data/a: the reply was cut short"),
            "{p}"
        );
        assert!(p.contains("/latest/dynamic/ answered 500"), "{p}");
    }

    /// The crawler and the loader agree: user data is kept up to the loader's cap
    /// (`config::USER_DATA_MAX`), whatever the reply limit; one byte more is a problem.
    #[test]
    fn user_data_over_the_loaders_cap_is_a_problem_and_not_kept() {
        for (n, kept) in [(USER_DATA_MAX, true), (USER_DATA_MAX + 1, false)] {
            let mut w = Walk::new(Limits::default(), true);
            drive(&mut w, |f| match f.path.as_str() {
                "user-data" => Outcome::Body(Bytes::from(vec![b'u'; n])),
                _ => body(""),
            });
            assert_eq!(w.crawled.leaves.contains_key("user-data"), kept, "{n}");
            let p = w.crawled.problems.join("\n");
            assert_eq!(
                p.contains(
                    "/latest/user-data: the reply is 16385 bytes, over the 16384-byte limit"
                ),
                !kept,
                "{p}"
            );
        }
    }

    /// However the endpoint answers, a walk keeps about `max_kept` bytes at most (one reply
    /// more), so the escaped file stays under the loader's limit; names are short.
    #[test]
    fn a_walk_keeps_a_bounded_number_of_bytes() {
        let limits = Limits {
            max_kept: 100_000,
            ..Limits::default()
        };
        let mut w = Walk::new(limits, false);
        let wide: String = (0..2000).map(|i| format!("d{i}/\n.\n")).collect();
        drive(&mut w, |f| match f.kind {
            Kind::Listing => body(&wide),
            Kind::Leaf => body("x"),
        });
        let c = &w.crawled;
        let kept: usize = c
            .listings
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + c.problems.iter().map(|p| 2 * p.len()).sum::<usize>();
        assert!(kept <= 100_000 + 2 * 64 * 1024, "{kept}");
        assert!(
            c.problems
                .iter()
                .any(|p| p.contains("stopped at over 100000 bytes kept")),
            "{:?}",
            c.problems.last()
        );
        let long = "n".repeat(MAX_NAME + 1);
        assert!(
            entry(&long)
                .unwrap_err()
                .contains("is longer than 255 bytes")
        );
        assert!(entry(&long[1..]).is_ok());
    }
}
