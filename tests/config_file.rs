//! The config file itself, through the real binary: what an outside attack run found
//! (issue 27, items 5 and 6), each as the behaviour that must hold.
//! - it is read boundedly and never blocks: `/dev/zero`, a FIFO and a file over the limit
//!   are refused at once by `check-config` and `serve`, with one message naming the file;
//! - a large `[paths]` or `[replay.leaves]` loads in linear time: 40,000 entries are checked
//!   and served within a bound that the quadratic loader missed by minutes (a bound, not a
//!   timed ratio, so a loaded machine does not make it flaky).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;
use common::daemon;
use common::http;

fn bin() -> Command {
    let mut c = Command::new(daemon::BIN);
    c.env_remove("FAKE_METADATA_CONFIG")
        .env_remove("FAKE_METADATA_LISTEN")
        .env_remove("FAKE_METADATA_HTTP_TOKENS");
    c
}

/// Runs the binary to its end, failing the test if it takes more than `limit`.
fn run_within(mut c: Command, limit: Duration) -> Output {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let limit = common::patience(limit);
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{c:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `check-config FILE` and `serve --config FILE`: both end at once with one line naming FILE.
fn refused_at_once(file: &Path, why: &str) {
    let at = format!("cannot read config file {}: {why}", file.display());
    let mut c = bin();
    c.args(["check-config", file.to_str().unwrap()]);
    let out = run_within(c, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.starts_with(&at), "{at}\n{err}");
    assert_eq!(err.lines().count(), 1, "said once:\n{err}");

    let mut c = bin();
    c.args(["serve", "--config", file.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"]);
    let out = run_within(c, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&at), "{at}\n{err}");
}

#[test]
fn endless_blocking_and_huge_config_files_are_refused_at_once() {
    refused_at_once(Path::new("/dev/zero"), "is not a regular file");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    refused_at_once(&fifo, "is not a regular file");
    // `config::CONFIG_MAX`, spelled out so that this test also runs against code without it.
    let max = 32 << 20;
    let big = dir.path().join("big.toml");
    let mut text = String::from("# a comment\n");
    text.push_str(&"#".repeat(max - text.len()));
    text.push('\n');
    std::fs::write(&big, &text).unwrap();
    refused_at_once(&big, "it is over 32 MiB");
    // Exactly the limit loads.
    text.pop();
    std::fs::write(&big, &text).unwrap();
    let mut c = bin();
    c.args(["check-config", big.to_str().unwrap()]);
    let out = run_within(c, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn forty_thousand_paths_and_replayed_leaves_load_and_serve_in_linear_time() {
    const N: usize = 40_000;
    let dir = daemon::workdir("many");
    let entries = |section: &str, prefix: &str| {
        let mut t = format!("[{section}]\n");
        for i in 0..N {
            t.push_str(&format!("\"meta-data/{prefix}/k{i}\" = \"v{i}\"\n"));
        }
        t
    };
    // `check-config`: each alone. The quadratic loader took 33 s for 20,000 `[paths]` in a
    // release build, 192 s in a debug one.
    for (name, body) in [
        ("paths.toml", entries("paths", "custom")),
        ("leaves.toml", entries("replay.leaves", "custom")),
    ] {
        let f = dir.path().join(name);
        daemon::write_config(&f, &body);
        let mut c = bin();
        c.args(["check-config", f.to_str().unwrap()]);
        let t = Instant::now();
        let out = run_within(c, Duration::from_secs(20));
        assert!(out.status.success(), "{name}: {out:?}");
        eprintln!("check-config of {N} entries ({name}): {:?}", t.elapsed());
    }
    // `serve`: both at once, under a replayed listing that names one child of 40,000 (the
    // others are inserted where they sort), until the first answer.
    let mut text = daemon::base_config(dir.path());
    text.push_str(&entries("paths", "added"));
    text.push_str("[replay.listings]\n\"meta-data/custom\" = \"k0\"\n");
    text.push_str(&entries("replay.leaves", "custom"));
    let f = dir.path().join("both.toml");
    daemon::write_config(&f, &text);
    let t = Instant::now();
    let d = Daemon::serve(&f)
        .ready_within(common::patience(Duration::from_secs(90)))
        .start();
    let r = http::get(d.addr, "/latest/meta-data/added/k39999", None).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "v39999"));
    eprintln!("serve of 2 × {N} entries, first answer: {:?}", t.elapsed());
    let r = http::get(d.addr, "/latest/meta-data/custom/", None).unwrap();
    assert_eq!(r.body.lines().count(), N);
}
