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
use crate::scenario::{EventId, Scenario};
use crate::server::{Shared, Snapshot};

/// The instance's changing inputs and the snapshot they make.
pub struct Instance {
    shared: Arc<Shared>,
    identity: Option<IdentityKey>,
    config: Mutex<Config>,
    credentials: Mutex<CredentialManager>,
    /// Spot notices, events, ASG state and the `ctl` overlay (locked after `config` and
    /// `credentials`, never before).
    scenario: Mutex<Scenario>,
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
        let start = clock.now();
        let mut scenario = Scenario::new(&config.scenario, start, &mut EventId::random);
        scenario.apply_due(start);
        let snapshot = build(
            &config,
            identity.as_ref(),
            &credentials,
            &scenario,
            clock.now(),
        )?;
        credentials.announce();
        Ok(Arc::new(Instance {
            shared: Shared::new(snapshot, clock),
            identity,
            config: Mutex::new(config),
            credentials: Mutex::new(credentials),
            scenario: Mutex::new(scenario),
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
        let scenario = lock(&self.scenario);
        let s = build(
            &config,
            self.identity.as_ref(),
            &credentials,
            &scenario,
            self.shared.clock.now(),
        )?;
        self.shared.snapshot.store(Arc::new(s));
        Ok(())
    }

    /// Swaps in a new configuration, or keeps the running one if it cannot be compiled.
    /// Credentials are kept unless `[iam]` or the account changed; the scenario (with its
    /// live changes) is kept unless `[scenario]` changed, which restarts it from the new
    /// timeline (counted from the daemon's start, as at startup).
    pub fn reload(&self, new: Config) -> Result<(), ConfigError> {
        let mut config = lock(&self.config);
        let mut credentials = lock(&self.credentials);
        let mut scenario = lock(&self.scenario);
        let old = config.clone();
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
        let now = self.shared.clock.now();
        let restarted = (new.scenario != old.scenario).then(|| {
            let mut s = Scenario::new(&new.scenario, scenario.start(), &mut EventId::random);
            s.apply_due(now);
            s
        });
        let s = build(
            &new,
            self.identity.as_ref(),
            fresh.as_ref().unwrap_or(&credentials),
            restarted.as_ref().unwrap_or(&scenario),
            now,
        )?;
        if let Some(m) = fresh {
            *credentials = m;
        }
        if let Some(r) = restarted {
            tracing::info!("[scenario] changed: the timeline restarts from the new config");
            *scenario = r;
        }
        *config = new;
        self.shared.snapshot.store(Arc::new(s));
        credentials.announce();
        drop((config, credentials, scenario));
        self.changed.notify_one();
        Ok(())
    }

    /// Does what is due (may block: a `process` source runs a command) and publishes if
    /// anything changed.
    pub fn tick(&self) {
        let changed = lock(&self.credentials).refresh() == Refresh::Changed;
        let happened = lock(&self.scenario).apply_due(self.shared.clock.now());
        if (changed || happened)
            && let Err(e) = self.publish()
        {
            tracing::error!("cannot publish the new state: {e}");
        }
        lock(&self.credentials).announce();
    }

    /// Issues a new credential set now.
    pub fn rotate_credentials(&self) -> Result<(), ConfigError> {
        let _ = lock(&self.credentials).rotate_now();
        self.changed.notify_one();
        let published = self.publish();
        lock(&self.credentials).announce();
        published
    }

    /// When [`Instance::tick`] should run next.
    pub fn next_due(&self) -> SystemTime {
        let credentials = lock(&self.credentials).next_refresh();
        match lock(&self.scenario).next_due() {
            Some(t) => t.min(credentials),
            None => credentials,
        }
    }

    /// Carries out a `ctl` command. A change is applied to a copy of the scenario, compiled
    /// into a snapshot and swapped in at once; if anything is wrong nothing changes and the
    /// error says why.
    pub fn control(&self, command: crate::control::Command) -> Result<String, String> {
        use crate::control::Command;
        let now = self.shared.clock.now();
        let message = match command {
            Command::Status => return Ok(lock(&self.scenario).status(now)),
            Command::RotateCredentials => {
                self.rotate_credentials().map_err(|e| e.to_string())?;
                return Ok("issued a new credential set".into());
            }
            Command::Reset => {
                let config = lock(&self.config);
                let credentials = lock(&self.credentials);
                let mut scenario = lock(&self.scenario);
                let mut next =
                    Scenario::new(&config.scenario, scenario.start(), &mut EventId::random);
                next.apply_due(now);
                let s = build(&config, self.identity.as_ref(), &credentials, &next, now)
                    .map_err(|e| e.to_string())?;
                self.shared.snapshot.store(Arc::new(s));
                *scenario = next;
                "back to the configured state".to_string()
            }
            Command::Change { mut change, when } => {
                let config = lock(&self.config);
                if change.is_tags() && !config.imds.instance_metadata_tags.is_enabled() {
                    return Err("instance tags are not served: set [imds] instance-metadata-tags = \"enabled\" in the config first".into());
                }
                let credentials = lock(&self.credentials);
                let mut scenario = lock(&self.scenario);
                change.assign_id(&mut EventId::random);
                let mut next = scenario.clone();
                let message = match when {
                    None => next.apply(change, now),
                    Some(m) => next.schedule(change, m.resolve(now), now),
                }
                .map_err(|e| e.to_string())?;
                let s = build(&config, self.identity.as_ref(), &credentials, &next, now)
                    .map_err(|e| e.to_string())?;
                self.shared.snapshot.store(Arc::new(s));
                *scenario = next;
                message
            }
        };
        self.changed.notify_one();
        Ok(message)
    }
}

/// Builds a snapshot: the configured tree, the signatures, the credentials, then the
/// scenario (notices, events, ASG state) and the `ctl` overlay, which win over `[paths]`.
fn build(
    config: &Config,
    identity: Option<&IdentityKey>,
    credentials: &CredentialManager,
    scenario: &Scenario,
    now: SystemTime,
) -> Result<Snapshot, ConfigError> {
    let tagged;
    let config = if scenario.changes_tags() {
        let mut c = config.clone();
        c.tags = scenario.tags(&config.tags);
        tagged = c;
        &tagged
    } else {
        config
    };
    let mut tree = metadata::builder(config, config.user_data_bytes()?, identity);
    for (path, body) in credentials.leaves() {
        tree.text(&path, body);
    }
    // Configured paths win over everything, credentials included.
    for (path, value) in &config.paths {
        tree.text(path.as_str(), value.clone());
    }
    scenario.extend(&mut tree);
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
