//! What the instance is going through: spot interruption notices, rebalance
//! recommendations, scheduled maintenance events, the Auto Scaling target lifecycle state,
//! and the live overlay (`ctl set`/`unset`, `ctl tags`) over the configured tree.
//!
//! [`Scenario`] is a pure model: a visible state plus a timeline of pending [`Change`]s, each
//! due at a time. It knows no clock: [`Scenario::apply_due`] is told what time it is, and a
//! change happens at its *due* time (a spot notice due at 12:00:00 says `12:02:00` however
//! late the daemon gets round to it), so a [`ManualClock`](crate::clock::ManualClock) drives
//! it exactly. Times in EC2's documents are fixed when the change happens, never recomputed
//! per request. [`Scenario::extend`] writes what is visible into a tree snapshot.

mod config;
mod time;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::fault::{self, Armed, Counters, FaultId};
use crate::metadata::TreeBuilder;
use crate::metadata::json::to_ec2_string;
use crate::types::{MetaPath, TagKey};

pub use config::{Entry, ScenarioConfig};
pub use time::{Moment, event_time, rfc3339, whole_seconds};

/// How far ahead of the notice a spot interruption happens unless told otherwise (EC2: two
/// minutes).
pub const SPOT_LEAD: Duration = Duration::from_secs(120);
/// A maintenance event's window when only its start is given.
pub const EVENT_WINDOW: Duration = Duration::from_secs(2 * 3600);

macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, as written.
            pub const ALL: &[&str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        concat!("`{}` is not a valid ", stringify!($name), ": use one of {}"),
                        s,
                        Self::ALL.join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(
    /// What a spot interruption does.
    SpotAction {
        Terminate = "terminate",
        Stop = "stop",
        Hibernate = "hibernate",
    }
);
names!(
    /// A scheduled event's `Code`.
    EventCode {
        InstanceReboot = "instance-reboot",
        SystemReboot = "system-reboot",
        SystemMaintenance = "system-maintenance",
        InstanceRetirement = "instance-retirement",
        InstanceStop = "instance-stop",
    }
);
names!(
    /// A scheduled event's `State`.
    EventState {
        Active = "active",
        Completed = "completed",
        Canceled = "canceled",
    }
);
names!(
    /// `autoscaling/target-lifecycle-state`.
    AsgState {
        Detached = "Detached",
        InService = "InService",
        Standby = "Standby",
        Terminated = "Terminated",
        WarmedHibernated = "Warmed:Hibernated",
        WarmedRunning = "Warmed:Running",
        WarmedStopped = "Warmed:Stopped",
        WarmedTerminated = "Warmed:Terminated",
    }
);

impl EventCode {
    /// The description EC2 gives such an event when none is set.
    pub fn default_description(self) -> &'static str {
        match self {
            EventCode::InstanceReboot => "The instance is scheduled for a reboot",
            EventCode::SystemReboot => "scheduled reboot",
            EventCode::SystemMaintenance => "scheduled maintenance",
            EventCode::InstanceRetirement => "The instance is scheduled for retirement",
            EventCode::InstanceStop => "The instance is scheduled for a stop",
        }
    }
}

/// `instance-event-` and 17 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    const PREFIX: &str = "instance-event-";

    /// A fresh random id.
    pub fn random() -> EventId {
        let mut b = [0u8; 9];
        getrandom::fill(&mut b).expect("the OS random source is available");
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        EventId(format!("{}{}", Self::PREFIX, &hex[..17]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|h| {
            h.len() == 17 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if ok {
            Ok(EventId(s))
        } else {
            Err(format!(
                "`{s}` is not an event id: expected `instance-event-` and 17 lower-case hex digits"
            ))
        }
    }
}

impl FromStr for EventId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventId::try_from(s.to_string())
    }
}

impl From<EventId> for String {
    fn from(v: EventId) -> String {
        v.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A maintenance event to add. Relative times count from when it is added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventSpec {
    pub code: EventCode,
    /// Given, or made up when the change is accepted (so `ctl` can print it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<EventState>,
    /// Default: when the event is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Moment>,
    /// Default: two hours after `not-before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Moment>,
    /// Default: none (the key is left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_deadline: Option<Moment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

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

/// A maintenance event as EC2 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub code: EventCode,
    pub state: EventState,
    pub not_before: SystemTime,
    pub not_after: Option<SystemTime>,
    pub not_before_deadline: Option<SystemTime>,
    pub description: String,
}

impl Event {
    /// The entry in EC2's field order; `[Completed] ` / `[Canceled] ` prefixes past events.
    fn document(&self) -> EventDocument {
        let prefix = match self.state {
            EventState::Active => "",
            EventState::Completed => "[Completed] ",
            EventState::Canceled => "[Canceled] ",
        };
        EventDocument {
            not_before: event_time(self.not_before),
            code: self.code.as_str(),
            description: format!("{prefix}{}", self.description),
            event_id: self.id.as_str().to_string(),
            not_after: self.not_after.map(event_time),
            not_before_deadline: self.not_before_deadline.map(event_time),
            state: self.state.as_str(),
        }
    }
}

/// One entry of `events/maintenance/{scheduled,history}`, fields in EC2's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventDocument {
    not_before: String,
    code: &'static str,
    description: String,
    event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before_deadline: Option<String>,
    state: &'static str,
}

/// A spot interruption notice, fixed when issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpotNotice {
    pub action: SpotAction,
    /// When the action happens: `time` in the documents.
    pub time: SystemTime,
    /// When the notice appeared.
    pub issued: SystemTime,
}

/// Where a pending change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Control,
}

/// A change waiting for its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub due: SystemTime,
    pub change: Change,
    pub origin: Origin,
}

/// Why a change was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The state and timeline of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    start: SystemTime,
    spot: Option<SpotNotice>,
    rebalance: Option<SystemTime>,
    scheduled: Vec<Event>,
    history: Vec<Event>,
    asg: Option<AsgState>,
    /// `Some(v)`: served at the path; `None`: removed.
    overlay: BTreeMap<MetaPath, Option<String>>,
    tags: BTreeMap<TagKey, Option<String>>,
    /// Sorted by due time; equal times keep their order.
    pending: Vec<Pending>,
    /// The faults in force, in the order they started.
    faults: Vec<Fault>,
    /// The number of the last fault started.
    last_fault: u32,
}

/// A fault in force.
#[derive(Debug, Clone)]
pub struct Fault {
    pub id: FaultId,
    pub spec: fault::Spec,
    pub started: SystemTime,
    pub until: Option<SystemTime>,
    /// Shared with every snapshot the fault is served in.
    pub counters: Arc<Counters>,
}

impl PartialEq for Fault {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.spec == other.spec
            && self.started == other.started
            && self.until == other.until
            && Arc::ptr_eq(&self.counters, &other.counters)
    }
}

impl Scenario {
    /// The configured timeline, counted from `start`, and the configured `faults` (due at
    /// `start`), with nothing applied yet: call [`Scenario::apply_due`]. Events without an id
    /// get one from `fresh`.
    pub fn new(
        cfg: &ScenarioConfig,
        faults: &[fault::Spec],
        start: SystemTime,
        fresh: &mut dyn FnMut() -> EventId,
    ) -> Scenario {
        let mut s = Scenario {
            start,
            spot: None,
            rebalance: None,
            scheduled: Vec::new(),
            history: Vec::new(),
            asg: None,
            overlay: BTreeMap::new(),
            tags: BTreeMap::new(),
            pending: Vec::new(),
            faults: Vec::new(),
            last_fault: 0,
        };
        for spec in faults {
            s.push(Pending {
                due: start,
                change: Change::FaultAdd(spec.clone()),
                origin: Origin::Config,
            });
        }
        for e in &cfg.timeline {
            let mut change = e.change.clone();
            change.assign_id(fresh);
            s.push(Pending {
                due: e.at.resolve(start),
                change,
                origin: Origin::Config,
            });
        }
        s
    }

    /// Takes over from `old`, which this scenario replaces: its faults end (logged), and
    /// fault ids go on from its last one, so an id never names two faults.
    pub fn follow(&mut self, old: &Scenario) {
        for f in &old.faults {
            tracing::info!(
                "fault {} ended: the scenario restarted ({} hit(s))",
                f.id,
                f.counters.hits()
            );
        }
        self.last_fault = old.last_fault;
    }

    /// When the daemon started: what `+D` in the config counts from.
    pub fn start(&self) -> SystemTime {
        self.start
    }

    fn push(&mut self, p: Pending) {
        let at = self.pending.partition_point(|q| q.due <= p.due);
        self.pending.insert(at, p);
    }

    /// When the next pending change is due.
    pub fn next_due(&self) -> Option<SystemTime> {
        let fault_ends = self.faults.iter().filter_map(|f| f.until).min();
        match (self.pending.first().map(|p| p.due), fault_ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The changes still to come, soonest first.
    pub fn pending(&self) -> &[Pending] {
        &self.pending
    }

    /// Applies every change due by `now`, each at its own due time. A change that no longer
    /// applies (completing an event that was cleared) is logged and dropped. Returns whether
    /// anything was applied.
    pub fn apply_due(&mut self, now: SystemTime) -> bool {
        let n = self.pending.partition_point(|p| p.due <= now);
        let due: Vec<Pending> = self.pending.drain(..n).collect();
        for p in &due {
            // A value set through the scenario may be a secret: the log names where, not what.
            let logged = p.change.without_value();
            match self.apply(p.change.clone(), p.due) {
                Ok(id) if matches!(p.change, Change::FaultAdd(_)) => tracing::info!(
                    at = %rfc3339(p.due),
                    "scenario: fault {id} started: {}",
                    self.faults.last().map(|f| f.spec.to_string()).unwrap_or_default()
                ),
                Ok(done) => tracing::info!(
                    at = %rfc3339(p.due),
                    "scenario: {}",
                    logged.as_deref().unwrap_or(&done)
                ),
                Err(e) => tracing::warn!(
                    at = %rfc3339(p.due),
                    "scenario: skipped `{}`: {e}",
                    logged.unwrap_or_else(|| p.change.to_string())
                ),
            }
        }
        let ended = self.end_faults(now);
        !due.is_empty() || ended
    }

    /// Ends the faults whose time is over (logged) or whose count is used up (logged by the
    /// request that used it). Returns whether any ended.
    fn end_faults(&mut self, now: SystemTime) -> bool {
        let before = self.faults.len();
        self.faults.retain(|f| {
            if f.until.is_some_and(|u| u <= now) {
                tracing::info!(
                    "fault {} ended: its {} are over ({} hit(s))",
                    f.id,
                    crate::types::HumanDuration(f.spec.duration.unwrap_or_default()),
                    f.counters.hits()
                );
                return false;
            }
            !f.counters.used_up(&f.spec)
        });
        self.faults.len() != before
    }

    /// The faults in force, as a snapshot serves them; `millis` turns a time into the
    /// clock's milliseconds.
    pub fn armed_faults(&self) -> Vec<Armed> {
        self.faults
            .iter()
            .map(|f| Armed {
                id: f.id,
                spec: f.spec.clone(),
                until_ms: f.until.map(crate::clock::millis),
                counters: f.counters.clone(),
            })
            .collect()
    }

    /// The faults in force.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// The faults in force and their state, for `ctl fault list` and `ctl status`.
    pub fn fault_list(&self, now: SystemTime) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        if self.faults.is_empty() {
            o.push_str("faults: none");
            return o;
        }
        let _ = write!(o, "faults: {}", self.faults.len());
        for f in &self.faults {
            let _ = write!(o, "\n  {} {}: started {}", f.id, f.spec, rfc3339(f.started));
            if let Some(u) = f.until {
                let _ = write!(o, ", ends {}", time::relative(u, now));
            }
            let _ = write!(o, ", {} hit(s)", f.counters.hits());
            if f.counters.used_up(&f.spec) {
                o.push_str(", used up");
            }
        }
        o
    }

    /// Schedules `change` for `due` (after checking what can be checked now). Returns what
    /// will happen, for the person who asked.
    pub fn schedule(
        &mut self,
        change: Change,
        due: SystemTime,
        now: SystemTime,
    ) -> Result<String, Refused> {
        if due <= now {
            return self.apply(change, now);
        }
        match &change {
            Change::EventComplete { id } | Change::EventCancel { id } if !self.knows_event(id) => {
                return Err(self.unknown_event(id));
            }
            Change::EventAdd(EventSpec { id: Some(id), .. }) if self.knows_event(id) => {
                return Err(Refused(format!("an event with id {id} already exists")));
            }
            _ => {}
        }
        let message = format!(
            "{change}: scheduled for {} ({})",
            rfc3339(due),
            time::relative(due, now)
        );
        self.push(Pending {
            due,
            change,
            origin: Origin::Control,
        });
        Ok(message)
    }

    /// Whether an event with this id is, or will be, known.
    fn knows_event(&self, id: &EventId) -> bool {
        self.scheduled
            .iter()
            .chain(&self.history)
            .any(|e| &e.id == id)
            || self.pending.iter().any(
                |p| matches!(&p.change, Change::EventAdd(EventSpec { id: Some(x), .. }) if x == id),
            )
    }

    fn unknown_event(&self, id: &EventId) -> Refused {
        let known: Vec<&str> = self.scheduled.iter().map(|e| e.id.as_str()).collect();
        Refused(if known.is_empty() {
            format!("no scheduled event {id}: there are no scheduled events")
        } else {
            format!(
                "no scheduled event {id}: the scheduled ones are {}",
                known.join(", ")
            )
        })
    }

    /// Applies `change` as of `at` (relative times inside it count from `at`). Returns what
    /// happened; on error nothing changed.
    pub fn apply(&mut self, change: Change, at: SystemTime) -> Result<String, Refused> {
        // Faults keep the exact time: one that lasts 2 s must not end up to a second early.
        let exact = at;
        let at = whole_seconds(at);
        Ok(match change {
            Change::Spot { action, time } => {
                let time = time.map_or_else(|| at + SPOT_LEAD, |m| m.resolve(at));
                self.spot = Some(SpotNotice {
                    action,
                    time,
                    issued: at,
                });
                format!(
                    "spot interruption notice issued: {action} at {}",
                    rfc3339(time)
                )
            }
            Change::Rebalance { time } => {
                let t = time.map_or(at, |m| m.resolve(at));
                self.rebalance = Some(t);
                format!(
                    "rebalance recommendation emitted, noticeTime {}",
                    rfc3339(t)
                )
            }
            Change::EventAdd(spec) => {
                let id = spec.id.clone().unwrap_or_else(EventId::random);
                if self
                    .scheduled
                    .iter()
                    .chain(&self.history)
                    .any(|e| e.id == id)
                {
                    return Err(Refused(format!("an event with id {id} already exists")));
                }
                let not_before = spec.not_before.map_or(at, |m| m.resolve(at));
                let not_after = Some(
                    spec.not_after
                        .map_or(not_before + EVENT_WINDOW, |m| m.resolve(at)),
                );
                let state = spec.state.unwrap_or(EventState::Active);
                let e = Event {
                    id: id.clone(),
                    code: spec.code,
                    state,
                    not_before,
                    not_after,
                    not_before_deadline: spec.not_before_deadline.map(|m| m.resolve(at)),
                    description: spec
                        .description
                        .unwrap_or_else(|| spec.code.default_description().into()),
                };
                if state == EventState::Active {
                    self.scheduled.push(e);
                } else {
                    self.history.push(e);
                }
                id.to_string()
            }
            Change::EventComplete { id } => self.finish(&id, EventState::Completed)?,
            Change::EventCancel { id } => self.finish(&id, EventState::Canceled)?,
            Change::EventClear => {
                let n = self.scheduled.len() + self.history.len();
                self.scheduled.clear();
                self.history.clear();
                format!("cleared {n} event(s)")
            }
            Change::Asg { state } => {
                self.asg = Some(state);
                format!("target lifecycle state is {state}")
            }
            Change::TagSet { key, value } => {
                let msg = format!("tag {key} = {value:?}");
                self.tags.insert(key, Some(value));
                msg
            }
            Change::TagUnset { key } => {
                let msg = format!("tag {key} removed");
                self.tags.insert(key, None);
                msg
            }
            Change::Set { path, value } => {
                let msg = format!("{path} = {value:?}");
                self.overlay.insert(path, Some(value));
                msg
            }
            Change::Unset { path } => {
                let msg = format!("{path} removed");
                self.overlay.insert(path, None);
                msg
            }
            Change::FaultAdd(spec) => {
                self.last_fault += 1;
                let id = FaultId(self.last_fault);
                self.faults.push(Fault {
                    id,
                    until: spec.duration.map(|d| exact + d),
                    counters: Counters::new(&spec),
                    started: exact,
                    spec,
                });
                id.to_string()
            }
            Change::FaultClear { id: Some(id) } => {
                let Some(i) = self.faults.iter().position(|f| f.id == id) else {
                    let known: Vec<String> = self.faults.iter().map(|f| f.id.to_string()).collect();
                    return Err(Refused(if known.is_empty() {
                        format!("no fault {id}: there are no faults")
                    } else {
                        format!(
                            "no fault {id}: the faults in force are {}",
                            known.join(", ")
                        )
                    }));
                };
                let f = self.faults.remove(i);
                tracing::info!("fault {id} ended: cleared ({} hit(s))", f.counters.hits());
                format!("fault {id} cleared")
            }
            Change::FaultClear { id: None } => {
                for f in &self.faults {
                    tracing::info!(
                        "fault {} ended: cleared ({} hit(s))",
                        f.id,
                        f.counters.hits()
                    );
                }
                let n = self.faults.len();
                self.faults.clear();
                format!("cleared {n} fault(s)")
            }
        })
    }

    /// Moves a scheduled event to the history.
    fn finish(&mut self, id: &EventId, state: EventState) -> Result<String, Refused> {
        let Some(i) = self.scheduled.iter().position(|e| &e.id == id) else {
            return Err(if self.history.iter().any(|e| &e.id == id) {
                Refused(format!("event {id} is already in the history"))
            } else {
                self.unknown_event(id)
            });
        };
        let mut e = self.scheduled.remove(i);
        e.state = state;
        self.history.push(e);
        Ok(format!("event {id} is {state}: moved to the history"))
    }

    /// The instance tags after the live changes.
    pub fn tags(&self, configured: &BTreeMap<TagKey, String>) -> BTreeMap<TagKey, String> {
        let mut t = configured.clone();
        for (k, v) in &self.tags {
            match v {
                Some(v) => t.insert(k.clone(), v.clone()),
                None => t.remove(k),
            };
        }
        t
    }

    /// Whether tags were changed live.
    pub fn changes_tags(&self) -> bool {
        !self.tags.is_empty()
    }

    /// Writes what is visible into the tree: the notices and events (only when there are
    /// some, so an empty scenario leaves the tree as configured), then the overlay.
    pub fn extend(&self, tree: &mut TreeBuilder) {
        if let Some(s) = &self.spot {
            let time = rfc3339(s.time);
            tree.text(
                "meta-data/spot/instance-action",
                compact(&[("action", s.action.as_str()), ("time", &time)]),
            );
            tree.text("meta-data/spot/termination-time", time);
        }
        if let Some(t) = self.rebalance {
            tree.text(
                "meta-data/events/recommendations/rebalance",
                compact(&[("noticeTime", &rfc3339(t))]),
            );
        }
        if !self.scheduled.is_empty() {
            tree.text(
                "meta-data/events/maintenance/scheduled",
                events_document(&self.scheduled),
            );
        }
        if !self.history.is_empty() {
            tree.text(
                "meta-data/events/maintenance/history",
                events_document(&self.history),
            );
        }
        if let Some(a) = self.asg {
            tree.text("meta-data/autoscaling/target-lifecycle-state", a.as_str());
        }
        for (path, v) in &self.overlay {
            match v {
                Some(v) => tree.text(path.as_str(), v.clone()),
                None => tree.remove(path.as_str()),
            };
        }
    }

    /// What is set and pending, for people.
    pub fn status(&self, now: SystemTime) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let when = |t: SystemTime| format!("{} ({})", rfc3339(t), time::relative(t, now));
        let _ = writeln!(
            o,
            "now {}; daemon started {}",
            rfc3339(now),
            when(self.start)
        );
        match &self.spot {
            Some(s) => {
                let _ = writeln!(
                    o,
                    "spot: {} at {}, notice issued {}",
                    s.action,
                    when(s.time),
                    rfc3339(s.issued)
                );
            }
            None => o.push_str("spot: no interruption notice\n"),
        }
        match self.rebalance {
            Some(t) => {
                let _ = writeln!(o, "rebalance: recommended, noticeTime {}", rfc3339(t));
            }
            None => o.push_str("rebalance: none\n"),
        }
        match self.asg {
            Some(a) => {
                let _ = writeln!(o, "autoscaling target-lifecycle-state: {a}");
            }
            None => o.push_str("autoscaling target-lifecycle-state: not set (404)\n"),
        }
        for (title, list) in [("scheduled", &self.scheduled), ("history", &self.history)] {
            let _ = writeln!(o, "events {title}: {}", list.len());
            for e in list {
                let _ = writeln!(
                    o,
                    "  {} {} {} not before {}: {}",
                    e.id,
                    e.code,
                    e.state,
                    event_time(e.not_before),
                    e.description
                );
            }
        }
        for (k, v) in &self.tags {
            let _ = match v {
                Some(v) => writeln!(o, "tag {k} = {v:?}"),
                None => writeln!(o, "tag {k} removed"),
            };
        }
        for (p, v) in &self.overlay {
            let _ = match v {
                Some(v) => writeln!(o, "set {p} = {v:?}"),
                None => writeln!(o, "unset {p}"),
            };
        }
        let _ = writeln!(o, "{}", self.fault_list(now));
        let _ = writeln!(o, "pending: {}", self.pending.len());
        for p in &self.pending {
            let from = match p.origin {
                Origin::Config => "config",
                Origin::Control => "ctl",
            };
            let _ = writeln!(o, "  {} [{from}] {}", when(p.due), p.change);
        }
        o.pop();
        o
    }
}

/// EC2's compact one-line notices: `{"action": "stop", "time": "…"}`.
fn compact(fields: &[(&str, &str)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}: {}",
                serde_json::Value::from(*k),
                serde_json::Value::from(*v)
            )
        })
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn events_document(events: &[Event]) -> String {
    let docs: Vec<EventDocument> = events.iter().map(Event::document).collect();
    to_ec2_string(&docs)
}

#[cfg(test)]
mod tests;
