//! `fake-metadata ctl …`: changes the running daemon over its control socket.
//!
//! Every argument is checked here, with the same rules as the config file (tag keys, paths,
//! actions, codes, states, times), so a mistake is reported before anything is sent; the
//! daemon checks again and refuses what it cannot do (an unknown event id). Either way the
//! exit status is 1 with one line that says why, and nothing changed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    Config, ConfigError, ContainerSpec, ControlConfig, Pod, PodSpec, ServiceAccount, Task,
    TaskSpec, from_docker_inspect,
};
use crate::control::{self, Command};
use crate::fault::{self, FaultId};
use crate::scenario::{
    AsgState, Change, EventCode, EventId, EventSpec, EventState, Moment, SpotAction,
};
use crate::types::{HumanDuration, MetaPath, TagKey, ViewName};

mod requests;

/// Change the running daemon: spot notices, events, ASG state, tags, any value.
#[derive(Debug, Parser)]
#[command(name = "fake-metadata ctl", version)]
pub struct CtlArgs {
    /// The control socket. Default: the config's `[control] socket`, else
    /// /run/fake-metadata/control.sock, else $XDG_RUNTIME_DIR/fake-metadata/control.sock.
    #[arg(long, env = "FAKE_METADATA_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The daemon's config file, to find its `[control] socket`.
    #[arg(long, short, env = "FAKE_METADATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// When a change happens: now, unless told.
#[derive(Debug, Clone, Args)]
pub struct When {
    /// Later, after DURATION (e.g. 30s, 2m, 1h30m).
    #[arg(long = "in", value_name = "DURATION", value_parser = parse_in, conflicts_with = "at")]
    pub in_: Option<Moment>,
    /// At TIME (RFC 3339, e.g. 2026-01-02T03:04:05Z, or +DURATION).
    #[arg(long, value_name = "TIME")]
    pub at: Option<Moment>,
}

impl When {
    fn get(&self) -> Option<Moment> {
        self.in_.or(self.at)
    }
}

/// Whose instance a change is for: the box's, unless told.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The instance of view NAME (a `[[view]]` of the config; `box`: the box itself, as
    /// without it).
    #[arg(long, value_name = "NAME", value_parser = parse_view)]
    pub view: Option<Aim>,
}

impl Target {
    /// The view to name in the request: none for the box.
    fn get(self) -> Option<ViewName> {
        match self.view {
            Some(Aim::View(v)) => Some(v),
            Some(Aim::Box) | None => None,
        }
    }
}

/// A `--view`: the box itself (`box`), or a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aim {
    Box,
    View(ViewName),
}

impl Aim {
    /// Whether a client served by `view` (`None`: the box) is the one aimed at.
    pub fn matches(&self, view: Option<&str>) -> bool {
        match (self, view) {
            (Aim::Box, v) => v.is_none(),
            (Aim::View(want), Some(got)) => want.as_str() == got,
            (Aim::View(_), None) => false,
        }
    }
}

/// The name that means the box itself, never a view's.
pub const BOX: &str = "box";

/// Why a `--view` value is refused (its own type, so that [`run`] can say it in one line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadView(String);

/// `box`, or a view's name by the config's rule.
fn parse_view(s: &str) -> Result<Aim, BadView> {
    if s == BOX {
        return Ok(Aim::Box);
    }
    ViewName::try_from(s.to_string())
        .map(Aim::View)
        .map_err(BadView)
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Issue a spot interruption notice (spot/instance-action, spot/termination-time).
    Spot {
        /// terminate, stop or hibernate.
        #[arg(long, short, default_value = "terminate")]
        action: SpotAction,
        /// The time in the notice (RFC 3339 or +DURATION after the notice). Default: two
        /// minutes after the notice appears.
        #[arg(long, value_name = "TIME")]
        time: Option<Moment>,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// Emit a rebalance recommendation (events/recommendations/rebalance).
    Rebalance {
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// Scheduled maintenance events (events/maintenance/scheduled and history).
    Event {
        #[command(subcommand)]
        command: EventCommand,
    },
    /// Set autoscaling/target-lifecycle-state (Detached, InService, Standby, Terminated,
    /// Warmed:Hibernated, Warmed:Running, Warmed:Stopped, Warmed:Terminated).
    Asg {
        state: AsgState,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// Instance tags (tags/instance/, when instance-metadata-tags is enabled).
    Tags {
        #[command(subcommand)]
        command: TagsCommand,
    },
    /// Serve VALUE at PATH (meta-data/… or dynamic/…), over the configured tree.
    Set {
        // Paths and tag keys are checked by `command`, not clap, whose error repeats the
        // value as it is (a newline in it would split the message).
        path: String,
        value: String,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// Remove PATH (a value or a whole directory) from the tree.
    Unset {
        path: String,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// IAM role credentials.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Make the service slow, failing or throttled: `fault add`, `fault list`, `fault clear`.
    Fault {
        #[command(subcommand)]
        command: FaultCommand,
    },
    /// The views: each one's name, what it covers, its instance id and role.
    View {
        #[command(subcommand)]
        command: ViewCommand,
    },
    /// What is set and what is pending, and when.
    Status,
    /// Back to the configured state: live changes dropped, the config's timeline replayed.
    Reset,
    /// ECS tasks: their role's credentials and task metadata at 169.254.170.2.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// EKS Pod Identity: a service account's role at 169.254.170.23.
    Pod {
        #[command(subcommand)]
        command: PodCommand,
    },
    /// The request journal: who asked what (oldest first).
    Requests(requests::RequestsArgs),
    /// A live table of who asks what: by client and path, with counts, the IMDSv1 share and
    /// when last seen (plain text when not on a terminal).
    Watch(requests::WatchArgs),
    /// Exit 1, naming who broke it, when the requests recorded since the start (or `requests
    /// --clear`) break a rule; 0 when they keep it.
    Assert(requests::AssertArgs),
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Serve a task (until the daemon stops; `[[task]]` in the config keeps it).
    Add {
        /// The task definition's family.
        name: String,
        /// The task role's name.
        #[arg(long)]
        role: String,
        #[arg(long)]
        revision: Option<u32>,
        #[arg(long)]
        cluster: Option<String>,
        /// A container of the task: NAME or NAME=IMAGE (repeatable). Default: one named as
        /// the task.
        #[arg(long = "container", value_name = "NAME[=IMAGE]")]
        containers: Vec<String>,
        /// A running Docker container whose real facts (id, name, image, addresses, times,
        /// labels) the task shows, read here with `docker inspect` (repeatable). The
        /// daemon never talks to Docker.
        #[arg(long, value_name = "CONTAINER")]
        from_docker: Vec<String>,
    },
    /// Stop serving a task `task add` added.
    Remove { name: String },
    /// The tasks served.
    List,
    /// The environment a container of the task needs, KEY=VALUE a line (for `docker run
    /// --env-file`): its credentials and metadata URIs, as the ECS agent sets them.
    Env {
        name: String,
        /// Which container (default: the task's first).
        #[arg(long)]
        container: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Serve a pod's service account (until the daemon stops; `[[pod]]` in the config keeps
    /// it).
    Add {
        /// NAMESPACE/NAME.
        service_account: String,
        /// The IAM role's name.
        #[arg(long)]
        role: String,
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Stop serving a pod `pod add` added.
    Remove { service_account: String },
    /// The pods served.
    List,
    /// Writes the pod's token to PATH (0600) and prints the environment a container of it
    /// needs, KEY=VALUE a line; mount PATH into the container at the path printed.
    Env {
        service_account: String,
        #[arg(long, value_name = "PATH")]
        token_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Start a fault now; prints its id. Exactly one of --delay, --status, --drop, --reset,
    /// --refuse, --throttle.
    Add(fault::Keys),
    /// The faults in force, with their hits.
    List,
    /// End one fault (by id), or all of them.
    Clear { id: Option<FaultId> },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Add an event; prints its EventId.
    Add {
        /// instance-reboot, system-reboot, system-maintenance, instance-retirement or
        /// instance-stop.
        #[arg(long)]
        code: EventCode,
        /// active (scheduled), or completed/canceled (straight into the history).
        #[arg(long)]
        state: Option<EventState>,
        /// Default: when the event is added.
        #[arg(long, value_name = "TIME")]
        not_before: Option<Moment>,
        /// Default: two hours after not-before.
        #[arg(long, value_name = "TIME")]
        not_after: Option<Moment>,
        /// Default: none.
        #[arg(long, value_name = "TIME")]
        not_before_deadline: Option<Moment>,
        #[arg(long)]
        description: Option<String>,
        /// instance-event- and 17 hex digits. Default: a random one.
        #[arg(long)]
        id: Option<EventId>,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// Mark a scheduled event completed: it moves to the history.
    Complete {
        id: EventId,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// Cancel a scheduled event: it moves to the history.
    Cancel {
        id: EventId,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        target: Target,
    },
    /// Forget every scheduled and past event.
    Clear {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum TagsCommand {
    /// Set tag KEY to VALUE.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove tag KEY.
    Unset {
        key: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum ViewCommand {
    /// Each view: its name, what it covers, its instance id and role (or none).
    List,
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Issue a new credential set now.
    Rotate,
}

fn parse_in(s: &str) -> Result<Moment, String> {
    s.trim_start_matches('+')
        .parse::<HumanDuration>()
        .map(|d| Moment::After(d.0))
}

fn parse_path(s: &str) -> Result<MetaPath, String> {
    MetaPath::try_from(s.trim_start_matches('/').to_string())
}

fn parse_tag(s: &str) -> Result<TagKey, String> {
    TagKey::try_from(s.to_string())
}

/// The request, and what to print on success instead of the daemon's message (a new id).
fn command(c: CtlCommand) -> Result<(Command, Option<String>), String> {
    let change = |change, when: When, target: Target| Command::Change {
        change,
        when: when.get(),
        view: target.get(),
    };
    // Faults are the service's, not an instance's: a fault's own `view` key scopes it.
    let service = || Target { view: None };
    // ... and is named as the change's view too, so that the daemon refuses a view it does
    // not know (naming it) as it does for the instance changes.
    let scope = |view: &Option<ViewName>| Target {
        view: view.clone().map(Aim::View),
    };
    Ok(match c {
        CtlCommand::Fault { command } => match command {
            FaultCommand::Add(keys) => {
                let spec = fault::Spec::try_from(keys)?;
                let target = scope(&spec.view);
                (change(Change::FaultAdd(spec), When::now(), target), None)
            }
            FaultCommand::List => (Command::Faults, None),
            FaultCommand::Clear { id } => (
                change(Change::FaultClear { id }, When::now(), service()),
                None,
            ),
        },
        CtlCommand::Spot {
            action,
            time,
            when,
            target,
        } => (change(Change::Spot { action, time }, when, target), None),
        CtlCommand::Rebalance { when, target } => {
            (change(Change::Rebalance { time: None }, when, target), None)
        }
        CtlCommand::Asg {
            state,
            when,
            target,
        } => (change(Change::Asg { state }, when, target), None),
        CtlCommand::Set {
            path,
            value,
            when,
            target,
        } => {
            let path = parse_path(&path)?;
            (change(Change::Set { path, value }, when, target), None)
        }
        CtlCommand::Unset { path, when, target } => {
            let path = parse_path(&path)?;
            (change(Change::Unset { path }, when, target), None)
        }
        CtlCommand::Tags {
            command: TagsCommand::Set { key, value, target },
        } => {
            let key = parse_tag(&key)?;
            (
                change(Change::TagSet { key, value }, When::now(), target),
                None,
            )
        }
        CtlCommand::Tags {
            command: TagsCommand::Unset { key, target },
        } => {
            let key = parse_tag(&key)?;
            (change(Change::TagUnset { key }, When::now(), target), None)
        }
        CtlCommand::View {
            command: ViewCommand::List,
        } => (Command::ViewList, None),
        CtlCommand::Credentials {
            command: CredentialsCommand::Rotate,
        } => (Command::RotateCredentials, None),
        CtlCommand::Status => (Command::Status, None),
        CtlCommand::Reset => (Command::Reset, None),
        CtlCommand::Task { command } => (task_command(command)?, None),
        CtlCommand::Pod { command } => (pod_command(command)?, None),
        CtlCommand::Requests(_) | CtlCommand::Watch(_) | CtlCommand::Assert(_) => {
            unreachable!("`run` reads the journal itself")
        }
        CtlCommand::Event { command } => match command {
            EventCommand::Add {
                code,
                state,
                not_before,
                not_after,
                not_before_deadline,
                description,
                id,
                when,
                target,
            } => {
                let id = id.unwrap_or_else(EventId::random);
                let spec = EventSpec {
                    code,
                    id: Some(id.clone()),
                    state,
                    not_before,
                    not_after,
                    not_before_deadline,
                    description,
                };
                (
                    change(Change::EventAdd(spec), when, target),
                    Some(id.to_string()),
                )
            }
            EventCommand::Complete { id, when, target } => {
                (change(Change::EventComplete { id }, when, target), None)
            }
            EventCommand::Cancel { id, when, target } => {
                (change(Change::EventCancel { id }, when, target), None)
            }
            EventCommand::Clear { target } => {
                (change(Change::EventClear, When::now(), target), None)
            }
        },
    })
}

/// `ctl task …` as a request; `add` is checked here by the same rule as `[[task]]`.
fn task_command(c: TaskCommand) -> Result<Command, String> {
    Ok(match c {
        TaskCommand::Add {
            name,
            role,
            revision,
            cluster,
            containers,
            from_docker,
        } => {
            let mut specs = Vec::new();
            for c in &containers {
                let (name, image) = match c.split_once('=') {
                    Some((n, i)) => (n, Some(i.to_string())),
                    None => (c.as_str(), None),
                };
                let mut spec = ContainerSpec::named(name);
                if image.is_some() {
                    spec.image = image;
                }
                specs.push(spec);
            }
            for d in &from_docker {
                specs.push(docker_inspect(d)?);
            }
            let spec = TaskSpec {
                name,
                role,
                revision,
                cluster,
                containers: specs,
                credentials: Default::default(),
            };
            // The daemon checks again; this gives the same line without a round trip.
            Task::check(spec.clone()).map_err(|e| e.to_string())?;
            Command::TaskAdd { task: spec }
        }
        TaskCommand::Remove { name } => Command::TaskRemove { name },
        TaskCommand::List => Command::TaskList,
        TaskCommand::Env { name, container } => Command::TaskEnv { name, container },
    })
}

/// A running container's facts, from `docker inspect` run by whoever runs `ctl`.
fn docker_inspect(container: &str) -> Result<ContainerSpec, String> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--type", "container", "--", container])
        .output()
        .map_err(|e| format!("--from-docker {container}: cannot run `docker inspect`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "--from-docker {container}: `docker inspect` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    from_docker_inspect(&String::from_utf8_lossy(&out.stdout), None)
        .map_err(|e| format!("--from-docker {container}: {e}"))
}

/// `ctl pod …` as a request (`env` asks for the token; [`run`] writes it and prints).
fn pod_command(c: PodCommand) -> Result<Command, String> {
    Ok(match c {
        PodCommand::Add {
            service_account,
            role,
            cluster,
        } => {
            let mut spec = PodSpec::new(service_account, role);
            spec.cluster = cluster;
            Pod::check(spec.clone()).map_err(|e| e.to_string())?;
            Command::PodAdd { pod: spec }
        }
        PodCommand::Remove { service_account } => Command::PodRemove { service_account },
        PodCommand::List => Command::PodList,
        PodCommand::Env {
            service_account, ..
        } => {
            ServiceAccount::parse(&service_account).map_err(|e| e.to_string())?;
            Command::PodToken { service_account }
        }
    })
}

impl When {
    fn now() -> When {
        When {
            in_: None,
            at: None,
        }
    }
}

/// Why `ctl` failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Client(#[from] control::ClientError),
    /// A fault's flag, or its combination of flags, refused.
    #[error("{0}")]
    Invalid(String),
    /// Flags that do not go together (exit 2, as clap's usage errors).
    #[error("{0}")]
    Usage(String),
}

/// A fault key's or a view's flag refused by its check, as one line that names the flag
/// (clap's own message would repeat the value as given, control characters and all, over
/// three lines).
fn bad_value(e: &clap::Error) -> Option<String> {
    let source = std::error::Error::source(e)?;
    let bad: &dyn std::fmt::Display = match source.downcast_ref::<fault::BadKey>() {
        Some(b) => b,
        None => source.downcast_ref::<BadView>()?,
    };
    let flag = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(arg)) => arg.split(' ').next().unwrap_or(arg),
        _ => "a flag",
    };
    Some(format!("{flag}: {bad}"))
}

/// Runs `ctl` with its arguments (after `ctl`). Usage errors (an unknown flag or command,
/// a missing or conflicting one) exit 2; values that fail their checks, and refusals, 1.
pub fn run(args: Vec<OsString>) -> Result<ExitCode, CtlError> {
    let argv = std::iter::once(OsString::from("fake-metadata ctl")).chain(args);
    let parsed = match CtlArgs::try_parse_from(argv) {
        Ok(p) => p,
        Err(e) => {
            use clap::error::ErrorKind;
            if let Some(bad) = bad_value(&e) {
                return Err(CtlError::Invalid(bad));
            }
            // clap's own usage message, as every clap program prints it.
            let _ = e.print();
            return Ok(match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                // A value that fails its check is bad input, as the daemon's refusals are.
                ErrorKind::InvalidValue | ErrorKind::ValueValidation => ExitCode::FAILURE,
                _ => ExitCode::from(2),
            });
        }
    };
    let control_cfg = if parsed.socket.is_some() {
        ControlConfig::default()
    } else {
        Config::load(parsed.config.as_deref(), &Default::default())?
            .control()
            .clone()
    };
    let socket = control::client_socket(parsed.socket.as_deref(), &control_cfg)?;
    match parsed.command {
        CtlCommand::Requests(a) => return requests::requests(&socket, a),
        CtlCommand::Watch(a) => return requests::watch(&socket, a),
        CtlCommand::Assert(a) => return requests::assert(&socket, a),
        _ => {}
    }
    let token_file = match &parsed.command {
        CtlCommand::Pod {
            command: PodCommand::Env { token_file, .. },
        } => Some(token_file.clone()),
        _ => None,
    };
    let (cmd, print) = command(parsed.command).map_err(CtlError::Invalid)?;
    let message = control::request(&socket, cmd)?;
    if let Some(path) = token_file {
        // The reply is the token: into the file, never on the terminal. The file is named
        // by its absolute path, which a container mounts it at (`-v PATH:PATH:ro`).
        let bad =
            |e: std::io::Error| CtlError::Invalid(format!("--token-file {}: {e}", path.display()));
        let path = std::path::absolute(&path).map_err(bad)?;
        crate::pod_identity::token_file::write_token_file(&path, &message).map_err(bad)?;
        let file = path.display().to_string();
        for (k, v) in crate::pod_identity::env(crate::pod_identity::FULL_URI, &file) {
            println!("{k}={v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    match print {
        Some(p) => {
            println!("{p}");
            if !message.is_empty() && message != p {
                eprintln!("{message}");
            }
        }
        None => println!("{message}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CtlArgs, clap::Error> {
        CtlArgs::try_parse_from(["fake-metadata ctl", "--socket", "/s"].iter().chain(args))
    }

    #[test]
    fn fault_flags_are_the_fault_keys_and_a_bad_one_is_one_line_naming_its_flag() {
        let p = parse(&[
            "fault",
            "add",
            "--endpoint",
            "imds",
            "--path",
            "api/token",
            "--drop",
        ])
        .unwrap();
        let (Command::Change { change, when, view }, None) = command(p.command).unwrap() else {
            panic!("a fault is a change");
        };
        assert_eq!((when, view), (None, None));
        assert_eq!(
            serde_json::to_string(&change).unwrap(),
            r#"{"op":"fault-add","path":"api/token","drop":true}"#
        );
        // A fault for one view names it as the change's view too (the daemon checks it).
        let p = parse(&["fault", "add", "--view", "node-a", "--drop"]).unwrap();
        let (Command::Change { change, view, .. }, None) = command(p.command).unwrap() else {
            panic!("a fault is a change");
        };
        assert_eq!(view.as_ref().map(ViewName::as_str), Some("node-a"));
        assert_eq!(
            serde_json::to_string(&change).unwrap(),
            r#"{"op":"fault-add","view":"node-a","drop":true}"#
        );
        let e = parse(&["fault", "add", "--path", "x\nERROR forged", "--drop"]).unwrap_err();
        let line = bad_value(&e).unwrap();
        assert!(
            line.starts_with("--path: \"x\\nERROR forged\" has a control character")
                && !line.contains('\n'),
            "{line}"
        );
        // Other flags keep clap's own message.
        let e = parse(&["spot", "--action", "explode"]).unwrap_err();
        assert_eq!(bad_value(&e), None);
    }

    /// The view each instance command sends, given `args` after `--view NAME`.
    fn view_sent(args: &[&str], name: &str) -> Option<ViewName> {
        let mut all = args.to_vec();
        all.extend(["--view", name]);
        let p = parse(&all).unwrap_or_else(|e| panic!("{all:?}: {e}"));
        match command(p.command).unwrap() {
            (Command::Change { view, .. }, _) => view,
            (other, _) => panic!("{all:?}: {other:?}"),
        }
    }

    #[test]
    fn every_instance_change_takes_a_view_and_box_is_the_box() {
        let id = "instance-event-0123456789abcdef0";
        let commands: [&[&str]; 11] = [
            &["spot", "--action", "stop"],
            &["rebalance", "--in", "1m"],
            &["event", "add", "--code", "system-reboot"],
            &["event", "complete", id],
            &["event", "cancel", id],
            &["event", "clear"],
            &["asg", "Terminated"],
            &["tags", "set", "Name", "web"],
            &["tags", "unset", "Name"],
            &["set", "meta-data/ami-id", "ami-1"],
            &["unset", "meta-data/ami-id"],
        ];
        for args in commands {
            assert_eq!(
                view_sent(args, "node-a.1_x").as_ref().map(ViewName::as_str),
                Some("node-a.1_x")
            );
            assert_eq!(view_sent(args, "box"), None, "{args:?}");
            let p = parse(args).unwrap();
            let (Command::Change { view, .. }, _) = command(p.command).unwrap() else {
                panic!("{args:?}");
            };
            assert_eq!(view, None, "{args:?}");
        }
        // Not a name by the config's rule: refused as a bad value (exit 1), in one line.
        for bad in ["", "a b", "a/b", &"x".repeat(64), "a\nERROR"] {
            let e = parse(&["spot", "--view", bad]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
            let line = bad_value(&e).unwrap();
            assert!(
                line.starts_with("--view: ")
                    && (line.contains("is not a view name") || line.contains("control character")),
                "{line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
        // Not on the commands that are the service's, not an instance's.
        for args in [
            &["credentials", "rotate"][..],
            &["status"],
            &["reset"],
            &["fault", "clear"],
        ] {
            let mut all = args.to_vec();
            all.extend(["--view", "a"]);
            assert_eq!(
                parse(&all).unwrap_err().kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{all:?}"
            );
        }
        let p = parse(&["view", "list"]).unwrap();
        assert_eq!(command(p.command).unwrap(), (Command::ViewList, None));
    }
}
