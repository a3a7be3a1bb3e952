//! Network namespaces of a root test, and what runs in them: the test thread's own fresh one
//! ([`fresh_netns`]), named ones ([`Namespaces`]) joined by veth pairs or a compose-style
//! bridge with containers behind it, commands (curl) as another local user. For root tests
//! that run the real kernel, the real interception or the real daemon (`tests/netns*.rs`,
//! `tests/owner.rs`).
//!
//! SAFETY: nothing here acts on the namespace the test runner started in. [`Ns::Here`] is the
//! test thread's namespace only after [`fresh_netns`] moved it into a new, empty one (and
//! checked it did); [`Ns::Named`] are namespaces made by [`Namespaces::create`]
//! (`fm-<pid>-<n>-<role>`), deleted when it drops, reached with `ip netns exec NS` or
//! `ip -n NS`.

use std::fmt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, unshare};

/// The only environment the programs we start see (no proxies, no AWS_*, no FAKE_METADATA_*).
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Root and each `(tool, Debian package)`: `true` if the test can run; otherwise
/// [`super::cannot_run`] (fails under `CI=true`).
pub fn prerequisites(test: &str, tools: &[(&str, &str)]) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return super::cannot_run(test, "needs root");
    }
    for (tool, package) in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            return super::cannot_run(
                test,
                &format!("`{tool}` not found (apt-get install {package})"),
            );
        }
    }
    true
}

/// Moves this thread (and so every command and thread it starts afterwards) into a new
/// network namespace with `lo` up, once [`prerequisites`] (root, `ip` and `tools`) hold.
/// Returns `false` only when the test cannot run and `CI` is not `true`.
///
/// SAFETY: panics unless the thread's namespace changed and the new one is empty (neither
/// 169.254.169.254 nor fd00:ec2::254 on `lo`).
#[must_use]
pub fn fresh_netns(test: &str, tools: &[(&str, &str)]) -> bool {
    if !prerequisites(test, &[&[("ip", "iproute2")], tools].concat()) {
        return false;
    }
    let before = own_netns();
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
        return super::cannot_run(test, &format!("unshare(CLONE_NEWNET): {e}"));
    }
    assert_ne!(
        own_netns(),
        before,
        "SAFETY: still in the original network namespace"
    );
    let lo = lo_addresses(Ns::Here);
    assert!(
        !lo.contains("169.254.169.254") && !lo.contains("fd00:ec2::254"),
        "SAFETY: the new namespace is not fresh: {lo}"
    );
    Ns::Here.ok("ip", &["link", "set", "lo", "up"]);
    true
}

/// This thread's network namespace, e.g. `net:[4026532281]`.
pub fn own_netns() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .expect("read own netns")
        .to_string_lossy()
        .into_owned()
}

/// `ip -o addr show dev lo` in `ns`.
pub fn lo_addresses(ns: Ns) -> String {
    ns.ok("ip", &["-o", "addr", "show", "dev", "lo"])
}

/// Where a command runs: this thread's namespace (after [`fresh_netns`]), or a named one of
/// ours.
#[derive(Clone, Copy, Debug)]
pub enum Ns<'a> {
    Here,
    Named(&'a str),
}

impl fmt::Display for Ns<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ns::Here => f.write_str("the test's namespace"),
            Ns::Named(name) => f.write_str(name),
        }
    }
}

impl<'a> Ns<'a> {
    /// The name of a named namespace; panics for [`Ns::Here`] (a test's mistake: `ip -n` and
    /// `ip netns exec` need a name).
    pub fn name(self) -> &'a str {
        match self {
            Ns::Named(name) => name,
            Ns::Here => panic!("a named namespace is needed here, not the test's own"),
        }
    }

    /// What runs a program in this namespace, before the program: nothing for [`Ns::Here`],
    /// `ip netns exec NAME` for a named one (e.g. for [`super::daemon::Builder::wrapper`]).
    pub fn wrapper(self) -> Vec<&'a str> {
        match self {
            Ns::Here => Vec::new(),
            Ns::Named(name) => vec!["ip", "netns", "exec", name],
        }
    }

    /// `prog` in this namespace, with a clean environment and no stdin.
    pub fn command(self, prog: &str) -> Command {
        let mut c = match self.wrapper().split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(prog);
                c
            }
            None => Command::new(prog),
        };
        c.env_clear().env("PATH", PATH).stdin(Stdio::null());
        c
    }

    pub fn output(self, prog: &str, args: &[&str]) -> Output {
        self.command(prog)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{self}: {prog}: {e}"))
    }

    /// Runs `prog args`; panics unless it succeeds; returns stdout.
    pub fn ok(self, prog: &str, args: &[&str]) -> String {
        let out = self.output(prog, args);
        assert!(
            out.status.success(),
            "{self}: {prog} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `prog args` as root (`uid` `None`) or as `uid` with its gid and no supplementary groups
    /// (`setpriv`: nothing of root's is left).
    pub fn run_as(self, uid: Option<u32>, prog: &str, args: &[&str]) -> Output {
        let Some(uid) = uid else {
            return self.output(prog, args);
        };
        let (reuid, regid) = (format!("--reuid={uid}"), format!("--regid={uid}"));
        let mut all = vec![reuid.as_str(), regid.as_str(), "--clear-groups", prog];
        all.extend_from_slice(args);
        self.output("setpriv", &all)
    }

    /// The real `curl` as `uid` (see [`Ns::run_as`]), never through a proxy, at most 5 s:
    /// `(HTTP status, body)`; status 0 when there was no reply (curl's error in the body).
    pub fn curl_as(self, uid: Option<u32>, args: &[&str]) -> (u16, String) {
        let mut all = vec![
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
        ];
        all.extend_from_slice(args);
        let out = self.run_as(uid, "curl", &all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code: u16 = code.trim().parse().unwrap_or(0);
        if !out.status.success() || code == 0 {
            return (0, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        (code, body.to_string())
    }
}

/// Named network namespaces of one test, deleted when dropped.
pub struct Namespaces {
    names: Vec<String>,
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

impl Namespaces {
    /// Creates `fm-<pid>-<n>-<role>` for each role, with `lo` up. `None` if `ip netns add` is
    /// refused (then the test cannot run: [`super::cannot_run`]).
    pub fn create(test: &str, roles: &[&str]) -> Option<Namespaces> {
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let mut nss = Namespaces { names: Vec::new() };
        for role in roles {
            let name = format!("fm-{}-{n}-{role}", std::process::id());
            let out = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .expect("run ip netns add");
            if !out.status.success() {
                super::cannot_run(
                    test,
                    &format!("ip netns add: {}", String::from_utf8_lossy(&out.stderr)),
                );
                return None;
            }
            nss.names.push(name.clone());
            Ns::Named(&name).ok("ip", &["link", "set", "lo", "up"]);
        }
        Some(nss)
    }

    pub fn get(&self, i: usize) -> Ns<'_> {
        Ns::Named(&self.names[i])
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let out = Command::new("ip").args(["netns", "del", name]).output();
            if !out.is_ok_and(|o| o.status.success()) {
                eprintln!("warning: could not delete netns {name}");
            }
        }
    }
}

/// `ip -n NS ARGS`: iproute2 acting on a named namespace, never on ours (panics for
/// [`Ns::Here`]).
pub fn ip_n(ns: Ns, args: &[&str]) {
    Ns::Here.ok("ip", &[&["-n", ns.name()], args].concat());
}

/// Sets `key` (a path under `/proc/sys/net/`, which is per namespace) to `value` in `ns`.
pub fn sysctl(ns: Ns, key: &str, value: &str) {
    let path = format!("/proc/sys/net/{key}");
    ns.ok("sh", &["-c", "echo \"$1\" > \"$0\"", &path, value]);
    let now = ns.ok("cat", &[&path]);
    assert_eq!(now.trim(), value, "{ns}: {path}");
}

/// A veth pair made inside `a`: `a_if` in `a`, its peer `b_if` in `b`, so nothing ever
/// appears in the runner's namespace.
fn veth_pair(a: Ns, a_if: &str, b: Ns, b_if: &str) {
    let b_name = b.name();
    ip_n(
        a,
        &[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b_name,
        ],
    );
}

/// `dev` in `ns` with `addr` (`ADDRESS/PREFIX`), up.
fn addr_up(ns: Ns, dev: &str, addr: &str) {
    ip_n(ns, &["addr", "add", addr, "dev", dev]);
    ip_n(ns, &["link", "set", dev, "up"]);
}

/// Joins `a` and `b` with a veth pair (`a_if` in `a` with `a_addr`, `b_if` in `b` with
/// `b_addr`, each `ADDRESS/PREFIX`), both up.
pub fn veth(a: Ns, a_if: &str, a_addr: &str, b: Ns, b_if: &str, b_addr: &str) {
    veth_pair(a, a_if, b, b_if);
    addr_up(a, a_if, a_addr);
    addr_up(b, b_if, b_addr);
}

/// A bridge in `bx` as Docker makes one for a network (`docker0`, a compose network's
/// `br-<id>`), or a host bridge: `name`, with `addr` (`ADDRESS/PREFIX`), up.
pub fn bridge(bx: Ns, name: &str, addr: &str) {
    ip_n(bx, &["link", "add", name, "type", "bridge"]);
    addr_up(bx, name, addr);
}

/// A port of `bridge` (made by [`bridge`] in `bx`): a veth `veth` on it whose peer is `eth0`
/// in `peer` with `peer_addr` (`ADDRESS/PREFIX`), up; no route.
pub fn port(bx: Ns, bridge: &str, veth: &str, peer: Ns, peer_addr: &str) {
    veth_pair(bx, veth, peer, "eth0");
    ip_n(bx, &["link", "set", veth, "master", bridge]);
    ip_n(bx, &["link", "set", veth, "up"]);
    addr_up(peer, "eth0", peer_addr);
}

/// A container on `bridge` (made by [`bridge`] in `bx`, its address `gw`): a [`port`] to
/// `eth0` in `ctr` with `ctr_addr`, and `ctr`'s default route via `gw`.
pub fn attach(bx: Ns, bridge: &str, veth: &str, ctr: Ns, ctr_addr: &str, gw: &str) {
    port(bx, bridge, veth, ctr, ctr_addr);
    ip_n(ctr, &["route", "add", "default", "via", gw]);
}
