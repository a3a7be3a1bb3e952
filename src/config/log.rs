//! `[log]`: where the daemon writes besides journald/stderr. Logging is set up once at start,
//! so a new `file` or `level` needs a restart; `requests` is part of each snapshot.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Reload;

/// `[log]` as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawLog {
    /// A file the daemon also logs to, reopened on SIGHUP (for logrotate).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    /// Log one line per request (method, path, status; never a token).
    requests: bool,
    /// A tracing filter, e.g. `info` or `fake_metadata=debug`.
    pub(super) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            file: None,
            requests: false,
            level: "info".into(),
        }
    }
}

/// Why `level` is not a tracing filter, if it is not (blamed on the key by the loader).
pub(super) fn level_problem(level: &str) -> Option<String> {
    let e = level.parse::<tracing_subscriber::filter::Targets>().err()?;
    Some(format!("`{level}` is not a log filter: {e}"))
}

/// The checked `[log]`: `level` is a valid tracing filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    file: Option<PathBuf>,
    requests: bool,
    level: String,
}

impl Log {
    /// The section of a file whose `level` passed [`level_problem`].
    pub(super) fn resolve(raw: RawLog) -> Log {
        Log {
            file: raw.file,
            requests: raw.requests,
            level: raw.level,
        }
    }

    pub(super) fn to_raw(&self) -> RawLog {
        RawLog {
            file: self.file.clone(),
            requests: self.requests,
            level: self.level.clone(),
        }
    }

    /// The file logged to besides journald/stderr, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether each request is logged.
    pub fn requests(&self) -> bool {
        self.requests
    }

    /// The tracing filter.
    pub fn level(&self) -> &str {
        &self.level
    }
}

impl Default for Log {
    fn default() -> Self {
        Log::resolve(RawLog::default())
    }
}

/// The subscriber and the file are set up at start.
impl Reload for Log {
    fn needs_restart(&self, new: &Self) -> Vec<&'static str> {
        super::restart::if_changed(
            &(&self.file, &self.level),
            &(&new.file, &new.level),
            "config reload: [log] file/level changed; restart the daemon to apply that",
        )
    }
}
