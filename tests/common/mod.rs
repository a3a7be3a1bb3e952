//! Helpers shared by the integration tests: a real server on a free loopback port, raw HTTP,
//! and the CI rule (a test that cannot run fails under `CI=true`, and says why elsewhere).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fake_metadata::clock::{Clock, SystemClock};
use fake_metadata::config::Config;
use fake_metadata::server::Running;

/// A config from TOML text, listening on a free loopback port.
pub fn config(toml: &str) -> Config {
    let mut c = Config::from_toml(toml, Path::new("test.toml")).expect("test config is valid");
    c.server.listen = Some(vec!["127.0.0.1:0".parse().unwrap()]);
    c
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
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
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
