//! Issue 5's acceptance, as root, against the real kernel and the real binary: `fake-metadata
//! install`, `serve`, `status` and `uninstall` (built by cargo, nothing special), reached by
//! unmodified clients (`curl`, the `aws-config` crate's default chain) at
//! `http://169.254.169.254/` and `http://[fd00:ec2::254]/`; and the token reply's hop limit
//! across real veth hops (a container behind a bridge, and one more hop behind it).
//!
//! SAFETY: on a development or CI machine 169.254.169.254 may route to a real gateway. Nothing
//! here touches the namespace the test runner started in:
//! - the `unmodified_clients_*` tests first move their own thread into a new, empty network
//!   namespace ([`fresh_netns`], which panics if the namespace did not change); every command
//!   and thread they start afterwards inherits it;
//! - the `hop_limit_*` tests only ever run `ip -n NS …` and `ip netns exec NS …` on named
//!   namespaces they create (`fm-<pid>-<n>-<role>`) and delete on drop ([`Namespaces`]).
//!
//! Every daemon started here is stopped by PID when its [`Daemon`] guard drops.
//!
//! Run: `sudo -E cargo test --test netns_daemon` (needs `iptables`, `curl`, `iproute2`).
//! Under `CI=true` a test that cannot run fails; elsewhere it prints "skipped: …" and passes.

mod common;

use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use common::netns::{
    self, Namespaces, Ns, PATH, attach, bridge, fresh_netns, ip_n, lo_addresses, own_netns, port,
    sysctl, veth,
};
use common::{Daemon, aws_env};

use nix::unistd::User;

const BIN: &str = env!("CARGO_BIN_EXE_fake-metadata");
const INSTANCE_ID: &str = "i-0123456789abcdef0";
const IMDS: &str = "http://169.254.169.254";
const IMDS_V6: &str = "http://[fd00:ec2::254]";
const TOKEN_TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds: 21600";
/// Set (to the expected namespace) when this binary is re-run as the aws-config client.
const AWS_CHILD_ENV: &str = "FM_NETNS_DAEMON_AWS_CHILD";
/// curl's exit code for "operation timed out": connected, but no reply came.
const CURL_TIMEOUT: i32 = 28;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/netns/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The tools every test here uses (with root: [`netns::prerequisites`]).
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("ip6tables", "iptables"),
    ("curl", "curl"),
];

/// What only these tests ask of a namespace: curl's IMDS flows and the binary's subcommands.
impl Ns<'_> {
    /// The real `curl`: silent but showing errors, never through a proxy.
    fn curl(self, max_time: u64, args: &[&str]) -> Output {
        let t = max_time.to_string();
        let mut all = vec!["-sS", "--noproxy", "*", "--max-time", &t];
        all.extend_from_slice(args);
        self.output("curl", &all)
    }

    /// `curl -f`; panics unless it succeeds; returns the body.
    fn curl_ok(self, base: &str, args: &[&str]) -> String {
        let out = self.curl(5, &[&["-f"], args].concat());
        assert!(
            out.status.success(),
            "{self}: curl {args:?} via {base} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The IMDSv2 token PUT, as every SDK sends it.
    fn token(self, base: &str, max_time: u64) -> Output {
        let url = format!("{base}/latest/api/token");
        self.curl(max_time, &["-f", "-X", "PUT", "-H", TOKEN_TTL, &url])
    }

    /// IMDSv1 GET of the instance id.
    fn v1_instance_id(self, base: &str) -> String {
        let url = format!("{base}/latest/meta-data/instance-id");
        self.curl_ok(base, &[&url])
    }

    /// The whole IMDSv2 flow: token PUT, then GET with the token.
    fn v2_instance_id(self, base: &str) -> String {
        let out = self.token(base, 5);
        assert!(
            out.status.success(),
            "{self}: token PUT to {base} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!token.is_empty(), "{self}: empty token from {base}");
        let header = format!("X-aws-ec2-metadata-token: {token}");
        let url = format!("{base}/latest/meta-data/instance-id");
        self.curl_ok(base, &["-H", &header, &url])
    }

    /// `fake-metadata SUBCOMMAND --config F`: (exit status, stdout + stderr).
    fn fake_metadata(self, subcommand: &str, config: &str) -> (ExitStatus, String) {
        let out = self.output(BIN, &[subcommand, "--config", config]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ fake-metadata {subcommand} --config {config}\n{text}");
        (out.status, text)
    }
}

/// Lines of `nat OUTPUT` tagged as ours, read with the same tool `install` uses.
fn tagged_rules(ns: Ns, iptables: &str) -> Vec<String> {
    ns.ok(iptables, &["-w", "-t", "nat", "-S", "OUTPUT"])
        .lines()
        .filter(|l| l.contains("fake-metadata"))
        .map(str::to_string)
        .collect()
}

/// `fake-metadata serve --config CONFIG` started as root in `ns` with nothing of our
/// environment, once it logs `listening`; SIGTERM (then SIGKILL) by PID when dropped.
fn serve_in(ns: Ns, config: &str) -> Daemon {
    Daemon::run(&["serve", "--config", config])
        .clean_env(PATH)
        .wrapper(&ns.wrapper())
        .ready_within(Duration::from_secs(5))
        .stop_on_drop(Duration::from_millis(500))
        .start()
}

/// The user the daemon drops to: `fake-metadata` if it exists, else `nobody`.
fn service_uid() -> u32 {
    let user = User::from_name("fake-metadata")
        .ok()
        .flatten()
        .or_else(|| User::from_name("nobody").ok().flatten())
        .expect("user `fake-metadata` or `nobody`");
    user.uid.as_raw()
}

/// Runs [`aws_sdk_client_in_namespace`] in a child process of this test binary, started from
/// this thread (so it is in this namespace) with an environment of our choosing: no AWS_*
/// variables but `extra`, and profile files that do not exist.
fn run_aws_sdk_child(extra: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Ns::Here.command(exe.to_str().expect("utf-8 path"));
    aws_env(None)
        .set("PATH", PATH)
        .set_all(extra)
        .apply(&mut cmd);
    cmd.args([
        "aws_sdk_client_in_namespace",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(AWS_CHILD_ENV, own_netns());
    let out = cmd.output().expect("run the aws-config child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "aws-config client failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the aws-config client did not run:\n{text}"
    );
    for line in text.lines().filter_map(|l| l.split_once("aws-config: ")) {
        println!("aws-config: {}", line.1);
    }
    text
}

/// The `aws-config` crate as an unmodified program on an EC2 instance uses it: the default
/// chain with no endpoint override. Only does something when [`run_aws_sdk_child`] runs it
/// inside the namespace of a test (it checks it is there); otherwise it returns at once.
#[test]
#[ignore = "helper: run by the unmodified_clients_* tests inside their network namespace"]
fn aws_sdk_client_in_namespace() {
    let Ok(expected_ns) = std::env::var(AWS_CHILD_ENV) else {
        eprintln!("nothing to do: only the unmodified_clients_* tests run this, in their netns");
        return;
    };
    // SAFETY: never talk to 169.254.169.254 outside the test's namespace.
    assert_eq!(own_netns(), expected_ns, "SAFETY: not in the test's netns");
    assert!(
        lo_addresses(Ns::Here).contains("169.254.169.254/32"),
        "SAFETY: interception is not installed here"
    );
    for (k, _) in std::env::vars() {
        assert!(
            !k.starts_with("AWS_")
                || matches!(
                    k.as_str(),
                    "AWS_CONFIG_FILE"
                        | "AWS_SHARED_CREDENTIALS_FILE"
                        | "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"
                ),
            "unexpected {k} in the client's environment"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let region = conf.region().map(ToString::to_string);
        assert_eq!(
            region.as_deref(),
            Some("us-east-1"),
            "the default chain did not get the region from IMDS"
        );
        let id = aws_config::imds::Client::builder()
            .build()
            .get("/latest/meta-data/instance-id")
            .await
            .expect("aws_config::imds::Client GET instance-id");
        assert_eq!(id.as_ref(), INSTANCE_ID);
        println!(
            "aws-config: region {} and instance id {} from IMDS",
            region.unwrap_or_default(),
            id.as_ref()
        );
    });
}

/// `install` twice: the first adds, the second changes nothing and says so.
fn install_twice(config: &str, expect_added: usize) {
    let (status, first) = Ns::Here.fake_metadata("install", config);
    assert!(status.success(), "install failed: {first}");
    assert_eq!(
        first.matches(": added").count(),
        expect_added,
        "first install should add the address(es) and rule(s):\n{first}"
    );
    let (status, second) = Ns::Here.fake_metadata("install", config);
    assert!(status.success(), "second install failed: {second}");
    assert!(
        !second.contains("added") && !second.contains("removed"),
        "second install changed something:\n{second}"
    );
    assert_eq!(
        second.matches("already present").count(),
        expect_added,
        "second install should report everything as already present:\n{second}"
    );
}

/// Uninstall, then nothing of ours is left and `status` fails.
fn uninstall_leaves_nothing(config: &str) {
    let (status, text) = Ns::Here.fake_metadata("uninstall", config);
    assert!(status.success(), "uninstall failed: {text}");
    let (status, text) = Ns::Here.fake_metadata("status", config);
    assert!(
        !status.success(),
        "status after uninstall should fail:\n{text}"
    );
    let lo = lo_addresses(Ns::Here);
    assert!(
        !lo.contains("169.254.169.254") && !lo.contains("fd00:ec2::254"),
        "address left on lo after uninstall: {lo}"
    );
    for tool in ["iptables", "ip6tables"] {
        let left = tagged_rules(Ns::Here, tool);
        assert!(
            left.is_empty(),
            "{tool} rules left after uninstall: {left:?}"
        );
    }
    for (table, chain) in [("nat", "PREROUTING"), ("filter", "INPUT")] {
        let left = tagged_in(Ns::Here, table, chain);
        assert!(left.is_empty(), "{table} {chain} rules left: {left:?}");
    }
    let out = Ns::Here.curl(2, &[&format!("{IMDS}/latest/meta-data/instance-id")]);
    assert!(!out.status.success(), "IMDS still answers after uninstall");
}

/// Starts the daemon as root and checks it dropped to the service user.
fn start_unprivileged(config: &str) -> Daemon {
    let daemon = serve_in(Ns::Here, config);
    let uids = daemon.uids();
    assert!(
        uids.iter().all(|&u| u != 0),
        "the daemon still runs as root (Uid: {uids:?}):\n{}",
        daemon.log()
    );
    assert_eq!(
        uids,
        vec![service_uid(); 4],
        "the daemon did not become the service user"
    );
    daemon
}

/// Stops the daemon with SIGTERM and checks it exits cleanly.
fn stop_cleanly(mut daemon: Daemon) -> String {
    let status = daemon.stop(Duration::from_secs(5));
    let log = daemon.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "the daemon did not exit 0 on SIGTERM within 5 s ({status:?}):\n{log}"
    );
    log
}

/// IPv4, default config: install, serve (dropping root), curl v1 and v2, the aws-config
/// default chain, status, uninstall.
#[test]
fn unmodified_clients_v4() {
    if !fresh_netns("unmodified_clients_v4", TOOLS) {
        return;
    }
    let config = fixture("v4.toml");
    // For each of IMDS, the ECS agent and Pod Identity: the address, the box's REDIRECT and
    // the container path (4 DNATs, one drop).
    install_twice(&config, 21);
    let lo = lo_addresses(Ns::Here);
    for a in [
        "169.254.169.254/32",
        "169.254.170.2/32",
        "169.254.170.23/32",
    ] {
        assert!(lo.contains(a), "install did not put {a} on lo: {lo}");
    }
    assert_eq!(tagged_rules(Ns::Here, "iptables").len(), 3);
    assert!(
        tagged_rules(Ns::Here, "ip6tables").is_empty(),
        "IPv6 interception without http-protocol-ipv6"
    );

    let (status, text) = Ns::Here.fake_metadata("status", &config);
    assert!(
        !status.success(),
        "status should fail while no daemon answers:\n{text}"
    );

    let daemon = start_unprivileged(&config);
    assert_eq!(Ns::Here.v1_instance_id(IMDS), INSTANCE_ID, "curl IMDSv1");
    assert_eq!(Ns::Here.v2_instance_id(IMDS), INSTANCE_ID, "curl IMDSv2");
    let bogus = Ns::Here.curl(
        5,
        &[
            "-f",
            "-H",
            "X-aws-ec2-metadata-token: bogus",
            &format!("{IMDS}/latest/meta-data/instance-id"),
        ],
    );
    assert!(!bogus.status.success(), "a bogus token was accepted");

    let sdk = run_aws_sdk_child(&[]);
    assert!(sdk.contains("region us-east-1"), "{sdk}");
    let log = daemon.log();
    assert!(
        log.contains("peer=169.254.169.254:"),
        "the daemon should see REDIRECTed clients as 169.254.169.254:\n{log}"
    );

    let (status, text) = Ns::Here.fake_metadata("status", &config);
    assert!(status.success(), "status with all in place failed:\n{text}");
    assert!(text.contains(INSTANCE_ID), "{text}");
    assert!(
        text.contains("the ECS agent's refusal") && text.contains("Pod Identity's refusal"),
        "{text}"
    );

    // A task and a pod through 169.254.170.2 and 169.254.170.23, with only what `ctl`
    // prints: botocore's container provider.
    if botocore_available("unmodified_clients_v4") {
        let ctl = |args: &[&str]| {
            Ns::Here.ok(BIN, &[&["ctl", "--config", config.as_str()], args].concat())
        };
        let task_env = ctl(&["task", "env", "web"]);
        let (method, key) = botocore_credentials(&task_env);
        assert_eq!(method, "container-role");
        let relative = env_value(&task_env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        let served = Ns::Here.curl_ok("ecs", &[&format!("http://169.254.170.2{relative}")]);
        assert!(
            served.contains(&key) && served.contains("role/web-task-role"),
            "{served}"
        );
        let token_file = format!("/tmp/fm-netns-v4-{}.token", std::process::id());
        let pod_env = ctl(&["pod", "env", "shop/cart", "--token-file", &token_file]);
        let (method, pod_key) = botocore_credentials(&pod_env);
        std::fs::remove_file(&token_file).unwrap();
        assert_eq!(method, "container-role");
        assert_ne!(pod_key, key);
        let log = daemon.log();
        assert!(
            log.contains("endpoint=ecs") && log.contains("endpoint=pod-identity"),
            "{log}"
        );
        assert!(!log.contains(relative.rsplit('/').next().unwrap()), "{log}");
    }

    uninstall_leaves_nothing(&config);
    stop_cleanly(daemon);
}

/// The value of `key` in `KEY=VALUE` lines.
fn env_value(lines: &str, key: &str) -> String {
    lines
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {lines}"))
        .to_string()
}

/// botocore's credential chain with the `KEY=VALUE` lines as its only settings: its
/// provider (`method`) and the access key id.
fn botocore_credentials(env_lines: &str) -> (String, String) {
    let mut cmd = Ns::Here.command(&python3());
    let mut env = aws_env(None)
        .set("PATH", PATH)
        .set("AWS_EC2_METADATA_DISABLED", "true");
    for l in env_lines.lines() {
        if let Some((k, v)) = l.split_once('=') {
            env = env.set(k, v);
        }
    }
    env.apply(&mut cmd);
    let out = cmd
        .args([
            "-c",
            "import botocore.session\n\
             c = botocore.session.get_session().get_credentials()\n\
             print(c.method, c.get_frozen_credentials().access_key)",
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "botocore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (m, k) = text.trim().split_once(' ').expect("method and key");
    (m.to_string(), k.to_string())
}

/// IPv6 interception enabled: curl to `[fd00:ec2::254]` (v1 and v2, so the IPv6 hop-limit
/// path runs too), aws-config with `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`, IPv4 still
/// works; uninstall removes both families.
#[test]
fn unmodified_clients_v6() {
    if !fresh_netns("unmodified_clients_v6", TOOLS) {
        return;
    }
    let config = fixture("v6.toml");
    // IMDS and Pod Identity: both addresses and REDIRECTs, and the (IPv4) container path
    // (4 DNATs, one drop); the ECS agent: IPv4 only (7).
    install_twice(&config, 25);
    let lo = lo_addresses(Ns::Here);
    assert!(
        lo.contains("169.254.169.254/32") && lo.contains("fd00:ec2::254/128"),
        "{lo}"
    );
    assert_eq!(tagged_rules(Ns::Here, "iptables").len(), 3);
    assert_eq!(tagged_rules(Ns::Here, "ip6tables").len(), 2);

    let daemon = start_unprivileged(&config);
    assert!(
        daemon.log().contains("[::1]:1338"),
        "the daemon should listen on [::1]:1338 too:\n{}",
        daemon.log()
    );
    assert_eq!(
        Ns::Here.v1_instance_id(IMDS_V6),
        INSTANCE_ID,
        "curl v1, IPv6"
    );
    assert_eq!(
        Ns::Here.v2_instance_id(IMDS_V6),
        INSTANCE_ID,
        "curl v2, IPv6"
    );
    assert_eq!(Ns::Here.v2_instance_id(IMDS), INSTANCE_ID, "curl v2, IPv4");

    let v6_peers = |log: &str| log.matches("peer=[fd00:ec2::254]:").count();
    let before = v6_peers(&daemon.log());
    assert!(before >= 3, "{}", daemon.log());
    run_aws_sdk_child(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")]);
    assert!(
        v6_peers(&daemon.log()) >= before + 2,
        "aws-config in IPv6 mode did not reach the daemon over IPv6:\n{}",
        daemon.log()
    );

    let (status, text) = Ns::Here.fake_metadata("status", &config);
    assert!(status.success(), "status with all in place failed:\n{text}");
    uninstall_leaves_nothing(&config);
    stop_cleanly(daemon);
}

/// A container as Docker makes one: [`bridge`] `name` (with `addr`) in `bx`, and `ctr`
/// [`attach`]ed to it by `veth` with `ctr_addr`, its default route via the bridge.
fn bridged_container(bx: Ns, (name, addr, veth): (&str, &str, &str), ctr: Ns, ctr_addr: &str) {
    let gw = addr.split('/').next().expect("an address");
    bridge(bx, name, addr);
    attach(bx, name, veth, ctr, ctr_addr, gw);
}

/// The world of the hop-limit tests:
///
/// ```text
///   box (daemons, interception)  10.254.1.1 ─veth─ 10.254.1.2  ctr (a container, 1 hop)
///                                                  10.254.2.1 ─veth─ 10.254.2.2  far (2 hops)
/// ```
///
/// In box, `fake-metadata install` routes both box's own connections and the containers'
/// (its container path: a DNAT to 169.254.169.254:<port>, where the daemon also listens). ctr
/// forwards for far.
struct HopWorld {
    nss: Namespaces,
}

const BOX: usize = 0;
const CTR: usize = 1;
const FAR: usize = 2;

impl HopWorld {
    fn create(test: &str) -> Option<HopWorld> {
        if !netns::prerequisites(test, TOOLS) {
            return None;
        }
        let nss = Namespaces::create(test, &["box", "ctr", "far"])?;
        let (bx, ctr, far) = (nss.get(BOX), nss.get(CTR), nss.get(FAR));
        // The box's side is named as Docker names its bridge: only container networks reach
        // the daemon through the container path.
        veth(bx, "docker0", "10.254.1.1/24", ctr, "eth0", "10.254.1.2/24");
        veth(ctr, "br1", "10.254.2.1/24", far, "eth0", "10.254.2.2/24");
        ip_n(ctr, &["route", "add", "default", "via", "10.254.1.1"]);
        ip_n(far, &["route", "add", "default", "via", "10.254.2.1"]);
        ip_n(bx, &["route", "add", "10.254.2.0/24", "via", "10.254.1.2"]);
        sysctl(ctr, "ipv4/ip_forward", "1");
        Some(HopWorld { nss })
    }

    fn ns(&self, i: usize) -> Ns<'_> {
        self.nss.get(i)
    }

    /// Points box's interception (box's own REDIRECT and the containers' DNAT, both through
    /// `fake-metadata install`) at the daemon of `config`, listening on `port`.
    fn point_at(&self, config: &str, port: u16) {
        let (status, text) = self.ns(BOX).fake_metadata("install", config);
        assert!(status.success(), "install in box failed: {text}");
        assert!(
            text.contains(&format!("-> 169.254.169.254:{port}")),
            "install did not DNAT containers to port {port}:\n{text}"
        );
    }

    /// ICMP "time exceeded" messages sent by `i` so far (`/proc/net/snmp` is per namespace).
    fn time_exceeded_sent(&self, i: usize) -> u64 {
        let snmp = self.ns(i).ok("cat", &["/proc/net/snmp"]);
        let icmp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Icmp:")).collect();
        let (names, values) = (icmp[0], icmp[1]);
        let col = names
            .split_whitespace()
            .position(|n| n == "OutTimeExcds")
            .expect("OutTimeExcds in /proc/net/snmp");
        values.split_whitespace().nth(col).unwrap().parse().unwrap()
    }
}

/// Token replies the daemon logged as sent to `peer` (a withheld one is not logged).
fn token_replies(log: &str, peer: &str) -> usize {
    let peer = format!("peer={peer}:");
    log.lines()
        .filter(|l| l.contains(&peer) && l.contains("method=PUT") && l.contains("status=200"))
        .count()
}

/// A token PUT that must get no reply: curl connects, then times out.
fn assert_token_withheld(ns: Ns, who: &str, limit: u8) {
    let started = Instant::now();
    let out = ns.token(IMDS, 3);
    assert_eq!(
        out.status.code(),
        Some(CURL_TIMEOUT),
        "{who} at hop limit {limit}: the token PUT should connect and then get no reply \
         (curl exit 28, timeout), got {} after {:?}: stdout {:?} stderr {}",
        out.status,
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Hop limit 1 vs 2 for a container one hop away (a Docker bridge): at 1 its token PUT gets
/// no reply while box's own succeeds and its IMDSv1 GET still works; at 2 it succeeds.
#[test]
fn hop_limit_container_one_hop_away() {
    let Some(world) = HopWorld::create("hop_limit_container_one_hop_away") else {
        return;
    };
    let (bx, ctr) = (world.ns(BOX), world.ns(CTR));
    let (hop1, hop2) = (fixture("hop1.toml"), fixture("hop2.toml"));
    world.point_at(&hop1, 1341);
    let d1 = serve_in(bx, &hop1);
    let d2 = serve_in(bx, &hop2);

    assert_eq!(bx.v2_instance_id(IMDS), INSTANCE_ID, "box at hop limit 1");
    assert_eq!(
        ctr.v1_instance_id(IMDS),
        INSTANCE_ID,
        "ctr IMDSv1 at hop limit 1 (only the token reply is limited)"
    );
    assert_token_withheld(ctr, "ctr (1 hop)", 1);
    assert!(
        d1.log().contains("peer=10.254.1.2:"),
        "the daemon should see the container's own address:\n{}",
        d1.log()
    );
    assert_eq!(
        token_replies(&d1.log(), "10.254.1.2"),
        0,
        "the token reply to ctr should have been withheld:\n{}",
        d1.log()
    );

    world.point_at(&hop2, 1342);
    assert_eq!(bx.v2_instance_id(IMDS), INSTANCE_ID, "box at hop limit 2");
    assert_eq!(ctr.v2_instance_id(IMDS), INSTANCE_ID, "ctr at hop limit 2");
    assert_eq!(ctr.v1_instance_id(IMDS), INSTANCE_ID, "ctr IMDSv1, hop 2");
    println!(
        "hop limit 1 daemon:\n{}\nhop limit 2 daemon:\n{}",
        d1.log(),
        d2.log()
    );
    drop((d2, d1));
}

/// Two hops (a container behind a container): the daemon can only count one, so at limit 2
/// it sends the token reply with TTL 1 and the kernel of ctr, which forwards, drops it (and
/// says so with ICMP time exceeded); at limit 3 (TTL 2) it arrives. Proves the IP TTL of the
/// reply is really set.
#[test]
fn hop_limit_two_hops_is_the_kernel_ttl() {
    let Some(world) = HopWorld::create("hop_limit_two_hops_is_the_kernel_ttl") else {
        return;
    };
    let far = world.ns(FAR);
    let (hop2, hop3) = (fixture("hop2.toml"), fixture("hop3.toml"));
    world.point_at(&hop2, 1342);
    let d2 = serve_in(world.ns(BOX), &hop2);
    let d3 = serve_in(world.ns(BOX), &hop3);

    assert_eq!(far.v1_instance_id(IMDS), INSTANCE_ID, "far IMDSv1, hop 2");
    let dropped_before = world.time_exceeded_sent(CTR);
    assert_token_withheld(far, "far (2 hops)", 2);
    let dropped = world.time_exceeded_sent(CTR) - dropped_before;
    assert!(
        dropped >= 1,
        "ctr should have dropped the TTL-1 token reply (ICMP time exceeded), sent {dropped}"
    );
    assert_eq!(
        token_replies(&d2.log(), "10.254.2.2"),
        1,
        "the daemon should have sent the reply (to die on the way), not withheld it:\n{}",
        d2.log()
    );

    world.point_at(&hop3, 1343);
    assert_eq!(far.v2_instance_id(IMDS), INSTANCE_ID, "far at hop limit 3");
    println!(
        "ctr sent {dropped} ICMP time exceeded\nhop limit 2 daemon:\n{}\nhop limit 3 daemon:\n{}",
        d2.log(),
        d3.log()
    );
    drop((d3, d2));
}

/// What Docker builds, in named namespaces of our own:
///
/// ```text
///   ctr  eth0 10.254.3.2 ─veth─ vethc0a1b2 ┐
///                                          docker0 10.254.3.1 ┐
///   cmp  eth0 10.254.4.2 ─veth─ vethd3e4f5 ┐                  box (daemons, `install`)
///                                   br-0f1e2d3c4b5a 10.254.4.1 ┘  eth0 192.168.77.1
///                                                                   │ (veth, named like a NIC)
///   lan  eth0 192.168.77.2, 169.254.169.254 routed via the box ─────┘
///   lanbr eth0 192.168.78.2 ─veth─ vethlan0 ─ br0 192.168.78.1 (a host bridge uplink)
///   lanbond eth0 192.168.79.2 ─veth─ bond0 192.168.79.1 (an uplink named like a bond)
/// ```
///
/// ctr is a container on the default bridge, cmp one on a compose network; each has its own
/// default route via its bridge. lan, lanbr and lanbond are neighbours on the box's LAN, on
/// uplinks of three names, that route 169.254.169.254 through the box. No `route_localnet`
/// anywhere.
struct DockerWorld {
    nss: Namespaces,
}

const D_BOX: usize = 0;
const D_CTR: usize = 1;
const D_CMP: usize = 2;
const D_LAN: usize = 3;
const D_LAN_BR: usize = 4;
const D_LAN_BOND: usize = 5;

impl DockerWorld {
    fn create(test: &str) -> Option<DockerWorld> {
        if !netns::prerequisites(test, TOOLS) {
            return None;
        }
        let nss = Namespaces::create(test, &["box", "ctr", "cmp", "lan", "lanbr", "lanbond"])?;
        let bx = nss.get(D_BOX);
        bridged_container(
            bx,
            ("docker0", "10.254.3.1/24", "vethc0a1b2"),
            nss.get(D_CTR),
            "10.254.3.2/24",
        );
        bridged_container(
            bx,
            ("br-0f1e2d3c4b5a", "10.254.4.1/24", "vethd3e4f5"),
            nss.get(D_CMP),
            "10.254.4.2/24",
        );
        let lan = nss.get(D_LAN);
        veth(
            bx,
            "eth0",
            "192.168.77.1/24",
            lan,
            "eth0",
            "192.168.77.2/24",
        );
        ip_n(
            lan,
            &["route", "add", "169.254.169.254/32", "via", "192.168.77.1"],
        );
        // A host bridge as the uplink (the LAN port enslaved to br0), and a bond-named one.
        let lanbr = nss.get(D_LAN_BR);
        bridge(bx, "br0", "192.168.78.1/24");
        port(bx, "br0", "vethlan0", lanbr, "192.168.78.2/24");
        ip_n(
            lanbr,
            &["route", "add", "169.254.169.254/32", "via", "192.168.78.1"],
        );
        let lanbond = nss.get(D_LAN_BOND);
        veth(
            bx,
            "bond0",
            "192.168.79.1/24",
            lanbond,
            "eth0",
            "192.168.79.2/24",
        );
        ip_n(
            lanbond,
            &["route", "add", "169.254.169.254/32", "via", "192.168.79.1"],
        );
        Some(DockerWorld { nss })
    }

    fn ns(&self, i: usize) -> Ns<'_> {
        self.nss.get(i)
    }

    /// `fake-metadata install --config CONFIG` in box; returns its report.
    fn install(&self, config: &str) -> String {
        let (status, text) = self.ns(D_BOX).fake_metadata("install", config);
        assert!(status.success(), "install in box failed: {text}");
        text
    }

    /// Packets counted by box's tagged `filter INPUT` drop rules, by rule (`iptables -v -S`).
    fn drops(&self) -> Vec<(String, u64)> {
        self.ns(D_BOX)
            .ok("iptables", &["-w", "-t", "filter", "-v", "-S", "INPUT"])
            .lines()
            .filter(|l| l.contains("fake-metadata") && l.ends_with("-j DROP"))
            .map(|l| {
                let (rule, counters) = l.split_once(" -c ").expect("-c counters");
                let packets = counters.split_whitespace().next().unwrap();
                (rule.to_string(), packets.parse().unwrap())
            })
            .collect()
    }

    fn dropped_matching(&self, needle: &str) -> u64 {
        self.drops()
            .iter()
            .filter(|(r, _)| r.contains(needle))
            .map(|(_, n)| n)
            .sum()
    }
}

/// What botocore in `ns` got from http://169.254.169.254/ with its defaults
/// (tests/peers/botocore_container.py), and how long it took.
fn botocore_in(ns: Ns) -> (serde_json::Value, Duration) {
    let script = format!(
        "{}/tests/peers/botocore_container.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let started = Instant::now();
    let mut cmd = ns.command(&python3());
    let out = aws_env(None)
        .set("PATH", PATH)
        .apply(&mut cmd)
        .arg(&script)
        .output()
        .expect("run python3");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{ns}: botocore peer failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{ns}: botocore ({took:?}): {text}");
    (
        serde_json::from_str(text.trim()).expect("one JSON object"),
        took,
    )
}

/// The `python3` the test runner's PATH finds (the one tests/all.sh installed botocore for,
/// e.g. pyenv's), as an absolute path: the commands run in a namespace get a fixed PATH.
fn python3() -> String {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
        .map_or_else(|| "python3".into(), |p| p.to_string_lossy().into_owned())
}

/// A check that botocore runs at all (installed by tests/all.sh with pip).
fn botocore_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import botocore"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || common::cannot_run(
        test,
        "python3 with botocore is needed (pip install botocore)",
    )
}

/// Tagged lines of `TABLE CHAIN` in `ns`.
fn tagged_in(ns: Ns, table: &str, chain: &str) -> Vec<String> {
    ns.ok("iptables", &["-w", "-t", table, "-S", chain])
        .lines()
        .filter(|l| l.contains("fake-metadata"))
        .map(str::to_string)
        .collect()
}

/// Issue 14 at hop limit 1 (EC2's default): containers on the default bridge and on a
/// compose network reach the daemon through `install`'s container path with their own
/// address as the peer; unmodified curl and botocore get IMDSv1, the token PUT gets no reply
/// (curl times out; botocore falls back to v1 after its 1 s timeout, as on EC2); the box's
/// own v2 still works; the LAN neighbour and direct connections get nothing; status shows
/// the container path; reinstall keeps one copy of each rule; uninstall removes it all.
#[test]
fn containers_hop_limit_1() {
    let test = "containers_hop_limit_1";
    let Some(world) = DockerWorld::create(test) else {
        return;
    };
    if !botocore_available(test) {
        return;
    }
    let (bx, ctr, cmp) = (world.ns(D_BOX), world.ns(D_CTR), world.ns(D_CMP));
    let config = fixture("ctr-hop1.toml");
    let first = world.install(&config);
    assert_eq!(
        first.matches(": added").count(),
        7,
        "address, REDIRECT, 4 DNATs (docker0, br-+, podman+, cni+), one drop:\n{first}"
    );
    let second = world.install(&config);
    assert!(
        !second.contains("added") && !second.contains("removed"),
        "reinstall changed something:\n{second}"
    );
    assert_eq!(tagged_in(bx, "nat", "OUTPUT").len(), 1);
    let mut dnats = tagged_in(bx, "nat", "PREROUTING");
    dnats.sort();
    assert_eq!(
        dnats,
        ["br-+", "cni+", "docker0", "podman+"].map(|i| format!(
            "-A PREROUTING -d 169.254.169.254/32 -i {i} -p tcp -m tcp --dport 80 -m comment \
             --comment fake-metadata -j DNAT --to-destination 169.254.169.254:1351"
        ))
    );
    assert_eq!(tagged_in(bx, "filter", "INPUT").len(), 1);

    let daemon = serve_in(bx, &config);
    assert!(
        daemon.log().contains("169.254.169.254:1351"),
        "the daemon should also listen where containers are DNATed to:\n{}",
        daemon.log()
    );

    // The box itself (and so rootless podman, whose slirp4netns/pasta connect from it).
    assert_eq!(
        bx.v2_instance_id(IMDS),
        INSTANCE_ID,
        "box v2 at hop limit 1"
    );
    for (ns, who, addr) in [(ctr, "docker0", "10.254.3.2"), (cmp, "br-*", "10.254.4.2")] {
        assert_eq!(ns.v1_instance_id(IMDS), INSTANCE_ID, "{who}: curl IMDSv1");
        assert!(
            daemon.log().contains(&format!("peer={addr}:")),
            "the daemon should see the container's own address {addr}:\n{}",
            daemon.log()
        );
        assert_token_withheld(ns, who, 1);
        assert_eq!(
            token_replies(&daemon.log(), addr),
            0,
            "{who}: the token reply should have been withheld:\n{}",
            daemon.log()
        );
    }
    let (boto, took) = botocore_in(ctr);
    assert_eq!(
        boto["token"], false,
        "botocore got a token at hop 1: {boto}"
    );
    let token_s = boto["token_seconds"].as_f64().unwrap();
    assert!(
        (0.9..3.0).contains(&token_s),
        "botocore's token PUT should end in its own 1 s timeout, took {token_s} s"
    );
    assert_eq!(
        boto["instance_id"], INSTANCE_ID,
        "botocore v1 fallback: {boto}"
    );
    assert_eq!(boto["credentials"], "iam-role", "{boto}");
    assert_eq!(boto["region"], "us-east-1", "{boto}");
    println!("botocore in ctr at hop limit 1: {took:?}");

    // The LAN neighbours, whatever the uplink is called (a NIC name, a host bridge, a bond):
    // through the box to port 80, and directly to the daemon's port, they get nothing, and
    // their packets are dropped (not refused: a neighbour learns nothing).
    for (i, uplink) in [(D_LAN, "eth0"), (D_LAN_BR, "br0"), (D_LAN_BOND, "bond0")] {
        let lan = world.ns(i);
        for url in [
            format!("{IMDS}/latest/meta-data/instance-id"),
            "http://169.254.169.254:1351/latest/meta-data/instance-id".to_string(),
        ] {
            let before = world.dropped_matching("! --ctstate DNAT");
            let out = lan.curl(2, &["-f", &url]);
            assert!(
                !out.status.success() && out.stdout.is_empty(),
                "the LAN neighbour on {uplink} got an answer from {url}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert_eq!(
                out.status.code(),
                Some(CURL_TIMEOUT),
                "the LAN neighbour on {uplink}: {url} should time out (dropped), got {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                world.dropped_matching("! --ctstate DNAT") > before,
                "the packets from {uplink} to {url} did not reach the drop: {:?}",
                world.drops()
            );
        }
    }
    assert!(
        !daemon.log().contains("peer=192.168."),
        "a LAN neighbour reached the daemon:\n{}",
        daemon.log()
    );
    // A container connecting to the daemon's port itself (not through the DNAT) gets nothing.
    let direct_before = world.dropped_matching("! --ctstate DNAT");
    let out = ctr.curl(
        2,
        &[
            "-f",
            "http://169.254.169.254:1351/latest/meta-data/instance-id",
        ],
    );
    assert!(!out.status.success(), "a direct connection was answered");
    assert!(world.dropped_matching("! --ctstate DNAT") > direct_before);

    let (status, text) = bx.fake_metadata("status", &config);
    assert!(status.success(), "status with all in place failed:\n{text}");
    assert!(
        text.contains("daemon answers containers at http://169.254.169.254:1351/")
            && text.contains(
                "nat PREROUTING dnat 169.254.169.254/32 tcp/80 from docker0 (containers)"
            )
            && text.contains("containers admitted from: docker0, br-+, podman+, cni+"),
        "{text}"
    );

    let (status, text) = bx.fake_metadata("uninstall", &config);
    assert!(status.success(), "uninstall failed: {text}");
    for (table, chain) in [
        ("nat", "OUTPUT"),
        ("nat", "PREROUTING"),
        ("filter", "INPUT"),
    ] {
        assert!(
            tagged_in(bx, table, chain).is_empty(),
            "{table} {chain} left"
        );
    }
    let out = ctr.curl(2, &[&format!("{IMDS}/latest/meta-data/instance-id")]);
    assert!(
        !out.status.success(),
        "ctr still gets metadata after uninstall"
    );
    drop(daemon);
}

/// Issue 14 at hop limit 2, and with IMDSv2 required at hop limit 1: at 2 curl and botocore
/// in a container get their token; required at 1, botocore's token PUT times out, its v1
/// fallback is refused (401) and it finds no credentials and no region, as on EC2.
/// `[intercept] containers = false` then removes the container path and containers get
/// nothing.
#[test]
fn containers_hop_limit_2_and_required() {
    let test = "containers_hop_limit_2_and_required";
    let Some(world) = DockerWorld::create(test) else {
        return;
    };
    if !botocore_available(test) {
        return;
    }
    let (bx, ctr, cmp) = (world.ns(D_BOX), world.ns(D_CTR), world.ns(D_CMP));
    let (hop2, required) = (fixture("ctr-hop2.toml"), fixture("ctr-required.toml"));
    world.install(&hop2);
    let d2 = serve_in(bx, &hop2);
    let dr = serve_in(bx, &required);

    assert_eq!(
        ctr.v2_instance_id(IMDS),
        INSTANCE_ID,
        "docker0: curl v2 at 2"
    );
    assert_eq!(cmp.v2_instance_id(IMDS), INSTANCE_ID, "br-*: curl v2 at 2");
    assert_eq!(token_replies(&d2.log(), "10.254.3.2"), 1, "{}", d2.log());
    let (boto, _) = botocore_in(cmp);
    assert_eq!(boto["token"], true, "{boto}");
    assert_eq!(boto["instance_id"], INSTANCE_ID, "{boto}");
    assert_eq!(boto["credentials"], "iam-role", "{boto}");

    let moved = world.install(&required);
    assert!(moved.contains("-> 169.254.169.254:1353: added"), "{moved}");
    assert_eq!(
        tagged_in(bx, "nat", "PREROUTING").len(),
        4,
        "one DNAT per container network"
    );
    assert_token_withheld(ctr, "docker0, required", 1);
    let (boto, _) = botocore_in(ctr);
    assert_eq!(boto["token"], false, "{boto}");
    assert_eq!(
        boto["instance_id_error"], "_RetriesExceededError",
        "botocore's v1 fallback should be refused: {boto}"
    );
    assert_eq!(boto["credentials"], serde_json::Value::Null, "{boto}");
    assert_eq!(boto["region"], serde_json::Value::Null, "{boto}");
    assert!(
        dr.log().contains("peer=10.254.3.2:") && dr.log().contains("status=401"),
        "{}",
        dr.log()
    );
    // The box itself still gets its token at hop limit 1.
    assert_eq!(bx.v2_instance_id(IMDS), INSTANCE_ID, "box, required");

    let off = format!(
        "{}/fm-ctr-off-{}.toml",
        std::env::temp_dir().display(),
        std::process::id()
    );
    std::fs::write(
        &off,
        std::fs::read_to_string(&required).unwrap() + "\n[intercept]\ncontainers = false\n",
    )
    .unwrap();
    let report = world.install(&off);
    std::fs::remove_file(&off).unwrap();
    assert_eq!(report.matches(": removed").count(), 5, "{report}");
    assert!(tagged_in(bx, "nat", "PREROUTING").is_empty());
    assert!(tagged_in(bx, "filter", "INPUT").is_empty());
    let out = ctr.curl(2, &["-f", &format!("{IMDS}/latest/meta-data/instance-id")]);
    assert!(
        !out.status.success(),
        "containers still routed when turned off"
    );
    assert_eq!(bx.v2_instance_id(IMDS), INSTANCE_ID, "box, containers off");
    drop((dr, d2));
}

/// The daemon starts before the network (cloud-init asks it first at boot), so `from-host`
/// follows the box's address as it comes and changes: a default route appears after the
/// start, then the address moves; `local-ipv4` follows each within a few seconds, without
/// a reload.
#[test]
fn from_host_follows_the_address_that_comes_after_the_start() {
    if !fresh_netns(
        "from_host_follows_the_address_that_comes_after_the_start",
        TOOLS,
    ) {
        return;
    }
    let daemon = serve_in(Ns::Here, &fixture("from-host.toml"));
    let local_ipv4 = || {
        let (status, _, body) =
            common::http(daemon.addr, "GET", "/latest/meta-data/local-ipv4", &[]);
        assert_eq!(status, 200, "{body}");
        body
    };
    let wait_for = |want: &str| {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let got = local_ipv4();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < until,
                "local-ipv4 is still {got}, not {want}:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    // No route yet: the built-in address.
    assert_eq!(local_ipv4(), "172.31.16.10");
    // An uplink (a veth pair: the kernel here may have no `dummy`), its lease, its route.
    Ns::Here.ok(
        "ip",
        &[
            "link", "add", "fm-dhcp0", "type", "veth", "peer", "name", "fm-dhcp1",
        ],
    );
    Ns::Here.ok("ip", &["addr", "add", "10.77.0.5/24", "dev", "fm-dhcp0"]);
    Ns::Here.ok("ip", &["link", "set", "fm-dhcp1", "up"]);
    Ns::Here.ok("ip", &["link", "set", "fm-dhcp0", "up"]);
    Ns::Here.ok("ip", &["route", "add", "default", "via", "10.77.0.1"]);
    wait_for("10.77.0.5");
    // A new lease: another address, the same route.
    Ns::Here.ok("ip", &["addr", "del", "10.77.0.5/24", "dev", "fm-dhcp0"]);
    Ns::Here.ok("ip", &["addr", "add", "10.77.0.9/24", "dev", "fm-dhcp0"]);
    Ns::Here.ok("ip", &["route", "add", "default", "via", "10.77.0.1"]);
    wait_for("10.77.0.9");
    let log = stop_cleanly(daemon);
    assert!(log.contains("the box's address or name changed"), "{log}");
}

// ---------------------------------------------------------------- issue 24: the journal

/// A uid with no name in the user database: the journal's `user` is `null` for it.
const NAMELESS_UID: u32 = 4242;
const NOBODY_UID: u32 = 65534;
const INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id";

/// GET `path` from IMDS at 169.254.169.254 with the real curl in `ns` as `uid`: with
/// `v2`, the token PUT first and the GET with it; else a GET without a token. The body.
fn imds_get_as(ns: Ns, uid: Option<u32>, path: &str, v2: bool) -> String {
    let curl = |args: &[&str]| {
        let mut all = vec!["-fsS", "--noproxy", "*", "--max-time", "5"];
        all.extend_from_slice(args);
        let out = ns.run_as(uid, "curl", &all);
        assert!(
            out.status.success(),
            "{ns} as uid {uid:?}: curl {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = format!("{IMDS}{path}");
    if !v2 {
        return curl(&[&url]);
    }
    let token = curl(&[
        "-X",
        "PUT",
        "-H",
        TOKEN_TTL,
        &format!("{IMDS}/latest/api/token"),
    ]);
    assert!(!token.is_empty(), "{ns} as uid {uid:?}: an empty token");
    curl(&["-H", &format!("X-aws-ec2-metadata-token: {token}"), &url])
}

/// `fake-metadata ctl --socket SOCKET ARGS` (as root, from the runner's namespace: the
/// socket is a file): (exit code, stdout, stderr).
fn ctl_at(socket: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Ns::Here.output(BIN, &[&["ctl", "--socket", socket], args].concat());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    println!("$ ctl {}\n{stdout}{stderr}", args.join(" "));
    (out.status.code(), stdout, stderr)
}

/// `ctl requests ARGS --json --no-docker`: one JSON object a line.
fn journal_entries(socket: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = ctl_at(
        socket,
        &[&["requests", "--json", "--no-docker"], args].concat(),
    );
    assert_eq!(code, Some(0), "ctl requests {args:?}: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The entries made by (`method`, `path`, `imds_version`) from `who`: a uid, or (`None`) a
/// client known by its address alone.
fn entries_of<'a>(
    entries: &'a [serde_json::Value],
    who: Option<u32>,
    method: &str,
    path: &str,
    version: u8,
) -> Vec<&'a serde_json::Value> {
    entries
        .iter()
        .filter(|e| {
            e["uid"].as_u64() == who.map(u64::from)
                && e["method"] == method
                && e["path"] == path
                && e["imds_version"] == version
        })
        .collect()
}

/// Issue 24 through the real interception, in a namespace of its own (`box`) with `install`
/// and the daemon dropped to its service user, and a container (`ctr`) behind a Docker-like
/// bridge: (a) local processes' requests to 169.254.169.254 (REDIRECT), v1 and v2, by curl
/// as root, as `nobody` and as a uid with no name (`setpriv`), are recorded with their uid
/// and user name (null for the nameless uid); (b) the container's (DNAT) with its own
/// address and no uid, and its token PUT that the hop limit withheld with no status and a
/// note; (d) `ctl requests --json --v1` lists exactly the v1 ones; (c) `ctl assert --no-v1`
/// exits 1 naming each offender and the path (also with --user, --source), 0 after
/// `ctl requests --clear` and only v2 requests; `--path '/latest/meta-data/iam/*' --max 0`
/// fails after a credentials read (by root, not by nobody); usage errors exit 2.
#[test]
fn journal_records_who_asked_through_the_interception() {
    let test = "journal_records_who_asked_through_the_interception";
    if !netns::prerequisites(test, TOOLS) {
        return;
    }
    if !common::has_program("setpriv", &["--version"]) {
        common::cannot_run(test, "`setpriv` not found (apt-get install util-linux)");
        return;
    }
    assert!(
        User::from_uid(nix::unistd::Uid::from_raw(NAMELESS_UID))
            .unwrap()
            .is_none(),
        "uid {NAMELESS_UID} has a name here: pick another nameless uid"
    );
    let nobody = User::from_uid(nix::unistd::Uid::from_raw(NOBODY_UID))
        .unwrap()
        .map(|u| u.name);
    let Some(nss) = Namespaces::create(test, &["box", "ctr"]) else {
        return;
    };
    let (bx, ctr) = (nss.get(0), nss.get(1));
    bridged_container(
        bx,
        ("docker0", "10.254.5.1/24", "vethj0u1n2"),
        ctr,
        "10.254.5.2/24",
    );
    let dir = common::daemon::workdir("netns-journal");
    let socket = dir.path().join("control.sock");
    let socket = socket.to_str().expect("utf-8 path");
    let config = dir.path().join("config.toml");
    common::daemon::write_config(
        &config,
        &format!(
            "# IMDS only, with the journal on.\n[journal]\nenabled = true\n[server]\necs-listen = []\n\
             pod-identity-listen = []\nstate-directory = \"{}\"\n[control]\nsocket = \"{socket}\"\n\
             [instance]\nfrom-host = false\n",
            dir.path().join("state").display()
        ),
    );
    let config = config.to_str().expect("utf-8 path");
    let (status, text) = bx.fake_metadata("install", config);
    assert!(status.success(), "install in box failed: {text}");
    let daemon = serve_in(bx, config);

    // (a) and (b): the requests, v1 and v2, from three local users and the container.
    let (root, nob, nameless) = (None, Some(NOBODY_UID), Some(NAMELESS_UID));
    for (uid, v2) in [
        (root, false),
        (root, true),
        (nob, false),
        (nob, true),
        (nameless, false),
    ] {
        assert_eq!(imds_get_as(bx, uid, INSTANCE_ID_PATH, v2), INSTANCE_ID);
    }
    assert_eq!(ctr.v1_instance_id(IMDS), INSTANCE_ID, "the container, v1");
    assert_token_withheld_within(ctr, 1);

    let all = journal_entries(socket, &[]);
    assert_eq!(all.len(), 9, "9 requests were made: {all:#?}");
    for e in &all {
        assert_eq!(e["endpoint"], "imds", "{e}");
        for key in [
            "seq",
            "time",
            "bytes",
            "port",
            "pid",
            "command",
            "cgroup",
            "container",
        ] {
            assert!(e.get(key).is_some(), "no `{key}` in {e}");
        }
        assert_eq!(e["container"], serde_json::Value::Null, "--no-docker: {e}");
    }
    let local = [
        (0, Some("root".to_string()), 1, "GET", INSTANCE_ID_PATH),
        (0, Some("root".into()), 2, "PUT", "/latest/api/token"),
        (0, Some("root".into()), 2, "GET", INSTANCE_ID_PATH),
        (NOBODY_UID, nobody.clone(), 1, "GET", INSTANCE_ID_PATH),
        (NOBODY_UID, nobody.clone(), 2, "PUT", "/latest/api/token"),
        (NOBODY_UID, nobody.clone(), 2, "GET", INSTANCE_ID_PATH),
        (NAMELESS_UID, None, 1, "GET", INSTANCE_ID_PATH),
    ];
    for (uid, user, version, method, path) in &local {
        let found = entries_of(&all, Some(*uid), method, path, *version);
        assert_eq!(
            found.len(),
            1,
            "one {method} {path} (v{version}) by uid {uid} expected: {all:#?}"
        );
        let e = found[0];
        assert_eq!(e["user"].as_str(), user.as_deref(), "{e}");
        assert_eq!(e["status"], 200, "{e}");
        assert_eq!(
            e["source"], "169.254.169.254",
            "a REDIRECTed local client's address: {e}"
        );
        assert!(
            e["command"].is_null() || e["command"] == "curl",
            "the process, where found, is curl: {e}"
        );
        // The daemon may read its own user's processes and names the one that asked when
        // it finds it, after the fact: a curl that has exited by then is recorded without
        // one (src/owner's tests show the finding with a process that stays).
    }
    let from_ctr: Vec<&serde_json::Value> =
        all.iter().filter(|e| e["source"] == "10.254.5.2").collect();
    assert_eq!(from_ctr.len(), 2, "the container's GET and PUT: {all:#?}");
    for e in &from_ctr {
        for key in ["uid", "user", "pid", "command", "cgroup"] {
            assert!(
                e[key].is_null(),
                "a container's request has no `{key}`: {e}"
            );
        }
    }
    let get = entries_of(&all, None, "GET", INSTANCE_ID_PATH, 1);
    assert_eq!(get.len(), 1, "{all:#?}");
    assert_eq!(get[0]["status"], 200);
    let put = entries_of(&all, None, "PUT", "/latest/api/token", 2);
    assert_eq!(put.len(), 1, "{all:#?}");
    assert!(
        put[0]["status"].is_null()
            && put[0]["note"]
                .as_str()
                .is_some_and(|n| n.contains("hop limit")),
        "the withheld token reply: no status, a note saying why: {}",
        put[0]
    );
    let (code, text, _) = ctl_at(socket, &["requests", "--no-docker"]);
    assert_eq!(code, Some(0));
    for who in [
        "user root (uid 0)",
        &format!(
            "user {} (uid {NOBODY_UID})",
            nobody.as_deref().unwrap_or("?")
        ),
        "uid 4242",
        "10.254.5.2",
    ] {
        assert!(
            text.contains(who),
            "`ctl requests` should show {who}:\n{text}"
        );
    }

    // (d) --v1: exactly the four requests without a token.
    let v1 = journal_entries(socket, &["--v1"]);
    let mut v1_who: Vec<String> = v1
        .iter()
        .map(|e| {
            assert_eq!(e["imds_version"], 1, "--v1 listed {e}");
            format!("{} {}", e["uid"], e["source"])
        })
        .collect();
    v1_who.sort();
    assert_eq!(
        v1_who,
        [
            "0 \"169.254.169.254\"",
            "4242 \"169.254.169.254\"",
            "65534 \"169.254.169.254\"",
            "null \"10.254.5.2\""
        ],
        "{v1:#?}"
    );

    // `ctl status`: the totals, and who asked without a token.
    let (code, status, _) = ctl_at(socket, &["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(status.contains("requests since"), "{status}");
    assert!(status.contains("without a token (IMDSv1): 4"), "{status}");
    for who in ["user root (uid 0)", "uid 4242", "10.254.5.2"] {
        let line = line_with(&status, who);
        assert!(
            line.ends_with(&format!(": 1: {INSTANCE_ID_PATH} (1)")),
            "`ctl status`: {who} asked once without a token: {line:?}\n{status}"
        );
    }

    // (c) ctl assert as a CI step.
    let (code, said, _) = ctl_at(socket, &["assert", "--no-v1"]);
    assert_eq!(code, Some(1), "v1 requests were made: {said}");
    for who in [
        "user root (uid 0)".to_string(),
        format!(
            "user {} (uid {NOBODY_UID})",
            nobody.as_deref().unwrap_or("?")
        ),
        "uid 4242".into(),
        "10.254.5.2".into(),
        format!("imds {INSTANCE_ID_PATH} (1)"),
        "without a token) since".into(),
    ] {
        assert!(
            said.contains(&who),
            "`ctl assert --no-v1` should name {who}:\n{said}"
        );
    }
    let (code, said, _) = ctl_at(socket, &["assert", "--no-v1", "--user", "4242"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("uid 4242") && !said.contains("root"),
        "{said}"
    );
    let (code, said, _) = ctl_at(socket, &["assert", "--no-v1", "--source", "10.254.5.2"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("10.254.5.2") && !said.contains("uid"),
        "{said}"
    );

    let (code, said, _) = ctl_at(socket, &["requests", "--clear"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(journal_entries(socket, &[]).is_empty(), "cleared");
    assert_eq!(imds_get_as(bx, root, INSTANCE_ID_PATH, true), INSTANCE_ID);
    assert_eq!(imds_get_as(bx, nob, INSTANCE_ID_PATH, true), INSTANCE_ID);
    let (code, said, _) = ctl_at(socket, &["assert", "--no-v1"]);
    assert_eq!(code, Some(0), "only v2 since the clear: {said}");
    assert!(said.starts_with("ok: "), "{said}");
    assert_eq!(
        journal_entries(socket, &[]).len(),
        4,
        "two PUTs and two GETs"
    );

    let iam = "/latest/meta-data/iam/security-credentials/";
    let role = imds_get_as(bx, root, iam, true);
    let creds = imds_get_as(bx, root, &format!("{iam}{}", role.trim()), true);
    assert!(creds.contains("AccessKeyId"), "{creds}");
    let (code, said, _) = ctl_at(
        socket,
        &["assert", "--path", "/latest/meta-data/iam/*", "--max", "0"],
    );
    assert_eq!(code, Some(1), "root read credentials: {said}");
    assert!(
        line_with(&said, "user root (uid 0)").ends_with(": 2"),
        "{said}"
    );
    let (code, said, _) = ctl_at(
        socket,
        &["assert", "--path", "/latest/meta-data/iam/*", "--max", "2"],
    );
    assert_eq!(code, Some(0), "{said}");
    let only_nobody = [
        "assert",
        "--path",
        "/latest/meta-data/iam/*",
        "--user",
        "65534",
    ];
    let (code, said, _) = ctl_at(socket, &[&only_nobody[..], &["--max", "0"]].concat());
    assert_eq!(code, Some(0), "nobody read no credentials: {said}");
    let (code, said, _) = ctl_at(socket, &[&only_nobody[..], &["--min", "1"]].concat());
    assert_eq!(code, Some(1), "{said}");

    for usage in [
        &["assert"][..],
        &["assert", "--path", "/latest/*"],
        &["assert", "--no-v1", "--path", "/latest/*", "--max", "1"],
        &["assert", "--max", "1"],
    ] {
        let (code, _, err) = ctl_at(socket, usage);
        assert_eq!(code, Some(2), "{usage:?} is a usage error: {err}");
        assert!(!err.trim().is_empty(), "{usage:?}: say what is wrong");
    }
    drop(daemon);
}

/// The line of `text` that holds `needle` (panics if none does).
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// A token PUT from `ns` that the hop limit keeps from it: curl connects, then times out
/// after `secs`.
fn assert_token_withheld_within(ns: Ns, secs: u64) {
    let out = ns.token(IMDS, secs);
    assert_eq!(
        out.status.code(),
        Some(CURL_TIMEOUT),
        "{ns}: the token PUT should get no reply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
