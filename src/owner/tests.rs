//! Lookups of real connections from this process to itself (no privilege needed).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::*;

/// A connection from this process to `listen`: (client, accepted, peer as accepted).
fn connect(listen: &str, to: Option<&str>) -> (TcpStream, TcpStream, SocketAddr) {
    let listener = TcpListener::bind(listen).unwrap();
    let mut target = listener.local_addr().unwrap();
    if let Some(ip) = to {
        target.set_ip(ip.parse().unwrap());
    }
    let client = TcpStream::connect(target).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    (client, accepted, peer)
}

/// This process's cgroup v2 path, from `/proc/self/cgroup` (`0::/...`).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

fn wait_for_process(owner: &Owner) -> Option<crate::client::Process> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(p) = owner.process.get() {
            return Some(p.clone());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn is_own(listen: &str, to: Option<&str>) {
    let lookup = Lookup::new();
    let (client, accepted, peer) = connect(listen, to);
    let owner = lookup
        .owner(accepted.as_fd(), peer)
        .unwrap_or_else(|| panic!("no owner for {peer} (client {:?})", client.local_addr()));
    let uid = nix::unistd::geteuid();
    assert_eq!(owner.uid, uid.as_raw());
    let name = nix::unistd::User::from_uid(uid).unwrap().map(|u| u.name);
    assert_eq!(owner.user.as_deref(), name.as_deref());
    if cgroup::cgroup2_mount().is_some() {
        assert_eq!(owner.cgroup.as_deref(), own_cgroup().as_deref());
        assert!(
            owner.cgroup.is_some(),
            "a cgroup2 host gives the socket's cgroup"
        );
    }
    let process = wait_for_process(&owner).expect("the resolver finds this process");
    assert_eq!(process.pid, std::process::id());
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(&*process.command, comm.trim_end());
    drop(client);
}

#[test]
fn an_ipv4_loopback_client_is_this_process() {
    is_own("127.0.0.1:0", None);
}

#[test]
fn an_ipv6_loopback_client_is_this_process() {
    is_own("[::1]:0", None);
}

#[test]
fn an_ipv4_client_of_a_dual_stack_listener_is_this_process() {
    let (_c, _a, peer) = connect("[::]:0", Some("127.0.0.1"));
    assert!(peer.is_ipv6(), "the peer shows as ::ffff:127.0.0.1: {peer}");
    is_own("[::]:0", Some("127.0.0.1"));
}

#[test]
fn a_peer_elsewhere_or_without_a_socket_has_no_owner() {
    let lookup = Lookup::new();
    let (_client, accepted, peer) = connect("127.0.0.1:0", None);
    // A container's address on a bridge: not this host's, nothing is asked.
    assert!(
        lookup
            .owner(accepted.as_fd(), "10.213.7.9:41000".parse().unwrap())
            .is_none()
    );
    // Loopback, but no socket has that port: the kernel says so.
    let mut nobody = peer;
    nobody.set_port(if peer.port() == 1 { 2 } else { 1 });
    assert!(lookup.owner(accepted.as_fd(), nobody).is_none());
    // The right peer still is.
    assert!(lookup.owner(accepted.as_fd(), peer).is_some());
}

#[test]
fn the_listener_is_not_mistaken_for_the_client() {
    // sock_diag's exact lookup falls back to a listener on the asked port: a peer that claims
    // the listener's own address must not find it.
    let lookup = Lookup::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listening = listener.local_addr().unwrap();
    let _client = TcpStream::connect(listening).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    assert!(lookup.socket(accepted.as_fd(), peer).is_some());
    assert!(lookup.socket(accepted.as_fd(), listening).is_none());
}

#[test]
fn one_lookup_serves_every_accept_loop() {
    fn shared<T: Send + Sync>() {}
    shared::<Lookup>();
}
