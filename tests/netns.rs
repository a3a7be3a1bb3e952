//! Root tests against the real kernel: rtnetlink, iptables-nft, iptables-legacy and a real
//! REDIRECT, each test in a network namespace of its own.
//!
//! SAFETY: on a development or CI machine 169.254.169.254 may route to a real gateway. Every
//! test starts with [`fresh_netns`], which moves the test's thread (and so every command and
//! thread it starts) into a new, empty network namespace and panics if it did not change
//! namespace. Nothing here runs before that.
//!
//! Run: `sudo -E cargo test --test netns` (needs `apt-get install iptables`). Under `CI=true`
//! a test that cannot run fails; elsewhere it prints "skipped: …" and passes.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use common::netns::{Ns, fresh_netns, lo_addresses};
use fake_metadata::endpoint::Endpoint;
use fake_metadata::intercept::{self as ic, Family, InterceptError, Plan, system::SystemHost};

const NFT: Backend = Backend {
    v4: "iptables-nft",
    v6: "ip6tables-nft",
};
const LEGACY: Backend = Backend {
    v4: "iptables-legacy",
    v6: "ip6tables-legacy",
};

#[derive(Clone, Copy)]
struct Backend {
    v4: &'static str,
    v6: &'static str,
}

impl Backend {
    fn host(self) -> SystemHost {
        SystemHost::new().unwrap().with_iptables(self.v4, self.v6)
    }

    /// What a test of this backend needs, for [`fresh_netns`].
    fn tools(self) -> [(&'static str, &'static str); 1] {
        [(self.v4, "iptables")]
    }

    fn cmd(self, family: Family) -> &'static str {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    /// `-A` lines of nat OUTPUT, read with the same tool that wrote them.
    fn rules(self, family: Family) -> Vec<String> {
        Ns::Here
            .ok(self.cmd(family), &["-w", "-t", "nat", "-S", "OUTPUT"])
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect()
    }

    fn tagged(self, family: Family) -> Vec<String> {
        self.rules(family)
            .into_iter()
            .filter(|l| l.contains("--comment fake-metadata "))
            .collect()
    }

    fn add_foreign_rules(self) {
        Ns::Here.ok(
            self.v4,
            &[
                "-w",
                "-t",
                "nat",
                "-A",
                "OUTPUT",
                "-d",
                "10.1.2.3/32",
                "-p",
                "tcp",
                "--dport",
                "80",
                "-j",
                "REDIRECT",
                "--to-ports",
                "9",
            ],
        );
        Ns::Here.ok(
            self.v6,
            &[
                "-w",
                "-t",
                "nat",
                "-A",
                "OUTPUT",
                "-d",
                "fd00::3/128",
                "-j",
                "ACCEPT",
            ],
        );
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn plan(port: u16, ipv6: bool) -> Plan {
    let imds = ic::Route {
        endpoint: fake_metadata::endpoint::Endpoint::Imds,
        port,
    };
    Plan::new(&[imds], ipv6).unwrap()
}

fn install_twice(backend: Backend) {
    let mut host = backend.host();
    let first = ic::install(&plan(1338, true), &mut host).unwrap();
    assert!(first.changed(), "{first}");
    let second = ic::install(&plan(1338, true), &mut host).unwrap();
    assert!(!second.changed(), "{second}");
    println!("{second}");

    let lo = lo_addresses(Ns::Here);
    assert_eq!(count(&lo, "169.254.169.254/32"), 1, "{lo}");
    assert_eq!(count(&lo, "fd00:ec2::254/128"), 1, "{lo}");
    assert_eq!(
        backend.tagged(Family::V4),
        vec![
            "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment \
             fake-metadata -j REDIRECT --to-ports 1338"
        ]
    );
    assert_eq!(backend.tagged(Family::V6).len(), 1);
    assert!(ic::status(&plan(1338, true), &mut host).unwrap().in_place());
}

/// The container path on each backend: install twice adds each rule once (the listing the
/// backend prints is the one `install` looks for), uninstall removes them all. Before that,
/// the previous version's rules (a DNAT from any interface, drops of NIC names), as the
/// backend stores them, are replaced by the install: an upgrade leaves none behind.
fn containers_install_twice(backend: Backend) {
    let tagged = |table: &str, chain: &str| -> Vec<String> {
        Ns::Here
            .ok(backend.v4, &["-w", "-t", table, "-S", chain])
            .lines()
            .filter(|l| l.contains("--comment fake-metadata "))
            .map(str::to_string)
            .collect()
    };
    let previous: [(&str, &[&str]); 3] = [
        (
            "nat",
            &[
                "-I",
                "PREROUTING",
                "1",
                "-d",
                "169.254.169.254/32",
                "-p",
                "tcp",
                "-m",
                "tcp",
                "--dport",
                "80",
                "-m",
                "comment",
                "--comment",
                "fake-metadata",
                "-j",
                "DNAT",
                "--to-destination",
                "169.254.169.254:1338",
            ],
        ),
        (
            "filter",
            &[
                "-I",
                "INPUT",
                "1",
                "-d",
                "169.254.169.254/32",
                "-i",
                "eth+",
                "-p",
                "tcp",
                "-m",
                "tcp",
                "--dport",
                "1338",
                "-m",
                "comment",
                "--comment",
                "fake-metadata",
                "-j",
                "DROP",
            ],
        ),
        (
            "filter",
            &[
                "-I",
                "INPUT",
                "1",
                "-d",
                "169.254.169.254/32",
                "!",
                "-i",
                "lo",
                "-p",
                "tcp",
                "-m",
                "tcp",
                "--dport",
                "1338",
                "-m",
                "conntrack",
                "!",
                "--ctstate",
                "DNAT",
                "-m",
                "comment",
                "--comment",
                "fake-metadata",
                "-j",
                "DROP",
            ],
        ),
    ];
    for (table, args) in previous {
        let mut all = vec!["-w", "-t", table];
        all.extend_from_slice(args);
        Ns::Here.ok(backend.v4, &all);
    }
    let before: Vec<String> = [tagged("nat", "PREROUTING"), tagged("filter", "INPUT")].concat();
    assert_eq!(before.len(), 3, "{before:?}");

    let p = plan(1338, false).with_containers(&ic::InterfacePattern::container_defaults(), &[]);
    let mut host = backend.host();
    let first = ic::install(&p, &mut host).unwrap();
    assert_eq!(first.to_string().matches(": removed").count(), 3, "{first}");
    let second = ic::install(&p, &mut host).unwrap();
    assert!(!second.changed(), "{second}");
    let prerouting = tagged("nat", "PREROUTING");
    let mut want: Vec<String> = ["docker0", "br-+", "podman+", "cni+"]
        .iter()
        .map(|i| {
            format!(
                "-A PREROUTING -d 169.254.169.254/32 -i {i} -p tcp -m tcp --dport 80 -m comment \
                 --comment fake-metadata -j DNAT --to-destination 169.254.169.254:1338"
            )
        })
        .collect();
    want.sort();
    let mut got = prerouting.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        tagged("filter", "INPUT"),
        [
            "-A INPUT -d 169.254.169.254/32 ! -i lo -p tcp -m conntrack ! --ctstate DNAT -m \
          comment --comment fake-metadata -j DROP"
        ]
    );
    assert!(ic::status(&p, &mut host).unwrap().in_place());

    let lan = ic::InterfacePattern::try_from("br-lan".to_string()).unwrap();
    let refusing =
        plan(1338, false).with_containers(&ic::InterfacePattern::container_defaults(), &[lan]);
    ic::install(&refusing, &mut host).unwrap();
    assert!(
        tagged("filter", "INPUT").contains(
            &"-A INPUT -d 169.254.169.254/32 -i br-lan -p tcp -m comment --comment \
              fake-metadata -j DROP"
                .to_string()
        ),
        "{:?}",
        tagged("filter", "INPUT")
    );
    assert!(ic::status(&refusing, &mut host).unwrap().in_place());

    let report = ic::uninstall(&mut host, false);
    assert!(!report.has_failures(), "{report}");
    assert!(tagged("nat", "PREROUTING").is_empty() && tagged("filter", "INPUT").is_empty());
}

#[test]
fn containers_install_twice_nft() {
    if fresh_netns("containers_install_twice_nft", &NFT.tools()) {
        containers_install_twice(NFT);
    }
}

#[test]
fn containers_install_twice_legacy() {
    if fresh_netns("containers_install_twice_legacy", &LEGACY.tools()) {
        containers_install_twice(LEGACY);
    }
}

#[test]
fn install_twice_nft() {
    if fresh_netns("install_twice_nft", &NFT.tools()) {
        install_twice(NFT);
    }
}

#[test]
fn install_twice_legacy() {
    if fresh_netns("install_twice_legacy", &LEGACY.tools()) {
        install_twice(LEGACY);
    }
}

/// The plan `install` makes for every endpoint (IMDS, the ECS agent, Pod Identity), with the
/// container path: three IPv4 and two IPv6 addresses on `lo`, a REDIRECT each, a DNAT per
/// endpoint and container network. Installed twice it is there once; uninstalled twice,
/// nothing of it is left and the foreign rules are kept.
fn three_endpoints_twice(backend: Backend) {
    backend.add_foreign_rules();
    let foreign_v4 = backend.rules(Family::V4);
    let routes = [
        ic::Route {
            endpoint: Endpoint::Imds,
            port: 1338,
        },
        ic::Route {
            endpoint: Endpoint::Ecs,
            port: 1339,
        },
        ic::Route {
            endpoint: Endpoint::PodIdentity,
            port: 1340,
        },
    ];
    let plan = Plan::new(&routes, true)
        .unwrap()
        .with_containers(&ic::InterfacePattern::container_defaults(), &[]);
    let mut host = backend.host();
    for round in 0..2 {
        let report = ic::install(&plan, &mut host).unwrap();
        assert_eq!(report.changed(), round == 0, "round {round}: {report}");
        let lo = lo_addresses(Ns::Here);
        for a in [
            "169.254.169.254/32",
            "169.254.170.2/32",
            "169.254.170.23/32",
            "fd00:ec2::254/128",
            "fd00:ec2::23/128",
        ] {
            assert_eq!(count(&lo, a), 1, "round {round}, {a}: {lo}");
        }
        let v4 = backend.tagged(Family::V4);
        for (addr, port) in [
            ("169.254.169.254", 1338),
            ("169.254.170.2", 1339),
            ("169.254.170.23", 1340),
        ] {
            let redirect = format!(
                "-A OUTPUT -d {addr}/32 -p tcp -m tcp --dport 80 -m comment --comment \
                 fake-metadata -j REDIRECT --to-ports {port}"
            );
            assert_eq!(v4.iter().filter(|r| **r == redirect).count(), 1, "{v4:#?}");
        }
        let v6 = backend.tagged(Family::V6);
        assert_eq!(v6.len(), 2, "IMDS's and Pod Identity's: {v6:#?}");
        let nat = Ns::Here.ok(backend.v4, &["-w", "-t", "nat", "-S", "PREROUTING"]);
        for (addr, port) in [
            ("169.254.169.254", 1338),
            ("169.254.170.2", 1339),
            ("169.254.170.23", 1340),
        ] {
            let dnat = format!("--to-destination {addr}:{port}");
            assert_eq!(
                count(&nat, &dnat),
                ic::InterfacePattern::container_defaults().len(),
                "{nat}"
            );
        }
        assert!(ic::status(&plan, &mut host).unwrap().in_place());
    }
    for round in 0..2 {
        let report = ic::uninstall(&mut host, true);
        assert_eq!(report.changed(), round == 0, "round {round}: {report}");
        assert!(!report.has_failures(), "{report}");
        let lo = lo_addresses(Ns::Here);
        assert!(
            !lo.contains("169.254.") && !lo.contains("fd00:ec2::"),
            "round {round}: {lo}"
        );
        assert_eq!(backend.rules(Family::V4), foreign_v4);
        assert!(backend.tagged(Family::V6).is_empty());
    }
}

#[test]
fn three_endpoints_install_and_uninstall_twice_nft() {
    if fresh_netns(
        "three_endpoints_install_and_uninstall_twice_nft",
        &NFT.tools(),
    ) {
        three_endpoints_twice(NFT);
    }
}

#[test]
fn three_endpoints_install_and_uninstall_twice_legacy() {
    if fresh_netns(
        "three_endpoints_install_and_uninstall_twice_legacy",
        &LEGACY.tools(),
    ) {
        three_endpoints_twice(LEGACY);
    }
}

fn uninstall_twice(backend: Backend) {
    backend.add_foreign_rules();
    let foreign_v4 = backend.rules(Family::V4);
    let foreign_v6 = backend.rules(Family::V6);
    let mut host = backend.host();
    ic::install(&plan(1338, true), &mut host).unwrap();

    let first = ic::uninstall(&mut host, true);
    assert!(first.changed() && !first.has_failures(), "{first}");
    let second = ic::uninstall(&mut host, true);
    assert!(!second.changed() && !second.has_failures(), "{second}");

    let lo = lo_addresses(Ns::Here);
    assert!(
        !lo.contains("169.254.169.254") && !lo.contains("fd00:ec2::254"),
        "{lo}"
    );
    assert_eq!(backend.rules(Family::V4), foreign_v4);
    assert_eq!(backend.rules(Family::V6), foreign_v6);
    assert!(!ic::status(&plan(1338, true), &mut host).unwrap().in_place());
}

#[test]
fn uninstall_twice_keeps_foreign_nft() {
    if fresh_netns("uninstall_twice_keeps_foreign_nft", &NFT.tools()) {
        uninstall_twice(NFT);
    }
}

#[test]
fn uninstall_twice_keeps_foreign_legacy() {
    if fresh_netns("uninstall_twice_keeps_foreign_legacy", &LEGACY.tools()) {
        uninstall_twice(LEGACY);
    }
}

fn port_change(backend: Backend) {
    backend.add_foreign_rules();
    let mut host = backend.host();
    ic::install(&plan(1338, true), &mut host).unwrap();
    let report = ic::install(&plan(1444, true), &mut host).unwrap();
    assert!(report.changed(), "{report}");
    for family in [Family::V4, Family::V6] {
        let ours = backend.tagged(family);
        assert_eq!(ours.len(), 1, "{ours:?}");
        assert!(ours[0].ends_with("--to-ports 1444"), "{ours:?}");
    }
    assert_eq!(backend.rules(Family::V4).len(), 2, "foreign rule kept");
}

#[test]
fn port_change_nft() {
    if fresh_netns("port_change_nft", &NFT.tools()) {
        port_change(NFT);
    }
}

#[test]
fn port_change_legacy() {
    if fresh_netns("port_change_legacy", &LEGACY.tools()) {
        port_change(LEGACY);
    }
}

#[test]
fn missing_iptables_rolls_back_the_address() {
    if !fresh_netns("missing_iptables_rolls_back_the_address", &[]) {
        return;
    }
    let mut host = SystemHost::new()
        .unwrap()
        .with_iptables("/nonexistent/iptables", "/nonexistent/ip6tables");
    let err = ic::install(&plan(1338, true), &mut host).unwrap_err();
    assert!(
        matches!(err, InterceptError::MissingIptables { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("install the iptables package"));
    let lo = lo_addresses(Ns::Here);
    assert!(
        !lo.contains("169.254.169.254") && !lo.contains("fd00:ec2::254"),
        "{lo}"
    );
}

/// An upgrade (port 1338 -> 1444, IPv6 newly enabled) whose last step fails: ip6tables refuses
/// to append. Everything must be as before, including our old rule and the foreign one.
#[test]
fn failing_ip6tables_rolls_back_an_upgrade() {
    if !fresh_netns("failing_ip6tables_rolls_back_an_upgrade", &NFT.tools()) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("intercept-netns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = dir.join("ip6tables-failing");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = -A ]; then echo 'ip6tables: simulated failure' >&2; exit 1; fi\n\
         done\nexec ip6tables-nft \"$@\"\n",
    )
    .unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&wrapper, executable).unwrap();

    NFT.add_foreign_rules();
    ic::install(&plan(1338, false), &mut NFT.host()).unwrap();
    let before = (
        lo_addresses(Ns::Here),
        NFT.rules(Family::V4),
        NFT.rules(Family::V6),
    );

    let mut host = SystemHost::new()
        .unwrap()
        .with_iptables(NFT.v4, wrapper.to_str().unwrap());
    let err = ic::install(&plan(1444, true), &mut host).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(err.to_string().contains("simulated failure"), "{err}");
    let after = (
        lo_addresses(Ns::Here),
        NFT.rules(Family::V4),
        NFT.rules(Family::V6),
    );
    assert_eq!(after, before);
}

/// Answers every connection with `body` and records the peers; stops after `n` connections.
fn serve(listener: TcpListener, n: usize, body: &'static str) -> thread::JoinHandle<Vec<IpAddr>> {
    thread::spawn(move || {
        let mut peers = Vec::new();
        for _ in 0..n {
            let (mut conn, peer) = listener.accept().unwrap();
            peers.push(peer.ip());
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf).unwrap();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(response.as_bytes()).unwrap();
        }
        peers
    })
}

/// Install with the default `iptables`/`ip6tables`, then a GET to the IMDS address on port 80
/// reaches a listener on loopback:`port`; before install and after uninstall it does not.
fn redirect_reaches_listener(imds: IpAddr, loopback: IpAddr) {
    let port = 18080;
    let timeout = Duration::from_secs(2);
    let target = SocketAddr::new(imds, 80);
    let ipv6 = imds.is_ipv6();
    assert!(
        ic::probe(target, ic::INSTANCE_ID_PATH, timeout).is_err(),
        "answered before install"
    );

    let mut host = SystemHost::new().unwrap();
    ic::install(&plan(port, ipv6), &mut host).unwrap();
    let server = serve(
        TcpListener::bind((loopback, port)).unwrap(),
        2, // token PUT + GET
        "i-0123456789abcdef0",
    );
    let body = ic::probe(target, ic::INSTANCE_ID_PATH, timeout).unwrap();
    assert_eq!(body, "i-0123456789abcdef0");
    assert_eq!(
        server.join().unwrap(),
        vec![imds, imds],
        "the daemon sees the IMDS address as peer"
    );

    let report = ic::uninstall(&mut host, ipv6);
    assert!(!report.has_failures(), "{report}");
    assert!(
        ic::probe(target, ic::INSTANCE_ID_PATH, timeout).is_err(),
        "answered after uninstall"
    );
}

#[test]
fn redirect_reaches_listener_v4() {
    if fresh_netns("redirect_reaches_listener_v4", &[("iptables", "iptables")]) {
        redirect_reaches_listener(
            Ipv4Addr::new(169, 254, 169, 254).into(),
            Ipv4Addr::LOCALHOST.into(),
        );
    }
}

#[test]
fn redirect_reaches_listener_v6() {
    if fresh_netns("redirect_reaches_listener_v6", &[("ip6tables", "iptables")]) {
        redirect_reaches_listener(ic::IMDS_V6.into(), Ipv6Addr::LOCALHOST.into());
    }
}

#[test]
fn probe_instance_id_uses_the_v4_address() {
    if !fresh_netns(
        "probe_instance_id_uses_the_v4_address",
        &[("iptables", "iptables")],
    ) {
        return;
    }
    ic::install(&plan(18081, false), &mut SystemHost::new().unwrap()).unwrap();
    let server = serve(
        TcpListener::bind((Ipv4Addr::LOCALHOST, 18081)).unwrap(),
        2,
        "i-probe",
    );
    assert_eq!(
        ic::probe_instance_id(Duration::from_secs(2)).unwrap(),
        "i-probe"
    );
    server.join().unwrap();
}

#[test]
fn ipv6_disabled_is_explained_and_rolled_back() {
    if !fresh_netns("ipv6_disabled_is_explained_and_rolled_back", &NFT.tools()) {
        return;
    }
    // Per-namespace sysctl: the spawned sysctl runs in this test's namespace.
    Ns::Here.ok("sysctl", &["-qw", "net.ipv6.conf.lo.disable_ipv6=1"]);
    let err = ic::install(&plan(1338, true), &mut NFT.host()).unwrap_err();
    assert!(
        matches!(err, InterceptError::Ipv6Disabled { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("set `http-protocol-ipv6 = \"disabled\"` under [imds]"),
        "{err}"
    );
    assert!(!lo_addresses(Ns::Here).contains("169.254.169.254"));
}

/// The daemon's listener for containers: none (and no error) while 169.254.169.254 is not on
/// `lo`; once it is, a listener that keeps working when the address is removed and added
/// again, as a restart of the interception unit does while the daemon runs.
#[test]
fn container_listener_follows_the_address() {
    if !fresh_netns("container_listener_follows_the_address", &[]) {
        return;
    }
    let target = SocketAddr::from((ic::IMDS_V4, 18082));
    assert!(
        fake_metadata::server::bind_container(Endpoint::Imds, target)
            .unwrap()
            .is_none()
    );
    Ns::Here.ok("ip", &["addr", "add", "169.254.169.254/32", "dev", "lo"]);
    let listener = fake_metadata::server::bind_container(Endpoint::Imds, target)
        .unwrap()
        .expect("a listener once the address is on lo");
    assert_eq!(listener.endpoint, Endpoint::Imds);
    Ns::Here.ok("ip", &["addr", "del", "169.254.169.254/32", "dev", "lo"]);
    Ns::Here.ok("ip", &["addr", "add", "169.254.169.254/32", "dev", "lo"]);
    let server = serve(listener.socket, 2, "i-readded");
    assert_eq!(
        ic::probe(target, ic::INSTANCE_ID_PATH, Duration::from_secs(2)).unwrap(),
        "i-readded"
    );
    server.join().unwrap();
}
