//! What is served now: a [`Snapshot`] is everything a request needs, compiled once from the
//! inputs by [`build`], a pure function: each endpoint's part (what its front reads: for
//! IMDS, [`ImdsPart`]) and what every endpoint shares (the faults in force, the request-log
//! switch). [`Published`] holds the snapshot being served, swapped whole on every change,
//! with the token key and the clock every request uses.
//!
//! No file is read, nothing is signed and no lock is held here: the user data comes with the
//! checked [`Config`], the identity signatures are made before (see `crate::live`). The
//! credentials come as one [`CredentialSet`], which each part renders in its own documents
//! (IMDS's in [`iam`]), so that all endpoints agree at every rotation.

pub mod ecs;
mod headers;
pub mod iam;
pub mod pod_identity;
pub mod tree;

// `[replay]`: a crawled tree served in place of the modelled one.
pub mod replay;
pub use replay::signed_document;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::capability::BoxSecret;
use crate::client::Client;
use crate::clock::Clock;
use crate::config::{Config, Covers, Pod, Task, View};
use crate::credentials::CredentialSet;
use crate::fault::Faults;
use crate::identity::Signatures;
use crate::imds::{self, TokenAuthority};
use crate::journal::Journal;
use crate::scenario::Scenario;
pub use headers::{Body, GoReply, Headers, go_response};
pub use tree::identity_document;

/// Everything a request needs, compiled once per change of the inputs: a part per endpoint,
/// read by that endpoint's front, then what all endpoints share. A new endpoint adds its
/// part here, built in [`build`] from the same inputs (its credential documents from the same
/// [`CredentialSet`]).
#[derive(Debug)]
pub struct Snapshot {
    /// What the IMDS front serves the box's clients.
    pub imds: ImdsPart,
    /// `[[view]]`: what the IMDS front serves each view's clients instead (usually none).
    pub views: Vec<ViewPart>,
    /// What the ECS agent's front serves: each task's credentials and metadata.
    pub ecs: crate::ecs::Part,
    /// What Pod Identity's front serves: each pod's credentials, by token.
    pub pod_identity: crate::pod_identity::Part,
    /// Whether each request is logged (the access log).
    pub log_requests: bool,
    /// Whether each request is recorded in the journal.
    pub journal: bool,
    /// Whether a local client's socket owner is looked up at its connection (for the
    /// journal, or a view that covers local users).
    pub owners: bool,
    /// The faults in force (usually none: then a request only tests that it is empty).
    pub faults: Faults,
}

/// The IMDS part of a snapshot: the service `imds::respond` answers from (options and
/// tree) and EC2's header templates.
#[derive(Debug)]
pub struct ImdsPart {
    pub service: imds::Service,
    pub headers: Headers,
}

/// A view's part: the clients it covers, and the instance they are served (with its own
/// tokens: one issued to another view, or to the box, is refused).
#[derive(Debug)]
pub struct ViewPart {
    pub name: Arc<str>,
    pub covers: Covers,
    pub imds: ImdsPart,
    pub tokens: TokenAuthority,
}

impl Snapshot {
    /// The view that serves `client`: the first that covers it; `None` (the box) when there
    /// are no views, at the cost of one test.
    #[inline]
    pub fn view_of(&self, client: &Client) -> Option<&ViewPart> {
        if self.views.is_empty() {
            None
        } else {
            self.find_view(client)
        }
    }

    fn find_view(&self, client: &Client) -> Option<&ViewPart> {
        let uid = client.owner.as_ref().map(|o| o.uid);
        let peer = client.peer.ip();
        self.views.iter().find(|v| v.covers.covers(peer, uid))
    }
}

/// What a view's part is built from besides the config: its own inputs, as the box's.
pub struct ViewInputs<'a> {
    pub view: &'a View,
    pub signatures: Option<&'a Signatures>,
    pub credentials: &'a CredentialSet,
    pub scenario: &'a Scenario,
    /// Its token authority (derived from the box's: see [`TokenAuthority::derive`]).
    pub tokens: TokenAuthority,
}

/// The tasks and pods served (the config's, then those `ctl` added), and what their ids
/// and tokens are derived from.
pub struct Workloads<'a> {
    pub tasks: &'a [Task],
    pub pods: &'a [Pod],
    pub secret: &'a BoxSecret,
    /// Since when the daemon serves them (the tasks' start times).
    pub since: SystemTime,
}

impl Workloads<'static> {
    /// No task and no pod (nothing is derived from the secret then).
    pub fn none() -> Workloads<'static> {
        static UNUSED: BoxSecret = BoxSecret::from_bytes([0; 32]);
        Workloads {
            tasks: &[],
            pods: &[],
            secret: &UNUSED,
            since: std::time::UNIX_EPOCH,
        }
    }
}

/// Builds a snapshot from its inputs: each endpoint's part, each view's, then the shared
/// ones.
pub fn build(
    config: &Config,
    signatures: Option<&Signatures>,
    credentials: &CredentialSet,
    scenario: &Scenario,
    workloads: &Workloads<'_>,
    views: Vec<ViewInputs<'_>>,
    now: SystemTime,
) -> Snapshot {
    let by_uid = views.iter().any(|v| v.view.covers().by_uid());
    Snapshot {
        imds: imds_part(config, signatures, credentials, scenario, now),
        views: views
            .into_iter()
            .map(|v| ViewPart {
                name: Arc::from(v.view.name().as_str()),
                covers: v.view.covers().clone(),
                imds: imds_part(
                    v.view.config(),
                    v.signatures,
                    v.credentials,
                    v.scenario,
                    now,
                ),
                tokens: v.tokens,
            })
            .collect(),
        ecs: ecs::part(
            workloads.tasks,
            credentials,
            workloads.secret,
            config,
            workloads.since,
            now,
        ),
        pod_identity: pod_identity::part(
            workloads.pods,
            credentials,
            workloads.secret,
            config,
            now,
        ),
        log_requests: config.log().requests(),
        journal: config.journal().enabled(),
        owners: config.journal().enabled() || by_uid,
        faults: Faults::new(scenario.armed_faults()),
    }
}

/// IMDS's part: the configured tree with the identity `signatures`, the credential
/// documents, `[paths]` (which win over both), then the scenario (notices, events, ASG
/// state) and the `ctl` overlay, which win over `[paths]`. `now` stamps `Last-Modified`.
fn imds_part(
    config: &Config,
    signatures: Option<&Signatures>,
    credentials: &CredentialSet,
    scenario: &Scenario,
    now: SystemTime,
) -> ImdsPart {
    let tagged;
    let config = if scenario.changes_tags() {
        tagged = config.clone().with_tags(scenario.tags(config.tags()));
        &tagged
    } else {
        config
    };
    let mut tree = match config.replay() {
        // `[replay]`: the crawled tree instead of the modelled one.
        Some(r) => replay::builder(config, r, signatures, scenario.changes_tags()),
        None => tree::builder(config, signatures),
    };
    for (path, body) in iam::leaves(credentials, config.iam().extended_credentials) {
        tree.text(&path, body);
    }
    for (path, value) in config.paths() {
        tree.text(path.as_str(), value.clone());
    }
    scenario.extend(&mut tree);
    ImdsPart {
        service: imds::Service::new(config.imds_options(), &tree),
        headers: Headers::new(now, config.server().keep_alive()),
    }
}

/// The snapshot being served, and what every request uses besides it.
pub struct Published {
    pub snapshot: ArcSwap<Snapshot>,
    pub tokens: TokenAuthority,
    pub clock: Arc<dyn Clock>,
    /// Woken at every publish: the listeners look for a `refuse` fault then.
    pub changed: tokio::sync::Notify,
    /// Who asked what (recorded while the snapshot's `journal` is on).
    pub journal: Journal,
}

impl Published {
    /// `journal_size`: how many requests the journal keeps; `tokens`: the box's token
    /// authority (the one the snapshot's views were derived from).
    pub fn new(
        snapshot: Snapshot,
        clock: Arc<dyn Clock>,
        journal_size: usize,
        tokens: TokenAuthority,
    ) -> Arc<Published> {
        Arc::new(Published {
            journal: Journal::new(journal_size, clock.now_millis()),
            snapshot: ArcSwap::from_pointee(snapshot),
            tokens,
            clock,
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Swaps in a new snapshot; requests in flight finish on the old one.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
