//! The live overlay over the configured tree: values set or removed at paths (`ctl set`,
//! `ctl unset`) and instance tags set or removed (`ctl tags`).

use std::collections::BTreeMap;

use crate::metadata::TreeBuilder;
use crate::types::{MetaPath, TagKey};

/// What was set and removed live; `Some(v)`: served, `None`: removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    pub(super) paths: BTreeMap<MetaPath, Option<String>>,
    pub(super) tags: BTreeMap<TagKey, Option<String>>,
}

impl Overlay {
    pub fn set(&mut self, path: MetaPath, value: String) -> String {
        let msg = format!("{path} = {value:?}");
        self.paths.insert(path, Some(value));
        msg
    }

    pub fn unset(&mut self, path: MetaPath) -> String {
        let msg = format!("{path} removed");
        self.paths.insert(path, None);
        msg
    }

    pub fn set_tag(&mut self, key: TagKey, value: String) -> String {
        let msg = format!("tag {key} = {value:?}");
        self.tags.insert(key, Some(value));
        msg
    }

    pub fn unset_tag(&mut self, key: TagKey) -> String {
        let msg = format!("tag {key} removed");
        self.tags.insert(key, None);
        msg
    }

    /// The instance tags after the live changes.
    pub fn tags(&self, configured: &BTreeMap<TagKey, String>) -> BTreeMap<TagKey, String> {
        let mut t = configured.clone();
        for (k, v) in &self.tags {
            match v {
                Some(v) => t.insert(k.clone(), v.clone()),
                None => t.remove(k),
            };
        }
        t
    }

    /// Whether tags were changed live.
    pub fn changes_tags(&self) -> bool {
        !self.tags.is_empty()
    }

    /// Writes the values set and removed into the tree, over what it has.
    pub fn extend(&self, tree: &mut TreeBuilder) {
        for (path, v) in &self.paths {
            match v {
                Some(v) => tree.text(path.as_str(), v.clone()),
                None => tree.remove(path.as_str()),
            };
        }
    }
}
