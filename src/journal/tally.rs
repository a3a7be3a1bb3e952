//! The counts since the start (or the last clear), by client and path: what `ctl status`,
//! `ctl watch` and `ctl assert` read. Entries leave the ring; counts stay, in a table of
//! bounded size.

use std::net::IpAddr;
use std::sync::Arc;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::Record;
use crate::client::Owner;
use crate::endpoint::Endpoint;

/// At most this many clients are itemized; the requests of more are counted only in the
/// totals and in `not_itemized`.
pub const MAX_CLIENTS: usize = 256;
/// At most this many (client, endpoint, path) rows over all clients; a client's requests to
/// more paths count in its `other_requests`.
pub const MAX_PATHS: usize = 4096;

/// Who a client is for counting: a local process by its uid and control group (two
/// services of one user stay apart) and the view that served it (one user's processes on
/// two loopback addresses may be two views' clients), anything else by its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    Local {
        uid: u32,
        cgroup: Option<Arc<str>>,
        view: Option<Arc<str>>,
    },
    Remote(IpAddr),
}

/// The counts.
#[derive(Debug, Clone)]
pub struct Tally {
    since_ms: u64,
    requests: u64,
    no_token: u64,
    by_endpoint: [u64; 3],
    not_itemized: u64,
    not_itemized_no_token: u64,
    paths: usize,
    clients: HashMap<Who, Counter>,
}

#[derive(Debug, Clone)]
struct Counter {
    owner: Option<Arc<Owner>>,
    source: IpAddr,
    /// The view that served its latest request (`None`: the box).
    view: Option<Arc<str>>,
    requests: u64,
    no_token: u64,
    first_ms: u64,
    last_ms: u64,
    other_requests: u64,
    other_no_token: u64,
    /// Per endpoint, in [`Endpoint::ALL`]'s order.
    paths: [HashMap<Box<str>, PathCounter>; 3],
}

#[derive(Debug, Clone, Copy, Default)]
struct PathCounter {
    requests: u64,
    no_token: u64,
    last_ms: u64,
    last_status: Option<u16>,
}

impl PathCounter {
    fn add(&mut self, r: &Record<'_>, v1: u64) {
        self.requests += 1;
        self.no_token += v1;
        self.last_ms = r.time_ms;
        self.last_status = r.status;
    }
}

fn index(e: Endpoint) -> usize {
    match e {
        Endpoint::Imds => 0,
        Endpoint::Ecs => 1,
        Endpoint::PodIdentity => 2,
    }
}

impl Tally {
    pub(super) fn new(now_ms: u64) -> Tally {
        Tally {
            since_ms: now_ms,
            requests: 0,
            no_token: 0,
            by_endpoint: [0; 3],
            not_itemized: 0,
            not_itemized_no_token: 0,
            paths: 0,
            clients: HashMap::default(),
        }
    }

    pub(super) fn count(&mut self, r: &Record<'_>) {
        let v1 = u64::from(r.imds_version == Some(1));
        self.requests += 1;
        self.no_token += v1;
        self.by_endpoint[index(r.endpoint)] += 1;
        let source = r.client.peer.ip().to_canonical();
        let who = match &r.client.owner {
            Some(o) => Who::Local {
                uid: o.uid,
                cgroup: o.cgroup.clone(),
                view: r.view.cloned(),
            },
            None => Who::Remote(source),
        };
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(&who) {
            self.not_itemized += 1;
            self.not_itemized_no_token += v1;
            return;
        }
        let c = self.clients.entry(who).or_insert_with(|| Counter {
            owner: None,
            source,
            view: None,
            requests: 0,
            no_token: 0,
            first_ms: r.time_ms,
            last_ms: r.time_ms,
            other_requests: 0,
            other_no_token: 0,
            paths: Default::default(),
        });
        c.requests += 1;
        c.no_token += v1;
        c.last_ms = r.time_ms;
        c.source = source;
        if c.view.as_deref() != r.view.map(|v| &**v) {
            c.view = r.view.cloned();
        }
        // The latest connection's owner: its process may be known by now.
        if let Some(o) = &r.client.owner
            && !c.owner.as_ref().is_some_and(|have| Arc::ptr_eq(have, o))
        {
            c.owner = Some(o.clone());
        }
        let paths = &mut c.paths[index(r.endpoint)];
        if let Some(p) = paths.get_mut(r.path) {
            p.add(r, v1);
        } else if self.paths >= MAX_PATHS {
            c.other_requests += 1;
            c.other_no_token += v1;
        } else {
            self.paths += 1;
            let mut p = PathCounter::default();
            p.add(r, v1);
            paths.insert(r.path.into(), p);
        }
    }

    /// The counts as `ctl` reads them: clients by most requests first, each one's paths
    /// likewise.
    pub fn report(&self) -> TallyReport {
        let mut clients: Vec<ClientTally> = self
            .clients
            .iter()
            .map(|(who, c)| {
                let owner = c.owner.as_deref();
                let mut paths: Vec<PathTally> = Endpoint::ALL
                    .iter()
                    .flat_map(|&e| {
                        c.paths[index(e)].iter().map(move |(path, p)| PathTally {
                            endpoint: e.name().to_string(),
                            path: path.to_string(),
                            requests: p.requests,
                            no_token: p.no_token,
                            last: super::rfc3339_millis(p.last_ms),
                            last_status: p.last_status,
                        })
                    })
                    .collect();
                paths.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.path.cmp(&b.path)));
                let mut asker = super::Asker::new(owner, c.source);
                if let Who::Remote(_) = who {
                    asker.uid = None;
                }
                ClientTally {
                    asker,
                    view: c.view.as_deref().map(str::to_string),
                    requests: c.requests,
                    no_token: c.no_token,
                    first: super::rfc3339_millis(c.first_ms),
                    last: super::rfc3339_millis(c.last_ms),
                    paths,
                    other_requests: c.other_requests,
                    other_no_token: c.other_no_token,
                }
            })
            .collect();
        clients.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.asker.source.cmp(&b.asker.source))
                .then_with(|| a.asker.uid.cmp(&b.asker.uid))
        });
        TallyReport {
            since: super::rfc3339_millis(self.since_ms),
            requests: self.requests,
            no_token: self.no_token,
            imds: self.by_endpoint[0],
            ecs: self.by_endpoint[1],
            pod_identity: self.by_endpoint[2],
            clients,
            not_itemized: self.not_itemized,
            not_itemized_no_token: self.not_itemized_no_token,
        }
    }
}

/// The counts as the control socket sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TallyReport {
    /// Counting since (the daemon's start or the last `ctl requests --clear`).
    pub since: String,
    pub requests: u64,
    /// IMDS requests without a token (IMDSv1): CloudWatch's `MetadataNoToken`, with names.
    pub no_token: u64,
    pub imds: u64,
    pub ecs: u64,
    pub pod_identity: u64,
    pub clients: Vec<ClientTally>,
    /// Requests of clients past [`MAX_CLIENTS`] (in the totals only).
    pub not_itemized: u64,
    pub not_itemized_no_token: u64,
}

/// One client's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientTally {
    #[serde(flatten)]
    pub asker: super::Asker,
    /// The `[[view]]` that served it; absent for the box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    pub requests: u64,
    pub no_token: u64,
    pub first: String,
    pub last: String,
    pub paths: Vec<PathTally>,
    /// Requests to paths past [`MAX_PATHS`].
    pub other_requests: u64,
    pub other_no_token: u64,
}

/// One path's counts for one client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathTally {
    pub endpoint: String,
    pub path: String,
    pub requests: u64,
    pub no_token: u64,
    pub last: String,
    pub last_status: Option<u16>,
}

impl TallyReport {
    /// The totals and who asked without a token, for `ctl status`.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "requests since {}: {} (IMDS {}, ECS {}, Pod Identity {})",
            self.since, self.requests, self.imds, self.ecs, self.pod_identity
        );
        let _ = write!(o, "without a token (IMDSv1): {}", self.no_token);
        for c in self.clients.iter().filter(|c| c.no_token > 0) {
            let paths: Vec<String> = c
                .paths
                .iter()
                .filter(|p| p.no_token > 0)
                .take(3)
                .map(|p| format!("{} ({})", p.path, p.no_token))
                .collect();
            let more = c.paths.iter().filter(|p| p.no_token > 0).count();
            let more = if more > 3 {
                format!(", and {} more paths", more - 3)
            } else {
                String::new()
            };
            let _ = write!(
                o,
                "\n  {}: {}: {}{more}",
                c.asker.who(),
                c.no_token,
                paths.join(", ")
            );
        }
        if self.not_itemized_no_token > 0 {
            let _ = write!(
                o,
                "\n  {} from clients past the first {MAX_CLIENTS}",
                self.not_itemized_no_token
            );
        }
        o
    }
}
