//! The notices EC2 shows an instance: the spot interruption notice, the rebalance
//! recommendation, scheduled and past maintenance events, the Auto Scaling target lifecycle
//! state. Each is fixed when the change that makes it happens, and written into the tree in
//! EC2's exact form.

use std::time::SystemTime;

use serde::Serialize;

use super::{
    AsgState, EVENT_WINDOW, EventCode, EventId, EventSpec, EventState, Moment, Refused, SPOT_LEAD,
    SpotAction, event_time, rfc3339,
};
use crate::metadata::TreeBuilder;
use crate::metadata::json::to_ec2_string;

/// What the notices show now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notices {
    pub(super) spot: Option<SpotNotice>,
    pub(super) rebalance: Option<SystemTime>,
    pub(super) scheduled: Vec<Event>,
    pub(super) history: Vec<Event>,
    pub(super) asg: Option<AsgState>,
}

impl Notices {
    /// Issues a spot interruption notice at `at`; `time` defaults to two minutes later.
    pub fn spot(&mut self, action: SpotAction, time: Option<Moment>, at: SystemTime) -> String {
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

    /// Emits a rebalance recommendation; its `noticeTime` defaults to `at`.
    pub fn rebalance(&mut self, time: Option<Moment>, at: SystemTime) -> String {
        let t = time.map_or(at, |m| m.resolve(at));
        self.rebalance = Some(t);
        format!(
            "rebalance recommendation emitted, noticeTime {}",
            rfc3339(t)
        )
    }

    /// Adds a maintenance event (to the history when it is not active); returns its id.
    pub fn add_event(&mut self, spec: EventSpec, at: SystemTime) -> Result<String, Refused> {
        let id = spec.id.clone().unwrap_or_else(EventId::random);
        if self.knows_event(&id) {
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
        Ok(id.to_string())
    }

    /// Moves a scheduled event to the history.
    pub fn finish(&mut self, id: &EventId, state: EventState) -> Result<String, Refused> {
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

    /// Forgets every scheduled and past event.
    pub fn clear_events(&mut self) -> String {
        let n = self.scheduled.len() + self.history.len();
        self.scheduled.clear();
        self.history.clear();
        format!("cleared {n} event(s)")
    }

    pub fn asg(&mut self, state: AsgState) -> String {
        self.asg = Some(state);
        format!("target lifecycle state is {state}")
    }

    /// Whether an event with this id is scheduled or past.
    pub fn knows_event(&self, id: &EventId) -> bool {
        self.scheduled
            .iter()
            .chain(&self.history)
            .any(|e| &e.id == id)
    }

    /// Why an event to complete or cancel is not there.
    pub fn unknown_event(&self, id: &EventId) -> Refused {
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

    /// Writes the notices and events into the tree, only those there are (so that none
    /// leaves the tree as configured).
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
