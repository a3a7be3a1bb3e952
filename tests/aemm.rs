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
    let port = free_port();
    let mut all = vec!["aemm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-p", &port, "--config", cfg.to_str().unwrap()]);
    Daemon::run(&all).in_dir(dir).start()
}

/// A port free on loopback now, for `-p`.
fn free_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
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

/// Without `--config`, the instance is AEMM's default one (its
/// pkg/config/defaults/aemm-metadata-default-values.json), served in EC2's shapes: tests
/// written against AEMM read the ids and values they expect.
#[test]
fn without_a_config_the_instance_is_aemms_default_one() {
    let dir = tempfile::tempdir().unwrap();
    // The daemon drops root to nobody: its state and socket go where nobody may write.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let port = free_port();
    let state = dir.path().join("state");
    let mut b = Daemon::run(&["aemm", "-p", &port])
        .env("STATE_DIRECTORY", state.to_str().unwrap())
        .env("XDG_RUNTIME_DIR", dir.path().to_str().unwrap());
    if nix::unistd::Uid::effective().is_root() {
        // As root the control socket would be /run/fake-metadata's: run as nobody instead.
        b = b.user(65534, 65534);
    }
    let m = b.in_dir(dir).start();
    // From AEMM's values file, key by key.
    for (path, want) in [
        ("/latest/meta-data/instance-id", "i-1234567890abcdef0"),
        ("/latest/meta-data/instance-type", "m4.xlarge"),
        ("/latest/meta-data/ami-id", "ami-0a887e401f7654935"),
        ("/latest/meta-data/local-ipv4", "172.16.34.43"),
        (
            "/latest/meta-data/local-hostname",
            "ip-172-16-34-43.ec2.internal",
        ),
        ("/latest/meta-data/public-ipv4", "192.0.2.54"),
        (
            "/latest/meta-data/public-hostname",
            "ec2-192-0-2-54.compute-1.amazonaws.com",
        ),
        ("/latest/meta-data/mac", "0e:49:61:0f:c3:11"),
        (
            "/latest/meta-data/placement/availability-zone",
            "us-east-1a",
        ),
        (
            "/latest/meta-data/placement/availability-zone-id",
            "use1-az4",
        ),
        (
            "/latest/meta-data/placement/group-name",
            "a-placement-group",
        ),
        ("/latest/meta-data/placement/host-id", "h-0da999999f9999fb9"),
        ("/latest/meta-data/kernel-id", "aki-5c21674b"),
        ("/latest/meta-data/reservation-id", "r-046cb3eca3e201d2f"),
        (
            "/latest/meta-data/security-groups",
            "ura-launch-wizard-harry-1",
        ),
        ("/latest/meta-data/block-device-mapping/swap", "sdcs"),
        ("/latest/meta-data/tags/instance/Name", "test-instance"),
        (
            "/latest/meta-data/iam/security-credentials/",
            "baskinc-role",
        ),
        (
            "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/interface-id",
            "eni-0f95d3625f5c521cc",
        ),
        (
            "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/owner-id",
            "515336597381",
        ),
    ] {
        assert_eq!(body(&m, path), want, "{path}");
    }
    // User data is EC2's application/octet-stream, not text/plain.
    let (status, _, data) = common::http(m.addr, "GET", "/latest/user-data", &[]);
    assert_eq!((status, data.as_str()), (200, "1234,john,reboot,true\n"));
    // EC2's shapes where AEMM's values disagree with each other: one account throughout.
    let doc = body(&m, "/latest/dynamic/instance-identity/document");
    assert!(doc.contains("\"accountId\" : \"515336597381\""), "{doc}");
    assert!(
        doc.contains("\"instanceId\" : \"i-1234567890abcdef0\""),
        "{doc}"
    );
    let info = body(&m, "/latest/meta-data/iam/info");
    assert!(
        info.contains("arn:aws:iam::515336597381:instance-profile/baskinc-role"),
        "{info}"
    );
}
