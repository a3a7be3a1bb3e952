//! Root tests of `owner::Lookup` against the real kernel: a client of another uid in a cgroup
//! of its own, clients behind a real `nat OUTPUT REDIRECT` (IPv4, IPv6, and IPv4 on a
//! dual-stack listener), and a client on an interface's own address; each test in a network
//! namespace of its own.
//!
//! SAFETY: on a development or CI machine 169.254.169.254 may route to a real gateway. Every
//! test starts with [`fresh_netns`], which moves the test's thread (and so every command and
//! thread it starts) into a new, empty network namespace and panics if it did not change
//! namespace. Nothing here runs before that.
//!
//! Run: `sudo -E cargo test --test owner` (needs iptables, curl, setpriv). Under `CI=true` a
//! test that cannot run fails; elsewhere it prints "skipped: …" and passes.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{Ns, fresh_netns};
use fake_metadata::client::{Owner, Process};
use fake_metadata::owner::{Lookup, cgroup};

fn wait_for_process(owner: &Owner) -> Option<Process> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(p) = owner.process.get() {
            return Some(p.clone());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A cgroup v2 directory of this test's, removed on drop.
struct TestCgroup {
    dir: std::path::PathBuf,
    path: String,
}

impl TestCgroup {
    fn create(test: &str) -> Option<TestCgroup> {
        let root = cgroup::cgroup2_mount()?;
        let path = format!("/fake-metadata-{test}-{}", std::process::id());
        let dir = root.join(&path[1..]);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Some(TestCgroup { dir, path })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Its one process has exited; the directory goes once the kernel has reaped it.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("cannot remove {}", self.dir.display());
    }
}

/// A curl of another uid (65534), in a cgroup of its own where the host has cgroup v2: its
/// socket's uid, user and cgroup; its process is not looked for (the daemon may not read it).
#[test]
fn another_users_client_in_its_own_cgroup() {
    let test = "another_users_client_in_its_own_cgroup";
    if !fresh_netns(test, &[("curl", "curl"), ("setpriv", "util-linux")]) {
        return;
    }
    let lookup = Lookup::new();
    lookup.wait_ready();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/latest/meta-data/",
        listener.local_addr().unwrap()
    );
    let cg = TestCgroup::create("owner");
    let join = cg
        .as_ref()
        .map(|c| format!("echo $$ > {}/cgroup.procs && ", c.dir.display()))
        .unwrap_or_default();
    let script =
        format!("{join}exec setpriv --reuid=65534 --regid=65534 --clear-groups curl -s -m 5 {url}");
    let curl = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let (mut conn, peer) = listener.accept().unwrap();
    let owner = lookup
        .owner(conn.as_fd(), peer)
        .expect("the curl's socket is found");
    let mut request = [0u8; 1024];
    let _ = conn.read(&mut request).unwrap();
    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .unwrap();
    drop(conn);
    let out = curl.wait_with_output().unwrap();
    assert!(out.status.success(), "curl: {:?}", out.status);
    assert_eq!(out.stdout, b"ok");

    assert_eq!(owner.uid, 65534);
    let name = nix::unistd::User::from_uid(65534.into())
        .unwrap()
        .map(|u| u.name);
    assert_eq!(owner.user.as_deref(), name.as_deref());
    match &cg {
        Some(cg) => assert_eq!(owner.cgroup.as_deref(), Some(cg.path.as_str())),
        None => eprintln!("{test}: no cgroup2 mount, the cgroup is not checked"),
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        owner.process.get(),
        None,
        "another uid's process is not looked for"
    );
}

/// A client of this process reaching `listen` through a REDIRECT of `imds`:80: the server sees
/// the IMDS address as peer and its own loopback address, the client's socket is connected to
/// the IMDS address, and the lookup finds it by conntrack's original destination.
fn redirected(test: &str, imds: IpAddr, listen: &str, iptables: &str) {
    if !fresh_netns(test, &[(iptables, "iptables")]) {
        return;
    }
    let prefix = if imds.is_ipv4() { "32" } else { "128" };
    let mut addr = vec!["addr", "add"];
    let cidr = format!("{imds}/{prefix}");
    addr.extend([cidr.as_str(), "dev", "lo"]);
    if imds.is_ipv6() {
        addr.push("nodad");
    }
    Ns::Here.ok("ip", &addr);
    let listener = TcpListener::bind(listen).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    Ns::Here.ok(
        iptables,
        &[
            "-w",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-d",
            &cidr,
            "-p",
            "tcp",
            "--dport",
            "80",
            "-j",
            "REDIRECT",
            "--to-ports",
            &port,
        ],
    );
    let lookup = Lookup::new();
    lookup.wait_ready();

    let client = TcpStream::connect(SocketAddr::new(imds, 80)).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    assert_eq!(client.peer_addr().unwrap(), SocketAddr::new(imds, 80));
    assert_eq!(
        fake_metadata::owner::local::unmapped(peer).ip(),
        imds,
        "REDIRECT keeps the source: the peer is the IMDS address"
    );
    assert_ne!(
        accepted.local_addr().unwrap().port(),
        80,
        "REDIRECTed to the listener's port"
    );

    let owner = lookup
        .owner(accepted.as_fd(), peer)
        .expect("found by the original destination");
    assert_eq!(owner.uid, nix::unistd::geteuid().as_raw());
    assert_eq!(owner.user.as_deref(), Some("root"));
    let process = wait_for_process(&owner).expect("the resolver finds this process");
    assert_eq!(process.pid, std::process::id());
}

#[test]
fn redirected_ipv4_client() {
    redirected(
        "redirected_ipv4_client",
        "169.254.169.254".parse().unwrap(),
        "127.0.0.1:0",
        "iptables",
    );
}

#[test]
fn redirected_ipv4_client_of_a_dual_stack_listener() {
    redirected(
        "redirected_ipv4_client_of_a_dual_stack_listener",
        "169.254.169.254".parse().unwrap(),
        "[::]:0",
        "iptables",
    );
}

#[test]
fn redirected_ipv6_client() {
    redirected(
        "redirected_ipv6_client",
        "fd00:ec2::254".parse().unwrap(),
        "[::1]:0",
        "ip6tables",
    );
}

/// A client on another address of the host's (neither loopback nor an endpoint's): local, as
/// the host's addresses say.
#[test]
fn a_client_on_another_own_address() {
    if !fresh_netns("a_client_on_another_own_address", &[]) {
        return;
    }
    // On `lo`, since not every kernel has the dummy driver: still neither loopback nor an
    // endpoint's address, so only the host's addresses say it is ours.
    Ns::Here.ok("ip", &["addr", "add", "10.77.0.1/32", "dev", "lo"]);
    let lookup = Lookup::new();
    lookup.wait_ready();
    let listener = TcpListener::bind("10.77.0.1:0").unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "10.77.0.1");
    let owner = lookup
        .owner(accepted.as_fd(), peer)
        .expect("an own address is local");
    assert_eq!(owner.uid, nix::unistd::geteuid().as_raw());
    // Another address of that subnet is not ours: nothing is asked, nothing found.
    assert!(
        lookup
            .owner(accepted.as_fd(), "10.77.0.2:4000".parse().unwrap())
            .is_none()
    );
}
