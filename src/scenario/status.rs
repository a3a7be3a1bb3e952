//! What is set and pending, for people: `ctl status` and `ctl fault list`.

use std::fmt::Write;
use std::time::SystemTime;

use super::faults::{InForce, time_of};
use super::{Origin, Scenario, event_time, rfc3339, time};

impl Scenario {
    /// What is set and pending, for people.
    pub fn status(&self, now: SystemTime) -> String {
        let mut o = String::new();
        let when = |t: SystemTime| format!("{} ({})", rfc3339(t), time::relative(t, now));
        let _ = writeln!(
            o,
            "now {}; daemon started {}",
            rfc3339(now),
            when(self.start)
        );
        let n = &self.notices;
        match &n.spot {
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
        match n.rebalance {
            Some(t) => {
                let _ = writeln!(o, "rebalance: recommended, noticeTime {}", rfc3339(t));
            }
            None => o.push_str("rebalance: none\n"),
        }
        match n.asg {
            Some(a) => {
                let _ = writeln!(o, "autoscaling target-lifecycle-state: {a}");
            }
            None => o.push_str("autoscaling target-lifecycle-state: not set (404)\n"),
        }
        for (title, list) in [("scheduled", &n.scheduled), ("history", &n.history)] {
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
        for (k, v) in &self.overlay.tags {
            let _ = match v {
                Some(v) => writeln!(o, "tag {k} = {v:?}"),
                None => writeln!(o, "tag {k} removed"),
            };
        }
        for (p, v) in &self.overlay.paths {
            let _ = match v {
                Some(v) => writeln!(o, "set {p} = {v:?}"),
                None => writeln!(o, "unset {p}"),
            };
        }
        let _ = writeln!(o, "{}", fault_list(&self.faults, now));
        let pending = self.timeline.pending();
        let _ = writeln!(o, "pending: {}", pending.len());
        for p in pending {
            let from = match p.origin {
                Origin::Config => "config",
                Origin::Control => "ctl",
            };
            let _ = writeln!(o, "  {} [{from}] {}", when(p.due), p.change);
        }
        o.pop();
        o
    }

    /// The faults in force and their state, for `ctl fault list` and `ctl status`.
    pub fn fault_list(&self, now: SystemTime) -> String {
        fault_list(&self.faults, now)
    }
}

/// One line per fault: what it does and to which requests, on which endpoint, since and
/// until when, and its hits.
fn fault_list(faults: &InForce, now: SystemTime) -> String {
    let mut o = String::new();
    if faults.armed.is_empty() {
        o.push_str("faults: none");
        return o;
    }
    let _ = write!(o, "faults: {}", faults.armed.len());
    for f in &faults.armed {
        let _ = write!(
            o,
            "\n  {} {}: endpoint {}, started {}",
            f.id,
            f.spec,
            f.spec.endpoint,
            rfc3339(time_of(f.started_ms))
        );
        if let Some(u) = f.until_ms {
            let _ = write!(o, ", ends {}", time::relative(time_of(u), now));
        }
        let _ = write!(o, ", {} hit(s)", f.counters.hits());
        if f.counters.used_up(&f.spec) {
            o.push_str(", used up");
        }
    }
    o
}
