//! Named network namespaces of a test, and what runs in them: a compose-style bridge with
//! containers behind it, commands (curl) as another local user. For root tests that run the
//! real daemon with the real interception, as `tests/netns_views.rs` does.
//!
//! SAFETY: nothing here acts on the namespace the test runner is in. Commands run with
//! `ip netns exec NS` or `ip -n NS` on namespaces made by [`Namespaces::create`]
//! (`fm-<pid>-<n>-<role>`), deleted when it drops; [`Ns::Named`] is the only kind of
//! namespace there is here.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A named network namespace of ours.
#[derive(Clone, Copy, Debug)]
pub struct Ns<'a>(pub &'a str);

impl Ns<'_> {
    /// `prog` in this namespace, with a clean environment and no stdin.
    pub fn command(self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.0, prog])
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null());
        c
    }

    pub fn output(self, prog: &str, args: &[&str]) -> Output {
        self.command(prog)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {prog}: {e}", self.0))
    }

    /// Runs `prog args`; panics unless it succeeds; returns stdout.
    pub fn ok(self, prog: &str, args: &[&str]) -> String {
        let out = self.output(prog, args);
        assert!(
            out.status.success(),
            "{}: {prog} {args:?}: {}\n{}{}",
            self.0,
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
            Ns(&name).ok("ip", &["link", "set", "lo", "up"]);
        }
        Some(nss)
    }

    pub fn get(&self, i: usize) -> Ns<'_> {
        Ns(&self.names[i])
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

/// `ip -n NS ARGS`: iproute2 acting on a named namespace, never on ours.
pub fn ip_n(ns: Ns, args: &[&str]) {
    let out = Command::new("ip")
        .args([&["-n", ns.0], args].concat())
        .env_clear()
        .env("PATH", PATH)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip -n {} {args:?}: {}",
        ns.0,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge in `bx` as Docker makes one for a network (`docker0`, a compose network's
/// `br-<id>`): `name`, with `addr` (`ADDRESS/PREFIX`: the containers' gateway), up.
pub fn bridge(bx: Ns, name: &str, addr: &str) {
    ip_n(bx, &["link", "add", name, "type", "bridge"]);
    ip_n(bx, &["addr", "add", addr, "dev", name]);
    ip_n(bx, &["link", "set", name, "up"]);
}

/// A container on `bridge` (made by [`bridge`] in `bx`, its address `gw`): a veth `veth` on
/// the bridge whose peer is `eth0` in `ctr` with `ctr_addr` (`ADDRESS/PREFIX`), and `ctr`'s
/// default route via `gw`. The pair is made inside `bx`: nothing appears in the runner's
/// namespace.
pub fn attach(bx: Ns, bridge: &str, veth: &str, ctr: Ns, ctr_addr: &str, gw: &str) {
    ip_n(
        bx,
        &[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ctr.0,
        ],
    );
    ip_n(bx, &["link", "set", veth, "master", bridge]);
    ip_n(bx, &["link", "set", veth, "up"]);
    ip_n(ctr, &["addr", "add", ctr_addr, "dev", "eth0"]);
    ip_n(ctr, &["link", "set", "eth0", "up"]);
    ip_n(ctr, &["route", "add", "default", "via", gw]);
}
