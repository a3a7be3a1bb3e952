//! Helpers shared by the integration tests: a real server on a free loopback port, raw HTTP,
//! the real binary as a child process, and the CI rule (a test that cannot run fails under
//! `CI=true`, and says why elsewhere). [`daemon`] adds what the robustness, fault and secret
//! tests need: `serve` in a temporary directory of its own, timed raw HTTP, and `/proc`.
#![allow(dead_code)]

pub mod daemon;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fake_metadata::clock::{Clock, SystemClock};
use fake_metadata::config::Config;
use fake_metadata::daemon::Running;

/// `d` times `FAKE_METADATA_TEST_SLOWDOWN` (default 1): the test command sets it for the arm64
/// build run under qemu-user, where a daemon's start (its RSA identity key) takes far longer.
pub fn patience(d: Duration) -> Duration {
    let n = std::env::var("FAKE_METADATA_TEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    d * n
}

/// A config from TOML text, listening on a free loopback port.
pub fn config(toml: &str) -> Config {
    Config::from_toml(toml, Path::new("test.toml"))
        .expect("test config is valid")
        .with_listen(vec!["127.0.0.1:0".parse().unwrap()])
}

/// Starts a real server for `toml` on the current runtime.
pub fn start(toml: &str) -> Running {
    start_with(config(toml), Arc::new(SystemClock))
}

pub fn start_with(c: Config, clock: Arc<dyn Clock>) -> Running {
    Running::start(c, clock).expect("server starts")
}

/// Sends raw bytes, reads until the server closes (or 5 s), returns what came back.
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(patience(Duration::from_secs(5))))
        .unwrap();
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether we run under CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `Ok` if `what` is available; otherwise a skip (panics under CI, where it must run).
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "CI=true and {what} is not available: the test command should install it"
    );
    eprintln!("skipped: {what} is not available (the README's test command installs it)");
    false
}

/// Whether a program runs (`prog --version` or the given probe succeeds).
pub fn has_program(prog: &str, args: &[&str]) -> bool {
    std::process::Command::new(prog)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The real binary running (`serve`, `aemm`, …) with its stderr captured; started by
/// [`Daemon::start`], which waits until it logs `listening addresses=…`. Killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    /// The first address it listens on.
    pub addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// Runs the binary with `args` and a clean `FAKE_METADATA_*` environment.
    pub fn start(args: &[&str]) -> Daemon {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_fake-metadata"));
        c.args(args)
            .env_remove("FAKE_METADATA_CONFIG")
            .env_remove("FAKE_METADATA_LISTEN")
            .env_remove("FAKE_METADATA_HTTP_TOKENS");
        Daemon::spawn(c)
    }

    /// Runs a prepared command (stderr is taken over).
    pub fn spawn(mut c: std::process::Command) -> Daemon {
        let mut child = c
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (log, rx) = follow_stderr(&mut child);
        let mut d = Daemon {
            child,
            addr: String::new(),
            log,
        };
        match rx.recv_timeout(patience(Duration::from_secs(20))) {
            Ok(a) => d.addr = a,
            Err(_) => panic!("the daemon did not log `listening`:\n{}", d.log()),
        }
        d
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// `(status, body)` of a GET.
    pub fn get(&self, path: &str) -> (u16, String) {
        let (s, _, b) = http(&self.addr, "GET", path, &[]);
        (s, b)
    }

    /// Waits until its stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let t = std::time::Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t.elapsed() < patience(Duration::from_secs(10)),
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads a child's piped stderr on a thread of its own: every line goes into the returned log;
/// the address of each `listening addresses=…` line (its first one) is sent on the channel.
pub fn follow_stderr(
    child: &mut std::process::Child,
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = line.split("addresses=").nth(1) {
                let _ = tx.send(a.split_whitespace().next().unwrap_or_default().to_string());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (log, rx)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(status, head, body)` of one request on a fresh connection.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let resp = raw(addr.parse().expect("an address"), req.as_bytes());
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_string(), body.to_string())
}
