//! `ctl … --view NAME` through the real binary (`serve`, then `ctl` over a real Unix
//! socket): every instance change takes `--view` (a usage error would exit 2; here the
//! daemon refuses a view it does not know, exit 1, naming it, and nothing changes),
//! `--view box` is the box, `ctl view list`, `ctl requests --view`.

mod common;

use common::Daemon;
use common::http::http;

use std::process::Output;
use std::time::Duration;

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
    // A fault for a view the daemon does not know: refused the same way, none in force.
    let out = d.ctl(&["fault", "add", "--view", "nosuch", "--drop"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("no view `nosuch`"), "{said}");
    assert_eq!(d.ctl_ok(&["fault", "list"]), "faults: none");
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

/// A view of the clients from 127.0.0.2 (an address of `lo` any process may send from).
const VIEW_A: &str = "[[view]]\nname = \"a\"\nsources = [\"127.0.0.2\"]\n[view.instance]\ninstance-id = \"i-0aaaaaaaaaaaaaaaa\"\n";

/// `GET path` sent from `from` (an address of this host) on a new connection.
fn get_from(d: &Daemon, from: [u8; 4], path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    sock.connect_timeout(&d.addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(common::patience(Duration::from_secs(5))))
        .unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r = common::http::parse(&out).unwrap_or_else(|| panic!("no reply to {path}: {out:?}"));
    (r.status, r.body)
}

const BOX_IP: [u8; 4] = [127, 0, 0, 1];
const A_IP: [u8; 4] = [127, 0, 0, 2];

#[test]
fn a_change_aimed_at_a_view_is_seen_by_its_clients_alone() {
    let d = start(VIEW_A);
    let list = d.ctl_ok(&["view", "list"]);
    for want in ["a", "127.0.0.2", "i-0aaaaaaaaaaaaaaaa"] {
        assert!(list.contains(want), "{want} in {list}");
    }
    assert_eq!(
        get_from(&d, A_IP, "/latest/meta-data/instance-id").1,
        "i-0aaaaaaaaaaaaaaaa"
    );
    let box_id = get_from(&d, BOX_IP, "/latest/meta-data/instance-id").1;
    assert_ne!(box_id, "i-0aaaaaaaaaaaaaaaa");

    let spot = "/latest/meta-data/spot/instance-action";
    let msg = d.ctl_ok(&["spot", "--action", "stop", "--view", "a"]);
    assert!(
        msg.contains("spot interruption notice issued: stop"),
        "{msg}"
    );
    let (s, body) = get_from(&d, A_IP, spot);
    assert_eq!(s, 200);
    assert!(body.starts_with(r#"{"action": "stop""#), "{body}");
    assert_eq!(get_from(&d, BOX_IP, spot).0, 404, "the box has no notice");

    // And the other way: the box's own notice is not the view's.
    d.ctl_ok(&["spot", "--action", "hibernate"]);
    assert!(get_from(&d, BOX_IP, spot).1.contains("hibernate"));
    assert!(get_from(&d, A_IP, spot).1.contains(r#""stop""#));

    let rebalance = "/latest/meta-data/events/recommendations/rebalance";
    d.ctl_ok(&["rebalance", "--view", "a"]);
    assert_eq!(get_from(&d, A_IP, rebalance).0, 200);
    assert_eq!(get_from(&d, BOX_IP, rebalance).0, 404);

    let scheduled = "/latest/meta-data/events/maintenance/scheduled";
    let history = "/latest/meta-data/events/maintenance/history";
    let id = d.ctl_ok(&["event", "add", "--code", "system-reboot", "--view", "a"]);
    assert!(get_from(&d, A_IP, scheduled).1.contains(&id));
    assert!(!get_from(&d, BOX_IP, scheduled).1.contains(&id));
    // The box does not have the view's event; the view does.
    let out = d.ctl(&["event", "complete", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    d.ctl_ok(&["event", "complete", &id, "--view", "a"]);
    assert!(get_from(&d, A_IP, history).1.contains(&id));
    d.ctl_ok(&[
        "event",
        "add",
        "--code",
        "instance-stop",
        "--id",
        EVENT,
        "--view",
        "a",
    ]);
    d.ctl_ok(&["event", "cancel", EVENT, "--view", "a"]);
    assert!(get_from(&d, A_IP, history).1.contains(EVENT));
    d.ctl_ok(&["event", "clear", "--view", "a"]);
    assert!(!get_from(&d, A_IP, history).1.contains(EVENT));

    let asg = "/latest/meta-data/autoscaling/target-lifecycle-state";
    d.ctl_ok(&["asg", "Terminated", "--view", "a"]);
    assert_eq!(get_from(&d, A_IP, asg).1, "Terminated");
    assert_ne!(get_from(&d, BOX_IP, asg).1, "Terminated");

    d.ctl_ok(&["tags", "set", "Team", "a", "--view", "a"]);
    assert_eq!(
        get_from(&d, A_IP, "/latest/meta-data/tags/instance/Team").1,
        "a"
    );
    assert_eq!(
        get_from(&d, BOX_IP, "/latest/meta-data/tags/instance/Team").0,
        404
    );
    d.ctl_ok(&["tags", "unset", "Team", "--view", "a"]);
    assert_eq!(
        get_from(&d, A_IP, "/latest/meta-data/tags/instance/Team").0,
        404
    );

    let ami = "/latest/meta-data/ami-id";
    let box_ami = get_from(&d, BOX_IP, ami).1;
    d.ctl_ok(&[
        "set",
        "meta-data/ami-id",
        "ami-0aaaaaaaaaaaaaaaa",
        "--view",
        "a",
    ]);
    assert_eq!(get_from(&d, A_IP, ami).1, "ami-0aaaaaaaaaaaaaaaa");
    assert_eq!(get_from(&d, BOX_IP, ami).1, box_ami);
    d.ctl_ok(&["unset", "meta-data/ami-id", "--view", "a"]);
    assert_eq!(get_from(&d, A_IP, ami).0, 404);
    assert_eq!(get_from(&d, BOX_IP, ami).1, box_ami);

    // A fault for the view: its clients alone.
    let id = d.ctl_ok(&[
        "fault",
        "add",
        "--view",
        "a",
        "--path",
        "meta-data/hostname",
        "--status",
        "503",
    ]);
    assert!(id.starts_with("fault-"), "{id}");
    let hostname = "/latest/meta-data/hostname";
    assert_eq!(get_from(&d, A_IP, hostname).0, 503);
    assert_eq!(get_from(&d, BOX_IP, hostname).0, 200);
}

#[test]
fn requests_of_a_view_are_its_clients_alone() {
    let d = start(VIEW_A);
    get_from(&d, BOX_IP, "/latest/meta-data/instance-id");
    get_from(&d, A_IP, "/latest/meta-data/ami-id");
    get_from(&d, A_IP, "/latest/meta-data/hostname");
    let entries = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["requests", "--json", "--no-docker"];
        all.extend(args);
        d.ctl_ok(&all)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let a = entries(&["--view", "a"]);
    let paths: Vec<&str> = a.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/latest/meta-data/ami-id", "/latest/meta-data/hostname"]
    );
    for e in &a {
        assert_eq!(e["view"], "a", "{e}");
        assert_eq!(e["source"], "127.0.0.2", "{e}");
    }
    let boxed = entries(&["--view", "box"]);
    assert_eq!(boxed.len(), 1, "{boxed:?}");
    assert_eq!(boxed[0]["path"], "/latest/meta-data/instance-id");
    assert!(boxed[0].get("view").is_none(), "{}", boxed[0]);
    assert_eq!(entries(&[]).len(), 3);
    assert!(entries(&["--view", "b"]).is_empty());
}
