//! Protocol version 1: one JSON object per line each way (see the module above).

use serde::{Deserialize, Serialize};

use crate::config::{PodSpec, TaskSpec};
use crate::scenario::{Change, Moment};
use crate::types::ViewName;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Command {
    /// Apply a change now, or schedule it (`when`: `+D` from now, or an absolute time), to
    /// the box or to one view's instance (`view`: absent for the box, so that a line from an
    /// older client means what it meant).
    Change {
        change: Change,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<Moment>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        view: Option<ViewName>,
    },
    /// Issue a new IAM credential set now.
    RotateCredentials,
    /// What is set and pending.
    Status,
    /// The faults in force.
    Faults,
    /// The views: each one's name, what it covers, its instance id and role.
    ViewList,
    /// Back to the state the configuration describes (live changes dropped, the config's
    /// timeline replayed from the daemon's start).
    Reset,
    /// Serve a task too (until the daemon stops).
    TaskAdd { task: TaskSpec },
    /// Stop serving a task `task-add` added.
    TaskRemove { name: String },
    /// The tasks served.
    TaskList,
    /// The environment a container of the task needs (its ids: a secret).
    TaskEnv {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
    /// Serve a pod's service account too (until the daemon stops).
    PodAdd { pod: PodSpec },
    /// Stop serving a pod `pod-add` added.
    PodRemove { service_account: String },
    /// The pods served.
    PodList,
    /// The token a pod presents (a secret).
    PodToken { service_account: String },
    /// The journal's entries numbered `from` and later (0: all it holds), one JSON object a
    /// line, then the reply; with `follow`, each new entry as it comes, until the client
    /// hangs up.
    Requests {
        #[serde(default)]
        from: u64,
        #[serde(default)]
        follow: bool,
    },
    /// The journal's counts since the start or the last clear (a JSON object as the
    /// message).
    RequestCounts,
    /// Forget the journal's entries and counts.
    RequestsClear,
}

impl Command {
    /// What is asked, without the values it carries: for the log.
    pub fn name(&self) -> String {
        match self {
            Command::Change { change, when, view } => format!(
                "change {}{}{}",
                change.op(),
                if when.is_some() { " (scheduled)" } else { "" },
                view.as_ref()
                    .map_or(String::new(), |v| format!(" (view {v})"))
            ),
            Command::RotateCredentials => "rotate-credentials".into(),
            Command::Status => "status".into(),
            Command::Faults => "faults".into(),
            Command::ViewList => "view-list".into(),
            Command::Reset => "reset".into(),
            Command::TaskAdd { .. } => "task-add".into(),
            Command::TaskRemove { .. } => "task-remove".into(),
            Command::TaskList => "task-list".into(),
            Command::TaskEnv { .. } => "task-env".into(),
            Command::PodAdd { .. } => "pod-add".into(),
            Command::PodRemove { .. } => "pod-remove".into(),
            Command::PodList => "pod-list".into(),
            Command::PodToken { .. } => "pod-token".into(),
            Command::Requests { follow: false, .. } => "requests".into(),
            Command::Requests { follow: true, .. } => "requests (follow)".into(),
            Command::RequestCounts => "request-counts".into(),
            Command::RequestsClear => "requests-clear".into(),
        }
    }
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub(super) fn ok(message: String) -> Reply {
        Reply {
            v: VERSION,
            ok: true,
            message: Some(message),
            error: None,
        }
    }

    pub(super) fn error(error: String) -> Reply {
        Reply {
            v: VERSION,
            ok: false,
            message: None,
            error: Some(error),
        }
    }
}

/// Parses a request line; the error is the reply to send.
pub fn parse_request(line: &str) -> Result<Command, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("the request is not JSON: {e}"))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "control protocol version {v} is not supported: this daemon speaks version {VERSION} (use a matching `fake-metadata ctl`)"
            ));
        }
        None => return Err("the request has no protocol version `v`".into()),
    }
    serde_json::from_value::<Request>(value)
        .map(|r| r.command)
        .map_err(|e| format!("invalid request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Moment, SpotAction};

    #[test]
    fn requests_round_trip_and_versions_are_checked() {
        let cmd = Command::Change {
            change: Change::Spot {
                action: SpotAction::Stop,
                time: None,
            },
            when: Some("+30s".parse::<Moment>().unwrap()),
            view: None,
        };
        let line = serde_json::to_string(&Request {
            v: VERSION,
            command: cmd.clone(),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"v":1,"do":"change","change":{"op":"spot","action":"stop"},"when":"+30s"}"#
        );
        assert_eq!(parse_request(&line).unwrap(), cmd);
        assert_eq!(
            parse_request(r#"{"v":1,"do":"status"}"#).unwrap(),
            Command::Status
        );
        assert!(
            parse_request(r#"{"v":2,"do":"status"}"#)
                .unwrap_err()
                .contains("version 2 is not supported")
        );
        let e = parse_request(r#"{"v":1,"do":"change","change":{"op":"spot","action":"explode"}}"#)
            .unwrap_err();
        assert!(e.contains("invalid request"), "{e}");
        let e = parse_request(
            r#"{"v":1,"do":"change","change":{"op":"tag-set","key":"a b","value":"x"}}"#,
        )
        .unwrap_err();
        assert!(e.contains("is not a tag key"), "{e}");
    }

    #[test]
    fn a_change_names_its_view_only_when_it_has_one_and_old_lines_still_parse() {
        let spot = Change::Spot {
            action: SpotAction::Terminate,
            time: None,
        };
        let line = |command: Command| {
            serde_json::to_string(&Request {
                v: VERSION,
                command,
            })
            .unwrap()
        };
        let aimed = Command::Change {
            change: spot.clone(),
            when: None,
            view: Some(ViewName::try_from("node-a".to_string()).unwrap()),
        };
        let l = line(aimed.clone());
        assert_eq!(
            l,
            r#"{"v":1,"do":"change","change":{"op":"spot","action":"terminate"},"view":"node-a"}"#
        );
        assert_eq!(parse_request(&l).unwrap(), aimed);
        assert_eq!(aimed.name(), "change spot (view node-a)");
        // For the box: no `view` key, as a daemon before views reads it.
        let boxed = Command::Change {
            change: spot,
            when: None,
            view: None,
        };
        let l = line(boxed.clone());
        assert_eq!(
            l,
            r#"{"v":1,"do":"change","change":{"op":"spot","action":"terminate"}}"#
        );
        assert_eq!(parse_request(&l).unwrap(), boxed);
        assert_eq!(boxed.name(), "change spot");
        // A line from a client before views: the box.
        let Command::Change { view, .. } =
            parse_request(r#"{"v":1,"do":"change","change":{"op":"rebalance"}}"#).unwrap()
        else {
            panic!("a change");
        };
        assert_eq!(view, None);
        assert!(
            parse_request(r#"{"v":1,"do":"change","change":{"op":"rebalance"},"view":7}"#)
                .unwrap_err()
                .contains("invalid request")
        );
        // The daemon checks the name as the config does: `box` is never a view's.
        for bad in ["box", "a b", ""] {
            let e = parse_request(&format!(
                r#"{{"v":1,"do":"change","change":{{"op":"rebalance"}},"view":"{bad}"}}"#
            ))
            .unwrap_err();
            assert!(e.contains("is not a view name"), "{bad:?}: {e}");
        }
        assert_eq!(line(Command::ViewList), r#"{"v":1,"do":"view-list"}"#);
        assert_eq!(
            parse_request(r#"{"v":1,"do":"view-list"}"#).unwrap(),
            Command::ViewList
        );
    }
}
