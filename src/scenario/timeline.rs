//! The timeline: changes waiting for their time, soonest first, each with where it came from.

use std::time::SystemTime;

use super::{Change, EventId, EventSpec};

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

/// The pending changes, sorted by due time; equal times keep their order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline(Vec<Pending>);

impl Timeline {
    pub fn push(&mut self, p: Pending) {
        let at = self.0.partition_point(|q| q.due <= p.due);
        self.0.insert(at, p);
    }

    /// When the next change is due.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.0.first().map(|p| p.due)
    }

    /// The changes still to come, soonest first.
    pub fn pending(&self) -> &[Pending] {
        &self.0
    }

    /// Takes the changes due by `now`, soonest first.
    pub fn take_due(&mut self, now: SystemTime) -> Vec<Pending> {
        let n = self.0.partition_point(|p| p.due <= now);
        self.0.drain(..n).collect()
    }

    /// Whether a pending change adds an event with this id.
    pub fn adds_event(&self, id: &EventId) -> bool {
        self.0.iter().any(
            |p| matches!(&p.change, Change::EventAdd(EventSpec { id: Some(x), .. }) if x == id),
        )
    }
}
