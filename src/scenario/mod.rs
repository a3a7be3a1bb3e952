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
//!
//! A scenario is made of parts, each in its own file: the [`Notices`] EC2 shows (spot,
//! rebalance, events, ASG state), the live [`Overlay`] of values and tags, the faults in
//! force ([`InForce`], kept as the [`Armed`](crate::fault::Armed) records snapshots serve),
//! the [`Timeline`] of pending changes, and the status text people read (`status.rs`). The
//! vocabulary (`names.rs`) and the [`Change`]s (`change.rs`) are what they all speak.

mod change;
mod config;
mod faults;
mod names;
mod notices;
mod overlay;
mod status;
mod time;
mod timeline;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::fault::{self, Armed};
use crate::metadata::TreeBuilder;
use crate::types::TagKey;

pub use change::Change;
pub use config::{Entry, ScenarioConfig};
pub use faults::InForce;
pub use names::{AsgState, EventCode, EventId, EventSpec, EventState, SpotAction};
pub use notices::{Event, Notices, SpotNotice};
pub use overlay::Overlay;
pub use time::{Moment, event_time, rfc3339, whole_seconds};
pub use timeline::{Origin, Pending, Timeline};

/// How far ahead of the notice a spot interruption happens unless told otherwise (EC2: two
/// minutes).
pub const SPOT_LEAD: Duration = Duration::from_secs(120);
/// A maintenance event's window when only its start is given.
pub const EVENT_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// Why a change was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The state and timeline of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    start: SystemTime,
    notices: Notices,
    overlay: Overlay,
    faults: InForce,
    timeline: Timeline,
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
        let mut timeline = Timeline::default();
        for spec in faults {
            timeline.push(Pending {
                due: start,
                change: Change::FaultAdd(spec.clone()),
                origin: Origin::Config,
            });
        }
        for e in &cfg.timeline {
            let mut change = e.change.clone();
            change.assign_id(fresh);
            timeline.push(Pending {
                due: e.at.resolve(start),
                change,
                origin: Origin::Config,
            });
        }
        Scenario {
            start,
            notices: Notices::default(),
            overlay: Overlay::default(),
            faults: InForce::default(),
            timeline,
        }
    }

    /// Takes over from `old`, which this scenario replaces: its faults end (logged), and
    /// fault ids go on from its last one, so an id never names two faults.
    pub fn follow(&mut self, old: &Scenario) {
        self.faults.follow(&old.faults);
    }

    /// When the daemon started: what `+D` in the config counts from.
    pub fn start(&self) -> SystemTime {
        self.start
    }

    /// When the next pending change, or the end of a fault, is due.
    pub fn next_due(&self) -> Option<SystemTime> {
        match (self.timeline.next_due(), self.faults.next_end()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The changes still to come, soonest first.
    pub fn pending(&self) -> &[Pending] {
        self.timeline.pending()
    }

    /// Applies every change due by `now`, each at its own due time. A change that no longer
    /// applies (completing an event that was cleared) is logged and dropped. Returns whether
    /// anything was applied.
    pub fn apply_due(&mut self, now: SystemTime) -> bool {
        let due = self.timeline.take_due(now);
        for p in &due {
            // A value set through the scenario may be a secret: the log names where, not what.
            let logged = p.change.without_value();
            match self.apply(p.change.clone(), p.due) {
                Ok(id) if matches!(p.change, Change::FaultAdd(_)) => tracing::info!(
                    at = %rfc3339(p.due),
                    "scenario: fault {id} started: {}",
                    self.faults().last().map(|f| f.spec.to_string()).unwrap_or_default()
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
        let ended = self.faults.end(now);
        !due.is_empty() || ended
    }

    /// The faults in force, in the order they started, as snapshots serve them.
    pub fn faults(&self) -> &[Armed] {
        &self.faults.armed
    }

    /// The faults in force, for a snapshot.
    pub fn armed_faults(&self) -> Vec<Armed> {
        self.faults.armed.clone()
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
                return Err(self.notices.unknown_event(id));
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
        self.timeline.push(Pending {
            due,
            change,
            origin: Origin::Control,
        });
        Ok(message)
    }

    /// Whether an event with this id is, or will be, known.
    fn knows_event(&self, id: &EventId) -> bool {
        self.notices.knows_event(id) || self.timeline.adds_event(id)
    }

    /// Applies `change` as of `at` (relative times inside it count from `at`). Returns what
    /// happened; on error nothing changed.
    pub fn apply(&mut self, change: Change, at: SystemTime) -> Result<String, Refused> {
        // Faults keep the exact time; what EC2 shows is to the second.
        let exact = at;
        let at = whole_seconds(at);
        let n = &mut self.notices;
        let o = &mut self.overlay;
        Ok(match change {
            Change::Spot { action, time } => n.spot(action, time, at),
            Change::Rebalance { time } => n.rebalance(time, at),
            Change::EventAdd(spec) => n.add_event(spec, at)?,
            Change::EventComplete { id } => n.finish(&id, EventState::Completed)?,
            Change::EventCancel { id } => n.finish(&id, EventState::Canceled)?,
            Change::EventClear => n.clear_events(),
            Change::Asg { state } => n.asg(state),
            Change::TagSet { key, value } => o.set_tag(key, value),
            Change::TagUnset { key } => o.unset_tag(key),
            Change::Set { path, value } => o.set(path, value),
            Change::Unset { path } => o.unset(path),
            Change::FaultAdd(spec) => self.faults.add(spec, exact),
            Change::FaultClear { id } => self.faults.clear(id)?,
        })
    }

    /// The instance tags after the live changes.
    pub fn tags(&self, configured: &BTreeMap<TagKey, String>) -> BTreeMap<TagKey, String> {
        self.overlay.tags(configured)
    }

    /// Whether tags were changed live.
    pub fn changes_tags(&self) -> bool {
        self.overlay.changes_tags()
    }

    /// Writes what is visible into the tree: the notices and events (only when there are
    /// some, so an empty scenario leaves the tree as configured), then the overlay.
    pub fn extend(&self, tree: &mut TreeBuilder) {
        self.notices.extend(tree);
        self.overlay.extend(tree);
    }
}

#[cfg(test)]
mod tests;
