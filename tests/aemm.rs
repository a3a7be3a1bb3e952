//! `fake-metadata aemm …`: invocations from amazon-ec2-metadata-mock's README, run with the
//! real binary, answer as EC2 does (not as AEMM did): compact one-line notices without tabs,
//! `text/plain`, UTC dates in EC2's formats, notice times fixed when the notice appears,
//! completed events in the history. Bodies are compared byte for byte.

mod common;

use common::Daemon;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fake_metadata::clock::{Clock, SystemClock};

/// Runs `fake-metadata aemm ARGS -p PORT` with a config that keeps its files in a temporary
/// directory (kept as long as it runs), and waits until it listens.
fn aemm(args: &[&str]) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate-directory = \"{}\"\n[control]\nsocket = \"{}\"\n",
            dir.path().join("state").display(),
            dir.path().join("control.sock").display()
        ),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut all = vec!["aemm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-p", &port, "--config", cfg.to_str().unwrap()]);
    Daemon::run(&all).in_dir(dir).start()
}

/// `(status, body)` of a GET; a 200 is `text/plain` from `EC2ws`, as EC2's.
fn get(m: &Daemon, path: &str) -> (u16, String) {
    let (s, head, b) = common::http(m.addr, "GET", path, &[]);
    if s == 200 {
        assert!(head.contains("Content-Type: text/plain"), "{head}");
        assert!(head.contains("Server: EC2ws"), "{head}");
    }
    (s, b)
}

/// The body of a GET that must answer 200 (checked as [`get`] does).
fn body(m: &Daemon, path: &str) -> String {
    let (s, b) = get(m, path);
    assert_eq!(s, 200, "{path}: {b}");
    b
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/scenario")
            .join(name),
    )
    .unwrap()
}

fn rfc3339(s: &str) -> SystemTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .into()
}

#[test]
fn spot_stop_is_a_compact_notice_fixed_two_minutes_ahead() {
    let m = aemm(&["spot", "-a", "stop"]);
    // Once it listens: the real binary reads the same wall clock, and its start (an identity
    // key made on a loaded machine) may take more than a second.
    let started = SystemClock.now();
    let action = body(&m, "/latest/meta-data/spot/instance-action");
    let time = action
        .strip_prefix(r#"{"action": "stop", "time": ""#)
        .and_then(|r| r.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("not EC2's one-line notice: {action:?}"));
    assert!(!action.contains('\t') && !action.contains('\n'));
    assert!(
        time.ends_with('Z') && time.len() == 20,
        "UTC to the second: {time}"
    );
    let lead = rfc3339(time).duration_since(started).unwrap();
    assert!(
        lead > Duration::from_secs(110) && lead <= Duration::from_secs(121),
        "{lead:?}"
    );
    assert_eq!(body(&m, "/latest/meta-data/spot/termination-time"), time);
    assert!(body(&m, "/latest/meta-data/").lines().any(|l| l == "spot/"));
    // AEMM recomputed the time on every request; EC2 does not.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(body(&m, "/latest/meta-data/spot/instance-action"), action);
    // `spot` also emits a rebalance recommendation, as AEMM does.
    let r = body(&m, "/latest/meta-data/events/recommendations/rebalance");
    assert!(
        r.starts_with(r#"{"noticeTime": ""#) && r.ends_with(r#"Z"}"#),
        "{r}"
    );
}

#[test]
fn spot_with_explicit_times_is_exact() {
    let m = aemm(&[
        "spot",
        "--action",
        "hibernate",
        "-t",
        "2020-01-07T01:03:47Z",
        "-r",
        "2020-01-07T01:01:47+00:00",
    ]);
    assert_eq!(
        body(&m, "/latest/meta-data/spot/instance-action"),
        r#"{"action": "hibernate", "time": "2020-01-07T01:03:47Z"}"#
    );
    assert_eq!(
        body(&m, "/latest/meta-data/spot/termination-time"),
        "2020-01-07T01:03:47Z"
    );
    assert_eq!(
        body(&m, "/latest/meta-data/events/recommendations/rebalance"),
        r#"{"noticeTime": "2020-01-07T01:01:47Z"}"#
    );
}

#[test]
fn completed_event_goes_to_the_history_in_ec2_format() {
    let m = aemm(&[
        "events",
        "--code",
        "instance-reboot",
        "--state",
        "completed",
        "-a",
        "2020-01-10T01:03:47Z",
        "-b",
        "2020-01-07T01:03:47Z",
        "-l",
        "2020-01-12T01:03:47Z",
    ]);
    assert_eq!(
        body(&m, "/latest/meta-data/events/maintenance/scheduled"),
        "[]"
    );
    let history = body(&m, "/latest/meta-data/events/maintenance/history");
    let doc: serde_json::Value = serde_json::from_str(&history).unwrap();
    let id = doc[0]["EventId"].as_str().unwrap();
    assert!(id.starts_with("instance-event-") && id.len() == 32, "{id}");
    assert_eq!(
        history,
        golden("aemm-events-history.json").replace("EVENT_ID", id)
    );
    assert_eq!(get(&m, "/latest/meta-data/spot/instance-action").0, 404);
}

#[test]
fn active_event_with_aemm_short_flags_and_delay() {
    let m = aemm(&[
        "se",
        "-o",
        "instance-stop",
        "-b",
        "2030-05-01T10:00:00+02:00",
        "-d",
        "1",
    ]);
    // Not yet: AEMM's --mock-delay-sec.
    assert_eq!(
        body(&m, "/latest/meta-data/events/maintenance/scheduled"),
        "[]"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let s = body(&m, "/latest/meta-data/events/maintenance/scheduled");
    assert!(
        s.starts_with(
            "[ {\n  \"NotBefore\" : \"1 May 2030 08:00:00 GMT\",\n  \"Code\" : \"instance-stop\",\n"
        ),
        "UTC, EC2's layout: {s}"
    );
    assert!(s.ends_with("\"State\" : \"active\"\n} ]"), "{s}");
}

#[test]
fn imdsv2_flag_requires_tokens() {
    let m = aemm(&["--imdsv2", "spot"]);
    assert_eq!(get(&m, "/latest/meta-data/spot/instance-action").0, 401);
    let (s, _, token) = common::http(
        m.addr,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "3600")],
    );
    assert_eq!(s, 200);
    let (s, _, body) = common::http(
        m.addr,
        "GET",
        "/latest/meta-data/spot/instance-action",
        &[("X-aws-ec2-metadata-token", &token)],
    );
    assert_eq!(s, 200);
    assert!(
        body.starts_with(r#"{"action": "terminate", "time": ""#),
        "{body}"
    );
}

#[test]
fn asglifecycle_and_the_full_mock() {
    let m = aemm(&["asglifecycle"]);
    assert_eq!(
        body(&m, "/latest/meta-data/autoscaling/target-lifecycle-state"),
        "InService"
    );
    drop(m);
    let m = aemm(&[
        "autoscaling",
        "target-lifecycle-state",
        "Standby",
        "1s",
        "Terminated",
    ]);
    assert_eq!(
        body(&m, "/latest/meta-data/autoscaling/target-lifecycle-state"),
        "Standby"
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        body(&m, "/latest/meta-data/autoscaling/target-lifecycle-state"),
        "Terminated"
    );
    drop(m);
    // No subcommand: every mock at once.
    let m = aemm(&[]);
    assert_eq!(get(&m, "/latest/meta-data/spot/instance-action").0, 200);
    assert_eq!(
        get(&m, "/latest/meta-data/events/recommendations/rebalance").0,
        200
    );
    assert!(body(&m, "/latest/meta-data/events/maintenance/scheduled").contains("system-reboot"));
    assert_eq!(
        body(&m, "/latest/meta-data/autoscaling/target-lifecycle-state"),
        "InService"
    );
}

#[test]
fn aemm_json_config_is_refused_clearly() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fake-metadata"))
        .args(["aemm", "-c", "aemm-config.json", "spot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AEMM's JSON config files are not read") && err.contains("--config"),
        "{err}"
    );
}
