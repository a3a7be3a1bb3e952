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

use crate::capability::BoxSecret;
use crate::clock::Clock;
use crate::config::Config;
use crate::config::{Pod, Task};
use crate::credentials::{
    CredentialManager, CredentialSet, Keyring, Refresh, SourceKind, Workload, WorkloadRole,
};
use crate::identity::{IdentityKey, Signatures};
use crate::scenario::{Change, EventId, Moment, Refused, Scenario};
use crate::snapshot::{self, Published, signed_document};

/// The live inputs and the snapshot they make.
pub struct Inputs {
    published: Arc<Published>,
    identity: Option<IdentityKey>,
    /// What the tasks' and pods' ids and tokens are derived from.
    secret: BoxSecret,
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
    /// The tasks and pods served: the config's, then those `ctl` added (kept across a
    /// reload, lost at a restart).
    tasks: Vec<Task>,
    pods: Vec<Pod>,
    added_tasks: Vec<Task>,
    added_pods: Vec<Pod>,
    /// Since when the daemon serves (the tasks' start times).
    since: SystemTime,
}

/// Why a `ctl task` or `ctl pod` command was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("task `{0}` already exists: remove it first, or give this one another name")]
    TaskExists(String),
    #[error("no task `{0}` (`ctl task list` shows them)")]
    NoTask(String),
    #[error("task `{0}` comes from the config file: remove it there and reload")]
    TaskInConfig(String),
    #[error("task `{task}` has no container `{container}` (it has: {known})")]
    NoContainer {
        task: String,
        container: String,
        known: String,
    },
    #[error("pod `{0}` already exists: remove it first")]
    PodExists(String),
    #[error("no pod `{0}` (`ctl pod list` shows them)")]
    NoPod(String),
    #[error("pod `{0}` comes from the config file: remove it there and reload")]
    PodInConfig(String),
}

/// Why a `ctl` change was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(
        "instance tags are not served: set [imds] instance-metadata-tags = \"enabled\" in the config first"
    )]
    TagsNotServed,
    #[error("no view `{name}` (the config has: {known})")]
    NoView { name: String, known: String },
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
        secret: BoxSecret,
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
        let mut current = Current {
            signatures: sign(identity.as_ref(), &config, start),
            credentials: CredentialSet::default(),
            tasks: Vec::new(),
            pods: Vec::new(),
            added_tasks: Vec::new(),
            added_pods: Vec::new(),
            since: start,
            config,
            scenario,
        };
        current.settle_workloads(&mut credentials);
        let journal_size = current.config.journal().size();
        let published = Published::new(current.build(&secret, start), clock, journal_size);
        credentials.announce();
        Arc::new(Inputs {
            published,
            identity,
            secret,
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
        current.settle_workloads(&mut credentials);
        self.published.publish(current.build(&self.secret, now));
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
            self.published.publish(current.build(&self.secret, now));
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
        self.published.publish(current.build(&self.secret, now));
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
        let scenario = lock(&self.current).scenario.status(self.now());
        let journal = self.published.journal.tally().report().summary();
        format!("{scenario}\n{journal}")
    }

    /// Forgets the journal's entries and counts.
    pub fn clear_journal(&self) {
        self.published
            .journal
            .clear(self.published.clock.now_millis());
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
        self.published.publish(current.build(&self.secret, now));
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
        self.published.publish(current.build(&self.secret, now));
        drop(current);
        self.changed.notify_one();
        Ok(message)
    }

    /// Applies a change to the instance of view `view` (`None`: the box), now or later.
    pub fn change_in(
        &self,
        view: Option<&str>,
        change: Change,
        when: Option<Moment>,
    ) -> Result<String, ChangeError> {
        match view {
            None => self.change(change, when),
            Some(name) => Err(ChangeError::NoView {
                name: name.into(),
                known: "none".into(),
            }),
        }
    }

    /// The views, one a line (`ctl view list`): name, what it covers, instance id, role.
    pub fn view_list(&self) -> String {
        list(std::iter::empty())
    }

    /// Applies a change to the `ctl`-added tasks and pods: `f` edits them (or refuses, and
    /// nothing changes); the credentials follow and one snapshot is published.
    fn change_workloads(
        &self,
        f: impl FnOnce(&mut Current) -> Result<String, WorkloadError>,
    ) -> Result<String, WorkloadError> {
        let mut credentials = lock(&self.credentials);
        let now = self.now();
        let mut current = lock(&self.current);
        let message = f(&mut current)?;
        current.settle_workloads(&mut credentials);
        self.published.publish(current.build(&self.secret, now));
        drop(current);
        credentials.announce();
        drop(credentials);
        self.changed.notify_one();
        Ok(message)
    }

    /// Serves `task` too (`ctl task add`).
    pub fn add_task(&self, task: Task) -> Result<String, WorkloadError> {
        self.change_workloads(|c| {
            if c.tasks.iter().any(|t| t.name() == task.name()) {
                return Err(WorkloadError::TaskExists(task.name().into()));
            }
            let message = format!("task {task} added");
            c.added_tasks.push(task);
            Ok(message)
        })
    }

    /// Stops serving the task `name` that `ctl task add` added.
    pub fn remove_task(&self, name: &str) -> Result<String, WorkloadError> {
        self.change_workloads(
            |c| match c.added_tasks.iter().position(|t| t.name() == name) {
                Some(i) => {
                    c.added_tasks.remove(i);
                    Ok(format!("task {name} removed"))
                }
                None if c.config.tasks().iter().any(|t| t.name() == name) => {
                    Err(WorkloadError::TaskInConfig(name.into()))
                }
                None => Err(WorkloadError::NoTask(name.into())),
            },
        )
    }

    /// The tasks served, one a line (`ctl task list`); never an id.
    pub fn task_list(&self) -> String {
        let c = lock(&self.current);
        list(c.tasks.iter().map(|t| {
            let from = if c.added_tasks.iter().any(|a| a.name() == t.name()) {
                "ctl"
            } else {
                "config"
            };
            format!("{t} [{from}]")
        }))
    }

    /// The environment of a container of task `name` (its first unless `container`), as
    /// `KEY=VALUE` lines: what the ECS agent gives it (`ctl task env`).
    pub fn task_env(&self, name: &str, container: Option<&str>) -> Result<String, WorkloadError> {
        let c = lock(&self.current);
        let task = c
            .tasks
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| WorkloadError::NoTask(name.into()))?;
        let env =
            snapshot::ecs::env(task, container, &self.secret, &c.config).ok_or_else(|| {
                WorkloadError::NoContainer {
                    task: name.into(),
                    container: container.unwrap_or_default().into(),
                    known: task
                        .containers()
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
        Ok(env_lines(&env))
    }

    /// Serves `pod` too (`ctl pod add`).
    pub fn add_pod(&self, pod: Pod) -> Result<String, WorkloadError> {
        self.change_workloads(|c| {
            if c.pods
                .iter()
                .any(|p| p.service_account() == pod.service_account())
            {
                return Err(WorkloadError::PodExists(pod.service_account().to_string()));
            }
            let message = format!("pod {} added (role {})", pod.service_account(), pod.role());
            c.added_pods.push(pod);
            Ok(message)
        })
    }

    /// Stops serving the pod that `ctl pod add` added for `service_account`.
    pub fn remove_pod(&self, service_account: &str) -> Result<String, WorkloadError> {
        self.change_workloads(|c| {
            let is = |p: &Pod| p.service_account().to_string() == service_account;
            match c.added_pods.iter().position(is) {
                Some(i) => {
                    c.added_pods.remove(i);
                    Ok(format!("pod {service_account} removed"))
                }
                None if c.config.pods().iter().any(is) => {
                    Err(WorkloadError::PodInConfig(service_account.into()))
                }
                None => Err(WorkloadError::NoPod(service_account.into())),
            }
        })
    }

    /// The pods served, one a line (`ctl pod list`); never a token.
    pub fn pod_list(&self) -> String {
        let c = lock(&self.current);
        list(c.pods.iter().map(|p| {
            let from = if c
                .added_pods
                .iter()
                .any(|a| a.service_account() == p.service_account())
            {
                "ctl"
            } else {
                "config"
            };
            format!(
                "{} (role {}, cluster {}) [{from}]",
                p.service_account(),
                p.role(),
                p.cluster()
            )
        }))
    }

    /// The token a pod of `service_account` presents (`ctl pod env` writes it to a file).
    pub fn pod_token(&self, service_account: &str) -> Result<String, WorkloadError> {
        let c = lock(&self.current);
        c.pods
            .iter()
            .find(|p| p.service_account().to_string() == service_account)
            .map(|p| self.secret.pod_token(&p.service_account().to_string()))
            .ok_or_else(|| WorkloadError::NoPod(service_account.into()))
    }
}

/// Lines, or `(none)`.
fn list(lines: impl Iterator<Item = String>) -> String {
    let out: Vec<String> = lines.collect();
    if out.is_empty() {
        "(none)".into()
    } else {
        out.join("\n")
    }
}

/// `KEY=VALUE` lines, as `docker run --env-file` reads them.
fn env_lines(env: &[(String, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Current {
    fn build(&self, secret: &BoxSecret, now: SystemTime) -> snapshot::Snapshot {
        let workloads = snapshot::Workloads {
            tasks: &self.tasks,
            pods: &self.pods,
            secret,
            since: self.since,
        };
        snapshot::build(
            &self.config,
            self.signatures.as_ref(),
            &self.credentials,
            &self.scenario,
            &workloads,
            now,
        )
    }

    /// The tasks and pods served from the config and the `ctl` additions (an addition whose
    /// name the config now has gives way to it), and the keyring made to hold their roles.
    fn settle_workloads(&mut self, keyring: &mut Keyring) {
        let (config_tasks, config_pods) = (self.config.tasks(), self.config.pods());
        self.added_tasks.retain(|a| {
            let clash = config_tasks.iter().any(|t| t.name() == a.name());
            if clash {
                tracing::warn!(
                    task = a.name(),
                    "the config now has task {}: the one `ctl task add` added gives way",
                    a.name()
                );
            }
            !clash
        });
        self.added_pods.retain(|a| {
            let clash = config_pods
                .iter()
                .any(|p| p.service_account() == a.service_account());
            if clash {
                tracing::warn!(
                    "the config now has pod {}: the one `ctl pod add` added gives way",
                    a.service_account()
                );
            }
            !clash
        });
        self.tasks = config_tasks
            .iter()
            .chain(&self.added_tasks)
            .cloned()
            .collect();
        self.pods = config_pods
            .iter()
            .chain(&self.added_pods)
            .cloned()
            .collect();
        let wanted: Vec<WorkloadRole> = self
            .tasks
            .iter()
            .map(|t| WorkloadRole {
                workload: Workload::Task(t.name().into()),
                role: t.role().clone(),
                source: t.credentials_source().clone(),
            })
            .chain(self.pods.iter().map(|p| WorkloadRole {
                workload: Workload::Pod(p.service_account().to_string()),
                role: p.role().clone(),
                source: p.credentials_source().clone(),
            }))
            .collect();
        keyring.set_workloads(&wanted);
        self.credentials = keyring.current();
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
