//! What is served now: a [`Snapshot`] is everything a request needs (the IMDS service with
//! its tree, the header templates, the request-log switch), compiled once from the inputs by
//! [`build`], a pure function. [`Published`] holds the snapshot being served, swapped whole
//! on every change, with the token key and the clock every request uses.
//!
//! No file is read, nothing is signed and no lock is held here: the user data comes with the
//! checked [`Config`], the identity signatures are made before (see `crate::live`).

mod headers;
pub mod tree;

// `[replay]`: a crawled tree served in place of the modelled one.
pub mod replay;
pub use replay::signed_document;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::Config;
use crate::fault::Faults;
use crate::identity::Signatures;
use crate::imds::{self, TokenAuthority};
use crate::scenario::Scenario;
pub use headers::{Body, Headers};
pub use tree::identity_document;

/// Everything a request needs, compiled once per change of the inputs.
#[derive(Debug)]
pub struct Snapshot {
    pub imds: imds::Service,
    pub headers: Headers,
    pub log_requests: bool,
    /// The faults in force (usually none: then a request only tests that it is empty).
    pub faults: Faults,
}

/// Builds a snapshot: the configured tree with the identity `signatures`, the credential
/// leaves, `[paths]` (which win over both), then the scenario (notices, events, ASG state)
/// and the `ctl` overlay, which win over `[paths]`. `now` stamps `Last-Modified`.
pub fn build(
    config: &Config,
    signatures: Option<&Signatures>,
    credentials: Vec<(String, String)>,
    scenario: &Scenario,
    now: SystemTime,
) -> Snapshot {
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
    for (path, body) in credentials {
        tree.text(&path, body);
    }
    for (path, value) in config.paths() {
        tree.text(path.as_str(), value.clone());
    }
    scenario.extend(&mut tree);
    Snapshot {
        imds: imds::Service::new(config.imds_options(), &tree),
        headers: Headers::new(now, config.server().keep_alive()),
        log_requests: config.log().requests(),
        faults: Faults::new(scenario.armed_faults()),
    }
}

/// The snapshot being served, and what every request uses besides it.
pub struct Published {
    pub snapshot: ArcSwap<Snapshot>,
    pub tokens: TokenAuthority,
    pub clock: Arc<dyn Clock>,
    /// Woken at every publish: the listeners look for a `refuse` fault then.
    pub changed: tokio::sync::Notify,
}

impl Published {
    pub fn new(snapshot: Snapshot, clock: Arc<dyn Clock>) -> Arc<Published> {
        Arc::new(Published {
            snapshot: ArcSwap::from_pointee(snapshot),
            tokens: TokenAuthority::random(),
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
