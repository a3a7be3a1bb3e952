//! The model against fixed times: notices fixed when issued, events moving to the history,
//! timelines applied at their due times, refused changes that change nothing, and the
//! `[scenario]` section's parsing with located errors.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::config::Config;
use crate::metadata::{Node, Tree};

/// 2026-01-02T03:04:05Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_323_045)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ids() -> impl FnMut() -> EventId {
    let mut n = 0u64;
    move || {
        n += 1;
        EventId(format!("instance-event-{n:017x}"))
    }
}

fn empty() -> Scenario {
    Scenario::new(&ScenarioConfig::default(), &[], t0(), &mut ids())
}

fn tree(s: &Scenario) -> Tree {
    let mut b = TreeBuilder::default();
    b.text("meta-data/instance-id", "i-1");
    s.extend(&mut b);
    b.build()
}

fn get(t: &Tree, p: &str) -> Option<String> {
    t.get(p).map(|n| match n {
        Node::Leaf { body, .. } | Node::Dir { listing: body } => {
            String::from_utf8(body.to_vec()).unwrap()
        }
    })
}

fn change(s: &str) -> Change {
    serde_json::from_str(s).unwrap()
}

#[test]
fn spot_notice_is_fixed_when_issued() {
    let mut s = empty();
    assert_eq!(get(&tree(&s), "meta-data"), Some("instance-id".into()));
    // Issued half a second into a second: the time is still whole.
    s.apply(
        Change::Spot {
            action: SpotAction::Terminate,
            time: None,
        },
        t0() + Duration::from_millis(500),
    )
    .unwrap();
    let t = tree(&s);
    assert_eq!(
        get(&t, "meta-data/spot/instance-action").unwrap(),
        r#"{"action": "terminate", "time": "2026-01-02T03:06:05Z"}"#
    );
    assert_eq!(
        get(&t, "meta-data/spot/termination-time").unwrap(),
        "2026-01-02T03:06:05Z"
    );
    assert_eq!(
        get(&t, "meta-data").unwrap(),
        "instance-id\nspot/",
        "spot/ is listed once there is a notice"
    );
    // Nothing moves with time: the model has no clock, the snapshot is fixed.
    s.apply_due(t0() + secs(3600));
    assert_eq!(
        tree(&s).get("meta-data/spot/termination-time"),
        t.get("meta-data/spot/termination-time")
    );
}

#[test]
fn explicit_spot_time_and_rebalance() {
    let mut s = empty();
    s.apply(
        change(r#"{"op":"spot","action":"hibernate","time":"+5m"}"#),
        t0(),
    )
    .unwrap();
    s.apply(change(r#"{"op":"rebalance"}"#), t0() + secs(1))
        .unwrap();
    let t = tree(&s);
    assert_eq!(
        get(&t, "meta-data/spot/instance-action").unwrap(),
        r#"{"action": "hibernate", "time": "2026-01-02T03:09:05Z"}"#
    );
    assert_eq!(
        get(&t, "meta-data/events/recommendations/rebalance").unwrap(),
        r#"{"noticeTime": "2026-01-02T03:04:06Z"}"#
    );
}

#[test]
fn events_complete_into_the_history() {
    let mut s = empty();
    let a = s
        .apply(
            change(r#"{"op":"event-add","code":"system-reboot","not-before":"+1h","not-after":"+3h","not-before-deadline":"+1d"}"#),
            t0(),
        )
        .unwrap();
    let b = s
        .apply(
            change(r#"{"op":"event-add","code":"instance-stop","description":"stop it"}"#),
            t0(),
        )
        .unwrap();
    assert!(a.parse::<EventId>().is_ok(), "the reply is the new id: {a}");
    assert_ne!(a, b);
    s.apply(
        Change::EventComplete {
            id: a.parse().unwrap(),
        },
        t0() + secs(60),
    )
    .unwrap();
    let t = tree(&s);
    let scheduled = get(&t, "meta-data/events/maintenance/scheduled").unwrap();
    assert_eq!(
        scheduled,
        format!(
            "[ {{\n  \"NotBefore\" : \"2 Jan 2026 03:04:05 GMT\",\n  \"Code\" : \"instance-stop\",\n  \"Description\" : \"stop it\",\n  \"EventId\" : \"{b}\",\n  \"NotAfter\" : \"2 Jan 2026 05:04:05 GMT\",\n  \"State\" : \"active\"\n}} ]"
        )
    );
    let history = get(&t, "meta-data/events/maintenance/history").unwrap();
    assert_eq!(
        history,
        format!(
            "[ {{\n  \"NotBefore\" : \"2 Jan 2026 04:04:05 GMT\",\n  \"Code\" : \"system-reboot\",\n  \"Description\" : \"[Completed] scheduled reboot\",\n  \"EventId\" : \"{a}\",\n  \"NotAfter\" : \"2 Jan 2026 06:04:05 GMT\",\n  \"NotBeforeDeadline\" : \"3 Jan 2026 03:04:05 GMT\",\n  \"State\" : \"completed\"\n}} ]"
        )
    );
    // Cancel the other; then nothing is scheduled: `[]`? The builder's default stays.
    s.apply(
        Change::EventCancel {
            id: b.parse().unwrap(),
        },
        t0(),
    )
    .unwrap();
    assert!(
        get(&tree(&s), "meta-data/events/maintenance/history")
            .unwrap()
            .contains("\"Description\" : \"[Canceled] stop it\"")
    );
    assert_eq!(tree(&s).get("meta-data/events/maintenance/scheduled"), None);
}

#[test]
fn refused_changes_change_nothing() {
    let mut s = empty();
    s.apply(change(r#"{"op":"event-add","code":"system-reboot"}"#), t0())
        .unwrap();
    let before = s.clone();
    let unknown: EventId = "instance-event-00000000000000fff".parse().unwrap();
    let e = s
        .apply(
            Change::EventComplete {
                id: unknown.clone(),
            },
            t0(),
        )
        .unwrap_err();
    assert!(
        e.0.starts_with("no scheduled event instance-event-00000000000000fff: the scheduled ones are instance-event-"),
        "{e}"
    );
    let e = s
        .schedule(Change::EventCancel { id: unknown }, t0() + secs(9), t0())
        .unwrap_err();
    assert!(e.0.contains("no scheduled event"), "{e}");
    assert_eq!(s, before);
}

#[test]
fn timeline_applies_each_change_at_its_due_time() {
    // The timeline `tests/ctl.rs` plays to node-termination-handler, after an ASG state at
    // the start.
    let toml = format!(
        "[[scenario.timeline]]\nasg = \"InService\"\n\n{}",
        include_str!("../../tests/fixtures/scenario/timeline.toml")
    );
    let cfg: Config = Config::from_toml(&toml, Path::new("s.toml")).unwrap();
    let mut s = Scenario::new(cfg.scenario(), cfg.faults(), t0(), &mut ids());
    assert_eq!(s.next_due(), Some(t0()));
    assert!(s.apply_due(t0()));
    assert_eq!(
        get(&tree(&s), "meta-data/autoscaling/target-lifecycle-state").unwrap(),
        "InService"
    );
    assert_eq!(s.next_due(), Some(t0() + secs(10)));
    // Late by 45 s: the event, the rebalance happen, each at its own time.
    assert!(s.apply_due(t0() + secs(55)));
    let t = tree(&s);
    assert_eq!(
        get(&t, "meta-data/events/recommendations/rebalance").unwrap(),
        r#"{"noticeTime": "2026-01-02T03:04:35Z"}"#
    );
    assert!(
        get(&t, "meta-data/events/maintenance/scheduled")
            .unwrap()
            .contains("\"NotBefore\" : \"2 Jan 2026 04:04:15 GMT\"")
    );
    assert!(t.get("meta-data/spot").is_none());
    assert!(!s.apply_due(t0() + secs(59)));
    assert!(s.apply_due(t0() + secs(200)));
    let t = tree(&s);
    assert_eq!(
        get(&t, "meta-data/spot/instance-action").unwrap(),
        r#"{"action": "stop", "time": "2026-01-02T03:07:05Z"}"#
    );
    assert_eq!(
        get(&t, "meta-data/autoscaling/target-lifecycle-state").unwrap(),
        "Terminated"
    );
    assert!(
        get(&t, "meta-data/events/maintenance/history")
            .unwrap()
            .contains("[Completed] scheduled reboot")
    );
    assert_eq!(s.next_due(), None);
    let status = s.status(t0() + secs(200));
    assert!(
        status.contains("spot: stop at 2026-01-02T03:07:05Z"),
        "{status}"
    );
    assert!(status.contains("pending: 0"), "{status}");
}

#[test]
fn overlay_sets_and_removes_paths_and_tags() {
    let mut s = empty();
    s.apply(
        change(r#"{"op":"set","path":"meta-data/custom/x","value":"1"}"#),
        t0(),
    )
    .unwrap();
    s.apply(
        change(r#"{"op":"unset","path":"meta-data/instance-id"}"#),
        t0(),
    )
    .unwrap();
    s.apply(
        change(r#"{"op":"tag-set","key":"Name","value":"web"}"#),
        t0(),
    )
    .unwrap();
    s.apply(change(r#"{"op":"tag-unset","key":"Env"}"#), t0())
        .unwrap();
    let t = tree(&s);
    assert_eq!(get(&t, "meta-data/custom/x").unwrap(), "1");
    assert!(t.get("meta-data/instance-id").is_none());
    let configured = [("Env".to_string(), "prod".to_string())]
        .into_iter()
        .map(|(k, v)| (TagKey::try_from(k).unwrap(), v))
        .collect();
    let tags = s.tags(&configured);
    assert_eq!(tags.len(), 1);
    assert_eq!(tags.values().next().unwrap(), "web");
}

#[test]
fn config_errors_are_located_and_clear() {
    let parse = |s: &str| {
        Config::from_toml(s, Path::new("c.toml"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(parse("[[scenario.timeline]]\nat = \"+1m\"\nspot = \"terminate\"\n").is_ok());
    let e = parse("[[scenario.timeline]]\nat = \"+1m\"\nspot = \"explode\"\n").unwrap_err();
    assert!(
        e.starts_with("c.toml:3:8: unknown variant `explode`"),
        "{e}"
    );
    let e = parse("[[scenario.timeline]]\nat = \"soon\"\nrebalance = true\n").unwrap_err();
    assert!(e.starts_with("c.toml:2:6: `soon` is not a time"), "{e}");
    let e = parse("[[scenario.timeline]]\nrebalance = true\nasg = \"Standby\"\n").unwrap_err();
    assert!(e.starts_with("c.toml:1:1:"), "{e}");
    assert!(
        e.contains("does one thing, this one has `rebalance` and `asg`"),
        "{e}"
    );
    let e = parse("[[scenario.timeline]]\nspot = \"stop\"\nstate = \"active\"\n").unwrap_err();
    assert!(e.contains("`state` belongs to a `event` entry"), "{e}");
    let e = parse("[[scenario.timeline]]\nat = \"+1s\"\n").unwrap_err();
    assert!(e.contains("needs one of"), "{e}");
    let e = parse("[[scenario.timeline]]\nasg = \"Warmed:Sleeping\"\n").unwrap_err();
    assert!(e.contains("unknown variant `Warmed:Sleeping`"), "{e}");
}

#[test]
fn printed_config_keeps_the_timeline() {
    let text = "[[scenario.timeline]]\nat = \"+30s\"\nspot = \"stop\"\ntime = \"+5m\"\n\n[[scenario.timeline]]\nevent = \"instance-reboot\"\nnot-before = \"2026-02-01T00:00:00Z\"\n";
    let c = Config::from_toml(text, Path::new("c.toml")).unwrap();
    let again = Config::from_toml(&c.to_toml(), Path::new("printed.toml")).unwrap();
    assert_eq!(again.scenario(), c.scenario());
    assert_eq!(c.scenario().timeline.len(), 2);
}

#[test]
fn a_scheduled_value_is_logged_without_it() {
    let set = Change::Set {
        path: "meta-data/custom/secret".to_string().try_into().unwrap(),
        value: "hunter2".into(),
    };
    assert_eq!(
        set.without_value().as_deref(),
        Some("set meta-data/custom/secret")
    );
    let tag = Change::TagSet {
        key: "Password".to_string().try_into().unwrap(),
        value: "hunter2".into(),
    };
    assert_eq!(tag.without_value().as_deref(), Some("tag Password set"));
    assert_eq!(Change::EventClear.without_value(), None);
}

#[test]
fn faults_start_and_end_on_the_timeline_and_config_faults_at_the_start() {
    let toml = "[[fault]]\npath = \"api/token\"\ndelay = \"200ms\"\n\n\
                [[scenario.timeline]]\nat = \"+30s\"\nfault = { path = \"meta-data/iam/*\", status = 503, for = \"20s\" }\n\n\
                [[scenario.timeline]]\nat = \"+2m\"\nclear-faults = true\n";
    let cfg: Config = Config::from_toml(toml, Path::new("s.toml")).unwrap();
    let mut s = Scenario::new(cfg.scenario(), cfg.faults(), t0(), &mut ids());
    assert!(s.apply_due(t0()));
    let ids_of = |s: &Scenario| {
        s.faults()
            .iter()
            .map(|f| f.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids_of(&s),
        ["fault-1"],
        "the [[fault]] is in force from the start"
    );
    assert_eq!(s.next_due(), Some(t0() + secs(30)));
    assert!(s.apply_due(t0() + secs(30)));
    assert_eq!(ids_of(&s), ["fault-1", "fault-2"]);
    let armed = s.armed_faults();
    assert_eq!(
        armed[1].until_ms,
        Some(crate::clock::millis(t0() + secs(50))),
        "for 20 s from its due time"
    );
    assert_eq!(s.next_due(), Some(t0() + secs(50)), "its end is due");
    assert!(
        s.status(t0() + secs(31))
            .contains("fault-2 status 503 on any method meta-data/iam/*, for 20s")
    );
    assert!(s.apply_due(t0() + secs(50)));
    assert_eq!(ids_of(&s), ["fault-1"]);
    assert!(s.apply_due(t0() + secs(120)));
    assert!(
        s.faults().is_empty(),
        "clear-faults ended the config's fault too"
    );
    // A restarted scenario goes on numbering.
    let mut again = Scenario::new(cfg.scenario(), cfg.faults(), t0(), &mut ids());
    again.follow(&s);
    again.apply_due(t0());
    assert_eq!(ids_of(&again), ["fault-3"]);
}

#[test]
fn a_bad_fault_in_the_config_says_where() {
    // A bad value is reported at its own key; how keys go together, at the table.
    for (toml, want) in [
        (
            "[[fault]]\npath = \"x\"\nstatus = 999\n",
            "s.toml:3:10: status 999 is not an HTTP status",
        ),
        (
            "[[fault]]\ndrop = true\n\n[[fault]]\npath = \"meta-data/[iam\"\ndrop = true\n",
            "s.toml:5:8: `meta-data/[iam` is not a path glob",
        ),
        (
            "[[scenario.timeline]]\nat = \"+1s\"\nfault = { probability = 2.0, drop = true }\n",
            "s.toml:3:25: probability 2 is out of range",
        ),
        (
            "[[fault]]\ndrop = true\nreset = true\n",
            "s.toml:1:1: a fault does one thing",
        ),
    ] {
        let e = Config::from_toml(toml, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn a_fault_status_http_forbids_or_a_glob_with_a_newline_is_refused_where_written() {
    for (toml, want) in [
        (
            "[[fault]]\npath = \"x\"\nstatus = 204\n",
            "s.toml:3:10: status 204 cannot be a fault's reply: a 204 may carry no content",
        ),
        (
            "[[fault]]\nstatus = 304\n",
            "s.toml:2:10: status 304 cannot be a fault's reply",
        ),
        (
            "[[scenario.timeline]]\nat = \"+1s\"\nfault = { status = 101 }\n",
            "s.toml:3:20: status 101 cannot be a fault's reply: a 1xx status is not a final reply",
        ),
        (
            "[[fault]]\npath = \"meta-data/x\\nINFO forged\"\ndrop = true\n",
            "s.toml:2:8: \"meta-data/x\\nINFO forged\" has a control character (\\n) at character 12: a path glob cannot hold one",
        ),
    ] {
        let e = Config::from_toml(toml, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
}
