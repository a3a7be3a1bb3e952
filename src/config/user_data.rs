//! `[user-data]`: inline `text` or a `file` of raw bytes (at most 16 KiB), never both. The
//! bytes are read when the config is loaded, so a reload reads the file again and applies it.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::locate::Spans;
use super::{ConfigError, USER_DATA_MAX};

/// `[user-data]` as the file spells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawUserData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) file: Option<PathBuf>,
}

impl RawUserData {
    pub(super) fn is_unset(&self) -> bool {
        self.text.is_none() && self.file.is_none()
    }
}

/// The checked `[user-data]`: its bytes, read once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserData {
    raw: RawUserData,
    bytes: Option<Bytes>,
}

impl UserData {
    /// The bytes to serve. A `file` is read now, once: at most the 16 KiB EC2 allows (one
    /// byte more tells that it is too long), only a regular file (a FIFO or a device would
    /// block or never end), opened without blocking; a problem names the `file` key.
    pub(super) fn load(raw: RawUserData, spans: &Spans<'_>) -> Result<UserData, ConfigError> {
        let bytes = match (&raw.text, &raw.file) {
            (Some(t), _) => Some(Bytes::from(t.clone())),
            (None, Some(path)) => Some(read(path, spans)?),
            (None, None) => None,
        };
        Ok(UserData { raw, bytes })
    }

    pub(super) fn to_raw(&self) -> RawUserData {
        self.raw.clone()
    }

    /// The raw user data, as read when this config was loaded.
    pub fn bytes(&self) -> Option<&Bytes> {
        self.bytes.as_ref()
    }

    /// The file it was read from, if it was.
    pub fn file(&self) -> Option<&Path> {
        self.raw.file.as_deref()
    }
}

super::restart::applied_on_reload!(UserData);

fn read(path: &Path, spans: &Spans<'_>) -> Result<Bytes, ConfigError> {
    let blame = |what: String| {
        ConfigError::Invalid(vec![spans.blame(
            &["user-data", "file"],
            format!("user data file {}: {what}", path.display()),
        )])
    };
    let f = open_regular(path, "user data").map_err(blame)?;
    let mut bytes = Vec::new();
    f.take(USER_DATA_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| blame(format!("cannot read it: {e}")))?;
    if bytes.len() > USER_DATA_MAX {
        return Err(blame(
            "is over 16 KiB; EC2 allows at most 16 KiB of user data".into(),
        ));
    }
    Ok(Bytes::from(bytes))
}

/// Opens `path` for reading if it is a regular file, without blocking on a FIFO; `what` it
/// must be, for the message.
pub(super) fn open_regular(path: &Path, what: &str) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "is not a regular file (a FIFO, device or directory cannot be {what})"
        ));
    }
    Ok(f)
}
