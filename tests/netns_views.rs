//! Issue 25's acceptance (views: a fleet in one box), as root, against the real kernel, the
//! real binary and the real interception (`fake-metadata install`: the box's REDIRECT and
//! the container path's DNAT), with the real curl as every client:
//!
//! ```text
//!   box   the daemon (dropped to its service user), `install`; local users:
//!         root and nobody (uid 65534): the box itself; uid 4242 (no name) and `daemon`
//!         (uid 1, by its name): view `alice`, under the box's role name
//!         br-f1ee7c0ffee1 172.18.0.1/16 (a compose network's bridge)
//!           ├─ vetha0a0a0 ─ node-a  eth0 172.18.0.2: view `node-a` (own role, own zone)
//!           └─ vethb0b0b0 ─ node-b  eth0 172.18.0.3: view `node-b` (role = "": none)
//! ```
//!
//! Each client sees its own instance id, addresses, MAC-keyed network tree, identity
//! document (signed: openssl verifies each over its own document only), tags, user data,
//! role and credentials (or none; its own keys even under the box's role name); what a view
//! does not set is the box's; a spot notice aimed at a view (a timeline entry, `ctl spot
//! --view`) is seen by that view alone; a token issued to one view (or to the box) is refused
//! (401) by every other, and works for another client of the same instance; a fault aimed at
//! a view hits its clients alone; `ctl view list`, `ctl status` and the journal name the
//! views; a reload without a view gives its clients the box.
//!
//! SAFETY: on a development or CI machine 169.254.169.254 may route to a real gateway. This
//! test only ever runs `ip -n NS …` and `ip netns exec NS …` on named namespaces it creates
//! (`fm-<pid>-<n>-<role>`, deleted on drop: `common::netns`); `ctl` and `identity-cert` talk
//! to files (the control socket, the state directory), not to the network. The daemon is
//! stopped by PID when its guard drops.
//!
//! Run: `sudo -E cargo test --test netns_views` (needs iproute2, iptables, curl, setpriv,
//! openssl). Under `CI=true` a test that cannot run fails; elsewhere it prints "skipped: …".

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Daemon;
use common::identity::Openssl;
use common::netns::{self, Namespaces, Ns, attach, bridge};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fake-metadata");
const IMDS: &str = "http://169.254.169.254";
const TOKEN_TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds: 21600";
/// The local user covered by view `alice` (by number; it has no name).
const ALICE_UID: u32 = 4242;
const NOBODY_UID: u32 = 65534;
/// `daemon`, covered by view `alice` by its name.
const DAEMON_UID: u32 = 1;

/// The box and its views, as the config below says.
const CONFIG: &str = r##"
[journal]
enabled = true

[imds]
# Containers on a bridge are one hop further than the box: 2 lets them have tokens.
http-put-response-hop-limit = 2
instance-metadata-tags = "enabled"

[instance]
from-host = false
instance-type = "m5.large"

[iam]
role = "box-role"

[tags]
Name = "the-box"

[user-data]
text = "#!/bin/sh\necho the box\n"

# A spot notice for the local user's view alone, from the start.
[[scenario.timeline]]
spot = "terminate"
view = "alice"

[[view]]
name = "node-a"
sources = ["172.18.0.2"]

[view.instance]
instance-id = "i-0aaaaaaaaaaaaaaaa"
local-ipv4 = "172.18.0.2"
mac = "0e:00:00:00:00:0a"
availability-zone = "eu-west-1b"

[view.iam]
role = "node-a-role"

[view.tags]
Name = "node-a"

[view.user-data]
text = "#!/bin/sh\necho node-a\n"

[[view]]
name = "node-b"
sources = ["172.18.0.3/32"]

[view.instance]
instance-id = "i-0bbbbbbbbbbbbbbbb"
local-ipv4 = "172.18.0.3"
mac = "0e:00:00:00:00:0b"

[view.iam]
role = ""

[[view]]
name = "alice"
uids = [4242, "daemon"]

[view.instance]
instance-id = "i-0cccccccccccccccc"
local-ipv4 = "10.1.2.3"
mac = "0e:00:00:00:00:0c"

# The box's role name: still the view's own credentials.
[view.iam]
role = "box-role"
"##;

/// What one client must see: the instance of its view (or of the box).
struct Expect {
    view: Option<&'static str>,
    instance_id: &'static str,
    local_ipv4: &'static str,
    mac: &'static str,
    zone: &'static str,
    region: &'static str,
    hostname: &'static str,
    role: Option<&'static str>,
    tag_name: &'static str,
    user_data: &'static str,
}

const BOX: Expect = Expect {
    view: None,
    instance_id: "i-0123456789abcdef0",
    local_ipv4: "172.31.16.10",
    mac: "0e:49:61:0f:c3:11",
    zone: "us-east-1a",
    region: "us-east-1",
    hostname: "ip-172-31-16-10.ec2.internal",
    role: Some("box-role"),
    tag_name: "the-box",
    user_data: "#!/bin/sh\necho the box\n",
};
const NODE_A: Expect = Expect {
    view: Some("node-a"),
    instance_id: "i-0aaaaaaaaaaaaaaaa",
    local_ipv4: "172.18.0.2",
    mac: "0e:00:00:00:00:0a",
    zone: "eu-west-1b",
    region: "eu-west-1",
    // Derived again from the view's own address and region.
    hostname: "ip-172-18-0-2.eu-west-1.compute.internal",
    role: Some("node-a-role"),
    tag_name: "node-a",
    user_data: "#!/bin/sh\necho node-a\n",
};
const NODE_B: Expect = Expect {
    view: Some("node-b"),
    instance_id: "i-0bbbbbbbbbbbbbbbb",
    local_ipv4: "172.18.0.3",
    mac: "0e:00:00:00:00:0b",
    zone: "us-east-1a",
    region: "us-east-1",
    hostname: "ip-172-18-0-3.ec2.internal",
    role: None,
    // Not set in the view: the box's.
    tag_name: "the-box",
    user_data: "#!/bin/sh\necho the box\n",
};
const ALICE: Expect = Expect {
    view: Some("alice"),
    instance_id: "i-0cccccccccccccccc",
    local_ipv4: "10.1.2.3",
    mac: "0e:00:00:00:00:0c",
    zone: "us-east-1a",
    region: "us-east-1",
    hostname: "ip-10-1-2-3.ec2.internal",
    role: Some("box-role"),
    tag_name: "the-box",
    user_data: "#!/bin/sh\necho the box\n",
};

/// A client: where it runs, as whom, and what it must see.
struct Client<'a> {
    who: &'static str,
    ns: Ns<'a>,
    uid: Option<u32>,
    expect: &'a Expect,
}

impl Client<'_> {
    /// `(status, body)` of `method path` through 169.254.169.254, with `token` if given.
    fn request(&self, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
        let url = format!("{IMDS}{path}");
        let mut args = vec!["-X", method];
        for h in headers {
            args.extend(["-H", h]);
        }
        args.push(&url);
        let (status, body) = self.ns.curl_as(self.uid, &args);
        assert_ne!(status, 0, "{}: {method} {path}: no reply: {body}", self.who);
        (status, body)
    }

    /// A new IMDSv2 token.
    fn token(&self) -> String {
        let (status, token) = self.request("PUT", "/latest/api/token", &[TOKEN_TTL]);
        assert_eq!(status, 200, "{}: token PUT: {token}", self.who);
        assert!(!token.is_empty(), "{}: an empty token", self.who);
        token
    }

    /// GET `path` with `token`: `(status, body)`.
    fn get_with(&self, token: &str, path: &str) -> (u16, String) {
        self.request(
            "GET",
            path,
            &[&format!("X-aws-ec2-metadata-token: {token}")],
        )
    }

    /// GET `path` with `token`; must answer 200; the body.
    fn body(&self, token: &str, path: &str) -> String {
        let (status, body) = self.get_with(token, path);
        assert_eq!(status, 200, "{}: GET {path}: {body}", self.who);
        body
    }
}

/// The one test: the world is costly to set up (namespaces, install, a daemon), and each
/// part reads what the one before did (the spot notices, the journal).
#[test]
fn views_give_each_container_and_user_an_instance_of_its_own() {
    let test = "views_give_each_container_and_user_an_instance_of_its_own";
    if !netns::prerequisites(
        test,
        &[
            ("ip", "iproute2"),
            ("iptables", "iptables"),
            ("curl", "curl"),
            ("setpriv", "util-linux"),
            ("openssl", "openssl"),
        ],
    ) {
        return;
    }
    assert!(
        nix::unistd::User::from_uid(ALICE_UID.into())
            .unwrap()
            .is_none(),
        "uid {ALICE_UID} has a name here: pick another nameless uid"
    );
    assert_eq!(
        nix::unistd::User::from_name("daemon")
            .unwrap()
            .map(|u| u.uid.as_raw()),
        Some(DAEMON_UID),
        "the user `daemon` is uid {DAEMON_UID} on Debian"
    );
    let Some(nss) = Namespaces::create(test, &["box", "node-a", "node-b"]) else {
        return;
    };
    let (bx, node_a, node_b) = (nss.get(0), nss.get(1), nss.get(2));
    // A compose network: one bridge (br-+, a container network for `install`), two
    // containers on it, each with its own address.
    bridge(bx, "br-f1ee7c0ffee1", "172.18.0.1/16");
    attach(
        bx,
        "br-f1ee7c0ffee1",
        "vetha0a0a0",
        node_a,
        "172.18.0.2/16",
        "172.18.0.1",
    );
    attach(
        bx,
        "br-f1ee7c0ffee1",
        "vethb0b0b0",
        node_b,
        "172.18.0.3/16",
        "172.18.0.1",
    );

    let dir = common::daemon::workdir("netns-views");
    let socket = dir.path().join("control.sock");
    let socket = socket.to_str().expect("utf-8 path").to_string();
    let config = dir.path().join("config.toml");
    let head = format!(
        "# tests/netns_views.rs: IMDS only, the control socket and state here.\n\
         [server]\necs-listen = []\npod-identity-listen = []\nstate-directory = \"{}\"\n\
         [control]\nsocket = \"{socket}\"\n",
        dir.path().join("state").display()
    );
    common::daemon::write_config(&config, &format!("{head}{CONFIG}"));
    let config = config.to_str().expect("utf-8 path").to_string();

    let checked = Command::new(BIN)
        .args(["check-config", &config])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "check-config: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let installed = bx.output(BIN, &["install", "--config", &config]);
    assert!(
        installed.status.success(),
        "install in box: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let daemon = Daemon::run(&["serve", "--config", &config])
        .clean_env(netns::PATH)
        .wrapper(&bx.wrapper())
        .ready_within(common::patience(Duration::from_secs(20)))
        .stop_on_drop(Duration::from_secs(2))
        .start();
    let ctl = |args: &[&str]| -> String {
        let out = Command::new(BIN)
            .args([&["ctl", "--socket", socket.as_str()], args].concat())
            .env_remove("FAKE_METADATA_CONFIG")
            .output()
            .expect("ctl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!(
            "$ ctl {}\n{stdout}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "ctl {args:?} failed: {}\n--- daemon log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            daemon.log()
        );
        stdout
    };

    let clients = [
        Client {
            who: "root on the box",
            ns: bx,
            uid: None,
            expect: &BOX,
        },
        Client {
            who: "nobody on the box",
            ns: bx,
            uid: Some(NOBODY_UID),
            expect: &BOX,
        },
        Client {
            who: "uid 4242 on the box",
            ns: bx,
            uid: Some(ALICE_UID),
            expect: &ALICE,
        },
        Client {
            who: "container node-a",
            ns: node_a,
            uid: None,
            expect: &NODE_A,
        },
        Client {
            who: "container node-b",
            ns: node_b,
            uid: None,
            expect: &NODE_B,
        },
        Client {
            who: "daemon (uid 1) on the box",
            ns: bx,
            uid: Some(DAEMON_UID),
            expect: &ALICE,
        },
    ];

    // ---------------------------------------------------------------- each its instance
    let tokens: Vec<String> = clients.iter().map(Client::token).collect();
    let mut keys: Vec<(&str, String)> = Vec::new();
    let mut identities: Vec<(&str, String, String)> = Vec::new();
    for (c, token) in clients.iter().zip(&tokens) {
        let e = c.expect;
        let md = |p: &str| c.body(token, &format!("/latest/meta-data/{p}"));
        for (path, want) in [
            ("instance-id", e.instance_id),
            ("local-ipv4", e.local_ipv4),
            ("mac", e.mac),
            ("local-hostname", e.hostname),
            ("hostname", e.hostname),
            ("placement/availability-zone", e.zone),
            ("placement/region", e.region),
            // Not set in any view: the box's.
            ("instance-type", "m5.large"),
            ("tags/instance/Name", e.tag_name),
        ] {
            assert_eq!(md(path), want, "{}: meta-data/{path}", c.who);
        }
        // Without a token too: the client picks the view, not the token.
        let (status, id) = c.request("GET", "/latest/meta-data/instance-id", &[]);
        assert_eq!(
            (status, id.as_str()),
            (200, e.instance_id),
            "{}: IMDSv1",
            c.who
        );
        // The network tree is keyed by the view's own MAC, and only by it.
        let macs = "network/interfaces/macs";
        assert_eq!(md(&format!("{macs}/")), format!("{}/", e.mac), "{}", c.who);
        assert_eq!(
            md(&format!("{macs}/{}/local-ipv4s", e.mac)),
            e.local_ipv4,
            "{}",
            c.who
        );
        assert_eq!(md(&format!("{macs}/{}/mac", e.mac)), e.mac, "{}", c.who);
        if e.mac != BOX.mac {
            let (status, _) = c.get_with(token, &format!("/latest/meta-data/{macs}/{}/", BOX.mac));
            assert_eq!(
                status, 404,
                "{}: the box's MAC is not in a view's tree",
                c.who
            );
        }
        assert_eq!(c.body(token, "/latest/user-data"), e.user_data, "{}", c.who);

        // The identity document: this instance's.
        let doc = c.body(token, "/latest/dynamic/instance-identity/document");
        let j: Value =
            serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{}: {e}: {doc}", c.who));
        assert_eq!(j["instanceId"], e.instance_id, "{}: {doc}", c.who);
        assert_eq!(j["privateIp"], e.local_ipv4, "{}: {doc}", c.who);
        assert_eq!(j["region"], e.region, "{}: {doc}", c.who);
        assert_eq!(j["availabilityZone"], e.zone, "{}: {doc}", c.who);
        assert_eq!(j["instanceType"], "m5.large", "{}: {doc}", c.who);
        let signature = c.body(token, "/latest/dynamic/instance-identity/signature");
        identities.push((c.who, doc, signature));

        // The role, or none.
        let listing = md("");
        match e.role {
            Some(role) => {
                assert!(listing.lines().any(|l| l == "iam/"), "{}: {listing}", c.who);
                assert_eq!(md("iam/security-credentials/"), role, "{}", c.who);
                let info = md("iam/info");
                assert!(
                    info.contains(&format!(":instance-profile/{role}\"")),
                    "{}: iam/info names the view's own profile: {info}",
                    c.who
                );
                let creds = md(&format!("iam/security-credentials/{role}"));
                let j: Value =
                    serde_json::from_str(&creds).unwrap_or_else(|e| panic!("{}: {e}", c.who));
                assert_eq!(j["Code"], "Success", "{}", c.who);
                let key = j["AccessKeyId"].as_str().expect("AccessKeyId").to_string();
                assert!(key.starts_with("ASIA"), "{}: {key}", c.who);
                keys.push((c.who, key));
            }
            None => {
                assert!(
                    !listing.lines().any(|l| l.starts_with("iam")),
                    "{}: role = \"\": no iam/ in meta-data/: {listing}",
                    c.who
                );
                for p in ["iam/", "iam/security-credentials/", "iam/info"] {
                    let (status, body) = c.get_with(token, &format!("/latest/meta-data/{p}"));
                    assert_eq!(
                        status, 404,
                        "{}: meta-data/{p} without a role: {body}",
                        c.who
                    );
                }
            }
        }
    }
    // Each view's own credentials, also under the box's role name (alice): the clients of
    // one instance share its keys; every view has its own.
    let key_of = |who: &str| {
        keys.iter()
            .find(|(w, _)| *w == who)
            .map(|(_, k)| k.clone())
            .unwrap()
    };
    assert_eq!(key_of("root on the box"), key_of("nobody on the box"));
    assert_eq!(
        key_of("uid 4242 on the box"),
        key_of("daemon (uid 1) on the box")
    );
    let distinct: std::collections::BTreeSet<String> =
        ["root on the box", "uid 4242 on the box", "container node-a"]
            .iter()
            .map(|w| key_of(w))
            .collect();
    assert_eq!(distinct.len(), 3, "each view its own keys: {keys:?}");

    // Each view's signature verifies over its own document (the daemon's certificate, as
    // `identity-cert` prints it), and not over another's.
    verify_signatures(dir.path(), &config, &identities);

    // ---------------------------------------------------------------- tokens per instance
    // A token issued to one client works for it (above) and for another client of the same
    // instance (root and nobody: the box), and is refused by every other instance.
    let (root, nobody, alice, a, b) = (
        &clients[0],
        &clients[1],
        &clients[2],
        &clients[3],
        &clients[4],
    );
    let (status, _) = nobody.get_with(&tokens[0], "/latest/meta-data/instance-id");
    assert_eq!(status, 200, "the box's token, by another user of the box");
    let (status, _) = alice.get_with(&tokens[5], "/latest/meta-data/instance-id");
    assert_eq!(status, 200, "alice's token, by another user of alice's");
    for (issued, to, token) in [
        (a, b, &tokens[3]),
        (a, root, &tokens[3]),
        (b, a, &tokens[4]),
        (root, a, &tokens[0]),
        (root, alice, &tokens[0]),
        (alice, root, &tokens[2]),
        (alice, b, &tokens[2]),
    ] {
        let (status, body) = to.get_with(token, "/latest/meta-data/instance-id");
        assert_eq!(
            status, 401,
            "a token issued to {} must be refused for {}: got {status} {body}",
            issued.who, to.who
        );
    }

    // ---------------------------------------------------------------- spot per view
    let spot = |c: &Client| c.request("GET", "/latest/meta-data/spot/instance-action", &[]);
    let action = |c: &Client| {
        let (status, body) = spot(c);
        assert_eq!(status, 200, "{}: spot/instance-action: {body}", c.who);
        let j: Value = serde_json::from_str(&body).unwrap();
        j["action"].as_str().unwrap().to_string()
    };
    // The timeline's notice (at the start) is alice's alone.
    assert_eq!(action(alice), "terminate");
    for c in [root, nobody, a, b] {
        assert_eq!(
            spot(c).0,
            404,
            "{}: the timeline's notice is for alice",
            c.who
        );
    }
    let said = ctl(&["spot", "--view", "node-a", "--action", "stop"]);
    assert!(!said.trim().is_empty());
    assert_eq!(action(a), "stop", "node-a: its notice");
    assert_eq!(action(alice), "terminate", "alice keeps hers");
    for c in [root, nobody, b] {
        assert_eq!(
            spot(c).0,
            404,
            "{}: `ctl spot --view node-a` is node-a's",
            c.who
        );
        let listing = c.body(&c.token(), "/latest/meta-data/");
        assert!(
            !listing.lines().any(|l| l == "spot/"),
            "{}: spot/ listed: {listing}",
            c.who
        );
    }
    // An unknown view: refused, nothing changed.
    let out = Command::new(BIN)
        .args(["ctl", "--socket", &socket, "spot", "--view", "node-z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "ctl spot --view node-z");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node-z"), "say which view is unknown: {err}");
    assert_eq!(spot(b).0, 404);

    // ---------------------------------------------------------------- a fault per view
    let id_status = |c: &Client| c.request("GET", "/latest/meta-data/instance-id", &[]).0;
    let fault = ctl(&[
        "fault",
        "add",
        "--view",
        "node-b",
        "--path",
        "meta-data/instance-id",
        "--status",
        "503",
    ]);
    assert_eq!(id_status(b), 503, "node-b's fault ({fault})");
    for c in [root, nobody, alice, a] {
        assert_eq!(id_status(c), 200, "{}: node-b's fault is not its", c.who);
    }
    ctl(&["fault", "clear"]);
    assert_eq!(id_status(b), 200, "node-b, the fault cleared");

    // ---------------------------------------------------------------- ctl names the views
    let list = ctl(&["view", "list"]);
    for (covers, e) in [
        ("172.18.0.2", &NODE_A),
        ("172.18.0.3", &NODE_B),
        ("4242", &ALICE),
    ] {
        let name = e.view.unwrap();
        let line = line_with(&list, name);
        assert!(
            line.contains(covers) && line.contains(e.instance_id),
            "`ctl view list`: {name}: what it covers, its instance id: {line:?}"
        );
        match e.role {
            Some(role) => assert!(line.contains(role), "{line:?}"),
            None => assert!(line.contains("none"), "node-b has no role: {line:?}"),
        }
    }
    // The box's state first, then each view's under a line naming it, what it covers, its
    // instance and role.
    let status = ctl(&["status"]);
    let parts = status_parts(&status);
    assert_eq!(
        parts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["alice", "box", "node-a", "node-b"],
        "`ctl status`: the box and each view:\n{status}"
    );
    for (view, notice) in [
        ("box", "spot: no interruption notice"),
        ("node-b", "spot: no interruption notice"),
        ("node-a", "stop"),
        ("alice", "terminate"),
    ] {
        let spot = line_with(&parts[view], "spot:");
        assert!(
            spot.contains(notice),
            "`ctl status`: {view}'s spot line says {notice:?}: {spot:?}\n{status}"
        );
    }
    let node_a_line = line_with(&status, "view node-a (");
    assert!(
        node_a_line.contains("172.18.0.2") && node_a_line.contains(NODE_A.instance_id),
        "{node_a_line:?}"
    );

    // ---------------------------------------------------------------- the journal
    let entries = journal(&ctl, &[]);
    let view_of = |e: &Value| e.get("view").cloned();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for e in &entries {
        let want = match (e["source"].as_str(), e["uid"].as_u64()) {
            (Some("172.18.0.2"), _) => Some("node-a"),
            (Some("172.18.0.3"), _) => Some("node-b"),
            (_, Some(u)) if u == u64::from(ALICE_UID) || u == u64::from(DAEMON_UID) => {
                Some("alice")
            }
            (_, Some(0 | 65534)) => None,
            _ => panic!("an entry of no client of this test: {e}"),
        };
        match want {
            Some(v) => assert_eq!(view_of(e), Some(Value::from(v)), "{e}"),
            None => assert_eq!(view_of(e), None, "the box's entries have no `view`: {e}"),
        }
        *seen.entry(want.unwrap_or("box").to_string()).or_default() += 1;
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["alice", "box", "node-a", "node-b"],
        "every instance asked: {seen:?}"
    );
    let only_a = journal(&ctl, &["--view", "node-a"]);
    assert_eq!(only_a.len(), seen["node-a"], "ctl requests --view node-a");
    assert!(only_a.iter().all(|e| e["view"] == "node-a"), "{only_a:#?}");

    // ---------------------------------------------------------------- reload
    // Without node-b: its container gets the box; the others keep theirs.
    let cut = CONFIG.find("[[view]]\nname = \"node-b\"").unwrap();
    let end = CONFIG.find("[[view]]\nname = \"alice\"").unwrap();
    let without_b = format!("{head}{}{}", &CONFIG[..cut], &CONFIG[end..]);
    common::daemon::write_config(Path::new(&config), &without_b);
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = std::time::Instant::now() + common::patience(Duration::from_secs(10));
    loop {
        let (_, id) = b.request("GET", "/latest/meta-data/instance-id", &[]);
        if id == BOX.instance_id {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node-b still sees {id} after a reload without its view:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, id) = a.request("GET", "/latest/meta-data/instance-id", &[]);
    assert_eq!(id, NODE_A.instance_id, "node-a keeps its view");
    let (_, id) = alice.request("GET", "/latest/meta-data/instance-id", &[]);
    assert_eq!(id, ALICE.instance_id, "alice keeps her view");
    let list = ctl(&["view", "list"]);
    assert!(!list.contains("node-b"), "{list}");

    let uninstalled = bx.output(BIN, &["uninstall", "--config", &config]);
    assert!(uninstalled.status.success());
    drop(daemon);
}

/// `ctl requests --json --no-docker ARGS`: one JSON object a line.
fn journal(ctl: &dyn Fn(&[&str]) -> String, args: &[&str]) -> Vec<Value> {
    ctl(&[&["requests", "--json", "--no-docker"], args].concat())
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `ctl status` in parts: the box's (the lines before the first view's), then each view's
/// (from its line `view NAME (…):`), by name.
fn status_parts(status: &str) -> std::collections::BTreeMap<String, String> {
    let mut parts = std::collections::BTreeMap::new();
    let mut name = "box".to_string();
    let mut part = String::new();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("view ") {
            parts.insert(std::mem::take(&mut name), std::mem::take(&mut part));
            name = rest.split(' ').next().unwrap_or_default().to_string();
        }
        part.push_str(line);
        part.push('\n');
    }
    parts.insert(name, part);
    parts
}

/// The line of `text` that holds `needle` (panics if none does).
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// Each `(who, document, signature)`: the real openssl verifies the signature (RSA-SHA256)
/// over that document with the daemon's certificate, and refuses it over the next one's
/// (when the documents differ).
fn verify_signatures(dir: &Path, config: &str, identities: &[(&str, String, String)]) {
    let openssl = Openssl::with_cert_of(config, &dir.join("identity"));
    for (i, (who, doc, sig)) in identities.iter().enumerate() {
        let (ok, out) = openssl.verify(doc, sig);
        assert!(
            ok && out.contains("Verified OK"),
            "{who}: its signature over its document: {out}"
        );
        let (other, other_doc, _) = &identities[(i + 1) % identities.len()];
        if other_doc != doc {
            let (ok, out) = openssl.verify(other_doc, sig);
            assert!(
                !ok,
                "{who}'s signature verified over {other}'s document: {out}"
            );
        }
    }
}

/// The packaged config's view example, uncommented, is a valid config that `print-config`
/// shows back.
#[test]
fn the_packaged_view_example_is_valid() {
    let packaged = include_str!("../packaging/config.toml");
    let start = packaged.find("# [[view]]").expect("a [[view]] example");
    let example: String = packaged[start..]
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
        .collect();
    let (code, said) = common::daemon::check_config(&example, "view-example");
    assert_eq!(code, Some(0), "{said}\n{example}");
    let dir = common::daemon::workdir("view-example-print");
    let file = dir.path().join("config.toml");
    common::daemon::write_config(&file, &example);
    let out = Command::new(BIN)
        .args(["print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in ["[[view]]", "node-a", "i-0aaaaaaaaaaaaaaaa", "node-a-role"] {
        assert!(shown.contains(want), "print-config shows {want}:\n{shown}");
    }
}

/// `check-config`: two views that can cover the same client get a warning naming both (the
/// file is still valid: the first wins); an unknown key in a view is an error at its
/// FILE:LINE:COL.
#[test]
fn check_config_warns_of_overlapping_views_and_places_unknown_keys() {
    let overlapping = "[[view]]\nname = \"fleet\"\nsources = [\"172.18.0.0/16\"]\n\
                       [[view]]\nname = \"node-a\"\nsources = [\"172.18.0.2\"]\n";
    let (code, said) = common::daemon::check_config(overlapping, "view-overlap");
    assert_eq!(code, Some(0), "overlap is a warning, not an error: {said}");
    let warning = said
        .lines()
        .find(|l| l.contains("fleet") && l.contains("node-a"))
        .unwrap_or_else(|| panic!("a warning naming both views:\n{said}"));
    println!("{warning}");

    let shared_uid =
        "[[view]]\nname = \"a\"\nuids = [4242]\n[[view]]\nname = \"b\"\nuids = [4242]\n";
    let (code, said) = common::daemon::check_config(shared_uid, "view-uid");
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.lines()
            .any(|l| l.contains("`a`") && l.contains("`b`")
                || l.contains(" a ") && l.contains(" b ")),
        "a warning naming both views (a shared uid):\n{said}"
    );

    let unknown = "[[view]]\nname = \"node-a\"\nsources = [\"172.18.0.2\"]\n[view.instance]\ninstanse-id = \"i-0aaaaaaaaaaaaaaaa\"\n";
    let (code, said) = common::daemon::check_config(unknown, "view-unknown");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("config.toml:5:1") && said.contains("instanse-id"),
        "the unknown key at FILE:LINE:COL: {said}"
    );

    let neither = "[[view]]\nname = \"node-a\"\n";
    let (code, said) = common::daemon::check_config(neither, "view-neither");
    assert_eq!(
        code,
        Some(1),
        "a view covers no one without sources or uids: {said}"
    );
    assert!(
        said.contains("config.toml:") && said.contains("node-a"),
        "{said}"
    );
}
