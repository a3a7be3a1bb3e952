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

use crate::config::{Config, ConfigError, ControlConfig};
use crate::control::{self, Command};
use crate::fault::{self, FaultId};
use crate::scenario::{
    AsgState, Change, EventCode, EventId, EventSpec, EventState, Moment, SpotAction,
};
use crate::types::{HumanDuration, MetaPath, TagKey};

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
    },
    /// Emit a rebalance recommendation (events/recommendations/rebalance).
    Rebalance {
        #[command(flatten)]
        when: When,
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
    },
    /// Remove PATH (a value or a whole directory) from the tree.
    Unset {
        path: String,
        #[command(flatten)]
        when: When,
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
    /// What is set and what is pending, and when.
    Status,
    /// Back to the configured state: live changes dropped, the config's timeline replayed.
    Reset,
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
    },
    /// Mark a scheduled event completed: it moves to the history.
    Complete {
        id: EventId,
        #[command(flatten)]
        when: When,
    },
    /// Cancel a scheduled event: it moves to the history.
    Cancel {
        id: EventId,
        #[command(flatten)]
        when: When,
    },
    /// Forget every scheduled and past event.
    Clear,
}

#[derive(Debug, Subcommand)]
pub enum TagsCommand {
    /// Set tag KEY to VALUE.
    Set { key: String, value: String },
    /// Remove tag KEY.
    Unset { key: String },
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
    let change = |change, when: When| Command::Change {
        change,
        when: when.get(),
    };
    Ok(match c {
        CtlCommand::Fault { command } => match command {
            FaultCommand::Add(keys) => {
                let spec = fault::Spec::try_from(keys)?;
                (change(Change::FaultAdd(spec), When::now()), None)
            }
            FaultCommand::List => (Command::Faults, None),
            FaultCommand::Clear { id } => (change(Change::FaultClear { id }, When::now()), None),
        },
        CtlCommand::Spot { action, time, when } => {
            (change(Change::Spot { action, time }, when), None)
        }
        CtlCommand::Rebalance { when } => (change(Change::Rebalance { time: None }, when), None),
        CtlCommand::Asg { state, when } => (change(Change::Asg { state }, when), None),
        CtlCommand::Set { path, value, when } => {
            let path = parse_path(&path)?;
            (change(Change::Set { path, value }, when), None)
        }
        CtlCommand::Unset { path, when } => {
            let path = parse_path(&path)?;
            (change(Change::Unset { path }, when), None)
        }
        CtlCommand::Tags {
            command: TagsCommand::Set { key, value },
        } => {
            let key = parse_tag(&key)?;
            (change(Change::TagSet { key, value }, When::now()), None)
        }
        CtlCommand::Tags {
            command: TagsCommand::Unset { key },
        } => {
            let key = parse_tag(&key)?;
            (change(Change::TagUnset { key }, When::now()), None)
        }
        CtlCommand::Credentials {
            command: CredentialsCommand::Rotate,
        } => (Command::RotateCredentials, None),
        CtlCommand::Status => (Command::Status, None),
        CtlCommand::Reset => (Command::Reset, None),
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
                (change(Change::EventAdd(spec), when), Some(id.to_string()))
            }
            EventCommand::Complete { id, when } => {
                (change(Change::EventComplete { id }, when), None)
            }
            EventCommand::Cancel { id, when } => (change(Change::EventCancel { id }, when), None),
            EventCommand::Clear => (change(Change::EventClear, When::now()), None),
        },
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
}

/// A fault key's flag refused by its check, as one line that names the flag (clap's own
/// message would repeat the value as given, control characters and all, over three lines).
fn bad_fault_key(e: &clap::Error) -> Option<String> {
    let bad = std::error::Error::source(e)?.downcast_ref::<fault::BadKey>()?;
    let flag = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(arg)) => arg.split(' ').next().unwrap_or(arg),
        _ => "a flag",
    };
    Some(format!("{flag}: {bad}"))
}

/// Runs `ctl` with its arguments (after `ctl`). Usage errors exit 1, like refusals.
pub fn run(args: Vec<OsString>) -> Result<ExitCode, CtlError> {
    let argv = std::iter::once(OsString::from("fake-metadata ctl")).chain(args);
    let parsed = match CtlArgs::try_parse_from(argv) {
        Ok(p) => p,
        Err(e) => {
            use clap::error::ErrorKind;
            if let Some(bad) = bad_fault_key(&e) {
                return Err(CtlError::Invalid(bad));
            }
            // clap's own usage message, as every clap program prints it.
            let _ = e.print();
            return Ok(match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
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
    let (cmd, print) = command(parsed.command).map_err(CtlError::Invalid)?;
    let message = control::request(&socket, cmd)?;
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
        let (Command::Change { change, when }, None) = command(p.command).unwrap() else {
            panic!("a fault is a change");
        };
        assert_eq!(when, None);
        assert_eq!(
            serde_json::to_string(&change).unwrap(),
            r#"{"op":"fault-add","path":"api/token","drop":true}"#
        );
        let e = parse(&["fault", "add", "--path", "x\nERROR forged", "--drop"]).unwrap_err();
        let line = bad_fault_key(&e).unwrap();
        assert!(
            line.starts_with("--path: \"x\\nERROR forged\" has a control character")
                && !line.contains('\n'),
            "{line}"
        );
        // Other flags keep clap's own message.
        let e = parse(&["spot", "--action", "explode"]).unwrap_err();
        assert_eq!(bad_fault_key(&e), None);
    }
}
