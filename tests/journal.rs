//! The request journal through the real binary: requests to IMDS (v1 and v2), the ECS
//! agent's endpoint and a fault, read back with `ctl requests` (text, `--json`, filters),
//! counted by `ctl status`, asserted on with `ctl assert` (exit 0, 1 with the offenders, 2 for
//! a usage error), cleared, written to `[journal] file` and reopened on SIGHUP, and off by
//! default (a reload turns it on). The asking user is the test's own (root in CI: the daemon
//! then runs as another user and finds the uid in the kernel's socket table).

mod common;

use common::Daemon;
use common::http::http;

use std::process::Output;
use std::time::{Duration, Instant};

fn start(extra: &str) -> Daemon {
    // Off by default; on here unless the test's own `[journal]` says.
    let journal = if extra.contains("[journal]") {
        ""
    } else {
        "[journal]\nenabled = true\n"
    };
    common::daemon::serve_with_control(&format!("[iam]\nrole = \"app\"\n{journal}{extra}"))
}

fn token(d: &Daemon) -> String {
    let (s, _, t) = http(
        d.addr,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(s, 200);
    t
}

fn get_v2(d: &Daemon, token: &str, path: &str) -> u16 {
    http(d.addr, "GET", path, &[("X-aws-ec2-metadata-token", token)]).0
}

fn entries(d: &Daemon, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["requests", "--json", "--no-docker"];
    all.extend(args);
    d.ctl_ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn my_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

#[test]
fn requests_are_recorded_with_who_asked_and_read_back() {
    let d = start("");
    assert_eq!(d.get("/latest/meta-data/instance-id").0, 200);
    let t = token(&d);
    assert_eq!(
        get_v2(&d, &t, "/latest/meta-data/iam/security-credentials/app"),
        200
    );
    assert_eq!(d.get("/latest/meta-data/no-such").0, 404);

    let all = entries(&d, &[]);
    assert_eq!(all.len(), 4, "{all:#?}");
    let first = &all[0];
    for key in [
        "time",
        "endpoint",
        "method",
        "path",
        "status",
        "imds_version",
        "uid",
        "user",
        "pid",
        "command",
        "source",
        "container",
        "fault",
        "bytes",
    ] {
        assert!(first.get(key).is_some(), "no {key} in {first}");
    }
    assert_eq!(first["endpoint"], "imds");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/latest/meta-data/instance-id");
    assert_eq!(first["status"], 200);
    assert_eq!(first["imds_version"], 1);
    assert_eq!(first["source"], "127.0.0.1");
    assert!(first["bytes"].as_u64().unwrap() > 0);
    // The asking process's user, from the kernel's socket table.
    assert_eq!(first["uid"], my_uid(), "{first}");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .map(|u| u.name);
    assert_eq!(first["user"].as_str(), me.as_deref(), "{first}");
    assert_eq!(all[1]["path"], "/latest/api/token");
    assert_eq!(all[1]["method"], "PUT");
    assert_eq!(all[1]["imds_version"], 2, "the token request is IMDSv2's");
    assert_eq!(all[2]["imds_version"], 2);
    assert_eq!(all[3]["status"], 404);
    // The token never is.
    let raw = d.ctl_ok(&["requests", "--json", "--no-docker"]);
    assert!(!raw.contains(&t), "the token is in the journal");

    // Filters.
    let v1 = entries(&d, &["--v1"]);
    assert_eq!(v1.len(), 2);
    assert!(v1.iter().all(|e| e["imds_version"] == 1));
    let iam = entries(&d, &["--path", "/latest/meta-data/iam/*"]);
    assert_eq!(iam.len(), 1);
    assert!(entries(&d, &["--since", "1h"]).len() == 4);
    // The text form: one line a request.
    let lines = d.ctl_ok(&["requests", "--no-docker"]);
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert!(
        lines
            .lines()
            .next()
            .unwrap()
            .contains("/latest/meta-data/instance-id 200 v1"),
        "{lines}"
    );

    // `status` counts them, and names who asked without a token.
    let status = d.ctl_ok(&["status"]);
    assert!(
        status.contains("(IMDS 4, ECS 0, Pod Identity 0)"),
        "{status}"
    );
    assert!(status.contains("without a token (IMDSv1): 2"), "{status}");
    assert!(status.contains(&format!("(uid {})", my_uid())), "{status}");

    // `watch`, not on a terminal: the table as plain lines.
    let table = d.ctl_ok(&["watch", "--count", "1", "--no-docker"]);
    assert!(table.contains("/latest/meta-data/instance-id"), "{table}");
    assert!(
        !table.contains('\x1b'),
        "no escapes off a terminal: {table:?}"
    );
}

#[test]
fn assert_fails_naming_who_used_imdsv1_and_passes_after_a_clear() {
    let d = start("");
    let t = token(&d);
    assert_eq!(get_v2(&d, &t, "/latest/meta-data/instance-id"), 200);
    let ok = d.ctl(&["assert", "--no-v1"]);
    assert_eq!(code(&ok), Some(0), "{}", text(&ok));

    assert_eq!(d.get("/latest/meta-data/placement/region").0, 200);
    let broken = d.ctl(&["assert", "--no-v1"]);
    assert_eq!(code(&broken), Some(1), "{}", text(&broken));
    let said = text(&broken);
    assert!(said.contains(&format!("(uid {})", my_uid())), "{said}");
    assert!(
        said.contains("/latest/meta-data/placement/region (1)"),
        "{said}"
    );
    // A user who sent nothing: nothing to assert on, which fails (a typo must not pass).
    let other = d.ctl(&["assert", "--no-v1", "--user", "4242"]);
    assert_eq!(code(&other), Some(1), "{}", text(&other));
    assert!(
        text(&other).contains("no requests from --user 4242"),
        "{}",
        text(&other)
    );

    // Paths: at most / at least.
    let creds = "/latest/meta-data/iam/security-credentials/app";
    assert_eq!(get_v2(&d, &t, creds), 200);
    assert_eq!(get_v2(&d, &t, creds), 200);
    let max1 = d.ctl(&["assert", "--path", "/latest/meta-data/iam/*", "--max", "1"]);
    assert_eq!(code(&max1), Some(1), "{}", text(&max1));
    assert!(
        text(&max1).contains("2 requests to /latest/meta-data/iam/*"),
        "{}",
        text(&max1)
    );
    let min2 = d.ctl(&[
        "assert",
        "--path",
        "/latest/meta-data/iam/*",
        "--min",
        "2",
        "--max",
        "2",
    ]);
    assert_eq!(code(&min2), Some(0), "{}", text(&min2));

    // Usage errors exit 2.
    for args in [
        &["assert"][..],
        &["assert", "--path", "/x"][..],
        &["assert", "--max", "1"][..],
        &["assert", "--no-v1", "--path", "/x", "--max", "1"][..],
    ] {
        let o = d.ctl(args);
        assert_eq!(code(&o), Some(2), "ctl {args:?}: {}", text(&o));
    }

    // Cleared: counting starts again.
    d.ctl_ok(&["requests", "--clear"]);
    assert!(entries(&d, &[]).is_empty());
    let ok = d.ctl(&["assert", "--no-v1"]);
    assert_eq!(code(&ok), Some(0), "{}", text(&ok));
    let min1 = d.ctl(&["assert", "--path", creds, "--min", "1"]);
    assert_eq!(code(&min1), Some(1), "{}", text(&min1));
}

#[test]
fn faults_and_ecs_requests_are_recorded_without_their_ids() {
    let d = start("[[task]]\nname = \"web\"\nrole = \"task-role\"\n");
    let env = d.ctl_ok(&["task", "env", "web"]);
    let uri = env
        .lines()
        .find_map(|l| l.strip_prefix("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="))
        .unwrap()
        .to_string();
    let (s, _, _) = http(d.endpoint_addr("ecs"), "GET", &uri, &[]);
    assert_eq!(s, 200);
    d.ctl_ok(&[
        "fault",
        "add",
        "--path",
        "meta-data/hostname",
        "--status",
        "503",
    ]);
    assert_eq!(d.get("/latest/meta-data/hostname").0, 503);
    let all = entries(&d, &[]);
    let ecs = all
        .iter()
        .find(|e| e["endpoint"] == "ecs")
        .expect("the ECS request");
    assert_eq!(ecs["path"], "/v2/credentials/<id>");
    assert!(ecs.get("imds_version").is_none(), "{ecs}");
    let id = uri.rsplit('/').next().unwrap();
    assert!(
        !serde_json::to_string(&all).unwrap().contains(id),
        "the credentials id leaked"
    );
    let faulted = all
        .iter()
        .find(|e| e["path"] == "/latest/meta-data/hostname")
        .unwrap();
    assert_eq!(faulted["status"], 503);
    assert_eq!(faulted["fault"], "fault-1");
}

#[test]
fn the_journal_file_is_written_and_reopened_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let file = dir.path().join("requests.jsonl");
    let d = start(&format!(
        "[journal]\nenabled = true\nfile = \"{}\"\n",
        file.display()
    ));
    assert_eq!(d.get("/latest/meta-data/ami-id").0, 200);
    let read_until = |f: &std::path::Path, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = std::fs::read_to_string(f).unwrap_or_default();
            if s.contains(needle) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let s = read_until(&file, "ami-id");
    let line: serde_json::Value = serde_json::from_str(s.lines().next().unwrap()).unwrap();
    assert_eq!(line["path"], "/latest/meta-data/ami-id");
    // logrotate renames it and sends SIGHUP: the daemon goes on in a new file.
    let rotated = dir.path().join("requests.jsonl.1");
    std::fs::rename(&file, &rotated).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for_log("SIGHUP: reopened journal file");
    assert_eq!(d.get("/latest/meta-data/hostname").0, 200);
    let s = read_until(&file, "hostname");
    assert!(
        s.contains("/latest/meta-data/hostname") && !s.contains("ami-id"),
        "{s}"
    );
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("hostname")
    );
}

#[test]
fn off_by_default_records_nothing_and_a_reload_turns_it_on() {
    let d = start("[journal]\n");
    assert_eq!(d.get("/latest/meta-data/ami-id").0, 200);
    assert!(entries(&d, &[]).is_empty());
    let cfg = d.dir().join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("[journal]\n", "[journal]\nenabled = true\n"),
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for_log("config reloaded");
    assert_eq!(d.get("/latest/meta-data/ami-id").0, 200);
    assert_eq!(entries(&d, &[]).len(), 1);
}

/// `--follow` prints requests as they come; a reader that stops reading only makes itself
/// miss entries (it is told how many), the server goes on answering at once.
#[test]
fn follow_streams_and_a_stalled_reader_only_misses_entries() {
    use std::process::{Command, Stdio};
    let d = start("[journal]\nenabled = true\nsize = 8\n");
    let bin = env!("CARGO_BIN_EXE_fake-metadata");
    let out = d.dir().join("follow.out");
    let follow = |stdout: Stdio| {
        Command::new(bin)
            .args(["ctl", "--socket"])
            .arg(d.socket())
            .args(["requests", "--json", "--follow", "--no-docker"])
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut reader = follow(std::fs::File::create(&out).unwrap().into());
    // A reader that never reads: its pipe, then its socket, fill up.
    let mut stalled = follow(Stdio::piped());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.get("/latest/meta-data/ami-id").0, 200);
    // The reader polls a few times a second: it has that one before the flood.
    std::thread::sleep(Duration::from_millis(500));
    let long = format!("/latest/meta-data/{}", "x".repeat(400));
    let t0 = Instant::now();
    for _ in 0..3000 {
        assert_eq!(d.get(&long).0, 404);
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "3000 requests took {took:?}"
    );
    std::thread::sleep(Duration::from_millis(600));
    let _ = (stalled.kill(), reader.kill());
    let _ = (stalled.wait(), reader.wait());
    let mut err = String::new();
    std::io::Read::read_to_string(reader.stderr.as_mut().unwrap(), &mut err).unwrap();
    let got = std::fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(got.lines().next().unwrap()).unwrap();
    assert_eq!(first["path"], "/latest/meta-data/ami-id");
    let seen = got.lines().filter(|l| l.contains(&long)).count();
    assert!(seen > 0, "{got}");
    // The ring holds 8: a reader that polls cannot have kept them all, and is told so.
    assert!(
        seen < 3000 && err.contains("requests missed"),
        "{seen} seen; stderr: {err}"
    );
    // The daemon is fine and still answers.
    assert_eq!(d.get("/latest/meta-data/ami-id").0, 200);
}
