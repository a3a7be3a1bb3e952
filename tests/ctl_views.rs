//! `ctl … --view NAME` through the real binary (`serve`, then `ctl` over a real Unix
//! socket): every instance change takes `--view` (a usage error would exit 2; here the
//! daemon refuses a view it does not know, exit 1, naming it, and nothing changes),
//! `--view box` is the box, `ctl view list`, `ctl requests --view`.

mod common;

use common::Daemon;
use common::http::http;

use std::process::Output;

/// A `serve` process with its own control socket and journal, in a temporary directory.
fn start(extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    // The daemon may run as another user (started as root): it must reach the directory.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let socket = dir.path().join("control.sock");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate-directory = \"{}\"\n[control]\nsocket = \"{}\"\n[imds]\ninstance-metadata-tags = \"enabled\"\n[journal]\nenabled = true\n[tags]\nName = \"web\"\n{extra}",
            dir.path().join("state").display(),
            socket.display()
        ),
    )
    .unwrap();
    let d = Daemon::serve(&cfg)
        .control_socket(socket)
        .in_dir(dir)
        .start();
    assert!(d.socket().exists(), "no control socket:\n{}", d.log());
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const EVENT: &str = "instance-event-0123456789abcdef0";

/// Every `ctl` command that changes an instance's state.
const CHANGES: [&[&str]; 11] = [
    &["spot", "--action", "stop"],
    &["rebalance"],
    &["event", "add", "--code", "system-reboot", "--id", EVENT],
    &["event", "complete", EVENT],
    &["event", "cancel", EVENT],
    &["event", "clear"],
    &["asg", "Terminated", "--in", "1m"],
    &["tags", "set", "Team", "a"],
    &["tags", "unset", "Name"],
    &["set", "meta-data/ami-id", "ami-0aaaaaaaaaaaaaaaa"],
    &["unset", "meta-data/ami-id"],
];

#[test]
fn a_view_the_daemon_does_not_know_is_refused_by_it_naming_the_view_and_nothing_changes() {
    let d = start("");
    let tree = d.body("/latest/meta-data/");
    let ami = d.body("/latest/meta-data/ami-id");
    for args in CHANGES {
        let mut all = args.to_vec();
        all.extend(["--view", "nosuch"]);
        let out = d.ctl(&all);
        let said = text(&out);
        // Parsed (a usage error exits 2), sent, refused by the daemon: exit 1, one line.
        assert_eq!(out.status.code(), Some(1), "ctl {all:?}: {said}");
        assert!(said.contains("nosuch"), "ctl {all:?}: {said}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .lines()
                .count(),
            1,
            "ctl {all:?}: {said}"
        );
        assert!(out.stdout.is_empty(), "ctl {all:?}: {said}");
    }
    assert_eq!(d.body("/latest/meta-data/"), tree);
    assert_eq!(d.body("/latest/meta-data/ami-id"), ami);
    assert_eq!(d.body("/latest/meta-data/tags/instance/Name"), "web");
    assert_eq!(
        d.get("/latest/meta-data/events/recommendations/rebalance")
            .0,
        404
    );

    // A name that breaks the config's rule is refused before anything is sent: exit 1, one
    // line naming the flag (not 2: the flag is right, its value is not).
    for (bad, why) in [
        ("a\nERROR forged", "has a control character"),
        ("a/b", "is not a view name"),
    ] {
        let out = d.ctl(&["spot", "--view", bad]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("--view: ") && said.contains(why), "{said}");
        assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    }
    // `--view` where it means nothing: a usage error.
    for args in [
        &["status", "--view", "a"][..],
        &["credentials", "rotate", "--view", "a"],
    ] {
        let out = d.ctl(args);
        assert_eq!(out.status.code(), Some(2), "ctl {args:?}: {}", text(&out));
    }
    assert_eq!(d.body("/latest/meta-data/"), tree);
}

#[test]
fn view_box_is_the_box_itself() {
    let d = start("");
    let msg = d.ctl_ok(&["spot", "--action", "stop", "--view", "box"]);
    assert!(
        msg.contains("spot interruption notice issued: stop"),
        "{msg}"
    );
    assert!(
        d.body("/latest/meta-data/spot/instance-action")
            .starts_with(r#"{"action": "stop""#)
    );
    d.ctl_ok(&["tags", "set", "Team", "a", "--view", "box"]);
    assert_eq!(d.body("/latest/meta-data/tags/instance/Team"), "a");
    d.ctl_ok(&[
        "set",
        "meta-data/ami-id",
        "ami-0bbbbbbbbbbbbbbbb",
        "--view",
        "box",
    ]);
    assert_eq!(d.body("/latest/meta-data/ami-id"), "ami-0bbbbbbbbbbbbbbbb");
}

#[test]
fn view_list_answers_and_requests_filter_by_view() {
    let d = start("");
    let out = d.ctl(&["view", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), "(none)");

    for path in ["/latest/meta-data/instance-id", "/latest/meta-data/ami-id"] {
        assert_eq!(http(d.addr, "GET", path, &[]).0, 200);
    }
    let paths = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["requests", "--json", "--no-docker"];
        all.extend(args);
        d.ctl_ok(&all)
            .lines()
            .map(|l| {
                let e: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                e["path"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let both = ["/latest/meta-data/instance-id", "/latest/meta-data/ami-id"];
    assert_eq!(paths(&[]), both);
    // No view in the config: every client is the box's.
    assert_eq!(paths(&["--view", "box"]), both);
    assert!(paths(&["--view", "node-a"]).is_empty());
    // In text too.
    let lines = d.ctl_ok(&["requests", "--no-docker", "--view", "box"]);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert_eq!(
        d.ctl_ok(&["requests", "--no-docker", "--view", "node-a"]),
        ""
    );
    // Not with --clear (a usage error), nor a bad name (a bad value).
    let out = d.ctl(&["requests", "--clear", "--view", "box"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = d.ctl(&["requests", "--view", "a/b"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
