//! `[[task]]`: ECS tasks whose containers get credentials and task metadata from the ECS
//! agent's endpoint (169.254.170.2). Each entry is a task family with its task role and the
//! containers the metadata describes.
//!
//! [`TaskSpec`] is the entry as written: in the file, and as `ctl task add` sends it over the
//! control socket (JSON, the same kebab-case keys). [`Task::check`] is the one check both go
//! through, so a task added at run time obeys the same rules as one in the file. Where the
//! credentials come from is `[iam]`'s source, parsed and checked by the same code
//! ([`SourceKeys`]) in a `credentials` table; their lifetime and rotation are `[iam]`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::locate::{Located, Spans};
use super::{ConfigError, ContainerSpec};
use crate::credentials::{IamConfig, RoleName, SourceConfig, SourceKeys};

/// The cluster a task runs in when `cluster` is not given (the agent's `ECS_CLUSTER` default).
pub const DEFAULT_CLUSTER: &str = "default";
/// A task family's revision when `revision` is not given.
pub const DEFAULT_REVISION: u32 = 1;
/// The image of the container a task gets when it names none.
pub const DEFAULT_IMAGE: &str = "public.ecr.aws/docker/library/busybox:latest";

/// A `[[task]]` entry as written (the file, `ctl task add`'s JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TaskSpec {
    /// The task definition's family.
    pub name: String,
    /// The task role's name (in `[instance] account-id`).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The task's containers; none: one named as the family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerSpec>,
    /// Where the role's credentials come from, with `[iam]`'s keys (`source`, …).
    #[serde(default, skip_serializing_if = "is_generated")]
    pub credentials: SourceKeys,
}

fn is_generated(s: &SourceKeys) -> bool {
    *s == SourceKeys::default()
}

/// A checked task. `Debug` shows no secret (its source's keys are [`crate::credentials::Secret`]s).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    family: String,
    role: RoleName,
    revision: u32,
    cluster: String,
    containers: Vec<ContainerSpec>,
    source: SourceConfig,
}

/// What is wrong with a task; each message names the task and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error(
        "task name `{0}` is not a task family: 1 to 255 of letters, digits, hyphens and underscores"
    )]
    Name(String),
    #[error("task `{task}`: {why}")]
    Role { task: String, why: String },
    #[error("task `{0}`: `revision` must be at least 1")]
    Revision(String),
    #[error(
        "task `{task}`: cluster `{cluster}` is not a cluster name: 1 to 255 of letters, digits, hyphens and underscores"
    )]
    Cluster { task: String, cluster: String },
    #[error("task `{task}`: {why}")]
    Container { task: String, why: String },
    #[error("{0}")]
    Credentials(String),
    #[error("task `{0}` already exists: remove it first (`fake-metadata ctl task remove {0}`)")]
    Exists(String),
    #[error("no task `{0}` (`fake-metadata ctl task list` shows them)")]
    Unknown(String),
}

impl TaskError {
    /// The key of the entry this error blames, to locate it in a file.
    pub fn key(&self) -> &'static str {
        match self {
            TaskError::Name(_) | TaskError::Exists(_) | TaskError::Unknown(_) => "name",
            TaskError::Role { .. } => "role",
            TaskError::Revision(_) => "revision",
            TaskError::Cluster { .. } => "cluster",
            TaskError::Container { .. } => "containers",
            TaskError::Credentials(_) => "credentials",
        }
    }
}

/// ECS's rule for a family and a cluster name: up to 255 letters, digits, hyphens, underscores.
fn is_ecs_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Task {
    /// The one check of a task, for the file and for `ctl task add`.
    pub fn check(spec: TaskSpec) -> Result<Task, TaskError> {
        let task = spec.name;
        if !is_ecs_name(&task) {
            return Err(TaskError::Name(task));
        }
        let role = RoleName::try_from(spec.role).map_err(|why| TaskError::Role {
            task: task.clone(),
            why: why.replace(" (or \"\" for no role)", ""),
        })?;
        let revision = spec.revision.unwrap_or(DEFAULT_REVISION);
        if revision == 0 {
            return Err(TaskError::Revision(task));
        }
        let cluster = spec.cluster.unwrap_or_else(|| DEFAULT_CLUSTER.into());
        if !is_ecs_name(&cluster) {
            return Err(TaskError::Cluster { task, cluster });
        }
        let mut names = BTreeSet::new();
        for c in &spec.containers {
            if let Err(why) = c.problem() {
                return Err(TaskError::Container { task, why });
            }
            if !names.insert(c.name.as_str()) {
                return Err(TaskError::Container {
                    why: format!("two containers are named `{}`", c.name),
                    task,
                });
            }
        }
        let source = spec
            .credentials
            .check(&format!("task `{task}` credentials:"))
            .map_err(TaskError::Credentials)?;
        let containers = if spec.containers.is_empty() {
            vec![ContainerSpec::named(&task)]
        } else {
            spec.containers
        };
        Ok(Task {
            family: task,
            role,
            revision,
            cluster,
            containers,
            source,
        })
    }

    /// The task definition's family (the task's name in `ctl`).
    pub fn name(&self) -> &str {
        &self.family
    }

    /// The task role.
    pub fn role(&self) -> &RoleName {
        &self.role
    }

    pub fn revision(&self) -> u32 {
        self.revision
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The containers, at least one.
    pub fn containers(&self) -> &[ContainerSpec] {
        &self.containers
    }

    /// Where the role's credentials come from (lifetime and refresh-before are `[iam]`'s).
    pub fn credentials_source(&self) -> &SourceConfig {
        &self.source
    }

    /// The task's credential settings in the form a `CredentialManager` takes: its role and
    /// source, with `[iam]`'s lifetime and refresh-before (and no instance profile: a task
    /// role has none).
    pub fn iam_config(&self, iam: &IamConfig) -> IamConfig {
        IamConfig {
            role: Some(self.role.clone()),
            source: self.source.clone(),
            instance_profile_arn: None,
            extended_credentials: false,
            ..iam.clone()
        }
    }

    /// The entry as written back (`print-config`, `ctl task list`): keys and tokens show as
    /// `<redacted>` when serialized. The default container is written out.
    pub fn to_spec(&self) -> TaskSpec {
        TaskSpec {
            name: self.family.clone(),
            role: self.role.to_string(),
            revision: Some(self.revision),
            cluster: Some(self.cluster.clone()),
            containers: self.containers.clone(),
            credentials: SourceKeys::from(self.source.clone()),
        }
    }
}

impl fmt::Display for Task {
    /// `NAME (role ROLE, cluster CLUSTER, revision N, K containers)`: what `ctl task list`
    /// may print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (role {}, cluster {}, revision {}, {} container{})",
            self.family,
            self.role,
            self.cluster,
            self.revision,
            self.containers.len(),
            if self.containers.len() == 1 { "" } else { "s" }
        )
    }
}

/// `tasks` with the task `spec` describes added (`ctl task add`): checked as a file's, and
/// refused if its family is taken. `tasks` is left as it was on an error.
pub fn add_task(tasks: &[Task], spec: TaskSpec) -> Result<Vec<Task>, TaskError> {
    let task = Task::check(spec)?;
    if tasks.iter().any(|t| t.family == task.family) {
        return Err(TaskError::Exists(task.family));
    }
    let mut out = tasks.to_vec();
    out.push(task);
    Ok(out)
}

/// `tasks` without the task `name` (`ctl task remove`).
pub fn remove_task(tasks: &[Task], name: &str) -> Result<Vec<Task>, TaskError> {
    if !tasks.iter().any(|t| t.family == name) {
        return Err(TaskError::Unknown(name.to_string()));
    }
    Ok(tasks.iter().filter(|t| t.family != name).cloned().collect())
}

/// Checks every `[[task]]` of a file: each with [`Task::check`], blamed on the key at fault
/// in its own entry, and no family twice (blamed on the second's `name`).
pub(super) fn check_all(specs: &[TaskSpec], spans: &Spans<'_>) -> Result<Vec<Task>, ConfigError> {
    let mut problems: Vec<Located> = Vec::new();
    let mut tasks = Vec::with_capacity(specs.len());
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, spec) in specs.iter().enumerate() {
        if let Some(&j) = first.get(spec.name.as_str()) {
            let line = spans.in_array("task", j, "name").map_or(0, |at| at.line);
            problems.push(spans.blame_in_array(
                "task",
                i,
                "name",
                format!(
                    "task `{}` is defined twice (first at line {line}): each [[task]] needs its own name",
                    spec.name
                ),
            ));
            continue;
        }
        first.insert(&spec.name, i);
        match Task::check(spec.clone()) {
            Ok(t) => tasks.push(t),
            Err(e) => problems.push(spans.blame_in_array("task", i, e.key(), e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(tasks)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::credentials::{SourceKind, StaticKeys};

    fn parse(s: &str) -> Result<Config, String> {
        Config::from_toml(s, Path::new("c.toml")).map_err(|e| e.to_string())
    }

    fn spec(json: &str) -> Result<Task, String> {
        let s: TaskSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Task::check(s).map_err(|e| e.to_string())
    }

    #[test]
    fn a_task_takes_the_defaults_and_one_container_named_as_its_family() {
        let c = parse("[[task]]\nname = \"web\"\nrole = \"web-task-role\"\n").unwrap();
        let [t] = c.tasks() else { panic!() };
        assert_eq!(t.name(), "web");
        assert_eq!(t.role().as_str(), "web-task-role");
        assert_eq!((t.revision(), t.cluster()), (1, "default"));
        assert_eq!(t.credentials_source(), &SourceConfig::Generated);
        let [only] = t.containers() else { panic!() };
        assert_eq!(only.name, "web");
        assert_eq!(only.image.as_deref(), Some(DEFAULT_IMAGE));
        assert!(parse("").unwrap().tasks().is_empty());
    }

    #[test]
    fn every_key_and_a_source_like_iams() {
        let c = parse(
            "[[task]]\nname = \"api_v2\"\nrole = \"api\"\nrevision = 7\ncluster = \"prod-1\"\n\
             [[task.containers]]\nname = \"app\"\nimage = \"nginx:1.25\"\n\
             docker-id = \"1f0c2e1b8c9d4a7e6f5b3a2918273645546372819a0b1c2d3e4f5a6b7c8d9e0f\"\n\
             [task.containers.labels]\ntier = \"front\"\n\
             [[task.containers]]\nname = \"sidecar\"\nimage = \"envoy:v1\"\n\
             [task.credentials]\nsource = \"static\"\naccess-key-id = \"AKIATASKKEY\"\n\
             secret-access-key = \"TASKSECRET\"\n\
             [[task]]\nname = \"batch\"\nrole = \"batch\"\n\
             credentials = { source = \"process\", command = \"get-creds\" }\n",
        )
        .unwrap();
        let [api, batch] = c.tasks() else { panic!() };
        assert_eq!((api.revision(), api.cluster()), (7, "prod-1"));
        let names: Vec<_> = api.containers().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "sidecar"]);
        assert_eq!(api.containers()[0].labels["tier"], "front");
        let SourceConfig::Static(StaticKeys::Inline(k)) = api.credentials_source() else {
            panic!()
        };
        assert_eq!(k.secret_access_key.expose(), "TASKSECRET");
        assert_eq!(batch.credentials_source().kind(), SourceKind::Process);
        // What a credential manager for the task takes: its role and source, [iam]'s timing.
        let iam = batch.iam_config(c.iam());
        assert_eq!(iam.role.as_ref().unwrap().as_str(), "batch");
        assert_eq!(&iam.source, batch.credentials_source());
        assert_eq!(iam.lifetime, c.iam().lifetime);
        assert_eq!(iam.instance_profile_arn, None);
    }

    #[test]
    fn bad_entries_are_located_at_their_key() {
        let at = |s: &str| parse(s).unwrap_err();
        assert_eq!(
            at(
                "[[task]]\nname = \"web\"\nrole = \"r\"\n\n[[task]]\nname = \"api\"\nrole = \"r\"\n[[task]]\n  name = \"web\"\nrole = \"x\"\n"
            ),
            "c.toml:9:3: task `web` is defined twice (first at line 2): each [[task]] needs its own name"
        );
        assert_eq!(
            at("[[task]]\nname = \"web\"\nrole = \"a role\"\n"),
            "c.toml:3:1: task `web`: `a role` is not an IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -`"
        );
        assert_eq!(
            at("[[task]]\nname = \"web.app\"\nrole = \"r\"\n"),
            "c.toml:2:1: task name `web.app` is not a task family: 1 to 255 of letters, digits, hyphens and underscores"
        );
        assert_eq!(
            at(
                "[[task]]\nname = \"a\"\nrole = \"r\"\n[[task]]\nname = \"b\"\nrole = \"r\"\nrevision = 0\n"
            ),
            "c.toml:7:1: task `b`: `revision` must be at least 1"
        );
        assert_eq!(
            at("[[task]]\nname = \"web\"\nrole = \"r\"\n[task.credentials]\nsource = \"file\"\n"),
            "c.toml:4:7: task `web` credentials: `source = \"file\"` needs `file`: the path of an AWS shared credentials file"
        );
        let e = at(
            "[[task]]\nname = \"web\"\nrole = \"r\"\ncontainers = [{ name = \"a\" }, { name = \"a\" }]\n",
        );
        assert_eq!(e, "c.toml:4:1: task `web`: two containers are named `a`");
        let e = at("[[task]]\nname = \"web\"\nrole = \"r\"\nlifetime = \"1h\"\n");
        assert!(e.starts_with("c.toml:4:1: unknown field `lifetime`"), "{e}");
        let e = at("[[task]]\nname = \"web\"\n");
        assert!(e.contains("missing field `role`"), "{e}");
    }

    #[test]
    fn ctl_sends_the_same_entry_as_json_and_it_is_checked_alike() {
        let t = spec(r#"{"name":"web","role":"web-role","credentials":{"source":"static","access-key-id":"AKIAX","secret-access-key":"S3"}}"#).unwrap();
        assert_eq!(t.role().as_str(), "web-role");
        assert_eq!(
            spec(r#"{"name":"web","role":""}"#).unwrap_err(),
            "task `web`: `` is not an IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -`"
        );
        assert_eq!(
            spec(r#"{"name":"web","role":"r","credentials":{"source":"generated","command":"x"}}"#)
                .unwrap_err(),
            "task `web` credentials: `command` is only read with `source = \"process\"` (source is \"generated\")"
        );
        let e = spec(r#"{"name":"web","role":"r","bogus":1}"#).unwrap_err();
        assert!(e.contains("unknown field `bogus`"), "{e}");
        // What is sent back (list, print-config) reads back as the same task, keys redacted.
        let json = serde_json::to_string(&t.to_spec()).unwrap();
        assert!(!json.contains("S3") && !json.contains("AKIAX"), "{json}");
        let plain = spec(r#"{"name":"web","role":"web-role"}"#).unwrap();
        let back: TaskSpec =
            serde_json::from_str(&serde_json::to_string(&plain.to_spec()).unwrap()).unwrap();
        assert_eq!(Task::check(back).unwrap(), plain);
        assert_eq!(
            plain.to_string(),
            "web (role web-role, cluster default, revision 1, 1 container)"
        );
    }

    /// The packaged config's example, uncommented, is a valid task.
    #[test]
    fn the_packaged_example_parses() {
        let packaged = include_str!("../../packaging/config.toml");
        let start = packaged.find("# [[task]]").unwrap();
        let example: String = packaged[start..]
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap()))
            .collect();
        let c = parse(&example).unwrap_or_else(|e| panic!("{e}\n{example}"));
        let [t] = c.tasks() else { panic!() };
        assert_eq!(t.containers()[0].docker_name.as_deref(), Some("web-1"));
        assert_eq!(t.credentials_source().kind(), SourceKind::Process);
    }

    #[test]
    fn ctl_adds_and_removes_by_the_same_rules() {
        let c = parse("[[task]]\nname = \"web\"\nrole = \"r\"\n").unwrap();
        let s = |json: &str| serde_json::from_str::<TaskSpec>(json).unwrap();
        let more = add_task(c.tasks(), s(r#"{"name":"api","role":"api-role"}"#)).unwrap();
        let names: Vec<_> = more.iter().map(Task::name).collect();
        assert_eq!(names, ["web", "api"]);
        assert_eq!(
            add_task(&more, s(r#"{"name":"web","role":"r"}"#))
                .unwrap_err()
                .to_string(),
            "task `web` already exists: remove it first (`fake-metadata ctl task remove web`)"
        );
        assert_eq!(
            add_task(&more, s(r#"{"name":"x","role":"not a role"}"#))
                .unwrap_err()
                .to_string(),
            "task `x`: `not a role` is not an IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -`"
        );
        let fewer = remove_task(&more, "web").unwrap();
        assert_eq!(fewer.len(), 1);
        assert_eq!(fewer[0].name(), "api");
        assert_eq!(
            remove_task(&fewer, "web").unwrap_err().to_string(),
            "no task `web` (`fake-metadata ctl task list` shows them)"
        );
    }

    #[test]
    fn print_config_shows_tasks_with_secrets_redacted_and_reads_back() {
        let text = "[[task]]\nname = \"web\"\nrole = \"r\"\n\
                    [[task.containers]]\nname = \"app\"\nimage = \"nginx\"\n\
                    networks = [{ network-mode = \"bridge\", ipv4-addresses = [\"172.17.0.5\"] }]\n\
                    [task.credentials]\nsource = \"static\"\naccess-key-id = \"AKIAHIDDEN\"\n\
                    secret-access-key = \"HIDDENSECRET\"\n\
                    [[task]]\nname = \"api\"\nrole = \"r\"\n";
        let c = parse(text).unwrap();
        let shown = c.to_toml();
        assert!(shown.contains("[[task]]"), "{shown}");
        assert!(
            shown.contains("secret-access-key = \"<redacted>\""),
            "{shown}"
        );
        for secret in ["AKIAHIDDEN", "HIDDENSECRET"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("ipv4-addresses = [\"172.17.0.5\"]"),
            "{shown}"
        );
        // Without secrets it reads back to itself.
        let c = parse(
            "[[task]]\nname = \"web\"\nrole = \"r\"\nrevision = 3\n\
             [[task.containers]]\nname = \"app\"\nimage = \"nginx\"\n\
             networks = [{ network-mode = \"bridge\", ipv4-addresses = [\"172.17.0.5\"] }]\n\
             [task.credentials]\nsource = \"process\"\ncommand = \"x\"\n",
        )
        .unwrap();
        let again = parse(&c.to_toml()).unwrap();
        assert_eq!(again.tasks(), c.tasks());
    }
}
