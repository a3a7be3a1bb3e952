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
    CredentialManager, CredentialSet, Keyring, Refresh, SourceKind, ViewIam, Workload, WorkloadRole,
};
use crate::identity::{IdentityKey, Signatures};
use crate::imds::TokenAuthority;
use crate::scenario::{Change, EventId, Moment, Refused, Scenario};
use crate::snapshot::{self, Published, signed_document};
use crate::types::ViewName;

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
    /// Each `[[view]]`'s own inputs, in the config's order (its credentials are in
    /// `credentials.views`).
    views: Vec<ViewState>,
}

/// A view's inputs besides its config: its identity signatures and its scenario.
struct ViewState {
    name: ViewName,
    signatures: Option<Signatures>,
    scenario: Scenario,
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

/// Each view's identity signatures, in the config's order (I/O: before any lock).
fn sign_views(
    identity: Option<&IdentityKey>,
    config: &Config,
    now: SystemTime,
) -> Vec<Option<Signatures>> {
    config
        .views()
        .iter()
        .map(|v| sign(identity, v.config(), now))
        .collect()
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
            &config.scenario().for_view(None),
            config.faults(),
            start,
            &mut EventId::random,
        );
        scenario.apply_due(start);
        let view_signatures = sign_views(identity.as_ref(), &config, start);
        let mut current = Current {
            signatures: sign(identity.as_ref(), &config, start),
            credentials: CredentialSet::default(),
            tasks: Vec::new(),
            pods: Vec::new(),
            added_tasks: Vec::new(),
            added_pods: Vec::new(),
            since: start,
            views: Vec::new(),
            config,
            scenario,
        };
        current.views = current.next_views(&current.config, view_signatures, start);
        current.settle_workloads(&mut credentials);
        let journal_size = current.config.journal().size();
        let tokens = TokenAuthority::random();
        let snapshot = current.build(&secret, &tokens, start);
        let published = Published::new(snapshot, clock, journal_size, tokens);
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
        let view_signatures = sign_views(self.identity.as_ref(), &new, self.now());
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
        let boxed = new.scenario().for_view(None);
        if boxed != current.config.scenario().for_view(None)
            || new.faults() != current.config.faults()
        {
            tracing::info!(
                "[scenario] or [[fault]] changed: the timeline restarts from the new config"
            );
            let start = current.scenario.start();
            let mut next = Scenario::new(&boxed, new.faults(), start, &mut EventId::random);
            next.follow(&current.scenario);
            next.apply_due(now);
            current.scenario = next;
        }
        current.views = current.next_views(&new, view_signatures, now);
        current.config = new;
        current.signatures = signatures;
        current.settle_workloads(&mut credentials);
        self.publish(&current, now);
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
        let mut happened = current.scenario.apply_due(now);
        for v in &mut current.views {
            happened |= v.scenario.apply_due(now);
        }
        if renewed || happened {
            current.credentials = credentials.current();
            self.publish(&current, now);
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
        self.publish(&current, now);
        drop(current);
        credentials.announce();
        drop(credentials);
        self.changed.notify_one();
    }

    /// Publishes the snapshot `current` makes.
    fn publish(&self, current: &Current, now: SystemTime) {
        let snapshot = current.build(&self.secret, &self.published.tokens, now);
        self.published.publish(snapshot);
    }

    /// When [`Inputs::tick`] should run next.
    pub fn next_due(&self) -> SystemTime {
        let credentials = lock(&self.credentials).next_refresh();
        let current = lock(&self.current);
        std::iter::once(&current.scenario)
            .chain(current.views.iter().map(|v| &v.scenario))
            .filter_map(Scenario::next_due)
            .fold(credentials, SystemTime::min)
    }

    /// The faults in force, for `ctl fault list`.
    pub fn faults(&self) -> String {
        lock(&self.current).scenario.fault_list(self.now())
    }

    /// What is set and pending, for `ctl status`: the box's, then each view's.
    pub fn status(&self) -> String {
        let now = self.now();
        let current = lock(&self.current);
        let mut out = current.scenario.status(now).trim_end().to_string();
        for (v, state) in current.config.views().iter().zip(&current.views) {
            let c = v.config();
            out.push_str(&format!(
                "\nview {} ({}; instance {}, role {}):\n",
                v.name(),
                v.covers(),
                c.instance().instance_id(),
                c.iam().role.as_ref().map_or("none", |r| r.as_str()),
            ));
            // The clock and the faults are the box's (a fault names its view itself).
            let own = state.scenario.status(now);
            for line in own
                .lines()
                .filter(|l| !(l.is_empty() || l.starts_with("now ") || l.starts_with("faults:")))
            {
                out.push_str(&format!("  {line}\n"));
            }
        }
        drop(current);
        let journal = self.published.journal.tally().report().summary();
        format!("{}\n{journal}", out.trim_end())
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
        let Current { views, config, .. } = &mut *current;
        for v in views {
            let cfg = config.scenario().for_view(Some(&v.name));
            v.scenario = Scenario::new(&cfg, &[], v.scenario.start(), &mut EventId::random);
            v.scenario.apply_due(now);
        }
        self.publish(&current, now);
        drop(current);
        self.changed.notify_one();
    }

    /// Applies a change to the box now, or schedules it: [`Inputs::change_in`] the box.
    pub fn change(&self, change: Change, when: Option<Moment>) -> Result<String, ChangeError> {
        self.change_in(None, change, when)
    }

    /// Applies a change to the instance of view `view` (`None`: the box) now, or schedules
    /// it. It is tried on a copy of that instance's scenario and published as one snapshot;
    /// if it is refused nothing changes. Faults are the box's, scoped to a view by their own
    /// `view` (set from `view` here).
    pub fn change_in(
        &self,
        view: Option<&str>,
        mut change: Change,
        when: Option<Moment>,
    ) -> Result<String, ChangeError> {
        let now = self.now();
        let mut current = lock(&self.current);
        let mut view = view;
        match &mut change {
            Change::FaultAdd(spec) => {
                if let (Some(name), Some(own)) = (view, &spec.view)
                    && own.as_str() != name
                {
                    return Err(ChangeError::Refused(Refused(format!(
                        "the change is for view `{name}` and its fault for view `{own}`: give one"
                    ))));
                }
                if let Some(name) = view.or(spec.view.as_ref().map(ViewName::as_str)) {
                    spec.view = Some(current.known_view(name)?);
                }
                view = None;
            }
            Change::FaultClear { .. } => view = None,
            _ => {}
        }
        let i = match view {
            Some(name) => {
                let name = current.known_view(name)?;
                Some(
                    current
                        .views
                        .iter()
                        .position(|v| v.name == name)
                        .expect("a known view has its state"),
                )
            }
            None => None,
        };
        let config = match i {
            None => &current.config,
            Some(i) => current.config.views()[i].config(),
        };
        if change.is_tags() && !config.imds().instance_metadata_tags().is_enabled() {
            return Err(ChangeError::TagsNotServed);
        }
        change.assign_id(&mut EventId::random);
        let started = matches!(change, Change::FaultAdd(_)) && when.is_none();
        let scenario = match i {
            None => &mut current.scenario,
            Some(i) => &mut current.views[i].scenario,
        };
        let mut next = scenario.clone();
        let message = match when {
            None => next.apply(change, now),
            Some(m) => next.schedule(change, m.resolve(now), now),
        }?;
        if started && let Some(f) = next.faults().last() {
            tracing::info!("fault {} started: {}", f.id, f.spec);
        }
        *scenario = next;
        self.publish(&current, now);
        drop(current);
        self.changed.notify_one();
        Ok(match view {
            Some(name) => format!("view {name}: {message}"),
            None => message,
        })
    }

    /// The views, one a line (`ctl view list`): name, what it covers, instance id, role,
    /// and how many changes it has pending.
    pub fn view_list(&self) -> String {
        let current = lock(&self.current);
        list(
            current
                .config
                .views()
                .iter()
                .zip(&current.views)
                .map(|(v, state)| {
                    let c = v.config();
                    format!(
                        "{}  covers {}  instance {}  role {}  pending {}",
                        v.name(),
                        v.covers(),
                        c.instance().instance_id(),
                        c.iam().role.as_ref().map_or("none", |r| r.as_str()),
                        state.scenario.pending().len()
                    )
                }),
        )
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
        self.publish(&current, now);
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
    /// `name` as the running config's view, or why not.
    fn known_view(&self, name: &str) -> Result<ViewName, ChangeError> {
        let views = self.config.views();
        match views.iter().find(|v| v.name().as_str() == name) {
            Some(v) => Ok(v.name().clone()),
            None => Err(ChangeError::NoView {
                name: name.into(),
                known: if views.is_empty() {
                    "no [[view]]".into()
                } else {
                    views
                        .iter()
                        .map(|v| v.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }

    /// The snapshot these inputs make; each view's tokens derived from the box's `tokens`.
    fn build(
        &self,
        secret: &BoxSecret,
        tokens: &TokenAuthority,
        now: SystemTime,
    ) -> snapshot::Snapshot {
        let workloads = snapshot::Workloads {
            tasks: &self.tasks,
            pods: &self.pods,
            secret,
            since: self.since,
        };
        let none = CredentialSet::default();
        let views = self
            .config
            .views()
            .iter()
            .zip(&self.views)
            .map(|(v, state)| snapshot::ViewInputs {
                view: v,
                signatures: state.signatures.as_ref(),
                credentials: self
                    .credentials
                    .views
                    .get(v.name().as_str())
                    .unwrap_or(&none),
                scenario: &state.scenario,
                tokens: tokens.derive(v.name().as_str()),
            })
            .collect();
        snapshot::build(
            &self.config,
            self.signatures.as_ref(),
            &self.credentials,
            &self.scenario,
            &workloads,
            views,
            now,
        )
    }

    /// The views of `new` (a reload's, or the first config), with their `signatures`: a view
    /// this config already had keeps its scenario (its live changes) unless its timeline
    /// changed; a new one starts its timeline from the daemon's start.
    fn next_views(
        &self,
        new: &Config,
        signatures: Vec<Option<Signatures>>,
        now: SystemTime,
    ) -> Vec<ViewState> {
        new.views()
            .iter()
            .zip(signatures)
            .map(|(v, signatures)| {
                let name = v.name().clone();
                let cfg = new.scenario().for_view(Some(&name));
                let kept = self
                    .views
                    .iter()
                    .find(|o| o.name == name)
                    .filter(|_| self.config.scenario().for_view(Some(&name)) == cfg);
                let scenario = match kept {
                    Some(old) => old.scenario.clone(),
                    None => {
                        let start = self.scenario.start();
                        let mut s = Scenario::new(&cfg, &[], start, &mut EventId::random);
                        s.apply_due(now);
                        s
                    }
                };
                ViewState {
                    name,
                    signatures,
                    scenario,
                }
            })
            .collect()
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
        let views: Vec<ViewIam> = self
            .config
            .views()
            .iter()
            .map(|v| ViewIam {
                view: v.name().to_string(),
                iam: v.config().iam().clone(),
                account_id: v.config().instance().account_id().to_string(),
                partition: v.config().instance().partition().0,
            })
            .collect();
        keyring.set_views(&views);
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::imds::{Request, respond};
    use crate::scenario::SpotAction;

    const FLEET: &str = r#"
[iam]
role = "box-role"
[[scenario.timeline]]
at = "+10s"
view = "b"
rebalance = true
[[view]]
name = "a"
sources = ["10.0.0.2"]
[view.instance]
instance-id = "i-0aaaaaaaaaaaaaaaa"
[[view]]
name = "b"
sources = ["10.0.0.3"]
[view.iam]
role = "b-role"
"#;

    fn inputs() -> (Arc<Inputs>, Arc<ManualClock>) {
        let config = Config::from_toml(FLEET, Path::new("c.toml")).unwrap();
        let clock = Arc::new(ManualClock::fixed());
        let i = Inputs::new(config, clock.clone(), None, BoxSecret::from_bytes([7; 32]));
        (i, clock)
    }

    /// `(status, body)` of a GET to the box (`None`) or to view number `view`.
    fn get(i: &Inputs, view: Option<usize>, path: &str) -> (u16, String) {
        let p = i.published();
        let snap = p.snapshot.load();
        let (part, tokens) = match view {
            None => (&snap.imds, &p.tokens),
            Some(n) => (&snap.views[n].imds, &snap.views[n].tokens),
        };
        let now = p.clock.now_millis();
        let r = respond(
            &part.service,
            tokens,
            now,
            &Request::new(&http::Method::GET, path),
        );
        (
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned(),
        )
    }

    const SPOT: &str = "/latest/meta-data/spot/instance-action";
    const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";

    #[test]
    fn a_change_aimed_at_a_view_reaches_it_alone_and_reset_undoes_it() {
        let (i, _) = inputs();
        let spot = Change::Spot {
            action: SpotAction::Stop,
            time: None,
        };
        let said = i.change_in(Some("a"), spot, None).unwrap();
        assert!(said.starts_with("view a: "), "{said}");
        assert_eq!(get(&i, Some(0), SPOT).0, 200);
        assert_eq!(get(&i, None, SPOT).0, 404);
        assert_eq!(get(&i, Some(1), SPOT).0, 404);
        assert!(
            i.view_list()
                .contains("a  covers 10.0.0.2  instance i-0aaaaaaaaaaaaaaaa")
        );
        i.reset();
        assert_eq!(get(&i, Some(0), SPOT).0, 404);
    }

    #[test]
    fn a_views_timeline_runs_on_its_own() {
        let (i, clock) = inputs();
        assert_eq!(get(&i, Some(1), REBALANCE).0, 404);
        clock.advance(Duration::from_secs(11));
        i.tick();
        assert_eq!(get(&i, Some(1), REBALANCE).0, 200);
        assert_eq!(get(&i, None, REBALANCE).0, 404);
        assert_eq!(get(&i, Some(0), REBALANCE).0, 404);
    }

    #[test]
    fn an_unknown_view_is_refused_for_any_change_and_a_fault_names_one_view() {
        let (i, _) = inputs();
        let e = i
            .change_in(Some("zz"), Change::Rebalance { time: None }, None)
            .unwrap_err();
        assert_eq!(e.to_string(), "no view `zz` (the config has: a, b)");
        let fault = |view: Option<&str>| {
            let keys = format!(
                "status = 503\n{}",
                view.map(|v| format!("view = \"{v}\"")).unwrap_or_default()
            );
            Change::FaultAdd(toml::from_str(&keys).unwrap())
        };
        let e = i.change_in(None, fault(Some("zz")), None).unwrap_err();
        assert!(e.to_string().starts_with("no view `zz`"), "{e}");
        let e = i.change_in(Some("a"), fault(Some("b")), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("for view `a` and its fault for view `b`"),
            "{e}"
        );
        i.change_in(Some("a"), fault(None), None).unwrap();
        let snap = i.published().snapshot.load();
        let armed = snap
            .faults
            .iter()
            .map(|a| a.spec.view.clone())
            .collect::<Vec<_>>();
        assert_eq!(armed.len(), 1);
        assert_eq!(armed[0].as_ref().map(|v| v.as_str()), Some("a"));
    }

    #[test]
    fn each_view_has_its_own_credentials_and_they_rotate_with_the_box() {
        let (i, _) = inputs();
        let key = |view: Option<usize>, role: &str| {
            let (s, b) = get(
                &i,
                view,
                &format!("/latest/meta-data/iam/security-credentials/{role}"),
            );
            assert_eq!(s, 200, "{b}");
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            v["AccessKeyId"].as_str().unwrap().to_string()
        };
        let (boxed, a, b) = (
            key(None, "box-role"),
            key(Some(0), "box-role"),
            key(Some(1), "b-role"),
        );
        assert!(
            boxed != a && a != b && boxed != b,
            "three instances, three keys"
        );
        i.rotate_credentials();
        assert_ne!(key(Some(0), "box-role"), a);
        assert_ne!(key(Some(1), "b-role"), b);
    }
}
