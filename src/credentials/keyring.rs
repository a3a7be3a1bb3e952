//! Every role the box hands out: the instance profile's (with the instance identity
//! credentials), and each task's and pod's, each from its own source, rotated on the same
//! rules. One [`CredentialManager`] per holder; the [`Keyring`] refreshes, rotates and reads
//! them as one, so a rotation (`ctl credentials rotate`) renews every role at once and every
//! endpoint renders its documents from the one [`CredentialSet`] it makes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::{CredentialManager, CredentialSet, IamConfig, Refresh, RoleName, SourceConfig};
use crate::clock::Clock;

/// Who a role's credentials are for, besides the instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// An ECS task, by its family name.
    Task(String),
    /// A pod's Kubernetes service account, `NAMESPACE/NAME`.
    Pod(String),
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Task(n) => write!(f, "task {n}"),
            Workload::Pod(n) => write!(f, "pod {n}"),
        }
    }
}

/// A workload's role and where its keys come from.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadRole {
    pub workload: Workload,
    pub role: RoleName,
    pub source: SourceConfig,
}

/// A view's instance profile: its `[iam]` in its account and partition.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewIam {
    pub view: String,
    pub iam: IamConfig,
    pub account_id: String,
    pub partition: &'static str,
}

/// The instance's credentials and every workload's and view's.
pub struct Keyring {
    instance: CredentialManager,
    workloads: BTreeMap<Workload, (WorkloadRole, CredentialManager)>,
    /// Each view is an instance of its own: its own manager, identity credentials and
    /// rotation.
    views: BTreeMap<String, (ViewIam, CredentialManager)>,
    /// `[iam]`: the rotation every workload follows.
    iam: IamConfig,
    account_id: String,
    partition: &'static str,
    clock: Arc<dyn Clock>,
}

impl Keyring {
    /// The instance's manager (as `CredentialManager::new` makes it) and no workload yet.
    pub fn new(
        instance: CredentialManager,
        iam: &IamConfig,
        account_id: &str,
        partition: &'static str,
        clock: Arc<dyn Clock>,
    ) -> Keyring {
        Keyring {
            instance,
            workloads: BTreeMap::new(),
            views: BTreeMap::new(),
            iam: iam.clone(),
            account_id: account_id.to_string(),
            partition,
            clock,
        }
    }

    /// The instance's manager.
    pub fn instance(&self) -> &CredentialManager {
        &self.instance
    }

    /// Holds exactly `wanted`: a workload whose role and source are unchanged keeps its
    /// keys; a new or changed one gets a manager of its own with a first set at once (a
    /// `process` source's first run waits for the next refresh, as the instance's does).
    pub fn set_workloads(&mut self, wanted: &[WorkloadRole]) {
        let mut next = BTreeMap::new();
        for w in wanted {
            let kept = self
                .workloads
                .remove(&w.workload)
                .filter(|(old, _)| old == w);
            let entry = kept.unwrap_or_else(|| (w.clone(), self.manager_for(w)));
            next.insert(w.workload.clone(), entry);
        }
        self.workloads = next;
    }

    /// Holds exactly the views of `wanted`: one whose profile is unchanged keeps its keys; a
    /// new or changed one gets a manager with a first set at once (as the instance's).
    pub fn set_views(&mut self, wanted: &[ViewIam]) {
        let mut next = BTreeMap::new();
        for v in wanted {
            let kept = self.views.remove(&v.view).filter(|(old, _)| old == v);
            let entry = kept.unwrap_or_else(|| {
                let mut m =
                    CredentialManager::new(&v.iam, &v.account_id, v.partition, self.clock.clone());
                if v.iam.source.kind() != super::SourceKind::Process {
                    let _ = m.refresh();
                }
                (v.clone(), m)
            });
            next.insert(v.view.clone(), entry);
        }
        self.views = next;
    }

    fn manager_for(&self, w: &WorkloadRole) -> CredentialManager {
        let cfg = IamConfig {
            role: Some(w.role.clone()),
            source: w.source.clone(),
            ..self.iam.clone()
        };
        let mut m =
            CredentialManager::new(&cfg, &self.account_id, self.partition, self.clock.clone());
        m.with_identity = false;
        if w.source.kind() != super::SourceKind::Process {
            let _ = m.refresh();
        }
        m
    }

    /// Refreshes every manager that is due; `Changed` if any set changed.
    #[must_use = "rebuild the snapshot when the set changed"]
    pub fn refresh(&mut self) -> Refresh {
        self.each(CredentialManager::refresh)
    }

    /// Replaces every set now (`ctl credentials rotate`).
    #[must_use = "rebuild the snapshot when the set changed"]
    pub fn rotate_now(&mut self) -> Refresh {
        self.each(CredentialManager::rotate_now)
    }

    fn each(&mut self, mut f: impl FnMut(&mut CredentialManager) -> Refresh) -> Refresh {
        let mut out = f(&mut self.instance);
        let views = self.views.values_mut().map(|(_, m)| m);
        for m in self.workloads.values_mut().map(|(_, m)| m).chain(views) {
            if f(m) == Refresh::Changed {
                out = Refresh::Changed;
            }
        }
        out
    }

    /// The earliest time one of the managers needs a refresh.
    pub fn next_refresh(&self) -> SystemTime {
        self.workloads
            .values()
            .map(|(_, m)| m)
            .chain(self.views.values().map(|(_, m)| m))
            .map(CredentialManager::next_refresh)
            .fold(self.instance.next_refresh(), SystemTime::min)
    }

    /// What is served now: the instance's set with every workload's role.
    pub fn current(&self) -> CredentialSet {
        let mut set = self.instance.current();
        set.workloads = self
            .workloads
            .iter()
            .filter_map(|(w, (_, m))| Some((w.clone(), m.current().role?)))
            .collect();
        set.views = self
            .views
            .iter()
            .map(|(v, (_, m))| (v.clone(), m.current()))
            .collect();
        set
    }

    /// Logs what the last refreshes changed (after the snapshot serving it is in place).
    pub fn announce(&mut self) {
        self.instance.announce();
        for (w, (_, m)) in &mut self.workloads {
            let _span = tracing::info_span!("workload", %w).entered();
            m.announce();
        }
        for (v, (_, m)) in &mut self.views {
            let _span = tracing::info_span!("view", %v).entered();
            m.announce();
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("instance", &self.instance)
            .field(
                "workloads",
                &self
                    .workloads
                    .iter()
                    .map(|(w, (_, m))| (w, m))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
