//! Live control and scenarios. The real binary (`serve`, then `ctl` over a real Unix socket):
//! a spot notice that appears and stays fixed, rebalance, events into the history, ASG
//! transitions, `reset`, invalid input that exits 1 and changes nothing, a non-member refused
//! by the socket. In process, against a manual clock: a `[scenario]` timeline replayed the
//! way aws-node-termination-handler polls, with golden bodies.

mod common;

use common::Daemon;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fake_metadata::clock::{Clock, ManualClock, SystemClock};

const BIN: &str = env!("CARGO_BIN_EXE_fake-metadata");

/// A `serve` process with its own control socket, in a temporary directory.
fn start(extra: &str) -> Daemon {
    common::daemon::serve_with_control(&format!(
        "[imds]\ninstance-metadata-tags = \"enabled\"\n[tags]\nName = \"web\"\n{extra}"
    ))
}

use common::http as request;

fn get(addr: impl std::net::ToSocketAddrs, path: &str, token: Option<&str>) -> (u16, String) {
    let h: Vec<(&str, &str)> = token
        .map(|t| vec![("X-aws-ec2-metadata-token", t)])
        .unwrap_or_default();
    let (s, _, b) = request(addr, "GET", path, &h);
    (s, b)
}

/// Every path of the tree with its body (listings included), by crawling as cloud-init does.
fn crawl(d: &Daemon) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec!["/latest/".to_string()];
    while let Some(dir) = todo.pop() {
        let listing = d.body(&dir);
        for name in listing.lines() {
            let name = name.split('=').next().unwrap();
            let path = format!("{dir}{name}");
            if name.ends_with('/') {
                todo.push(path);
            } else if dir == "/latest/" && name != "user-data" {
                todo.push(format!("{path}/"));
            } else {
                out.insert(path.clone(), d.get(&path).1);
            }
        }
        out.insert(dir, listing);
    }
    out
}

fn parse_rfc3339(s: &str) -> SystemTime {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"));
    t.into()
}

#[test]
fn spot_notice_triggered_live_is_listed_and_fixed() {
    let d = start("");
    assert!(!d.body("/latest/meta-data/").lines().any(|l| l == "spot/"));
    assert_eq!(d.get("/latest/meta-data/spot/instance-action").0, 404);
    assert_eq!(d.body("/latest/meta-data/instance-action"), "none");

    let before = SystemClock.now(); // the real binary reads the same wall clock
    let msg = d.ctl_ok(&["spot", "--action", "stop"]);
    assert!(
        msg.contains("spot interruption notice issued: stop"),
        "{msg}"
    );
    assert!(
        d.body("/latest/meta-data/").lines().any(|l| l == "spot/"),
        "spot/ is listed"
    );
    assert_eq!(
        d.body("/latest/meta-data/spot"),
        "instance-action\ntermination-time"
    );
    let action = d.body("/latest/meta-data/spot/instance-action");
    let time = action
        .strip_prefix(r#"{"action": "stop", "time": ""#)
        .and_then(|r| r.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("EC2's compact notice: {action}"));
    assert_eq!(d.body("/latest/meta-data/spot/termination-time"), time);
    let at = parse_rfc3339(time);
    let lead = at.duration_since(before).unwrap();
    assert!(
        lead > Duration::from_secs(115) && lead <= Duration::from_secs(121),
        "two minutes ahead: {lead:?}"
    );
    // Later reads: the same bytes (the time was fixed when the notice was issued).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(d.body("/latest/meta-data/spot/instance-action"), action);
    assert_eq!(d.body("/latest/meta-data/spot/termination-time"), time);
    assert_eq!(d.body("/latest/meta-data/instance-action"), "none");
}

#[test]
fn rebalance_events_asg_tags_values_and_reset() {
    let d = start("");
    assert_eq!(
        d.get("/latest/meta-data/events/recommendations/rebalance")
            .0,
        404
    );
    d.ctl_ok(&["rebalance"]);
    let r = d.body("/latest/meta-data/events/recommendations/rebalance");
    let t = r
        .strip_prefix(r#"{"noticeTime": ""#)
        .and_then(|r| r.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("{r}"));
    parse_rfc3339(t);

    // Two events, one completed: it moves to the history with EC2's prefix.
    assert_eq!(
        d.body("/latest/meta-data/events/maintenance/scheduled"),
        "[]"
    );
    let a = d.ctl_ok(&[
        "event",
        "add",
        "--code",
        "system-reboot",
        "--not-before",
        "2030-01-21T09:00:43Z",
        "--not-after",
        "2030-01-21T11:00:43Z",
    ]);
    let b = d.ctl_ok(&[
        "event",
        "add",
        "--code",
        "instance-stop",
        "--description",
        "planned stop",
    ]);
    for id in [&a, &b] {
        assert!(
            id.starts_with("instance-event-") && id.len() == 32,
            "ctl prints the EventId: {id}"
        );
    }
    let scheduled: serde_json::Value =
        serde_json::from_str(&d.body("/latest/meta-data/events/maintenance/scheduled")).unwrap();
    assert_eq!(scheduled.as_array().unwrap().len(), 2);
    assert_eq!(scheduled[0]["NotBefore"], "21 Jan 2030 09:00:43 GMT");
    assert_eq!(scheduled[0]["EventId"], a.as_str());
    d.ctl_ok(&["event", "complete", &a]);
    let scheduled = d.body("/latest/meta-data/events/maintenance/scheduled");
    assert!(
        scheduled.contains(&b) && !scheduled.contains(&a),
        "{scheduled}"
    );
    let history = d.body("/latest/meta-data/events/maintenance/history");
    let h: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(h[0]["EventId"], a.as_str());
    assert_eq!(h[0]["State"], "completed");
    assert_eq!(h[0]["Description"], "[Completed] scheduled reboot");
    d.ctl_ok(&["event", "cancel", &b]);
    let h: serde_json::Value =
        serde_json::from_str(&d.body("/latest/meta-data/events/maintenance/history")).unwrap();
    assert_eq!(h[1]["Description"], "[Canceled] planned stop");
    assert_eq!(
        d.body("/latest/meta-data/events/maintenance/scheduled"),
        "[]"
    );

    // ASG transitions.
    assert_eq!(
        d.get("/latest/meta-data/autoscaling/target-lifecycle-state")
            .0,
        404
    );
    for state in ["InService", "Warmed:Hibernated", "Standby", "Terminated"] {
        d.ctl_ok(&["asg", state]);
        assert_eq!(
            d.body("/latest/meta-data/autoscaling/target-lifecycle-state"),
            state
        );
    }

    // Tags and any value.
    d.ctl_ok(&["tags", "set", "Env", "prod"]);
    d.ctl_ok(&["tags", "unset", "Name"]);
    assert_eq!(d.body("/latest/meta-data/tags/instance"), "Env");
    d.ctl_ok(&["set", "meta-data/instance-action", "reboot"]);
    d.ctl_ok(&["set", "meta-data/custom/answer", "42"]);
    d.ctl_ok(&["unset", "meta-data/public-ipv4"]);
    assert_eq!(d.body("/latest/meta-data/instance-action"), "reboot");
    assert_eq!(d.body("/latest/meta-data/custom/answer"), "42");
    assert_eq!(d.get("/latest/meta-data/public-ipv4").0, 404);

    // Scheduled for later: pending in `status`.
    d.ctl_ok(&["spot", "--action", "hibernate", "--in", "1h"]);
    let status = d.ctl_ok(&["status"]);
    assert!(status.contains("spot: no interruption notice"), "{status}");
    assert!(
        status.contains("[ctl] spot interruption notice: hibernate"),
        "{status}"
    );
    assert!(
        status.contains("autoscaling target-lifecycle-state: Terminated"),
        "{status}"
    );
    d.ctl_ok(&["credentials", "rotate"]);

    // Reset: the configured state again.
    d.ctl_ok(&["reset"]);
    assert_eq!(
        d.get("/latest/meta-data/events/recommendations/rebalance")
            .0,
        404
    );
    assert_eq!(d.body("/latest/meta-data/events/maintenance/history"), "[]");
    assert_eq!(
        d.get("/latest/meta-data/autoscaling/target-lifecycle-state")
            .0,
        404
    );
    assert_eq!(d.body("/latest/meta-data/tags/instance"), "Name");
    assert_eq!(d.body("/latest/meta-data/instance-action"), "none");
    assert_eq!(d.get("/latest/meta-data/public-ipv4").0, 200);
    assert!(d.ctl_ok(&["status"]).contains("pending: 0"));
}

#[test]
fn invalid_input_exits_1_and_changes_nothing() {
    let d = start("");
    d.ctl_ok(&["event", "add", "--code", "system-reboot"]);
    let before = crawl(&d);
    assert!(
        before.len() > 40,
        "the crawl sees the tree: {}",
        before.len()
    );
    for (args, expect) in [
        (
            &["spot", "--action", "explode"][..],
            "invalid value 'explode'",
        ),
        (&["spot", "--in", "soon"][..], "is not a duration"),
        (
            &["event", "complete", "instance-event-00000000000000000"][..],
            "no scheduled event instance-event-00000000000000000: the scheduled ones are instance-event-",
        ),
        (&["event", "cancel", "evt-1"][..], "is not an event id"),
        (
            &["event", "add", "--code", "reboot-please"][..],
            "invalid value 'reboot-please'",
        ),
        (&["tags", "set", "bad key", "x"][..], "is not a tag key"),
        (&["tags", "set", "_index", "x"][..], "is not a tag key"),
        (&["set", "etc/passwd", "x"][..], "is not a metadata path"),
        (
            &["set", "meta-data/../x", "1"][..],
            "is not a metadata path",
        ),
        (&["unset", "meta-data//x"][..], "is not a metadata path"),
        (&["asg", "Sleeping"][..], "invalid value 'Sleeping'"),
        (&["bogus"][..], "unrecognized subcommand"),
    ] {
        let out = d.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        // A usage error (here an unknown command) exits 2; a bad value 1.
        let code = if expect == "unrecognized subcommand" {
            2
        } else {
            1
        };
        assert_eq!(out.status.code(), Some(code), "ctl {args:?}: {err}");
        assert!(
            err.contains(expect),
            "ctl {args:?}: expected {expect:?} in {err:?}"
        );
    }
    assert_eq!(crawl(&d), before, "nothing changed");
    // A daemon-side refusal, with the raw protocol: a bad tag key never gets in either.
    let reply = raw_control(
        d.socket(),
        r#"{"v":1,"do":"change","change":{"op":"tag-set","key":"a/b","value":"x"}}"#,
    );
    assert!(
        reply.contains(r#""ok":false"#) && reply.contains("is not a tag key"),
        "{reply}"
    );
    let reply = raw_control(d.socket(), r#"{"v":7,"do":"status"}"#);
    assert!(reply.contains("version 7 is not supported"), "{reply}");
    assert_eq!(crawl(&d), before, "nothing changed");
}

fn raw_control(socket: &Path, line: &str) -> String {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).unwrap();
    reply
}

#[test]
fn socket_refuses_a_non_member() {
    if !common::require(
        nix::unistd::Uid::effective().is_root(),
        "root (to run `ctl` as another user)",
    ) {
        return;
    }
    let d = start("");
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody exists");
    // `nobody` must reach the binary and the socket's directory.
    let bin = d.dir().join("fake-metadata");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
        d.ctl_with(c, args)
    };
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the socket is 0660");
    let before = d.body("/latest/meta-data/");

    // The file mode keeps non-members out...
    let out = as_nobody(&["spot"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(
        err.contains("fake-metadata-ctl"),
        "says how to get access: {err}"
    );

    // ...and so do the peer credentials, even when the file mode would let them in.
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&["spot"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "(uid {}) may not use the control socket",
            nobody.uid
        )),
        "{err}"
    );
    assert_eq!(d.body("/latest/meta-data/"), before, "nothing changed");
    assert_eq!(d.get("/latest/meta-data/spot/instance-action").0, 404);
    // Root still may.
    d.ctl_ok(&["spot"]);
    assert_eq!(d.get("/latest/meta-data/spot/instance-action").0, 200);
}

// ------------------------------------------------------------------ timeline, manual clock

fn golden(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scenario")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The scenario timeline node-termination-handler sees below; `src/scenario/tests.rs` plays
/// the same file against the pure scenario.
const TIMELINE: &str = include_str!("fixtures/scenario/timeline.toml");

/// What aws-node-termination-handler reads on each poll, as (status, body).
struct Poll {
    spot: (u16, String),
    scheduled: (u16, String),
    rebalance: (u16, String),
    asg: (u16, String),
}

/// NTH's IMDS client: a token with TTL 3600, then its four GETs with the token.
fn nth_poll(addr: &str, token: &str) -> Poll {
    let g = |p: &str| get(addr, &format!("/latest/meta-data/{p}"), Some(token));
    Poll {
        spot: g("spot/instance-action"),
        scheduled: g("events/maintenance/scheduled"),
        rebalance: g("events/recommendations/rebalance"),
        asg: g("autoscaling/target-lifecycle-state"),
    }
}

fn nth_token(addr: &str) -> String {
    let (status, head, token) = request(
        addr,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "3600")],
    );
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("x-aws-ec2-metadata-token-ttl-seconds: 3600"),
        "{head}"
    );
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_on_a_manual_clock_as_node_termination_handler_sees_it() {
    let clock = Arc::new(ManualClock::fixed()); // 2026-01-02T03:04:05Z
    let running = common::start_with(common::config(TIMELINE), clock.clone());
    let addr = running.addr().to_string();
    let instance = running.inputs.clone();
    let step = |secs: u64| {
        clock.advance(Duration::from_secs(secs));
        instance.tick();
    };
    // `run_timers` wakes for the scenario, not only for credentials.
    assert_eq!(
        instance.next_due(),
        clock.now() + Duration::from_secs(10),
        "next_due includes the timeline"
    );

    let a = addr.clone();
    let poll = move |token: String| {
        let a = a.clone();
        async move {
            tokio::task::spawn_blocking(move || nth_poll(&a, &token))
                .await
                .unwrap()
        }
    };
    let a = addr.clone();
    let token = tokio::task::spawn_blocking(move || nth_token(&a))
        .await
        .unwrap();

    let p = poll(token.clone()).await;
    assert_eq!(p.spot.0, 404, "404 = no interruption");
    assert_eq!(p.scheduled, (200, "[]".into()));
    assert_eq!(p.rebalance.0, 404);
    assert_eq!(p.asg.0, 404);

    step(10);
    let p = poll(token.clone()).await;
    assert_eq!(p.scheduled, (200, golden("scheduled.json")));
    assert_eq!(p.rebalance.0, 404);
    assert_eq!(instance.next_due(), clock.now() + Duration::from_secs(20));

    step(25); // late: the recommendation still says +30s
    let p = poll(token.clone()).await;
    assert_eq!(p.rebalance, (200, golden("rebalance.json")));
    assert_eq!(p.spot.0, 404);

    step(25);
    let p = poll(token.clone()).await;
    assert_eq!(p.spot, (200, golden("instance-action.json")));
    let (_, tt) = get(
        &addr,
        "/latest/meta-data/spot/termination-time",
        Some(&token),
    );
    assert_eq!(tt, "2026-01-02T03:07:05Z");
    assert_eq!(p.asg.0, 404);

    step(30);
    let p = poll(token.clone()).await;
    assert_eq!(p.asg, (200, "Terminated".into()));
    // Polled again much later: nothing was recomputed.
    step(40);
    let q = poll(token.clone()).await;
    assert_eq!(q.spot, p.spot);
    assert_eq!(q.rebalance, p.rebalance);
    assert_eq!(
        q.scheduled,
        (200, "[]".into()),
        "the event completed at +120s"
    );
    let (_, history) = get(
        &addr,
        "/latest/meta-data/events/maintenance/history",
        Some(&token),
    );
    assert_eq!(history, golden("history.json"));
    assert!(
        instance.next_due() > clock.now() + Duration::from_secs(60),
        "nothing left on the timeline"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_changes_swap_one_snapshot_and_schedule_on_the_clock() {
    use fake_metadata::scenario::{Change, SpotAction};
    let clock = Arc::new(ManualClock::fixed());
    let running = common::start_with(common::config(""), clock.clone());
    let instance = running.inputs.clone();
    let before = instance.published().snapshot.load_full();
    let msg = instance
        .change(
            Change::Spot {
                action: SpotAction::Terminate,
                time: None,
            },
            Some("+45s".parse().unwrap()),
        )
        .unwrap();
    assert!(
        msg.contains("scheduled for 2026-01-02T03:04:50Z (in 45s)"),
        "{msg}"
    );
    assert_eq!(instance.next_due(), clock.now() + Duration::from_secs(45));
    clock.advance(Duration::from_secs(45));
    instance.tick();
    let after = instance.published().snapshot.load_full();
    assert!(!Arc::ptr_eq(&before, &after));
    let a = running.addr().to_string();
    let body = tokio::task::spawn_blocking(move || {
        get(&a, "/latest/meta-data/spot/instance-action", None)
    })
    .await
    .unwrap();
    assert_eq!(
        body,
        (
            200,
            r#"{"action": "terminate", "time": "2026-01-02T03:06:50Z"}"#.to_string()
        )
    );
    // A refused change leaves the very same snapshot in place.
    let e = instance
        .change(
            Change::EventComplete {
                id: "instance-event-0000000000000000a".parse().unwrap(),
            },
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("there are no scheduled events"), "{e}");
    assert!(Arc::ptr_eq(
        &after,
        &instance.published().snapshot.load_full()
    ));
    running.stop().await.unwrap();
}

/// `ctl fault`: add prints the id, the fault acts and ends after its count, `list` and
/// `status` show the faults with their hits, `--refuse` makes connections fail at connect,
/// `clear` ends them; bad input exits 1 with what was wrong and changes nothing.
#[test]
fn faults_are_added_listed_and_cleared_and_bad_ones_refused() {
    let d = start("");
    let id = d.ctl_ok(&[
        "fault",
        "add",
        "--path",
        "meta-data/instance-id",
        "--status",
        "503",
        "--count",
        "1",
    ]);
    assert_eq!(id, "fault-1");
    assert_eq!(d.get("/latest/meta-data/instance-id").0, 503);
    assert_eq!(
        d.get("/latest/meta-data/instance-id").0,
        200,
        "its one request is done"
    );
    let list = d.ctl_ok(&["fault", "list"]);
    assert!(
        list.contains("fault-1 status 503 on any method meta-data/instance-id"),
        "{list}"
    );
    assert!(list.contains("1 hit(s), used up"), "{list}");

    let id = d.ctl_ok(&[
        "fault",
        "add",
        "--path",
        "meta-data/ami-id",
        "--method",
        "GET",
        "--delay",
        "300ms",
    ]);
    assert_eq!(id, "fault-2");
    let t = std::time::Instant::now();
    assert_eq!(d.get("/latest/meta-data/ami-id").0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert!(
        d.ctl_ok(&["status"])
            .contains("fault-2 delay 300ms on GET meta-data/ami-id")
    );

    assert_eq!(
        d.ctl_ok(&["fault", "add", "--refuse", "--for", "1s"]),
        "fault-3"
    );
    // The listener stops within moments of the reply (the accept loop is woken by the change).
    let refused = (0..100)
        .find_map(|_| match std::net::TcpStream::connect(&d.addr) {
            Err(e) => Some(e),
            Ok(_) => {
                std::thread::sleep(Duration::from_millis(10));
                None
            }
        })
        .expect("connections are refused within a second");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    std::thread::sleep(common::patience(Duration::from_millis(1300)));
    assert_eq!(d.get("/latest/meta-data/ami-id").0, 200, "listening again");

    let before = d.ctl_ok(&["fault", "list"]);
    for (args, expect) in [
        (
            &["fault", "add", "--status", "999"][..],
            "status 999 is not an HTTP status",
        ),
        (
            &["fault", "add", "--delay", "-1s"][..],
            "delay `-1s` is negative",
        ),
        (
            &["fault", "add", "--path", "meta-data/[iam", "--drop"][..],
            "`meta-data/[iam` is not a path glob",
        ),
        (
            &["fault", "add", "--probability", "1.5", "--drop"][..],
            "probability 1.5 is out of range",
        ),
        (
            &["fault", "add", "--drop", "--reset"][..],
            "a fault does one thing",
        ),
        (&["fault", "add", "--path", "x"][..], "a fault needs one of"),
        (
            &["fault", "add", "--method", "POST", "--drop"][..],
            "`POST` is not a method",
        ),
        (
            &["fault", "add", "--drop", "--for", "soon"][..],
            "is not a duration",
        ),
        (
            &["fault", "clear", "fault-9"][..],
            "no fault fault-9: the faults in force are fault-2",
        ),
        (&["fault", "clear", "nine"][..], "`nine` is not a fault id"),
    ] {
        let out = d.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "ctl {args:?}: {err}");
        assert!(
            err.contains(expect),
            "ctl {args:?}: expected {expect:?} in {err:?}"
        );
    }
    // The daemon checks again what a client sends.
    let reply = raw_control(
        d.socket(),
        r#"{"v":1,"do":"change","change":{"op":"fault-add","status":42}}"#,
    );
    assert!(
        reply.contains(r#""ok":false"#) && reply.contains("status 42 is not an HTTP status"),
        "{reply}"
    );
    let after = d.ctl_ok(&["fault", "list"]);
    assert_eq!(
        after.lines().count(),
        before.lines().count(),
        "nothing changed:\n{after}"
    );

    assert_eq!(
        d.ctl_ok(&["fault", "clear", "fault-2"]),
        "fault fault-2 cleared"
    );
    // fault-1, used up, and fault-3, over, were dropped when the refuse ended.
    assert_eq!(d.ctl_ok(&["fault", "clear"]), "cleared 0 fault(s)");
    assert_eq!(d.ctl_ok(&["fault", "list"]), "faults: none");
    let log = d.log();
    for line in [
        "fault fault-1 started",
        "fault fault-1 ended: its 1 request(s) are done",
        "fault fault-3 ended: its 1s are over",
        "fault fault-2 ended: cleared",
    ] {
        assert!(log.contains(line), "{line:?} not in the log:\n{log}");
    }
}

/// Issue 27, item 7: a value given over the control socket cannot start a line of its own in
/// the daemon's log or in `fault list`: a path glob or metadata path with a control character
/// is refused (by `ctl`, and by the daemon when a client sends it raw), with one line saying
/// where; a scheduled `set` that comes due is logged without its value.
#[test]
fn control_values_cannot_forge_log_lines() {
    let d = start("");
    let forged = "meta-data/x\nERROR forged: fault-9 started";
    for args in [
        &["fault", "add", "--path", forged, "--drop"][..],
        &["set", forged, "v"][..],
        &["set", "meta-data/custom/x\r", "v", "--in", "1s"][..],
        &["unset", "meta-data/a\u{1b}[2J"][..],
    ] {
        let out = d.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "ctl {args:?}: {err}");
        assert!(
            err.contains("has a control character") && err.trim_end().lines().count() == 1,
            "ctl {args:?}: {err:?}"
        );
    }
    // Sent raw, past `ctl`'s own checks: the daemon refuses it too.
    for change in [
        r#"{"op":"fault-add","path":"meta-data/x\nERROR forged","drop":true}"#,
        r#"{"op":"set","path":"meta-data/x\nERROR forged","value":"v"}"#,
    ] {
        let reply = raw_control(
            d.socket(),
            &format!(r#"{{"v":1,"do":"change","change":{change}}}"#),
        );
        assert!(
            reply.contains(r#""ok":false"#) && reply.contains("has a control character"),
            "{reply}"
        );
    }
    assert_eq!(d.ctl_ok(&["fault", "list"]), "faults: none");

    // A scheduled `set` says where when it comes due, never what.
    d.ctl_ok(&[
        "set",
        "meta-data/custom/secret",
        "s3cr3t-VALUE",
        "--in",
        "1s",
    ]);
    d.wait_for_log("scenario: set meta-data/custom/secret");
    // Logged as it is applied, published right after.
    let served = (0..100).any(|_| {
        d.get("/latest/meta-data/custom/secret") == (200, "s3cr3t-VALUE".into()) || {
            std::thread::sleep(Duration::from_millis(20));
            false
        }
    });
    assert!(served, "the scheduled value is not served");
    let log = d.log();
    assert!(!log.contains("s3cr3t-VALUE"), "the value is logged:\n{log}");
    assert!(!log.contains("forged"), "{log}");
}

/// Issue 27, item 8: a fault answers only with a status HTTP lets it send as it sends it
/// (EC2's body or none, with `Content-Length`): 1xx, 204, 206, 304, 405 and 407 are refused
/// by `ctl` and by the daemon, with one line; 205 and 418 are sent as they are.
#[test]
fn fault_statuses_http_forbids_are_refused() {
    let d = start("");
    for code in ["100", "101", "204", "206", "304", "405", "407"] {
        let out = d.ctl(&["fault", "add", "--status", code]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--status {code}: {err}");
        assert!(
            err.contains(&format!("status {code} cannot be a fault's reply: "))
                && err.trim_end().lines().count() == 1,
            "--status {code}: {err:?}"
        );
        let reply = raw_control(
            d.socket(),
            &format!(r#"{{"v":1,"do":"change","change":{{"op":"fault-add","status":{code}}}}}"#),
        );
        assert!(
            reply.contains(r#""ok":false"#) && reply.contains("cannot be a fault's reply"),
            "{reply}"
        );
    }
    assert_eq!(d.ctl_ok(&["fault", "list"]), "faults: none");
    for code in [205u16, 418] {
        d.ctl_ok(&[
            "fault",
            "add",
            "--path",
            "meta-data/ami-id",
            "--status",
            &code.to_string(),
            "--count",
            "1",
        ]);
        let addr = d.addr;
        let reply = common::raw(
            addr,
            b"GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {code} ")),
            "{code}: {reply}"
        );
        assert!(
            reply.to_ascii_lowercase().contains("content-length: 0\r\n"),
            "{code}: {reply}"
        );
    }
}
