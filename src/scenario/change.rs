//! [`Change`]: one change to what the instance shows, as `ctl`, the control protocol and the
//! timeline give it, and how it reads in logs and listings.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{AsgState, EventId, EventSpec, Moment, SpotAction};
use crate::fault::{self, FaultId};
use crate::types::{MetaPath, TagKey};

/// One change to what the instance shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Change {
    /// Issue a spot interruption notice; `time` defaults to two minutes after the notice.
    Spot {
        action: SpotAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<Moment>,
    },
    /// Emit a rebalance recommendation; `time` (its `noticeTime`) defaults to now.
    Rebalance {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<Moment>,
    },
    EventAdd(EventSpec),
    EventComplete {
        id: EventId,
    },
    EventCancel {
        id: EventId,
    },
    /// Forget every scheduled and past event.
    EventClear,
    Asg {
        state: AsgState,
    },
    TagSet {
        key: TagKey,
        value: String,
    },
    TagUnset {
        key: TagKey,
    },
    /// Serve `value` at `path`, over whatever the tree has there.
    Set {
        path: MetaPath,
        value: String,
    },
    /// Remove `path` (a value or a whole directory) from the tree.
    Unset {
        path: MetaPath,
    },
    /// Start a fault (see [`crate::fault`]).
    FaultAdd(fault::Spec),
    /// End one fault, or all of them.
    FaultClear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FaultId>,
    },
}

impl Change {
    /// Gives an event to add an id if it has none, so that it is known before it happens.
    pub fn assign_id(&mut self, fresh: &mut dyn FnMut() -> EventId) {
        if let Change::EventAdd(spec) = self
            && spec.id.is_none()
        {
            spec.id = Some(fresh());
        }
    }

    /// The operation's name (`spot`, `set`, …), without the values it carries: for logs.
    pub fn op(&self) -> &'static str {
        match self {
            Change::Spot { .. } => "spot",
            Change::Rebalance { .. } => "rebalance",
            Change::EventAdd(_) => "event-add",
            Change::EventComplete { .. } => "event-complete",
            Change::EventCancel { .. } => "event-cancel",
            Change::EventClear => "event-clear",
            Change::Asg { .. } => "asg",
            Change::TagSet { .. } => "tag-set",
            Change::TagUnset { .. } => "tag-unset",
            Change::Set { .. } => "set",
            Change::Unset { .. } => "unset",
            Change::FaultAdd(_) => "fault-add",
            Change::FaultClear { .. } => "fault-clear",
        }
    }

    /// How to log a change that carries a value (`set`, a tag), without the value; `None`
    /// when the change carries none.
    pub fn without_value(&self) -> Option<String> {
        match self {
            Change::Set { path, .. } => Some(format!("set {path}")),
            Change::TagSet { key, .. } => Some(format!("tag {key} set")),
            _ => None,
        }
    }

    /// Whether this change touches instance tags.
    pub fn is_tags(&self) -> bool {
        matches!(self, Change::TagSet { .. } | Change::TagUnset { .. })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Spot { action, time } => {
                write!(f, "spot interruption notice: {action}")?;
                if let Some(t) = time {
                    write!(f, " at {t}")?;
                }
                Ok(())
            }
            Change::Rebalance { .. } => f.write_str("rebalance recommendation"),
            Change::EventAdd(s) => {
                write!(f, "add event {}", s.code)?;
                if let Some(id) = &s.id {
                    write!(f, " {id}")?;
                }
                if let Some(st) = s.state {
                    write!(f, " ({st})")?;
                }
                Ok(())
            }
            Change::EventComplete { id } => write!(f, "complete event {id}"),
            Change::EventCancel { id } => write!(f, "cancel event {id}"),
            Change::EventClear => f.write_str("clear all events"),
            Change::Asg { state } => write!(f, "target lifecycle state {state}"),
            Change::TagSet { key, value } => write!(f, "tag {key} = {value:?}"),
            Change::TagUnset { key } => write!(f, "remove tag {key}"),
            Change::Set { path, value } => write!(f, "set {path} = {value:?}"),
            Change::Unset { path } => write!(f, "unset {path}"),
            Change::FaultAdd(spec) => write!(f, "fault: {spec}"),
            Change::FaultClear { id: Some(id) } => write!(f, "clear fault {id}"),
            Change::FaultClear { id: None } => f.write_str("clear all faults"),
        }
    }
}
