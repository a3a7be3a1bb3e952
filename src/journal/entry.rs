//! One recorded request, and its JSON form (what `ctl requests --json` prints and the
//! journal file holds, one object a line).

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{MAX_PATH, Record};
use crate::client::{Client, Owner};
use crate::endpoint::Endpoint;
use crate::fault::FaultId;

/// One request in the ring.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub time_ms: u64,
    pub endpoint: Endpoint,
    pub method: http::Method,
    pub path: String,
    pub status: Option<u16>,
    pub imds_version: Option<u8>,
    pub bytes: u64,
    pub fault: Option<FaultId>,
    pub note: Option<&'static str>,
    pub client: Client,
    /// The view that served the client (`None`: the box).
    pub view: Option<std::sync::Arc<str>>,
}

impl Entry {
    pub(super) fn new(seq: u64, r: &Record<'_>) -> Entry {
        let mut path = String::with_capacity(r.path.len().min(MAX_PATH));
        push_path(&mut path, r.path);
        Entry {
            seq,
            time_ms: r.time_ms,
            endpoint: r.endpoint,
            method: r.method.clone(),
            path,
            status: r.status,
            imds_version: r.imds_version,
            bytes: r.bytes,
            fault: r.fault,
            note: r.note,
            client: r.client.clone(),
            view: r.view.cloned(),
        }
    }

    /// Reuses this slot for a new entry, keeping the path's buffer.
    pub(super) fn overwrite(&mut self, seq: u64, r: &Record<'_>) {
        self.seq = seq;
        self.time_ms = r.time_ms;
        self.endpoint = r.endpoint;
        if self.method != *r.method {
            self.method = r.method.clone();
        }
        self.path.clear();
        push_path(&mut self.path, r.path);
        self.status = r.status;
        self.imds_version = r.imds_version;
        self.bytes = r.bytes;
        self.fault = r.fault;
        self.note = r.note;
        self.client.clone_from(r.client);
        self.view = r.view.cloned();
    }

    /// The entry as its JSON line shows it.
    pub fn to_json(&self) -> EntryJson {
        EntryJson {
            seq: self.seq,
            time: rfc3339_millis(self.time_ms),
            endpoint: self.endpoint.name().to_string(),
            method: self.method.as_str().to_string(),
            path: self.path.clone(),
            status: self.status,
            imds_version: self.imds_version,
            bytes: self.bytes,
            asker: Asker::new(
                self.client.owner.as_deref(),
                self.client.peer.ip().to_canonical(),
            ),
            port: self.client.peer.port(),
            fault: self.fault.map(|f| f.to_string()),
            note: self.note.map(str::to_string),
            view: self.view.as_deref().map(str::to_string),
        }
    }
}

/// `path`, cut at [`MAX_PATH`] bytes (on a character boundary) with `…` to show it.
fn push_path(out: &mut String, path: &str) {
    if path.len() <= MAX_PATH {
        out.push_str(path);
    } else {
        let mut end = MAX_PATH;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&path[..end]);
        out.push('…');
    }
}

/// One request as a JSON object. Every key is there, `null` where unknown, except
/// `imds_version` (absent for the ECS agent's and Pod Identity's endpoints) and `note`.
/// `container` is named by `ctl` (which may ask Docker; the daemon never does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryJson {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub endpoint: String,
    pub method: String,
    pub path: String,
    /// `null` when no reply reached the client (see `note` and `fault`).
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imds_version: Option<u8>,
    pub bytes: u64,
    #[serde(flatten)]
    pub asker: Asker,
    pub port: u16,
    pub fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The `[[view]]` that served the client; absent for the box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
}

/// Who sent a request (in an entry) or requests (in the counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asker {
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub pid: Option<u32>,
    pub command: Option<String>,
    /// The socket's control group: the service, session or container scope that asked.
    pub cgroup: Option<String>,
    /// The peer's address (`169.254.169.254` for a local process whose connection was
    /// redirected; a container's own address on the container path).
    pub source: String,
    /// Named by `ctl` where it may ask Docker (the daemon never does).
    pub container: Option<String>,
}

impl Asker {
    /// A local process's owner, if known, and the peer's address.
    pub fn new(owner: Option<&Owner>, source: IpAddr) -> Asker {
        let process = owner.and_then(|o| o.process.get());
        Asker {
            uid: owner.map(|o| o.uid),
            user: owner.and_then(|o| o.user.as_deref()).map(str::to_string),
            pid: process.map(|p| p.pid),
            command: process.map(|p| p.command.to_string()),
            cgroup: owner.and_then(|o| o.cgroup.as_deref()).map(str::to_string),
            source: source.to_string(),
            container: None,
        }
    }

    /// In a few words: `user vagrant (uid 1000), curl (pid 4242), /user.slice/…`, or the
    /// address (and container).
    pub fn who(&self) -> String {
        let mut parts = Vec::new();
        match (self.uid, &self.user) {
            (Some(uid), Some(user)) => parts.push(format!("user {user} (uid {uid})")),
            (Some(uid), None) => parts.push(format!("uid {uid}")),
            (None, _) => parts.push(match &self.container {
                Some(c) => format!("{} (container {c})", self.source),
                None => self.source.clone(),
            }),
        }
        match (&self.command, self.pid) {
            (Some(c), Some(pid)) => parts.push(format!("{c} (pid {pid})")),
            (Some(c), None) => parts.push(c.clone()),
            _ => {}
        }
        if let Some(g) = &self.cgroup {
            parts.push(g.clone());
        }
        parts.join(", ")
    }
}

/// `2026-12-06T09:30:00.123Z`.
pub fn rfc3339_millis(ms: u64) -> String {
    let t = time::OffsetDateTime::from(UNIX_EPOCH + Duration::from_millis(ms));
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| ms.to_string())
}
