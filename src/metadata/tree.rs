//! The metadata tree as data: a map from path to leaf bytes, from which every directory
//! listing is derived once. A [`Tree`] is immutable and precomputed: a request is one hash
//! lookup that yields ready bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

/// What a path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A value: `text/plain`, or raw bytes (`application/octet-stream`, user-data).
    Leaf { body: Bytes, binary: bool },
    /// A directory: its listing, one entry per line, sub-directories with a trailing `/`.
    Dir { listing: Bytes },
}

/// Collects leaves; [`TreeBuilder::build`] derives the directories.
#[derive(Debug, Default, Clone)]
pub struct TreeBuilder {
    leaves: BTreeMap<String, (Bytes, bool)>,
    /// Listings that EC2 prints differently from the path names (`public-keys/` → `0=name`).
    listing_overrides: BTreeMap<String, String>,
    /// Listings crawled from a real instance: served as crawled, reconciled with the
    /// children the tree really has ([`reconcile`]).
    replayed_listings: BTreeMap<String, String>,
}

impl TreeBuilder {
    /// Sets a text leaf, replacing whatever was at that path, above it or below it.
    pub fn text(&mut self, path: &str, value: impl Into<String>) -> &mut Self {
        self.put(path, Bytes::from(value.into()), false)
    }

    /// Sets a binary leaf (served as `application/octet-stream`).
    pub fn binary(&mut self, path: &str, value: impl Into<Bytes>) -> &mut Self {
        self.put(path, value.into(), true)
    }

    /// Prints a directory's listing as given instead of derived.
    pub fn listing(&mut self, dir: &str, listing: impl Into<String>) -> &mut Self {
        self.listing_overrides
            .insert(dir.to_string(), listing.into());
        self
    }

    /// Sets a leaf from ready bytes: `binary` serves it as `application/octet-stream`.
    pub fn leaf(&mut self, path: &str, body: Bytes, binary: bool) -> &mut Self {
        self.put(path, body, binary)
    }

    /// Serves a directory's listing as crawled, as long as its children are all there: an
    /// entry whose child is missing is left out, a child the listing lacks is inserted
    /// (see [`reconcile`]).
    pub fn replayed_listing(&mut self, dir: &str, listing: impl Into<String>) -> &mut Self {
        self.replayed_listings
            .insert(dir.to_string(), listing.into());
        self
    }

    /// Removes a leaf or a whole directory. Touches only what it removes: a directory's
    /// leaves sort together right after `PATH/`, so a tree is built in n log n, not n².
    pub fn remove(&mut self, path: &str) -> &mut Self {
        use std::ops::Bound::{Included, Unbounded};
        self.leaves.remove(path);
        let below = format!("{path}/");
        let gone: Vec<String> = self
            .leaves
            .range::<str, _>((Included(below.as_str()), Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&below))
            .cloned()
            .collect();
        for k in gone {
            self.leaves.remove(&k);
        }
        self
    }

    fn put(&mut self, path: &str, body: Bytes, binary: bool) -> &mut Self {
        // A leaf cannot also be a directory: the newest value wins.
        self.remove(path);
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            self.leaves.remove(&path[..at + i]);
            at += i + 1;
        }
        self.leaves.insert(path.to_string(), (body, binary));
        self
    }

    /// Derives every listing and freezes the tree.
    pub fn build(&self) -> Tree {
        let mut dirs: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        dirs.entry("").or_default();
        for path in self.leaves.keys() {
            let mut child = path.as_str();
            let mut is_dir = false;
            loop {
                let (parent, name) = match child.rfind('/') {
                    Some(i) => (&child[..i], &child[i + 1..]),
                    None => ("", child),
                };
                // The version root lists its sections without a trailing slash, as EC2 does.
                let entry = if is_dir && !parent.is_empty() {
                    format!("{name}/")
                } else {
                    name.to_string()
                };
                let fresh = dirs.entry(parent).or_default().insert(entry);
                if parent.is_empty() || !fresh && is_dir {
                    break;
                }
                child = parent;
                is_dir = true;
            }
        }
        let mut nodes = HashMap::with_capacity(self.leaves.len() + dirs.len());
        for (dir, entries) in dirs {
            let listing = match (
                self.listing_overrides.get(dir),
                self.replayed_listings.get(dir),
            ) {
                (Some(l), _) => l.clone(),
                (None, Some(crawled)) => reconcile(crawled, &entries),
                (None, None) => entries.into_iter().collect::<Vec<_>>().join("\n"),
            };
            nodes.insert(
                dir.into(),
                Node::Dir {
                    listing: Bytes::from(listing),
                },
            );
        }
        for (path, (body, binary)) in &self.leaves {
            nodes.insert(
                path.as_str().into(),
                Node::Leaf {
                    body: body.clone(),
                    binary: *binary,
                },
            );
        }
        Tree { nodes }
    }
}

impl TreeBuilder {
    /// One tree per entry of [`super::VERSIONS`], each with only the leaves that version had
    /// ([`super::versions::since`]); the last one, `latest`, has them all. A version that adds
    /// nothing to the one before shares its tree, so a snapshot holds one tree per epoch.
    pub fn build_versions(&self) -> Vec<Arc<Tree>> {
        let since: Vec<usize> = self
            .leaves
            .keys()
            .map(|p| super::versions::since(p))
            .collect();
        let mut out: Vec<Arc<Tree>> = Vec::with_capacity(super::VERSIONS.len());
        let mut last_count = None;
        for v in 0..super::VERSIONS.len() {
            let count = since.iter().filter(|&&s| s <= v).count();
            if let (Some(prev), Some(tree)) = (last_count, out.last())
                && prev == count
            {
                let tree = tree.clone();
                out.push(tree);
                continue;
            }
            last_count = Some(count);
            let tree = if count == self.leaves.len() {
                self.build()
            } else {
                TreeBuilder {
                    leaves: self
                        .leaves
                        .iter()
                        .zip(&since)
                        .filter(|&(_, &s)| s <= v)
                        .map(|((k, leaf), _)| (k.clone(), leaf.clone()))
                        .collect(),
                    listing_overrides: self.listing_overrides.clone(),
                    replayed_listings: self.replayed_listings.clone(),
                }
                .build()
            };
            out.push(Arc::new(tree));
        }
        out
    }
}

/// The child a listing line names: `name/` and `name` name `name`; `0=key-name` (how
/// `public-keys/` lists its keys) names `0`.
pub fn listed_child(line: &str) -> &str {
    let name = line.strip_suffix('/').unwrap_or(line);
    match name.split_once('=') {
        Some((n, _)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => name,
    }
}

/// A crawled listing against the entries the tree derives (`name`, `name/`): the crawled
/// lines in their order and spelling whose child exists, with each child the listing lacks
/// inserted before the first line that sorts after it. When the children are those that
/// were crawled, the listing is the crawled bytes.
pub fn reconcile(crawled: &str, derived: &BTreeSet<String>) -> String {
    let children: BTreeSet<&str> = derived.iter().map(|e| listed_child(e)).collect();
    let lines: Vec<&str> = crawled
        .split('\n')
        .filter(|l| l.is_empty() || children.contains(listed_child(l)))
        .collect();
    let listed: BTreeSet<&str> = lines.iter().map(|l| listed_child(l)).collect();
    // Each missing entry goes before the first non-empty crawled line that sorts after it,
    // else after the last non-empty line. `derived` is sorted, so that line never moves
    // back: one merge, linear in the listing and the entries.
    let mut missing = derived
        .iter()
        .map(String::as_str)
        .filter(|e| !listed.contains(listed_child(e)))
        .peekable();
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + derived.len());
    for (i, line) in lines.iter().enumerate() {
        if i == end {
            out.extend(missing.by_ref());
        } else if !line.is_empty() {
            while let Some(e) = missing.next_if(|e| *line > *e) {
                out.push(e);
            }
        }
        out.push(line);
    }
    out.extend(missing);
    out.join("\n")
}

/// An immutable, precomputed tree. Paths are relative to a version root, without leading or
/// trailing slashes (`""` is the version root itself).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: HashMap<Box<str>, Node>,
}

impl Tree {
    /// The node at a normalized path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every path in the tree, sorted; for tests and tools.
    pub fn paths(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.nodes.keys().map(AsRef::as_ref).collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(t: &Tree, p: &str) -> String {
        match t.get(p) {
            Some(Node::Dir { listing }) => String::from_utf8(listing.to_vec()).unwrap(),
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn listings_are_derived_sorted_with_dir_slashes() {
        let mut b = TreeBuilder::default();
        b.text("meta-data/placement/region", "us-east-1")
            .text("meta-data/instance-id", "i-1")
            .text("meta-data/events/maintenance/scheduled", "[]")
            .text("dynamic/instance-identity/document", "{}");
        let t = b.build();
        assert_eq!(listing(&t, ""), "dynamic\nmeta-data");
        assert_eq!(listing(&t, "meta-data"), "events/\ninstance-id\nplacement/");
        assert_eq!(listing(&t, "meta-data/events"), "maintenance/");
        assert!(matches!(
            t.get("meta-data/instance-id"),
            Some(Node::Leaf { .. })
        ));
        assert!(t.get("meta-data/nope").is_none());
    }

    fn set(entries: &[&str]) -> BTreeSet<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    /// The insertion `reconcile` did before it was a merge (quadratic): the merge must give
    /// the same listing for any crawled listing and children.
    fn reconcile_by_insertion(crawled: &str, derived: &BTreeSet<String>) -> String {
        let children: BTreeSet<&str> = derived.iter().map(|e| listed_child(e)).collect();
        let mut lines: Vec<&str> = crawled
            .split('\n')
            .filter(|l| l.is_empty() || children.contains(listed_child(l)))
            .collect();
        let listed: BTreeSet<&str> = lines.iter().map(|l| listed_child(l)).collect();
        for entry in derived {
            if listed.contains(listed_child(entry)) {
                continue;
            }
            let at = lines
                .iter()
                .position(|l| !l.is_empty() && *l > entry.as_str())
                .unwrap_or_else(|| {
                    lines
                        .iter()
                        .rposition(|l| !l.is_empty())
                        .map_or(0, |i| i + 1)
                });
            lines.insert(at, entry);
        }
        lines.join("\n")
    }

    #[test]
    fn reconcile_merges_as_insertion_did() {
        let names = ["a", "b", "c/", "d", "0=k", "0/", "e/", "", "zz", "b/"];
        let mut rng = fastrand::Rng::with_seed(27);
        for _ in 0..5000 {
            let n = rng.usize(0..8);
            let crawled: Vec<&str> = (0..n).map(|_| names[rng.usize(..names.len())]).collect();
            let crawled = crawled.join("\n");
            let derived: BTreeSet<String> = (0..rng.usize(0..8))
                .map(|_| names[rng.usize(..names.len())].to_string())
                .filter(|e| !e.is_empty())
                .collect();
            assert_eq!(
                reconcile(&crawled, &derived),
                reconcile_by_insertion(&crawled, &derived),
                "{crawled:?} {derived:?}"
            );
        }
    }

    #[test]
    fn a_replayed_listing_is_served_as_crawled_when_its_children_are_there() {
        // Crawled order and spelling win over the derived ones.
        let crawled = "b\n0=my-key\na/\n";
        assert_eq!(reconcile(crawled, &set(&["0/", "a/", "b"])), crawled);
        // A child gone (time-bound state not carried) leaves the listing; a new one (the
        // scenario's spot notice) is inserted where it sorts.
        assert_eq!(
            reconcile(
                "ami-id\nevents/\ninstance-id",
                &set(&["ami-id", "instance-id", "spot/"])
            ),
            "ami-id\ninstance-id\nspot/"
        );
        assert_eq!(
            reconcile("ami-id\nzz", &set(&["ami-id", "iam/", "zz"])),
            "ami-id\niam/\nzz"
        );
        let mut b = TreeBuilder::default();
        b.text("meta-data/public-keys/0/openssh-key", "ssh-ed25519 AAAA")
            .text("meta-data/z", "1")
            .text("meta-data/a", "2")
            .replayed_listing("meta-data", "z\npublic-keys/\na\ngone/")
            .replayed_listing("meta-data/public-keys", "0=me");
        let t = b.build();
        assert_eq!(listing(&t, "meta-data"), "z\npublic-keys/\na");
        assert_eq!(listing(&t, "meta-data/public-keys"), "0=me");
        assert_eq!(listing(&t, "meta-data/public-keys/0"), "openssh-key");
        let dated = b.build_versions();
        assert_eq!(listing(&dated[0], "meta-data"), "z\npublic-keys/\na");
    }

    #[test]
    fn a_new_value_replaces_a_directory_or_a_leaf_in_its_way() {
        let mut b = TreeBuilder::default();
        b.text("meta-data/a/b", "1").text("meta-data/a", "2");
        assert_eq!(b.build().paths(), ["", "meta-data", "meta-data/a"]);
        b.text("meta-data/a/c", "3");
        assert_eq!(
            b.build().paths(),
            ["", "meta-data", "meta-data/a", "meta-data/a/c"]
        );
    }
}
