//! `[journal]`: the request journal (who asked what, see [`crate::journal`]). Whether it
//! records follows a reload; its size and file are set up at start.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Reload;

/// The largest ring: about 400 bytes an entry at most, so some 40 MiB.
pub const MAX_SIZE: usize = 100_000;

/// `[journal]` as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawJournal {
    /// Record each request (and look up which local user's process asked).
    pub(super) enabled: bool,
    /// How many requests are kept in memory (the oldest go first).
    pub(super) size: NonZeroUsize,
    /// A file the entries are also written to, one JSON object a line (reopened on SIGHUP,
    /// for logrotate).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
}

impl Default for RawJournal {
    fn default() -> Self {
        RawJournal {
            // Off by default: recording costs ~8 % CPU per keep-alive request and the
            // owner lookup ~25 % per new connection (bench/run's on/off ratio), more than the
            // bar for a default. The package's config turns it on.
            enabled: false,
            size: NonZeroUsize::new(crate::journal::DEFAULT_SIZE).expect("not zero"),
            file: None,
        }
    }
}

/// Why `size` is refused, if it is (blamed on the key by the loader).
pub(super) fn size_problem(size: NonZeroUsize) -> Option<String> {
    (size.get() > MAX_SIZE).then(|| {
        format!("a journal of {size} requests is more than the {MAX_SIZE} allowed (each costs up to ~400 bytes of memory)")
    })
}

/// The checked `[journal]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    enabled: bool,
    size: NonZeroUsize,
    file: Option<PathBuf>,
}

impl Journal {
    pub(super) fn resolve(raw: RawJournal) -> Journal {
        Journal {
            enabled: raw.enabled,
            size: raw.size,
            file: raw.file,
        }
    }

    pub(super) fn to_raw(&self) -> RawJournal {
        RawJournal {
            enabled: self.enabled,
            size: self.size,
            file: self.file.clone(),
        }
    }

    /// Whether requests are recorded.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How many entries the ring keeps.
    pub fn size(&self) -> usize {
        self.size.get()
    }

    /// The JSON-lines file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

impl Default for Journal {
    fn default() -> Self {
        Journal::resolve(RawJournal::default())
    }
}

/// The ring and the file are set up at start; `enabled` follows a reload.
impl Reload for Journal {
    fn needs_restart(&self, new: &Self) -> Vec<&'static str> {
        super::restart::if_changed(
            &(&self.size, &self.file),
            &(&new.size, &new.file),
            "config reload: [journal] size/file changed; restart the daemon to apply that",
        )
    }
}
