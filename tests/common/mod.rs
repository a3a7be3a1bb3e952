//! Helpers shared by the integration tests, one of each: the real binary as a child process
//! ([`daemon::Daemon`], started through its builder), raw HTTP ([`http`]), the environment of
//! an AWS client peer ([`aws_env`]), network namespaces (the test thread's own fresh one, or
//! named ones with a compose-style bridge) and clients as other users ([`netns`]), the real
//! openssl checking the identity document's signatures ([`identity`]), a real server in
//! process on a free loopback port, and the CI rule (a test that cannot run fails under
//! `CI=true`, and says why elsewhere).
#![allow(dead_code)]

pub mod aws_env;
pub mod daemon;
pub mod http;
pub mod identity;
pub mod netns;

#[allow(unused_imports)]
pub use aws_env::{AwsEnv, aws_env};
#[allow(unused_imports)]
pub use daemon::Daemon;
#[allow(unused_imports)]
pub use http::{Reply, http, raw};

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

/// A test that cannot run here (no root, a tool missing, …): fails under `CI=true`, else
/// prints "skipped: TEST: WHY" and returns `false`.
pub fn cannot_run(test: &str, why: &str) -> bool {
    assert!(!in_ci(), "{test}: cannot run under CI=true: {why}");
    eprintln!("skipped: {test}: {why}");
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
