//! The live inputs of the running instance: the checked config (replaced on reload), the
//! rotating credentials, the scenario with its `ctl` changes, and the identity signatures.
//! Every change makes a new snapshot with [`snapshot::build`] and publishes it whole; the
//! timers ([`run_timers`]) sleep until the next thing is due.
//!
//! I/O happens before any lock is taken: the config (with its user data) is read by the
//! caller, and the identity document is signed (through the signature cache) before a reload
//! takes the writer lock. That lock serializes changes so they publish in order; requests
//! never take it. The credentials have their own lock, held while a `process` source runs,
//! which a `ctl` change does not need.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::config::Config;
use crate::credentials::{CredentialManager, CredentialSet, Keyring, Refresh, SourceKind};
use crate::identity::{IdentityKey, Signatures};
use crate::scenario::{Change, EventId, Moment, Refused, Scenario};
use crate::snapshot::{self, Published, signed_document};

/// The live inputs and the snapshot they make.
pub struct Inputs {
    published: Arc<Published>,
    identity: Option<IdentityKey>,
    /// The credentials of the instance and of each workload (locked before `current` when
    /// both are needed, never after).
    credentials: Mutex<Keyring>,
    /// What the served snapshot was built from: the writer lock.
    current: Mutex<Current>,
    /// Wakes [`run_timers`] when what is due next may have changed.
    changed: tokio::sync::Notify,
}

/// The inputs of the snapshot being served.
struct Current {
    config: Config,
    signatures: Option<Signatures>,
    /// The credentials as of the last refresh.
    credentials: CredentialSet,
    scenario: Scenario,
}

/// Why a `ctl` change was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(
        "instance tags are not served: set [imds] instance-metadata-tags = \"enabled\" in the config first"
    )]
    TagsNotServed,
    #[error(transparent)]
    Refused(#[from] Refused),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The credentials for `config`: the instance's, with a first set when it comes quickly
/// (generated, static, file; a `process` source is first run by the timers, in the
/// background), and no workload yet.
fn credentials_for(config: &Config, clock: &Arc<dyn Clock>) -> Keyring {
    let account = config.instance().account_id().as_str();
    let partition = config.instance().partition().0;
    let mut m = CredentialManager::new(config.iam(), account, partition, clock.clone());
    if config.iam().source.kind() != SourceKind::Process {
        let _ = m.refresh();
    }
    Keyring::new(m, config.iam(), account, partition, clock.clone())
}

/// The identity document's signatures (from the key's cache when the document is unchanged):
/// the replayed document's bytes under `[replay]`, else the modelled one.
/// A failure is logged and the document is served unsigned. `now` is the signing time.
fn sign(identity: Option<&IdentityKey>, config: &Config, now: SystemTime) -> Option<Signatures> {
    let key = identity?;
    key.sign(&signed_document(config)?, now)
        .map_err(|e| tracing::error!("cannot sign the identity document: {e}"))
        .ok()
}

impl Inputs {
    /// Builds and publishes the first snapshot.
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        identity: Option<IdentityKey>,
    ) -> Arc<Inputs> {
        let mut credentials = credentials_for(&config, &clock);
        let start = clock.now();
        let mut scenario = Scenario::new(
            config.scenario(),
            config.faults(),
            start,
            &mut EventId::random,
        );
        scenario.apply_due(start);
        let current = Current {
            signatures: sign(identity.as_ref(), &config, start),
            credentials: credentials.current(),
            config,
            scenario,
        };
        let published = Published::new(current.build(start), clock);
        credentials.announce();
        Arc::new(Inputs {
            published,
            identity,
            credentials: Mutex::new(credentials),
            current: Mutex::new(current),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// What the connections read.
    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }

    /// The running configuration.
    pub fn config(&self) -> Config {
        lock(&self.current).config.clone()
    }

    fn now(&self) -> SystemTime {
        self.published.clock.now()
    }

    /// Swaps in a new configuration. Credentials are kept unless `[iam]`, the account or
    /// the partition changed; the scenario (with its live changes) is kept unless `[scenario]` changed,
    /// which restarts it from the new timeline (counted from the daemon's start).
    pub fn reload(&self, new: Config) {
        let signatures = sign(self.identity.as_ref(), &new, self.now());
        let old = self.config();
        let fresh = (new.iam() != old.iam()
            || new.instance().account_id() != old.instance().account_id()
            || new.instance().partition() != old.instance().partition())
        .then(|| credentials_for(&new, &self.published.clock));
        let mut credentials = lock(&self.credentials);
        if let Some(m) = fresh {
            *credentials = m;
        }
        let now = self.now();
        let mut current = lock(&self.current);
        if new.scenario() != current.config.scenario() || new.faults() != current.config.faults() {
            tracing::info!(
                "[scenario] or [[fault]] changed: the timeline restarts from the new config"
            );
            let start = current.scenario.start();
            let mut next = Scenario::new(new.scenario(), new.faults(), start, &mut EventId::random);
            next.follow(&current.scenario);
            next.apply_due(now);
            current.scenario = next;
        }
        current.config = new;
        current.signatures = signatures;
        current.credentials = credentials.current();
        self.published.publish(current.build(now));
        drop(current);
        credentials.announce();
        drop(credentials);
        self.changed.notify_one();
    }

    /// Does what is due (may block: a `process` source runs a command) and publishes if
    /// anything changed.
    pub fn tick(&self) {
        let mut credentials = lock(&self.credentials);
        let renewed = credentials.refresh() == Refresh::Changed;
        let now = self.now();
        let mut current = lock(&self.current);
        let happened = current.scenario.apply_due(now);
        if renewed || happened {
            current.credentials = credentials.current();
            self.published.publish(current.build(now));
        }
        drop(current);
        credentials.announce();
    }

    /// Issues a new credential set now.
    pub fn rotate_credentials(&self) {
        let mut credentials = lock(&self.credentials);
        let _ = credentials.rotate_now();
        let now = self.now();
        let mut current = lock(&self.current);
        current.credentials = credentials.current();
        self.published.publish(current.build(now));
        drop(current);
        credentials.announce();
        drop(credentials);
        self.changed.notify_one();
    }

    /// When [`Inputs::tick`] should run next.
    pub fn next_due(&self) -> SystemTime {
        let credentials = lock(&self.credentials).next_refresh();
        match lock(&self.current).scenario.next_due() {
            Some(t) => t.min(credentials),
            None => credentials,
        }
    }

    /// The faults in force, for `ctl fault list`.
    pub fn faults(&self) -> String {
        lock(&self.current).scenario.fault_list(self.now())
    }

    /// What is set and pending, for `ctl status`.
    pub fn status(&self) -> String {
        lock(&self.current).scenario.status(self.now())
    }

    /// Back to the state the configuration describes: live changes dropped, the config's
    /// timeline replayed from the daemon's start.
    pub fn reset(&self) {
        let now = self.now();
        let mut current = lock(&self.current);
        let mut next = Scenario::new(
            current.config.scenario(),
            current.config.faults(),
            current.scenario.start(),
            &mut EventId::random,
        );
        next.follow(&current.scenario);
        next.apply_due(now);
        current.scenario = next;
        self.published.publish(current.build(now));
        drop(current);
        self.changed.notify_one();
    }

    /// Applies a change now, or schedules it. It is tried on a copy of the scenario and
    /// published as one snapshot; if it is refused nothing changes.
    pub fn change(&self, mut change: Change, when: Option<Moment>) -> Result<String, ChangeError> {
        let now = self.now();
        let mut current = lock(&self.current);
        if change.is_tags() && !current.config.imds().instance_metadata_tags().is_enabled() {
            return Err(ChangeError::TagsNotServed);
        }
        change.assign_id(&mut EventId::random);
        let mut next = current.scenario.clone();
        let started = matches!(change, Change::FaultAdd(_)) && when.is_none();
        let message = match when {
            None => next.apply(change, now),
            Some(m) => next.schedule(change, m.resolve(now), now),
        }?;
        if started && let Some(f) = next.faults().last() {
            tracing::info!("fault {} started: {}", f.id, f.spec);
        }
        current.scenario = next;
        self.published.publish(current.build(now));
        drop(current);
        self.changed.notify_one();
        Ok(message)
    }
}

impl Current {
    fn build(&self, now: SystemTime) -> snapshot::Snapshot {
        snapshot::build(
            &self.config,
            self.signatures.as_ref(),
            &self.credentials,
            &self.scenario,
            now,
        )
    }
}

/// Runs what is due, when it is due, until the task is dropped. Sleeps on the system timer
/// for the clock's distance to the next deadline (at least a second, so a source that keeps
/// failing cannot spin).
pub async fn run_timers(inputs: Arc<Inputs>) {
    loop {
        let due = inputs.next_due();
        let wait = due
            .duration_since(inputs.now())
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inputs.changed.notified() => continue,
        }
        let i = inputs.clone();
        if tokio::task::spawn_blocking(move || i.tick()).await.is_err() {
            tracing::error!("the credential refresh panicked; retrying later");
        }
    }
}
