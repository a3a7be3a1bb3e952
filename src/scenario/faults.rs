//! The faults in force: started by a change (`[[fault]]`, the timeline, `ctl fault add`),
//! ended when cleared, when their time is over or when their count is used up. Each is kept
//! as the [`Armed`] record the snapshots serve, so there is one record of a fault.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Refused;
use crate::clock::millis;
use crate::fault::{Armed, Counters, FaultId, Spec};

/// The faults in force, in the order they started, and how many have started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InForce {
    pub(super) armed: Vec<Armed>,
    /// The number of the last fault started: ids are never used twice.
    last: u32,
}

/// A time in the clock's milliseconds, back as a time.
pub(super) fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl InForce {
    /// Starts a fault at `at` (to the millisecond: one that lasts 2 s must not end up to a
    /// second early); returns its id.
    pub fn add(&mut self, spec: Spec, at: SystemTime) -> String {
        self.last += 1;
        let id = FaultId(self.last);
        self.armed.push(Armed {
            id,
            until_ms: spec.duration.map(|d| millis(at + d)),
            started_ms: millis(at),
            counters: Counters::new(&spec),
            spec,
        });
        id.to_string()
    }

    /// Ends one fault, or all of them (logged).
    pub fn clear(&mut self, id: Option<FaultId>) -> Result<String, Refused> {
        let Some(id) = id else {
            for f in &self.armed {
                tracing::info!(
                    "fault {} ended: cleared ({} hit(s))",
                    f.id,
                    f.counters.hits()
                );
            }
            let n = self.armed.len();
            self.armed.clear();
            return Ok(format!("cleared {n} fault(s)"));
        };
        let Some(i) = self.armed.iter().position(|f| f.id == id) else {
            let known: Vec<String> = self.armed.iter().map(|f| f.id.to_string()).collect();
            return Err(Refused(if known.is_empty() {
                format!("no fault {id}: there are no faults")
            } else {
                format!(
                    "no fault {id}: the faults in force are {}",
                    known.join(", ")
                )
            }));
        };
        let f = self.armed.remove(i);
        tracing::info!("fault {id} ended: cleared ({} hit(s))", f.counters.hits());
        Ok(format!("fault {id} cleared"))
    }

    /// Ends the faults whose time is over (logged) or whose count is used up (logged by the
    /// request that used it). Returns whether any ended.
    pub fn end(&mut self, now: SystemTime) -> bool {
        let before = self.armed.len();
        let now_ms = millis(now);
        self.armed.retain(|f| {
            if f.over(now_ms) {
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
        self.armed.len() != before
    }

    /// Takes over from the faults of a scenario this one replaces: they end (logged), and
    /// ids go on from its last one, so an id never names two faults.
    pub fn follow(&mut self, old: &InForce) {
        for f in &old.armed {
            tracing::info!(
                "fault {} ended: the scenario restarted ({} hit(s))",
                f.id,
                f.counters.hits()
            );
        }
        self.last = old.last;
    }

    /// When the next fault's time is over.
    pub fn next_end(&self) -> Option<SystemTime> {
        self.armed
            .iter()
            .filter_map(|f| f.until_ms)
            .min()
            .map(time_of)
    }
}
