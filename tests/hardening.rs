//! Issue 17's findings, each as the behaviour that failed: clients that never read, too many
//! connections, warnings at the fd limit, memory after a burst, a root start by hand, and
//! `Host` headers. Every test runs the real binary on 127.0.0.1 (loopback only, bounded in
//! count and time).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Daemon;

/// The daemon's write timeout (`server::WRITE_TIMEOUT`), plus room for a busy machine.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A work directory others may enter: a root test's daemon reads and writes in it after
/// dropping to its service user.
fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Writes `config.toml` in `dir` (world-readable): no control socket unless `extra` sets
/// one, a state directory inside `dir`, no host facts.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let control = if extra.contains("[control]") {
        ""
    } else {
        "[control]\nenabled = false\n"
    };
    let text = format!(
        "{control}[instance]\nfrom-host = false\n{extra}\n",
        control = control,
        extra = extra
    );
    let text = if extra.contains("[server]") {
        text
    } else {
        format!(
            "[server]\nstate-directory = \"{}\"\n{text}",
            dir.join("state").display()
        )
    };
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn serve(cfg: &Path) -> Daemon {
    Daemon::serve(cfg).start()
}

/// VmRSS of the daemon, in KiB.
fn rss_kib(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// The status of the reply to `request`, sent on a new connection.
fn status_of(addr: SocketAddr, request: &str) -> u16 {
    let reply = common::raw(addr, request.as_bytes());
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP reply to {request:?}: {reply:?}"))
}

const GET_ID: &str = "GET /latest/meta-data/instance-id HTTP/1.1\r\n";

// --- finding 8: Host -----------------------------------------------------------------------

#[test]
fn http11_requests_without_host_or_with_two_get_400() {
    let dir = workdir();
    let d = serve(&write_config(dir.path(), ""));
    let a = d.addr;
    assert_eq!(status_of(a, &format!("{GET_ID}Host: x\r\n\r\n")), 200);
    assert_eq!(
        status_of(a, &format!("{GET_ID}\r\n")),
        400,
        "HTTP/1.1 without Host"
    );
    assert_eq!(
        status_of(a, &format!("{GET_ID}Host: x\r\nHost: y\r\n\r\n")),
        400,
        "two Host headers"
    );
    assert_eq!(
        status_of(a, &format!("{GET_ID}Host: x\r\nX-A: 1\r\nhost: x\r\n\r\n")),
        400,
        "two Host headers, one lower-case"
    );
    let v10 = "GET /latest/meta-data/instance-id HTTP/1.0\r\n";
    assert_eq!(
        status_of(a, &format!("{v10}\r\n")),
        200,
        "HTTP/1.0 needs no Host"
    );
    assert_eq!(
        status_of(a, &format!("{v10}Host: x\r\nHost: x\r\n\r\n")),
        400,
        "two Host headers in HTTP/1.0"
    );
    // EC2's 400, the same as for its other bad requests (a token PUT without a TTL).
    let without_date = |r: String| {
        r.lines()
            .filter(|l| !l.starts_with("Date:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ours = common::raw(a, format!("{GET_ID}\r\n").as_bytes());
    let ec2s = common::raw(a, b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ec2s.starts_with("HTTP/1.1 400"), "{ec2s}");
    assert_eq!(without_date(ours), without_date(ec2s));
}

// --- finding 4: clients that never read, the connection bound, the accept warning --------

/// Pipelines GETs of the 16 KiB user data on a new connection and never reads the replies,
/// until the daemon stops taking requests (its replies fill the socket buffers).
fn never_reading_client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let chunk = "GET /latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let until = Instant::now() + Duration::from_secs(5);
    let mut sent = 0usize;
    let mut stalled_since = None;
    while Instant::now() < until && sent < 64 << 20 {
        match (&s).write(chunk.as_bytes()) {
            Ok(n) => {
                sent += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Stalled for 200 ms: the daemon no longer reads.
                let t = *stalled_since.get_or_insert_with(Instant::now);
                if t.elapsed() > Duration::from_millis(200) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    s
}

#[test]
fn clients_that_never_read_are_dropped_after_the_write_timeout() {
    let dir = workdir();
    let user_data = "u".repeat(16 * 1024);
    let d = serve(&write_config(
        dir.path(),
        &format!(
            "[server]\nkeep-alive = true\nstate-directory = \"{}\"\n[user-data]\ntext = \"{user_data}\"\n",
            dir.path().join("state").display()
        ),
    ));
    let a = d.addr;
    assert_eq!(
        status_of(a, &format!("{GET_ID}Host: x\r\nConnection: close\r\n\r\n")),
        200
    );
    // The daemon closes that connection just after the client sees its end.
    std::thread::sleep(Duration::from_millis(300));
    let base = d.open_fds();
    let stuck: Vec<TcpStream> = (0..8).map(|_| never_reading_client(a)).collect();
    let pinned = d.open_fds();
    assert!(
        pinned >= base + 8,
        "the daemon holds them: {base} -> {pinned} fds"
    );
    // Meanwhile others are served.
    assert_eq!(
        status_of(a, &format!("{GET_ID}Host: x\r\nConnection: close\r\n\r\n")),
        200
    );
    let t = Instant::now();
    while d.open_fds() > base && t.elapsed() < WRITE_TIMEOUT + Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = d.open_fds();
    assert!(
        after <= base,
        "8 clients that never read still hold {} connections after {:?} (fds {base} -> {after})",
        after - base,
        t.elapsed()
    );
    eprintln!(
        "never-reading clients dropped {:?} after they stalled",
        t.elapsed()
    );
    drop(stuck);
}

/// A keep-alive GET on `s`; the status.
fn keep_alive_get(s: &mut TcpStream) -> u16 {
    s.write_all(format!("{GET_ID}Host: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let dir = workdir();
    let d = serve(&write_config(
        dir.path(),
        &format!(
            "[server]\nkeep-alive = true\nmax-connections = 4\nstate-directory = \"{}\"\n",
            dir.path().join("state").display()
        ),
    ));
    let a = d.addr;
    let base = d.open_fds();
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(a).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(keep_alive_get(&mut s), 200);
            s
        })
        .collect();
    // A fifth connects (the kernel's backlog takes it) but is not served while four are open.
    let mut fifth = TcpStream::connect(a).unwrap();
    fifth
        .write_all(format!("{GET_ID}Host: x\r\n\r\n").as_bytes())
        .unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let early = fifth.read(&mut buf);
    assert!(
        early.is_err(),
        "a fifth connection was served beyond max-connections = 4: {early:?}"
    );
    assert!(
        d.open_fds() <= base + 4,
        "the daemon took a descriptor for the waiting connection"
    );
    // One ends: the fifth gets its slot and its answer.
    drop(held.pop());
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = fifth.read(&mut buf).expect("served once a slot is free");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[test]
fn accept_failures_at_the_fd_limit_are_logged_once_per_interval() {
    let dir = workdir();
    let cfg = write_config(dir.path(), "");
    // The daemon gets 40 descriptors; max-connections (512 by default) is then above what it
    // can hold, so accepting fails with EMFILE as long as connections wait.
    let d = Daemon::serve(&cfg)
        .wrapper(&["sh", "-c", "ulimit -n 40 && exec \"$0\" \"$@\""])
        .start();
    let a = d.addr;
    let clients: Vec<TcpStream> = (0..60).filter_map(|_| TcpStream::connect(a).ok()).collect();
    std::thread::sleep(Duration::from_secs(3));
    let lines = d.log().matches("accept failed").count();
    drop(clients);
    assert!(lines >= 1, "no accept failure logged:\n{}", d.log());
    assert!(
        lines <= 2,
        "{lines} `accept failed` lines in 3 s (one each 50 ms before the fix)"
    );
}

// --- finding 6: memory after a burst -------------------------------------------------------

/// Raises this process's soft descriptor limit to its hard one (the daemon inherits it).
fn raise_fd_limit(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let soft = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    soft
}

#[test]
fn memory_after_a_burst_of_idle_connections_returns_near_idle() {
    const BURST: usize = 5_000;
    let limit = raise_fd_limit(2 * BURST as u64 + 200);
    assert!(
        limit > BURST as u64 + 100,
        "descriptor limit {limit} too low for the burst"
    );
    let dir = workdir();
    let d = serve(&write_config(
        dir.path(),
        &format!(
            "[server]\nkeep-alive = true\nstate-directory = \"{}\"\n",
            dir.path().join("state").display()
        ),
    ));
    let a = d.addr;
    // Warm up, so that the worker threads' allocator arenas exist before the baseline.
    for _ in 0..200 {
        assert_eq!(
            status_of(a, &format!("{GET_ID}Host: x\r\nConnection: close\r\n\r\n")),
            200
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(&d);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (held, during) = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tasks: Vec<_> = (0..BURST)
            .map(|_| {
                tokio::spawn(async move {
                    let t = Duration::from_secs(3);
                    let mut s = tokio::time::timeout(t, tokio::net::TcpStream::connect(a))
                        .await
                        .ok()?
                        .ok()?;
                    s.write_all(format!("{GET_ID}Host: x\r\n\r\n").as_bytes())
                        .await
                        .ok()?;
                    let mut buf = [0u8; 1024];
                    let n = tokio::time::timeout(t, s.read(&mut buf)).await.ok()?.ok()?;
                    (n > 0).then_some(s)
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            if let Ok(Some(s)) = t.await {
                held.push(s);
            }
        }
        let during = rss_kib(&d);
        (held, during)
    });
    let served = held.len();
    drop(held);
    drop(rt);
    // Back within a few MiB of idle, soon after the connections closed.
    let t = Instant::now();
    let mut after = rss_kib(&d);
    while after > idle + 4 * 1024 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        after = rss_kib(&d);
    }
    eprintln!(
        "{BURST} keep-alive connections tried, {served} answered and held: \
         VmRSS idle {idle} KiB, with them {during} KiB, after they closed {after} KiB"
    );
    assert!(
        after <= idle + 4 * 1024,
        "VmRSS idle {idle} KiB, during the burst {during} KiB, after it {after} KiB"
    );
}

// --- finding 7: a root start by hand -------------------------------------------------------

/// Whether this root test can run: `false` (after saying why) when not root, outside CI; under
/// `CI=true` it must run, so it fails instead.
fn root_available(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    common::cannot_run(test, "needs root")
}

/// The real uid of process `pid`.
fn uid_of(pid: nix::unistd::Pid) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("Uid")
}

/// Stops the daemon as systemd would (SIGTERM) and waits for it.
fn stop(mut d: Daemon) {
    assert!(
        d.stop(Duration::from_secs(10)).is_some(),
        "no stop after SIGTERM"
    );
}

#[test]
fn a_root_start_keeps_its_identity_key_and_removes_its_control_socket() {
    if !root_available("a_root_start_keeps_its_identity_key_and_removes_its_control_socket") {
        return;
    }
    let dir = workdir();
    let state = dir.path().join("state");
    let socket = dir.path().join("run/control.sock");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[server]\nstate-directory = \"{}\"\n[control]\nsocket = \"{}\"\n",
            state.display(),
            socket.display()
        ),
    );
    let cert = |what: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fake-metadata"))
            .args(["identity-cert", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: `identity-cert` as root failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let d = serve(&cfg);
    let uid = uid_of(d.pid());
    assert_ne!(uid, 0, "the daemon still runs as root");
    assert!(
        !d.log().contains("temporary key"),
        "a root start signs with a throwaway key:\n{}",
        d.log()
    );
    let meta = std::fs::metadata(&state).expect("the state directory is made");
    assert_eq!(
        meta.uid(),
        uid,
        "the state directory belongs to the service user"
    );
    assert_eq!(meta.mode() & 0o777, 0o755);
    assert!(socket.exists(), "the control socket is there while it runs");
    let first = cert("first start");
    assert!(first.contains("BEGIN CERTIFICATE"));
    stop(d);
    assert!(
        !socket.exists(),
        "the control socket {} is left behind after stop",
        socket.display()
    );

    // A second root start keeps the key: the certificate users were given stays valid.
    let d = serve(&cfg);
    assert!(!d.log().contains("temporary key"), "{}", d.log());
    assert_eq!(
        cert("second start"),
        first,
        "the certificate changed at restart"
    );
    stop(d);
    assert!(!socket.exists());
}

// --- issue 27, item 10: locality without netlink ------------------------------------------

/// Makes this process (and what it execs) fail `socket(AF_NETLINK, …)` with EAFNOSUPPORT, as
/// systemd's `RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX` would (the packaged unit now
/// allows AF_NETLINK for sock_diag only; the daemon must not need it for anything else): a
/// seccomp filter on the `socket` system call's first argument. For a `pre_exec`.
#[allow(unsafe_code)]
fn forbid_netlink() -> std::io::Result<()> {
    use nix::libc;
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
    // Classic BPF: LD|W|ABS, JMP|JEQ|K, RET|K; seccomp_data is { nr: u32, arch: u32, ip: u64,
    // args: [u64; 6] }, so args[0]'s low half (little-endian) is at 16.
    let (ld, jeq, ret) = (0x20u16, 0x15u16, 0x06u16);
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        op(ld, 0, 0, 4),
        op(jeq, 0, 5, ARCH),
        op(ld, 0, 0, 0),
        op(jeq, 0, 3, libc::SYS_socket as u32),
        op(ld, 0, 0, 16),
        op(jeq, 0, 1, libc::AF_NETLINK as u32),
        op(
            ret,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32,
        ),
        op(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls in the child between fork and exec; `prog` outlives them.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `c` runs under [`forbid_netlink`].
fn without_netlink(c: &mut std::process::Command) {
    // SAFETY: the closure only makes system calls.
    #[allow(unsafe_code)]
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(c, forbid_netlink);
    }
}

/// Runs each `ip` command (in this thread's network namespace), asserting it succeeds.
fn ip_all(commands: &[&[&str]]) {
    for args in commands {
        let ok = std::process::Command::new("ip")
            .args(*args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {args:?} in the fresh namespace");
    }
}

/// An IPv4 address of this host other than loopback, if it has one.
fn own_non_loopback_v4() -> Option<std::net::Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        let ip = a.address?.as_sockaddr_in()?.ip();
        (!ip.is_loopback()).then_some(ip)
    })
}

/// Without a NIC address here, as root: moves this test's thread (and so the daemon it
/// starts and its client socket) into a fresh network namespace, with 192.0.2.1/32 on `lo`
/// standing for the box's NIC address. Nothing changes in the runner's namespace: the
/// address is added only once `unshare` has succeeded.
fn address_in_fresh_netns() -> Option<std::net::Ipv4Addr> {
    use nix::sched::{CloneFlags, unshare};
    if !nix::unistd::Uid::effective().is_root() || unshare(CloneFlags::CLONE_NEWNET).is_err() {
        return None;
    }
    ip_all(&[
        &["link", "set", "lo", "up"],
        &["addr", "add", "192.0.2.1/32", "dev", "lo"],
    ]);
    Some(std::net::Ipv4Addr::new(192, 0, 2, 1))
}

/// A token PUT from another address of this host (a client bound to the box's own NIC
/// address, or a container sharing the host's network) is local: it gets its reply at hop
/// limit 1, also when the daemon cannot open a netlink socket (a sandbox stricter than the
/// packaged unit, which allows AF_NETLINK for sock_diag only). Before, the daemon asked `getifaddrs`, which needs netlink,
/// and withheld the reply as if the client were a hop away.
#[test]
fn a_local_peer_is_local_without_netlink() {
    let Some(ip) = own_non_loopback_v4().or_else(address_in_fresh_netns) else {
        assert!(
            common::require(false, "an IPv4 address besides loopback on this host"),
            "unreachable"
        );
        return;
    };
    // The filter is real: `ip link` (netlink) fails under it.
    if common::has_program("ip", &["-V"]) {
        let mut c = std::process::Command::new("ip");
        c.args(["-o", "link"]);
        without_netlink(&mut c);
        let out = c.output().unwrap();
        assert!(!out.status.success(), "netlink was not refused: {out:?}");
    }
    let dir = workdir();
    let cfg = write_config(dir.path(), "");
    let d = Daemon::serve(&cfg).configure(without_netlink).start();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    sock.connect_timeout(&d.addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(common::patience(Duration::from_secs(3))))
        .unwrap();
    s.write_all(
        b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n\
          X-aws-ec2-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 200 "),
        "a token PUT from {ip}, an address of this host, got no reply at hop limit 1: {reply:?}\n{}",
        d.log()
    );
}

/// Under the packaged unit (no netlink) the box's own facts still fill `[instance]`: the
/// default route's interface gives `local-ipv4`, its subnet and `mac`. Before, they came from
/// `getifaddrs`, which needs netlink, and a box served the built-in 172.31.16.10 instead of
/// its address. Runs as root in a fresh network namespace with one NIC (a veth pair: not
/// every kernel has the dummy driver) and a default
/// route (nothing changes in the runner's namespace).
#[test]
fn the_box_address_is_found_without_netlink() {
    if !common::netns::fresh_netns("the_box_address_is_found_without_netlink", &[]) {
        return;
    }
    ip_all(&[
        &[
            "link",
            "add",
            "eth9",
            "address",
            "0e:11:22:33:44:55",
            "type",
            "veth",
            "peer",
            "name",
            "eth8",
        ],
        &["addr", "add", "10.9.8.7/24", "dev", "eth9"],
        &["link", "set", "eth8", "up"],
        &["link", "set", "eth9", "up"],
        &["route", "add", "default", "via", "10.9.8.1", "dev", "eth9"],
    ]);
    // /sys shows the devices of the namespace that mounted it: a sysfs of this namespace's
    // own, in a mount namespace of the child's own, for the MAC.
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t sysfs sysfs /sys && exec \"$0\" print-config")
        .arg(env!("CARGO_BIN_EXE_fake-metadata"))
        .env_remove("FAKE_METADATA_CONFIG");
    without_netlink(&mut c);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for line in [
        "local-ipv4 = \"10.9.8.7\"",
        "mac = \"0e:11:22:33:44:55\"",
        "subnet-ipv4-cidr-block = \"10.9.8.0/24\"",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "print-config under a netlink ban lacks {line:?}:\n{text}"
        );
    }
}
