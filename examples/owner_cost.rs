//! What it costs to find a local client's owner (issue 24), on this machine: the kernel's
//! socket table asked by sock_diag's exact lookup (what `owner::Lookup` does) against reading
//! `/proc/net/tcp` until the client's line, with N sockets open (default 1000: N/2 loopback
//! connections, both ends in this process); then what the parts off the request path cost
//! (the process resolver's scan of `/proc/PID/fd`, a walk of the cgroup2 hierarchy).
//!
//! `cargo run --release --example owner_cost [N]` (a debug build is fine for the kernel's
//! share; it slows the Rust parsing on both sides). Prints one line per figure.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use fake_metadata::owner::{Lookup, cgroup, process};

fn main() {
    let sockets: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("N: a number of sockets"))
        .unwrap_or(1000);
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    let want = (sockets as u64 + 64).min(hard).max(soft);
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, want, hard)
        .expect("setrlimit");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let mut pairs = Vec::new();
    for _ in 0..sockets / 2 {
        let client = TcpStream::connect(target).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        pairs.push((client, accepted, peer));
    }
    let open = std::fs::read_to_string("/proc/net/tcp")
        .map(|t| t.lines().count() - 1)
        .unwrap_or(0);
    println!(
        "sockets: {} connections ({} sockets); /proc/net/tcp lines: {open}",
        pairs.len(),
        pairs.len() * 2
    );

    let lookup = Lookup::new();
    let rounds = 5;
    let diag = per_lookup(rounds, &pairs, |(_, accepted, peer)| {
        assert!(
            lookup.socket(accepted.as_fd(), *peer).is_some(),
            "sock_diag found nothing for {peer}"
        );
    });
    println!("sock_diag exact lookup (+ SO_ORIGINAL_DST/getsockname): {diag:?} per lookup");

    let owner = per_lookup(rounds, &pairs, |(_, accepted, peer)| {
        assert!(lookup.owner(accepted.as_fd(), *peer).is_some());
    });
    println!(
        "Lookup::owner (the above + cached user, cgroup; process queued): {owner:?} per lookup"
    );

    let users = fake_metadata::owner::users::Users::default();
    let cgroups = cgroup::Cgroups::new();
    let uid = nix::unistd::geteuid().as_raw();
    let cached = per_lookup(rounds, &pairs, |_| {
        let _ = (users.name(uid), cgroups.path(1));
    });
    println!("  of which the user and cgroup caches: {cached:?} per lookup");

    let read = per_lookup(1, &pairs, |_| {
        let mut all = Vec::new();
        std::fs::File::open("/proc/net/tcp")
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert!(all.len() > 100);
    });
    println!(
        "/proc/net/tcp read whole, not parsed (the kernel's share alone): {read:?} per lookup"
    );

    let parse = per_lookup(1, &pairs, |(client, accepted, _)| {
        let (local, remote) = (client.local_addr().unwrap(), accepted.local_addr().unwrap());
        assert!(
            proc_net_tcp(local, remote).is_some(),
            "no /proc/net/tcp line for {local}"
        );
    });
    println!("/proc/net/tcp read until the client's line and parsed: {parse:?} per lookup");

    // The resolver: one scan of this uid's processes for a batch of inodes.
    for batch in [1, 64] {
        let inodes: HashMap<u64, ()> = pairs
            .iter()
            .take(batch)
            .map(|(_, a, p)| (lookup.socket(a.as_fd(), *p).unwrap().inode, ()))
            .collect();
        let start = Instant::now();
        let found = process::holders(&inodes, uid);
        let took = start.elapsed();
        assert_eq!(found.len(), inodes.len());
        let procs = std::fs::read_dir("/proc")
            .unwrap()
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
            })
            .count();
        println!(
            "process resolver: one scan for {batch} socket(s): {took:?} ({procs} processes listed; this one holds {} fds)",
            std::fs::read_dir("/proc/self/fd").unwrap().count()
        );
    }

    match cgroup::cgroup2_mount() {
        Some(root) => {
            let start = Instant::now();
            let paths = cgroup::walk(&root, cgroup::MAX_CGROUPS);
            println!(
                "cgroup walk of {}: {:?} for {} cgroups (at most once per {:?}, on a cache miss)",
                root.display(),
                start.elapsed(),
                paths.len(),
                cgroup::REWALK
            );
        }
        None => println!("cgroup walk: no cgroup2 mount"),
    }
}

/// The median over `rounds` of the mean time per connection of `f` over all of them.
fn per_lookup<T>(rounds: usize, items: &[T], mut f: impl FnMut(&T)) -> Duration {
    let mut means: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            items.iter().for_each(&mut f);
            start.elapsed() / items.len() as u32
        })
        .collect();
    means.sort();
    means[means.len() / 2]
}

/// (uid, inode) of the IPv4 socket `local` → `remote`, as `/proc/net/tcp` lists it: what a
/// lookup without sock_diag would do (read until the line, parse it).
fn proc_net_tcp(local: SocketAddr, remote: SocketAddr) -> Option<(u32, u64)> {
    let hex = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_ne_bytes(v4.octets()), a.port()),
        IpAddr::V6(_) => unimplemented!("IPv4 only here"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let file = BufReader::new(std::fs::File::open("/proc/net/tcp").ok()?);
    for line in file.lines().skip(1) {
        let line = line.ok()?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()) {
            return Some((fields.get(7)?.parse().ok()?, fields.get(9)?.parse().ok()?));
        }
    }
    None
}
