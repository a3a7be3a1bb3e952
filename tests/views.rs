//! `[[view]]` through the real binary on loopback: clients from different loopback
//! addresses (each its own "container") and the test's own user are served different
//! instances (instance id, network tree, identity document, role or none, user data),
//! each with its own tokens; a timeline entry aimed at one view is seen by it alone; the
//! journal names the view; a reload changes and removes views; `ctl status`/`view list`
//! show them. The netns test (`tests/views_netns.rs`) does the same through the real
//! interception, with container namespaces behind a bridge.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::Daemon;

/// `(status, body)` of one request from the local address `from`.
fn ask(
    d: &Daemon,
    from: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    ask_at(d.addr, from, method, path, headers)
}

fn ask_at(
    to: SocketAddr,
    from: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&src.into()).unwrap();
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r = common::http::parse(&out).expect("an HTTP reply");
    (r.status, r.body)
}

fn body(d: &Daemon, from: &str, path: &str) -> String {
    let (s, b) = ask(d, from, "GET", path, &[]);
    assert_eq!(s, 200, "{from} {path}: {b}");
    b
}

fn token(d: &Daemon, from: &str) -> String {
    let (s, t) = ask(
        d,
        from,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(s, 200);
    t
}

fn start(config: &str) -> (Daemon, std::path::PathBuf) {
    let d = common::daemon::serve_with_control(config);
    let cfg = d.dir().join("config.toml");
    (d, cfg)
}

const FLEET: &str = r#"
[instance]
from-host = false
instance-id = "i-0000000000000000b"

[iam]
role = "box-role"

[journal]
enabled = true

[[scenario.timeline]]
view = "node-a"
spot = "terminate"

[[view]]
name = "node-a"
sources = ["127.0.0.2"]

[view.instance]
instance-id = "i-0aaaaaaaaaaaaaaaa"
local-ipv4 = "172.18.0.2"
mac = "0e:00:00:00:00:0a"

[view.iam]
role = "node-a-role"

[[view]]
name = "untrusted"
sources = ["127.0.0.3"]

[view.instance]
instance-id = "i-0cccccccccccccccc"

[view.iam]
role = ""

[view.user-data]
text = "untrusted"
"#;

#[test]
fn each_view_is_an_instance_of_its_own() {
    let (d, _) = start(FLEET);
    let id = "/latest/meta-data/instance-id";
    assert_eq!(body(&d, "127.0.0.1", id), "i-0000000000000000b");
    assert_eq!(body(&d, "127.0.0.2", id), "i-0aaaaaaaaaaaaaaaa");
    assert_eq!(body(&d, "127.0.0.3", id), "i-0cccccccccccccccc");
    // The network tree is keyed by the view's MAC; its address and host name are its own.
    let macs = "/latest/meta-data/network/interfaces/macs/";
    assert_eq!(body(&d, "127.0.0.2", macs), "0e:00:00:00:00:0a/");
    assert_ne!(body(&d, "127.0.0.1", macs), "0e:00:00:00:00:0a/");
    assert_eq!(
        body(
            &d,
            "127.0.0.2",
            "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:0a/local-ipv4s"
        ),
        "172.18.0.2"
    );
    assert_eq!(
        body(&d, "127.0.0.2", "/latest/meta-data/local-ipv4"),
        "172.18.0.2"
    );
    assert!(body(&d, "127.0.0.2", "/latest/meta-data/hostname").starts_with("ip-172-18-0-2."));
    // The identity document, signed for each.
    let doc = "/latest/dynamic/instance-identity/document";
    for (from, id) in [
        ("127.0.0.1", "i-0000000000000000b"),
        ("127.0.0.2", "i-0aaaaaaaaaaaaaaaa"),
        ("127.0.0.3", "i-0cccccccccccccccc"),
    ] {
        let v: serde_json::Value = serde_json::from_str(&body(&d, from, doc)).unwrap();
        assert_eq!(v["instanceId"], id, "{from}");
    }
    let sig_box = body(
        &d,
        "127.0.0.1",
        "/latest/dynamic/instance-identity/signature",
    );
    let sig_a = body(
        &d,
        "127.0.0.2",
        "/latest/dynamic/instance-identity/signature",
    );
    assert_ne!(sig_box, sig_a);
    // The role, or none.
    let creds = "/latest/meta-data/iam/security-credentials/";
    assert_eq!(body(&d, "127.0.0.1", creds), "box-role");
    assert_eq!(body(&d, "127.0.0.2", creds), "node-a-role");
    assert_eq!(ask(&d, "127.0.0.3", "GET", creds, &[]).0, 404);
    assert_eq!(
        ask(&d, "127.0.0.3", "GET", "/latest/meta-data/iam/info", &[]).0,
        404
    );
    // Its own keys, not the box's.
    let key = |from: &str, role: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&body(&d, from, &format!("{creds}{role}"))).unwrap();
        v["AccessKeyId"].as_str().unwrap().to_string()
    };
    assert_ne!(
        key("127.0.0.1", "box-role"),
        key("127.0.0.2", "node-a-role")
    );
    assert_eq!(
        ask(&d, "127.0.0.2", "GET", &format!("{creds}box-role"), &[]).0,
        404
    );
    // User data: the view's, or the box's (none).
    assert_eq!(body(&d, "127.0.0.3", "/latest/user-data"), "untrusted");
    assert_eq!(ask(&d, "127.0.0.1", "GET", "/latest/user-data", &[]).0, 404);
    // The spot notice aimed at node-a, seen by it alone.
    let spot = "/latest/meta-data/spot/instance-action";
    let notice: serde_json::Value = serde_json::from_str(&body(&d, "127.0.0.2", spot)).unwrap();
    assert_eq!(notice["action"], "terminate");
    assert_eq!(ask(&d, "127.0.0.1", "GET", spot, &[]).0, 404);
    assert_eq!(ask(&d, "127.0.0.3", "GET", spot, &[]).0, 404);
}

#[test]
fn a_token_from_one_view_is_refused_by_another() {
    let (d, _) = start(
        &format!("{FLEET}\n[imds]\nhttp-tokens = \"required\"\n")
            .replace("[journal]\nenabled = true\n", ""),
    );
    let id = "/latest/meta-data/instance-id";
    let (boxed, a, u) = (
        token(&d, "127.0.0.1"),
        token(&d, "127.0.0.2"),
        token(&d, "127.0.0.3"),
    );
    let with = |t: &str| [("X-aws-ec2-metadata-token", t.to_string())];
    let get = |from: &str, t: &str| {
        let h = with(t);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ask(&d, from, "GET", id, &h)
    };
    assert_eq!(
        get("127.0.0.1", &boxed),
        (200, "i-0000000000000000b".into())
    );
    assert_eq!(get("127.0.0.2", &a), (200, "i-0aaaaaaaaaaaaaaaa".into()));
    assert_eq!(get("127.0.0.3", &u), (200, "i-0cccccccccccccccc".into()));
    for (from, t) in [
        ("127.0.0.1", &a),
        ("127.0.0.2", &boxed),
        ("127.0.0.2", &u),
        ("127.0.0.3", &a),
    ] {
        assert_eq!(get(from, t).0, 401, "{from} with another view's token");
    }
    // A view's tokens outlive a reload that keeps it.
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for_log("config reloaded");
    assert_eq!(get("127.0.0.2", &a).0, 200);
}

#[test]
fn a_view_by_uid_covers_the_local_user_and_the_journal_names_views() {
    let me = nix::unistd::Uid::current().as_raw();
    let (d, _) = start(&format!(
        "[instance]\nfrom-host = false\n[journal]\nenabled = false\n\
         [[view]]\nname = \"someone-else\"\nuids = [{other}]\n[view.instance]\ninstance-id = \"i-0eeeeeeeeeeeeeeee\"\n\
         [[view]]\nname = \"me\"\nuids = [{me}]\n[view.instance]\ninstance-id = \"i-0dddddddddddddddd\"\n",
        other = me + 4242
    ));
    // The owner is looked up for the view, with the journal off.
    assert_eq!(
        body(&d, "127.0.0.1", "/latest/meta-data/instance-id"),
        "i-0dddddddddddddddd"
    );
    let status = d.ctl_ok(&["status"]);
    assert!(status.contains("view someone-else (uid"), "{status}");
    let me_line =
        format!("view me (uid {me}; instance i-0dddddddddddddddd, role fake-metadata-role)");
    assert!(status.contains(&me_line), "{status}");
}

#[test]
fn the_journal_records_the_view_and_a_reload_changes_views() {
    let (d, cfg) = start(FLEET);
    body(&d, "127.0.0.2", "/latest/meta-data/ami-id");
    body(&d, "127.0.0.1", "/latest/meta-data/ami-id");
    let out = d.ctl_ok(&["requests", "--json"]);
    let views: Vec<(String, Option<String>)> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["source"].as_str().unwrap().to_string(),
                v.get("view").and_then(|x| x.as_str()).map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        views,
        [
            ("127.0.0.2".to_string(), Some("node-a".to_string())),
            ("127.0.0.1".to_string(), None)
        ]
    );
    // Counted by view: `assert` and `watch` take `--view`.
    let rule = [
        "assert",
        "--path",
        "/latest/meta-data/ami-id",
        "--max",
        "1",
        "--min",
        "1",
    ];
    let view = |v: &'static str| [&rule[..], &["--view", v]].concat();
    let out = d.ctl(&view("node-a"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(d.ctl(&view("box")).status.code(), Some(0));
    let none = d.ctl(&view("untrusted"));
    assert_eq!(
        none.status.code(),
        Some(1),
        "a view that asked nothing matches no one"
    );
    let watch = d.ctl_ok(&["watch", "--count", "1", "--view", "node-a"]);
    // The header, the columns, and the one row of node-a's client.
    let rows: Vec<&str> = watch.lines().skip(2).collect();
    assert!(
        rows.len() == 1 && rows[0].contains("[view node-a]"),
        "{watch}"
    );
    // A reload: node-a gets another id, `untrusted` goes (its client gets the box).
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cut = text.find("[[view]]\nname = \"untrusted\"").unwrap();
    let next = text[..cut].replace("i-0aaaaaaaaaaaaaaaa", "i-0aaaaaaaaaaaaaaa2");
    common::daemon::write_config(&cfg, &next);
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for_log("config reloaded");
    let id = "/latest/meta-data/instance-id";
    assert_eq!(body(&d, "127.0.0.2", id), "i-0aaaaaaaaaaaaaaa2");
    assert_eq!(body(&d, "127.0.0.3", id), "i-0000000000000000b");
    // The spot notice it had is kept: its timeline did not change.
    assert_eq!(
        ask(
            &d,
            "127.0.0.2",
            "GET",
            "/latest/meta-data/spot/instance-action",
            &[]
        )
        .0,
        200
    );
}

#[test]
fn check_config_warns_of_overlapping_views_and_locates_mistakes() {
    let check = |text: &str| common::daemon::check_config(text, "views-check");

    let (code, err) = check(
        "[[view]]\nname = \"a\"\nsources = [\"10.0.0.0/8\"]\n[[view]]\nname = \"b\"\nsources = [\"10.1.2.3\"]\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(
            "config.toml:5:1: warning: views `a` and `b` both cover 10.0.0.0/8 and 10.1.2.3"
        ),
        "{err}"
    );
    let (code, err) = check(
        "[[view]]\nname = \"a\"\nsources = [\"10.0.0.1\"]\n[view.instance]\ninstance-idd = \"i-0\"\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("config.toml:5:1:") && err.contains("instance-idd"),
        "{err}"
    );
}
