//! `[control]`: the socket `fake-metadata ctl` talks to. The daemon binds it at start, so a
//! change needs a restart.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Reload;

/// Where the control socket is by default: the systemd unit's `RuntimeDirectory`.
pub const DEFAULT_SOCKET: &str = "/run/fake-metadata/control.sock";
/// The group whose members may use the control socket (the package creates it).
pub const DEFAULT_GROUP: &str = "fake-metadata-ctl";

/// `[control]` as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawControl {
    /// `false` turns the control socket off.
    enabled: bool,
    /// The socket's path. Default: `/run/fake-metadata/control.sock`, else
    /// `$XDG_RUNTIME_DIR/fake-metadata/control.sock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    socket: Option<PathBuf>,
    /// The group given the socket, whose members may use it.
    group: String,
}

impl Default for RawControl {
    fn default() -> Self {
        RawControl {
            enabled: true,
            socket: None,
            group: DEFAULT_GROUP.into(),
        }
    }
}

/// The checked `[control]`, with the places to look for the socket worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    enabled: bool,
    configured: bool,
    candidates: Vec<PathBuf>,
    group: String,
}

impl ControlConfig {
    /// Resolves where the socket may be (the per-user fallback from the environment).
    pub(super) fn resolve(raw: RawControl) -> ControlConfig {
        let configured = raw.socket.is_some();
        let candidates = match raw.socket {
            Some(p) => vec![p],
            None => {
                let mut v = vec![PathBuf::from(DEFAULT_SOCKET)];
                if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
                    v.push(PathBuf::from(x).join("fake-metadata/control.sock"));
                }
                v
            }
        };
        ControlConfig {
            enabled: raw.enabled,
            configured,
            candidates,
            group: raw.group,
        }
    }

    pub(super) fn to_raw(&self) -> RawControl {
        RawControl {
            enabled: self.enabled,
            socket: self.configured.then(|| self.candidates[0].clone()),
            group: self.group.clone(),
        }
    }

    /// Whether the daemon opens the socket at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `socket` is set (then it is the only candidate, and must work).
    pub fn socket_is_configured(&self) -> bool {
        self.configured
    }

    /// Where to look for the socket, in order: the configured path, or the default and the
    /// per-user fallback.
    pub fn candidates(&self) -> &[PathBuf] {
        &self.candidates
    }

    /// The group given the socket.
    pub fn group(&self) -> &str {
        &self.group
    }
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig::resolve(RawControl::default())
    }
}

/// The socket is bound at start.
impl Reload for ControlConfig {
    fn needs_restart(&self, new: &Self) -> Vec<&'static str> {
        super::restart::if_changed(
            self,
            new,
            "config reload: [control] changed; restart the daemon to apply that",
        )
    }
}
