//! Who asks: what the server knows of a request's client. The accept loop makes one
//! [`Client`] per connection and every request on it carries it down to the front that
//! answers, to the access-log line and to the request journal. Per-client views (what a
//! container, or a local user, is served) will read it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// A request's client, as known when its connection was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The peer's address (an IPv4 client of a dual-stack listener shows as
    /// `::ffff:a.b.c.d`).
    pub peer: SocketAddr,
    /// The local process's side, when the peer is on this host and the kernel said who owns
    /// its socket (looked up once per connection, only when something reads it).
    pub owner: Option<Arc<Owner>>,
}

impl Client {
    /// A client known by its address alone.
    pub fn at(peer: SocketAddr) -> Client {
        Client { peer, owner: None }
    }
}

/// Who owns the other end of a local connection, as the kernel's socket table says.
#[derive(Debug, PartialEq, Eq)]
pub struct Owner {
    /// The socket's owner (the uid the process had when it opened the socket).
    pub uid: u32,
    /// The uid's name in the user database, when it has one.
    pub user: Option<Arc<str>>,
    /// The socket's control group (cgroup v2 path, such as
    /// `/system.slice/cron.service`): which service, session or container scope asked.
    pub cgroup: Option<Arc<str>>,
    /// The process that holds the socket, found after the fact where the daemon may read
    /// it (its own uid's processes); empty when it could not be found (or ended first).
    pub process: OnceLock<Process>,
}

/// A process, by id and command name (`/proc/PID/comm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub command: Arc<str>,
}
