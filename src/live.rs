//! The running instance: the inputs that change while the daemon runs (the config on reload,
//! rotating credentials, later scenario events) and the one way they reach requests: every
//! change builds a new immutable [`Snapshot`] and swaps it in. Timers (credential refresh)
//! run in [`run_timers`], which sleeps until the next thing is due.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::credentials::SourceKind;
use crate::credentials::{CredentialManager, Refresh};
use crate::identity::IdentityKey;
use crate::imds;
use crate::metadata;
use crate::server::{Shared, Snapshot};

/// The instance's changing inputs and the snapshot they make.
pub struct Instance {
    shared: Arc<Shared>,
    identity: Option<IdentityKey>,
    config: Mutex<Config>,
    credentials: Mutex<CredentialManager>,
    /// Wakes [`run_timers`] when what is due next may have changed.
    changed: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Instance {
    /// Builds the first snapshot. Credentials that come quickly (generated, static, file)
    /// are fetched now; a `process` source is first run by the timers, in the background.
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        identity: Option<IdentityKey>,
    ) -> Result<Arc<Instance>, ConfigError> {
        let mut credentials = CredentialManager::new(
            &config.iam,
            config.instance.account_id.as_str(),
            clock.clone(),
        );
        if config.iam.source.kind() != SourceKind::Process {
            let _ = credentials.refresh();
        }
        let snapshot = build(&config, identity.as_ref(), &credentials, clock.now())?;
        Ok(Arc::new(Instance {
            shared: Shared::new(snapshot, clock),
            identity,
            config: Mutex::new(config),
            credentials: Mutex::new(credentials),
            changed: tokio::sync::Notify::new(),
        }))
    }

    /// What the connections read.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The running configuration.
    pub fn config(&self) -> Config {
        lock(&self.config).clone()
    }

    /// Rebuilds the snapshot from the current inputs and swaps it in.
    pub fn publish(&self) -> Result<(), ConfigError> {
        let config = lock(&self.config);
        let credentials = lock(&self.credentials);
        let s = build(
            &config,
            self.identity.as_ref(),
            &credentials,
            self.shared.clock.now(),
        )?;
        self.shared.snapshot.store(Arc::new(s));
        Ok(())
    }

    /// Swaps in a new configuration, or keeps the running one if it cannot be compiled.
    /// Credentials are kept unless `[iam]` or the account changed.
    pub fn reload(&self, new: Config) -> Result<(), ConfigError> {
        let mut credentials = lock(&self.credentials);
        let old = lock(&self.config).clone();
        let fresh = (new.iam != old.iam || new.instance.account_id != old.instance.account_id)
            .then(|| {
                let mut m = CredentialManager::new(
                    &new.iam,
                    new.instance.account_id.as_str(),
                    self.shared.clock.clone(),
                );
                if new.iam.source.kind() != SourceKind::Process {
                    let _ = m.refresh();
                }
                m
            });
        let s = build(
            &new,
            self.identity.as_ref(),
            fresh.as_ref().unwrap_or(&credentials),
            self.shared.clock.now(),
        )?;
        if let Some(m) = fresh {
            *credentials = m;
        }
        *lock(&self.config) = new;
        self.shared.snapshot.store(Arc::new(s));
        drop(credentials);
        self.changed.notify_one();
        Ok(())
    }

    /// Does what is due (may block: a `process` source runs a command) and publishes if
    /// anything changed.
    pub fn tick(&self) {
        let changed = lock(&self.credentials).refresh() == Refresh::Changed;
        if changed && let Err(e) = self.publish() {
            tracing::error!("cannot publish new credentials: {e}");
        }
    }

    /// Issues a new credential set now.
    pub fn rotate_credentials(&self) -> Result<(), ConfigError> {
        let _ = lock(&self.credentials).rotate_now();
        self.changed.notify_one();
        self.publish()
    }

    /// When [`Instance::tick`] should run next.
    pub fn next_due(&self) -> SystemTime {
        lock(&self.credentials).next_refresh()
    }
}

/// Builds a snapshot: the configured tree, the signatures, the credentials.
fn build(
    config: &Config,
    identity: Option<&IdentityKey>,
    credentials: &CredentialManager,
    now: SystemTime,
) -> Result<Snapshot, ConfigError> {
    let mut tree = metadata::builder(config, config.user_data_bytes()?, identity);
    for (path, body) in credentials.leaves() {
        tree.text(&path, body);
    }
    // Configured paths win over everything, credentials included.
    for (path, value) in &config.paths {
        tree.text(path.as_str(), value.clone());
    }
    Ok(Snapshot::new(
        config.clone(),
        imds::State::new(config, tree),
        now,
    ))
}

/// Runs what is due, when it is due, until the task is dropped. Sleeps on the system timer
/// for the clock's distance to the next deadline (at least a second, so a source that keeps
/// failing cannot spin).
pub async fn run_timers(instance: Arc<Instance>) {
    loop {
        let due = instance.next_due();
        let wait = due
            .duration_since(instance.shared.clock.now())
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = instance.changed.notified() => continue,
        }
        let i = instance.clone();
        if tokio::task::spawn_blocking(move || i.tick()).await.is_err() {
            tracing::error!("the credential refresh panicked; retrying later");
        }
    }
}
