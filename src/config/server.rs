//! `[server]`: where and how the daemon listens. Its sockets and the state directory are set
//! up once at start, so changes to `listen`, `max-connections` and `state-directory` need a
//! restart; `keep-alive` is part of each snapshot.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Reload;
use crate::endpoint::Endpoint;

/// The default port the daemon listens on (loopback only).
pub const DEFAULT_PORT: u16 = 1338;

/// `[server]` as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawServer {
    /// Addresses to listen on. Default: `127.0.0.1:1338` and, where IPv6 exists, `[::1]:1338`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) listen: Option<Vec<SocketAddr>>,
    /// Addresses the ECS agent's endpoints (169.254.170.2) are served on. Default: those of
    /// `listen`, one port up (`127.0.0.1:1339`); `[]` serves none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ecs_listen: Option<Vec<SocketAddr>>,
    /// Addresses EKS Pod Identity (169.254.170.23) is served on. Default: those of `listen`,
    /// two ports up (`127.0.0.1:1340`); `[]` serves none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pod_identity_listen: Option<Vec<SocketAddr>>,
    /// EC2 answers every request with `Connection: close`; `true` keeps connections open
    /// instead (faster for benchmarks and keep-alive clients, less faithful).
    keep_alive: bool,
    /// Where the daemon keeps its identity signing key and certificate. Default:
    /// `$STATE_DIRECTORY` (systemd), else `/var/lib/fake-metadata` for root or when it exists,
    /// else `$XDG_STATE_HOME/fake-metadata` (`~/.local/state/fake-metadata`).
    #[serde(skip_serializing_if = "Option::is_none")]
    state_directory: Option<PathBuf>,
    /// Connections served at once (EC2 also limits them per instance). Beyond it, new
    /// connections wait in the kernel's listen backlog until one ends.
    max_connections: MaxConnections,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: None,
            ecs_listen: None,
            pod_identity_listen: None,
            keep_alive: false,
            state_directory: None,
            max_connections: MaxConnections::DEFAULT,
        }
    }
}

/// The checked `[server]`: the addresses and the state directory resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    listen: Vec<SocketAddr>,
    listen_is_default: bool,
    /// `None`: derived from `listen` (see [`Server::listen`]).
    ecs_listen: Option<Vec<SocketAddr>>,
    pod_identity_listen: Option<Vec<SocketAddr>>,
    keep_alive: bool,
    state_directory: PathBuf,
    state_directory_is_default: bool,
    max_connections: MaxConnections,
}

impl Server {
    /// Resolves the defaults (the state directory's from the environment).
    pub(super) fn resolve(raw: RawServer) -> Server {
        Server {
            listen_is_default: raw.listen.is_none(),
            listen: raw.listen.unwrap_or_else(|| {
                vec![
                    SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, DEFAULT_PORT)),
                ]
            }),
            ecs_listen: raw.ecs_listen,
            pod_identity_listen: raw.pod_identity_listen,
            keep_alive: raw.keep_alive,
            state_directory_is_default: raw.state_directory.is_none(),
            state_directory: raw.state_directory.unwrap_or_else(default_state_directory),
            max_connections: raw.max_connections,
        }
    }

    /// The form `print-config` shows: every address, the state directory only when set.
    pub(super) fn to_raw(&self) -> RawServer {
        RawServer {
            listen: Some(self.listen.clone()),
            ecs_listen: self.ecs_listen.clone(),
            pod_identity_listen: self.pod_identity_listen.clone(),
            keep_alive: self.keep_alive,
            state_directory: (!self.state_directory_is_default)
                .then(|| self.state_directory.clone()),
            max_connections: self.max_connections,
        }
    }

    /// Listens on `addrs` instead (the `--listen` flag).
    pub(super) fn set_listen(&mut self, addrs: Vec<SocketAddr>) {
        self.listen = addrs;
        self.listen_is_default = false;
    }

    /// IMDS's addresses: the configured ones, or the defaults (the IPv6 one may fail to bind
    /// and is then skipped; see [`Server::listen_is_default`]).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The addresses `endpoint` is served on. The other endpoints' default to IMDS's, a port
    /// up each (`--listen 127.0.0.1:0` gives each its own free port), so that one
    /// `listen` moves them all and a test's daemons never share a port.
    pub fn listen(&self, endpoint: Endpoint) -> Vec<SocketAddr> {
        let (set, offset) = match endpoint {
            Endpoint::Imds => return self.listen.clone(),
            Endpoint::Ecs => (&self.ecs_listen, 1),
            Endpoint::PodIdentity => (&self.pod_identity_listen, 2),
        };
        match set {
            Some(l) => l.clone(),
            None => self
                .listen
                .iter()
                .map(|a| match a.port() {
                    0 => *a,
                    p => SocketAddr::new(a.ip(), p.saturating_add(offset)),
                })
                .collect(),
        }
    }

    /// Whether `endpoint`'s addresses are the built-in defaults (a missing IPv6 stack is then
    /// no error).
    pub fn is_default_listen(&self, endpoint: Endpoint) -> bool {
        self.listen_is_default
            && match endpoint {
                Endpoint::Imds => true,
                Endpoint::Ecs => self.ecs_listen.is_none(),
                Endpoint::PodIdentity => self.pod_identity_listen.is_none(),
            }
    }

    /// Whether the addresses are the built-in defaults (a missing IPv6 stack is then no error).
    pub fn listen_is_default(&self) -> bool {
        self.listen_is_default
    }

    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The state directory, configured or by the default rule.
    pub fn state_directory(&self) -> &Path {
        &self.state_directory
    }

    /// Whether the state directory is the default one (then the daemon may take it over).
    pub fn state_directory_is_default(&self) -> bool {
        self.state_directory_is_default
    }

    pub fn max_connections(&self) -> MaxConnections {
        self.max_connections
    }

    /// The port the interception REDIRECT of `endpoint` should point at: that of its first
    /// IPv4 address; `None` when it is served nowhere (`[]`).
    pub fn redirect_port(&self, endpoint: Endpoint) -> Option<u16> {
        let l = self.listen(endpoint);
        l.iter()
            .find(|a| a.is_ipv4())
            .or(l.first())
            .map(SocketAddr::port)
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::resolve(RawServer::default())
    }
}

/// The sockets are bound and the identity key is loaded at start.
impl Reload for Server {
    fn needs_restart(&self, new: &Self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if Endpoint::ALL
            .iter()
            .any(|&e| new.listen(e) != self.listen(e))
        {
            out.push(
                "config reload: the listen addresses changed; restart the daemon to apply that",
            );
        }
        if new.max_connections != self.max_connections {
            out.push(
                "config reload: [server] max-connections changed; restart the daemon to apply that",
            );
        }
        // A configured directory against the default one's rule (which may resolve
        // differently once root is dropped).
        fn configured(s: &Server) -> Option<&Path> {
            (!s.state_directory_is_default).then_some(s.state_directory.as_path())
        }
        if configured(new) != configured(self) {
            out.push(
                "config reload: [server] state-directory changed; restart the daemon to apply that",
            );
        }
        out
    }
}

/// `$STATE_DIRECTORY` (systemd), else `/var/lib/fake-metadata` for root or when it exists,
/// else `$XDG_STATE_HOME/fake-metadata` (`~/.local/state/fake-metadata`).
fn default_state_directory() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may list several, separated by ':'; ours is the first.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        return PathBuf::from(first);
    }
    let system = PathBuf::from("/var/lib/fake-metadata");
    if nix::unistd::Uid::effective().is_root() || system.is_dir() {
        return system;
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("fake-metadata")
}

/// How many connections the daemon serves at once: 1..=65536. The default, 512, stays well
/// under the file descriptor limit a service gets by default (1024 under systemd), so
/// accepting never fails for want of one, and far above what the agents of one machine use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct MaxConnections(u32);

impl MaxConnections {
    pub const DEFAULT: MaxConnections = MaxConnections(512);

    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl TryFrom<i64> for MaxConnections {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=65536 => Ok(MaxConnections(v as u32)),
            _ => Err(format!("max-connections {v} is out of range: 1 to 65536")),
        }
    }
}

impl From<MaxConnections> for i64 {
    fn from(m: MaxConnections) -> i64 {
        m.0.into()
    }
}
