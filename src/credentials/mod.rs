//! IAM role credentials: where they come from (generated, static, an AWS credentials file, a
//! `credential_process` command), when they rotate, and what is served: one typed
//! [`CredentialSet`]. As on EC2, every instance has instance identity credentials (always
//! generated), with or without a role. The documents are rendered from the set by each
//! endpoint's part of the snapshot (IMDS's `iam/` and `identity-credentials/` in
//! `crate::snapshot::iam`), so that every endpoint serves the same set at every rotation.
//!
//! [`CredentialManager`] owns the current set. The daemon calls [`CredentialManager::refresh`]
//! (blocking, so from `spawn_blocking`) at [`CredentialManager::next_refresh`] and, when it
//! reports [`Refresh::Changed`], builds a new snapshot from [`CredentialManager::current`],
//! then calls [`CredentialManager::announce`] to log the change.
//! Rotation follows EC2: each set lives `lifetime`, and a new one replaces it `refresh-before`
//! ahead of its expiry, so a client never receives a set with less than `refresh-before` left.
//! A failing source never takes credentials away early: the last good set is served until it
//! expires, then EC2's failure document. Keys live in [`Secret`]s and in the rendered bodies
//! only; nothing here logs or prints them.

mod config;
mod generate;
mod keyring;
mod secret;
mod sources;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use time::macros::format_description;

use crate::clock::Clock;

pub use config::{
    DEFAULT_INSTANCE_PROFILE_ID, DEFAULT_ROLE, HumanDuration, IamConfig, InstanceProfileArn,
    InstanceProfileId, Keys, RoleName, SourceConfig, SourceKeys, SourceKind, StaticKeys,
};
pub use keyring::{Keyring, ViewIam, Workload, WorkloadRole};
pub use secret::Secret;
pub use sources::SourceError;

use sources::Fetched;

/// The `Code` of the document served when no valid set is available. EC2 uses codes such as
/// `AssumeRoleUnauthorizedAccess`; this one says what happened here.
pub const FAILURE_CODE: &str = "CredentialsUnavailable";
/// How often the `file` source looks at its file for changes.
pub const FILE_POLL: Duration = Duration::from_secs(10);
/// How soon a failed `process` source is run again.
pub const PROCESS_RETRY: Duration = Duration::from_secs(60);

/// Whether a refresh changed what is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Unchanged,
    /// The [`CredentialSet`] differs: rebuild the snapshot.
    Changed,
}

/// What is served now, as one value: every endpoint renders its documents from it. A
/// `Default` set (no role, no identity credentials yet) renders nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialSet {
    /// The account the credentials belong to (`AccountId`).
    pub account_id: String,
    /// The instance profile's role, when there is one.
    pub role: Option<RoleCredentials>,
    /// The instance identity credentials, from their first issue until they expire.
    pub identity: Option<Issued>,
    /// Each task's and pod's role credentials (served by the ECS agent's and Pod Identity's
    /// endpoints), by workload.
    pub workloads: std::collections::BTreeMap<Workload, RoleCredentials>,
    /// Each `[[view]]`'s instance: its own profile and identity credentials (no workloads).
    pub views: std::collections::BTreeMap<String, CredentialSet>,
}

/// The role's part of a [`CredentialSet`].
#[derive(Debug, Clone, PartialEq)]
pub struct RoleCredentials {
    pub name: RoleName,
    /// The configured ARN, or one for a profile named as the role.
    pub instance_profile_arn: String,
    pub instance_profile_id: InstanceProfileId,
    /// The valid set, or why there is none.
    pub set: Result<Issued, Unavailable>,
}

/// One handed-out set. `Debug` shows no key (see [`Secret`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    pub keys: Keys,
    /// `LastUpdated`.
    pub issued: SystemTime,
    /// `Expiration`.
    pub expires: SystemTime,
}

/// Why no valid set is served: what EC2's failure document says.
#[derive(Debug, Clone, PartialEq)]
pub struct Unavailable {
    /// `Code` ([`FAILURE_CODE`]).
    pub code: &'static str,
    /// `Message`.
    pub message: String,
    /// `LastUpdated`: since when.
    pub since: SystemTime,
}

/// Why no set is served (or, while an older one still is, why no new one came).
#[derive(Clone)]
struct Failure {
    since: SystemTime,
    message: String,
}

/// Owns the role's current credentials and the instance identity credentials.
pub struct CredentialManager {
    cfg: IamConfig,
    account_id: String,
    /// The instance's partition (`aws`, `aws-cn`, …), for the default profile ARN.
    partition: &'static str,
    clock: Arc<dyn Clock>,
    created: SystemTime,
    role: Option<Issued>,
    /// When the role's set is next replaced (`expires - refresh-before`, or a retry).
    role_next: SystemTime,
    /// The instance identity credentials: always generated, rotated like the role's (only
    /// the instance has them: a workload's manager issues none).
    identity: Option<Issued>,
    identity_next: SystemTime,
    with_identity: bool,
    failure: Option<Failure>,
    /// The next time the `file` source looks at its file.
    next_poll: Option<SystemTime>,
    /// The set as of the last refresh, to tell whether a refresh changed it.
    served: CredentialSet,
    /// Whether the last refresh served a valid role set (to log the moment it stops).
    serving: bool,
    /// Changes to what is served, logged by [`announce`](CredentialManager::announce) once
    /// the snapshot that serves them is in place, so a log line never runs ahead of what a
    /// client gets.
    news: Vec<News>,
}

/// A change worth a log line once it is served.
enum News {
    New {
        role: RoleName,
        source: SourceKind,
        key: String,
        expires: SystemTime,
    },
    Recovered(RoleName),
    Expired(RoleName),
}

impl CredentialManager {
    /// A manager with no set yet (the documents say so until the first [`refresh`]).
    /// Does no I/O.
    ///
    /// [`refresh`]: CredentialManager::refresh
    pub fn new(
        cfg: &IamConfig,
        account_id: &str,
        partition: &'static str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let now = clock.now();
        CredentialManager {
            cfg: cfg.clone(),
            account_id: account_id.to_string(),
            partition,
            created: now,
            clock,
            role: None,
            role_next: now,
            identity: None,
            identity_next: now,
            with_identity: true,
            failure: None,
            next_poll: None,
            served: CredentialSet::default(),
            serving: false,
            news: Vec::new(),
        }
    }

    /// Logs what the last refreshes changed. Call it after the snapshot built from
    /// [`current`](CredentialManager::current) is swapped in.
    pub fn announce(&mut self) {
        for n in self.news.drain(..) {
            match n {
                News::New {
                    role,
                    source,
                    key,
                    expires,
                } => tracing::info!(
                    role = %role,
                    source = %source,
                    key = %key,
                    expires = %ec2_time(expires),
                    "new credentials"
                ),
                News::Recovered(role) => {
                    tracing::info!(role = %role, "credentials are available again")
                }
                News::Expired(role) => tracing::error!(
                    role = %role,
                    "credentials for role {role} expired and no new set could be obtained; serving the failure document"
                ),
            }
        }
    }

    /// Gets a new set if one is due (or none exists yet), looks at the `file` source's file,
    /// and reports whether the served documents changed. Blocks while a `process` source runs
    /// (at most its `command-timeout`). Never panics on a failing source: the failure is
    /// logged and the last good set stays until it expires.
    #[must_use = "rebuild the snapshot when the set changed"]
    pub fn refresh(&mut self) -> Refresh {
        self.refresh_inner(false)
    }

    /// Replaces both sets now, whatever their age (e.g. `ctl credentials rotate`).
    #[must_use = "rebuild the snapshot when the set changed"]
    pub fn rotate_now(&mut self) -> Refresh {
        self.refresh_inner(true)
    }

    /// When [`refresh`](CredentialManager::refresh) should run next: the next rotation, the
    /// current set's expiry (to switch to the failure document on time), a retry after a
    /// failure, or the next look at a `file` source. With no role, only the identity
    /// credentials' rotation.
    pub fn next_refresh(&self) -> SystemTime {
        let now = self.clock.now();
        let with_role = self.cfg.role.is_some();
        let role = with_role.then_some(&self.role).into_iter().flatten();
        let expiries = self
            .identity
            .iter()
            .chain(role)
            .map(|s| s.expires)
            .filter(|&t| t > now);
        self.with_identity
            .then_some(self.identity_next)
            .into_iter()
            .chain(with_role.then_some(self.role_next))
            .chain(self.next_poll)
            .chain(expiries)
            .min()
            .unwrap_or(now)
    }

    /// The set to serve now: the role's (when there is a role: its valid set, or why there
    /// is none) and the instance identity credentials (once issued, until they expire).
    pub fn current(&self) -> CredentialSet {
        let now = self.clock.now();
        let valid = |s: &Option<Issued>| s.as_ref().filter(|s| s.expires > now).cloned();
        CredentialSet {
            account_id: self.account_id.clone(),
            role: self.cfg.role.as_ref().map(|role| RoleCredentials {
                name: role.clone(),
                instance_profile_arn: self.cfg.instance_profile_arn.as_ref().map_or_else(
                    || InstanceProfileArn::for_role(self.partition, &self.account_id, role),
                    InstanceProfileArn::to_string,
                ),
                instance_profile_id: self.cfg.instance_profile_id.clone(),
                set: valid(&self.role).ok_or_else(|| self.unavailable(role, now)),
            }),
            identity: valid(&self.identity),
            workloads: Default::default(),
            views: Default::default(),
        }
    }

    fn unavailable(&self, role: &RoleName, now: SystemTime) -> Unavailable {
        let (since, message) = match (&self.failure, &self.role) {
            (Some(f), _) => (
                f.since,
                format!(
                    "Could not obtain credentials for role {role} from the {} source; the fake-metadata log says why.",
                    self.cfg.source.kind()
                ),
            ),
            (None, Some(old)) if old.expires <= now => (
                old.expires,
                format!("The credentials for role {role} expired and have not been replaced."),
            ),
            _ => (
                self.created,
                format!("The credentials for role {role} have not been fetched yet."),
            ),
        };
        Unavailable {
            code: FAILURE_CODE,
            message,
            since,
        }
    }

    fn refresh_inner(&mut self, force: bool) -> Refresh {
        let now = self.clock.now();

        if self.with_identity && (force || now >= self.identity_next) {
            match generate::keys() {
                Ok(keys) => {
                    let (set, next) = self.issue(now, keys, None);
                    self.identity = Some(set);
                    self.identity_next = next;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot generate instance identity credentials");
                    self.identity_next = now + FILE_POLL;
                }
            }
        }
        if let Some(role) = self.cfg.role.clone() {
            self.refresh_role(&role, now, force);
        }

        let set = self.current();
        if set == self.served {
            Refresh::Unchanged
        } else {
            self.served = set;
            Refresh::Changed
        }
    }

    /// Gets the role's new set when one is due, and looks at a `file` source's file.
    fn refresh_role(&mut self, role: &RoleName, now: SystemTime, force: bool) {
        let due = force || now >= self.role_next;
        let poll = self.next_poll.is_some_and(|t| now >= t);
        if due || poll {
            match self.fetch().and_then(|f| unexpired(f, now)) {
                Ok(f) => {
                    // A poll alone only replaces the set when the file's keys changed.
                    if due || self.role.as_ref().is_none_or(|s| s.keys != f.keys) {
                        self.install(role, now, f);
                    }
                    if self.failure.take().is_some() {
                        self.news.push(News::Recovered(role.clone()));
                    }
                }
                Err(e) => self.record_failure(role, now, due, &e),
            }
        }
        if let SourceConfig::File { .. } = self.cfg.source {
            self.next_poll = Some(now + FILE_POLL);
        }

        let was_serving = self.serving;
        self.serving = self.serving_role_at(now);
        if was_serving && !self.serving {
            self.news.push(News::Expired(role.clone()));
        }
    }

    /// Whether the role's set was valid at `t`.
    fn serving_role_at(&self, t: SystemTime) -> bool {
        self.role.as_ref().is_some_and(|s| s.expires > t)
    }

    fn fetch(&self) -> Result<Fetched, SourceError> {
        let expires = None;
        match &self.cfg.source {
            SourceConfig::Generated => Ok(Fetched {
                keys: generate::keys().map_err(SourceError::Random)?,
                expires,
            }),
            SourceConfig::Static(StaticKeys::Inline(keys)) => Ok(Fetched {
                keys: keys.clone(),
                expires,
            }),
            SourceConfig::Static(StaticKeys::File(path)) => sources::read_key_file(path),
            SourceConfig::File { path, profile } => sources::read_shared_file(path, profile),
            SourceConfig::Process { command, timeout } => sources::run_process(command, *timeout),
        }
    }

    /// A set valid for `lifetime` (or until the source says it expires, if sooner), and when
    /// to replace it: `refresh-before` ahead of its expiry (never sooner than a retry).
    fn issue(
        &self,
        now: SystemTime,
        keys: Keys,
        stated: Option<SystemTime>,
    ) -> (Issued, SystemTime) {
        let mut expires = now + self.cfg.lifetime;
        if let Some(s) = stated {
            expires = expires.min(s);
        }
        let retry = now + self.retry_interval();
        let next = expires
            .checked_sub(self.cfg.refresh_before)
            .unwrap_or(retry)
            .max(retry);
        let set = Issued {
            keys,
            issued: now,
            expires,
        };
        (set, next)
    }

    fn install(&mut self, role: &RoleName, now: SystemTime, f: Fetched) {
        let (set, next) = self.issue(now, f.keys, f.expires);
        self.role_next = next;
        let left = set.expires.duration_since(now).unwrap_or_default();
        if left < self.cfg.refresh_before {
            tracing::warn!(
                role = %role,
                left_secs = left.as_secs(),
                "the {} source's credentials expire in less than `refresh-before`; clients may refresh often or warn",
                self.cfg.source.kind()
            );
        }
        self.news.push(News::New {
            role: role.clone(),
            source: self.cfg.source.kind(),
            key: set.keys.access_key_id.hint().to_string(),
            expires: set.expires,
        });
        self.role = Some(set);
    }

    fn record_failure(&mut self, role: &RoleName, now: SystemTime, due: bool, e: &SourceError) {
        let message = e.to_string();
        let repeated = self.failure.as_ref().is_some_and(|f| f.message == message);
        let until = self.role.as_ref().filter(|s| s.expires > now).map_or_else(
            || "nothing: serving the failure document".into(),
            |s| format!("it expires at {}", ec2_time(s.expires)),
        );
        if repeated {
            tracing::debug!(role = %role, error = %message, "credential source still failing");
        } else {
            tracing::warn!(
                role = %role,
                source = %self.cfg.source.kind(),
                error = %message,
                "cannot get credentials; serving the last good set until {until}"
            );
        }
        let since = self.failure.as_ref().map_or(now, |f| f.since);
        self.failure = Some(Failure { since, message });
        if due {
            self.role_next = now + self.retry_interval();
        }
    }

    fn retry_interval(&self) -> Duration {
        match self.cfg.source {
            SourceConfig::Process { .. } => PROCESS_RETRY,
            _ => FILE_POLL,
        }
    }
}

/// Shows the role, the source and when the sets expire; never a key.
impl fmt::Debug for CredentialManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &Option<Issued>| {
            s.as_ref().map(|s| {
                format!(
                    "{} issued {} expires {}",
                    s.keys.access_key_id.hint(),
                    ec2_time(s.issued),
                    ec2_time(s.expires)
                )
            })
        };
        f.debug_struct("CredentialManager")
            .field("role", &self.cfg.role.as_ref().map(RoleName::as_str))
            .field("source", &self.cfg.source.kind())
            .field("account_id", &self.account_id)
            .field("role_set", &set(&self.role))
            .field("identity_set", &set(&self.identity))
            .field("failure", &self.failure.as_ref().map(|f| &f.message))
            .finish()
    }
}

impl fmt::Display for CredentialManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cfg.role, &self.role) {
            (None, _) => f.write_str("no role"),
            (Some(r), None) => write!(
                f,
                "role {r} ({} source), no credentials yet",
                self.cfg.source.kind()
            ),
            (Some(r), Some(s)) => write!(
                f,
                "role {r} ({} source), key {} expires {}",
                self.cfg.source.kind(),
                s.keys.access_key_id.hint(),
                ec2_time(s.expires)
            ),
        }
    }
}

/// Refuses a set whose stated expiry has already passed.
fn unexpired(f: Fetched, now: SystemTime) -> Result<Fetched, SourceError> {
    match f.expires {
        Some(t) if t <= now => Err(SourceError::Output(format!(
            "states an `Expiration` that has passed ({})",
            ec2_time(t)
        ))),
        _ => Ok(f),
    }
}

/// EC2's credential time format, `%Y-%m-%dT%H:%M:%SZ` in UTC (what SDKs parse).
pub fn ec2_time(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("a UTC time always formats")
}

#[cfg(test)]
mod tests;
