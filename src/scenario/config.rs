//! `[scenario]`: a timeline of changes counted from the daemon's start.
//!
//! ```toml
//! [[scenario.timeline]]            # at the start (no `at`)
//! asg = "InService"
//!
//! [[scenario.timeline]]
//! at = "+10s"
//! event = "system-reboot"          # code; optional: id, state, not-before, not-after,
//! not-before = "+1h"               #   not-before-deadline, description
//! id = "instance-event-0123456789abcdef0"
//!
//! [[scenario.timeline]]
//! at = "+30s"
//! rebalance = true
//!
//! [[scenario.timeline]]
//! at = "+60s"
//! spot = "stop"                    # time = notice + 2 min unless `time` is given
//!
//! [[scenario.timeline]]
//! at = "2026-01-02T03:04:05Z"
//! complete = "instance-event-0123456789abcdef0"   # or cancel = "…"
//!
//! [[scenario.timeline]]
//! at = "+90s"
//! fault = { path = "meta-data/iam/*", status = 503, for = "20s" }   # as a [[fault]]
//!
//! [[scenario.timeline]]
//! at = "+5m"
//! clear-faults = true
//! ```
//!
//! Each entry does exactly one thing. Keys that belong to another kind of entry are refused,
//! so a typo is noticed; every value is checked while parsing, so errors carry the position.

use serde::{Deserialize, Serialize};

use super::{AsgState, Change, EventCode, EventId, EventSpec, EventState, Moment, SpotAction};
use crate::types::ViewName;

/// The `[scenario]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ScenarioConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Entry>,
}

impl ScenarioConfig {
    pub fn is_empty(&self) -> bool {
        self.timeline.is_empty()
    }

    /// The entries aimed at `view` (`None`: the box's, with every fault entry: faults are
    /// the box's, scoped to a view by their own `view`).
    pub fn for_view(&self, view: Option<&ViewName>) -> ScenarioConfig {
        ScenarioConfig {
            timeline: self
                .timeline
                .iter()
                .filter(|e| e.view.as_ref() == view)
                .cloned()
                .collect(),
        }
    }

    /// The views the entries name.
    pub fn views(&self) -> impl Iterator<Item = &ViewName> {
        let faults = self.timeline.iter().filter_map(|e| match &e.change {
            Change::FaultAdd(spec) => spec.view.as_ref(),
            _ => None,
        });
        self.timeline
            .iter()
            .filter_map(|e| e.view.as_ref())
            .chain(faults)
    }
}

/// One timeline entry: a change and when it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEntry", into = "RawEntry")]
pub struct Entry {
    /// `+D` after the daemon's start, or an absolute time.
    pub at: Moment,
    pub change: Change,
    /// The `[[view]]` whose instance it changes; `None`: the box. (A fault entry's view is
    /// its fault's `view`, and the entry is the box's.)
    pub view: Option<ViewName>,
}

/// The entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<Moment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    view: Option<ViewName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spot: Option<SpotAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<Moment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rebalance: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<EventCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<EventState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before: Option<Moment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<Moment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before_deadline: Option<Moment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    complete: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancel: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clear_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    asg: Option<AsgState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fault: Option<crate::fault::Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clear_faults: Option<bool>,
}

const KINDS: &str = "`spot`, `rebalance`, `event`, `complete`, `cancel`, `clear-events`, `asg`, `fault` or `clear-faults`";

impl TryFrom<RawEntry> for Entry {
    type Error = String;
    fn try_from(r: RawEntry) -> Result<Entry, String> {
        let kinds = [
            ("spot", r.spot.is_some()),
            ("rebalance", r.rebalance.is_some()),
            ("event", r.event.is_some()),
            ("complete", r.complete.is_some()),
            ("cancel", r.cancel.is_some()),
            ("clear-events", r.clear_events.is_some()),
            ("asg", r.asg.is_some()),
            ("fault", r.fault.is_some()),
            ("clear-faults", r.clear_faults.is_some()),
        ];
        let set: Vec<&str> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
        let kind = match set[..] {
            [k] => k,
            [] => return Err(format!("a timeline entry needs one of {KINDS}")),
            _ => {
                return Err(format!(
                    "a timeline entry does one thing, this one has {}: split it into several [[scenario.timeline]] entries",
                    set.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
        };
        let stray = |key: &str, present: bool, owner: &str| -> Result<(), String> {
            if present && kind != owner {
                Err(format!(
                    "`{key}` belongs to a `{owner}` entry, and this entry is `{kind}`"
                ))
            } else {
                Ok(())
            }
        };
        stray("time", r.time.is_some() && kind != "rebalance", "spot")?;
        for (key, present) in [
            ("id", r.id.is_some()),
            ("state", r.state.is_some()),
            ("not-before", r.not_before.is_some()),
            ("not-after", r.not_after.is_some()),
            ("not-before-deadline", r.not_before_deadline.is_some()),
            ("description", r.description.is_some()),
        ] {
            stray(key, present, "event")?;
        }
        let off = |key: &str| format!("`{key} = false` does nothing: leave the entry out");
        let mut view = r.view;
        let mut fault = r.fault;
        if let (Some(v), Some(spec)) = (&view, &mut fault) {
            match &spec.view {
                Some(own) if own != v => {
                    return Err(format!(
                        "the entry is for view `{v}` and its fault for view `{own}`: give one"
                    ));
                }
                _ => spec.view = Some(v.clone()),
            }
            view = None;
        }
        if view.is_some() && kind == "clear-faults" {
            return Err(
                "`clear-faults` ends every fault, whatever its view: it takes no `view`".into(),
            );
        }
        let change = match kind {
            "spot" => Change::Spot {
                action: r.spot.expect("kind"),
                time: r.time,
            },
            "rebalance" if r.rebalance == Some(false) => return Err(off("rebalance")),
            "rebalance" => Change::Rebalance { time: r.time },
            "event" => Change::EventAdd(EventSpec {
                code: r.event.expect("kind"),
                id: r.id,
                state: r.state,
                not_before: r.not_before,
                not_after: r.not_after,
                not_before_deadline: r.not_before_deadline,
                description: r.description,
            }),
            "complete" => Change::EventComplete {
                id: r.complete.expect("kind"),
            },
            "cancel" => Change::EventCancel {
                id: r.cancel.expect("kind"),
            },
            "clear-events" if r.clear_events == Some(false) => return Err(off("clear-events")),
            "clear-events" => Change::EventClear,
            "fault" => Change::FaultAdd(fault.expect("kind")),
            "clear-faults" if r.clear_faults == Some(false) => return Err(off("clear-faults")),
            "clear-faults" => Change::FaultClear { id: None },
            _ => Change::Asg {
                state: r.asg.expect("kind"),
            },
        };
        Ok(Entry {
            at: r.at.unwrap_or(Moment::NOW),
            change,
            view,
        })
    }
}

impl From<Entry> for RawEntry {
    fn from(e: Entry) -> RawEntry {
        let mut r = RawEntry {
            at: (e.at != Moment::NOW).then_some(e.at),
            view: e.view,
            ..RawEntry::default()
        };
        match e.change {
            Change::Spot { action, time } => {
                r.spot = Some(action);
                r.time = time;
            }
            Change::Rebalance { time } => {
                r.rebalance = Some(true);
                r.time = time;
            }
            Change::EventAdd(s) => {
                r.event = Some(s.code);
                r.id = s.id;
                r.state = s.state;
                r.not_before = s.not_before;
                r.not_after = s.not_after;
                r.not_before_deadline = s.not_before_deadline;
                r.description = s.description;
            }
            Change::EventComplete { id } => r.complete = Some(id),
            Change::EventCancel { id } => r.cancel = Some(id),
            Change::EventClear => r.clear_events = Some(true),
            Change::Asg { state } => r.asg = Some(state),
            Change::FaultAdd(spec) => r.fault = Some(spec),
            Change::FaultClear { .. } => r.clear_faults = Some(true),
            // Not timeline entries: tags and paths have their own sections.
            Change::TagSet { .. }
            | Change::TagUnset { .. }
            | Change::Set { .. }
            | Change::Unset { .. } => {}
        }
        r
    }
}
