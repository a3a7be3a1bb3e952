//! The real binary: `check-config` on good and bad files (exit code and `FILE:LINE:COL`),
//! `print-config` precedence (flag > env > file > default), and `serve` from start to
//! SIGTERM, with a SIGHUP reload that keeps the running config when the file is broken.

mod common;

use common::Daemon;
use nix::sys::signal::{Signal, kill};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fake-metadata");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("FAKE_METADATA_CONFIG")
        .env_remove("FAKE_METADATA_LISTEN")
        .env_remove("FAKE_METADATA_HTTP_TOKENS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the binary runs")
}

#[test]
fn check_config_accepts_a_good_file() {
    let f = fixture("good.toml");
    let out = run(&["check-config", f.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_locates_each_bad_file() {
    for (file, expect) in [
        ("bad-unknown-key.toml", ":6:1: unknown field `bogus-key`"),
        (
            "bad-hop-limit.toml",
            ":2:31: hop limit 0 is out of range: EC2 allows 1 to 64",
        ),
        (
            "bad-zone.toml",
            ":3:1: availability zone `us-east-1a` is not in region `eu-west-1`",
        ),
        ("bad-syntax.toml", ":1:6:"),
    ] {
        let f = fixture(file);
        let out = run(&["check-config", f.to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        let want = format!("{}{expect}", f.display());
        assert!(
            err.starts_with(&want),
            "{file}: expected {want:?}, got {err:?}"
        );
    }
    let out = run(&["check-config", "/nonexistent/x.toml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read config file /nonexistent/x.toml")
    );
}

#[test]
fn print_config_follows_flag_env_file_default() {
    let f = fixture("good.toml");
    let f = f.to_str().unwrap();
    let show = |args: &[&str], env: &[(&str, &str)]| {
        let out = run(args, env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let defaults = show(&["print-config"], &[]);
    assert!(
        defaults.contains("listen = [\"127.0.0.1:1338\", \"[::1]:1338\"]"),
        "{defaults}"
    );
    assert!(defaults.contains("http-tokens = \"optional\""));
    let file = show(&["print-config", "--config", f], &[]);
    assert!(file.contains("instance-type = \"m6i.large\""), "{file}");
    assert!(
        file.contains("region = \"eu-west-1\""),
        "derived values are shown"
    );
    let env = show(
        &["print-config", "--config", f],
        &[
            ("FAKE_METADATA_HTTP_TOKENS", "required"),
            ("FAKE_METADATA_LISTEN", "127.0.0.1:7001"),
        ],
    );
    assert!(env.contains("http-tokens = \"required\""), "env beats file");
    assert!(env.contains("listen = [\"127.0.0.1:7001\"]"), "{env}");
    let flag = show(
        &[
            "print-config",
            "--config",
            f,
            "--listen",
            "127.0.0.1:7002",
            "--http-tokens",
            "optional",
        ],
        &[
            ("FAKE_METADATA_HTTP_TOKENS", "required"),
            ("FAKE_METADATA_LISTEN", "127.0.0.1:7001"),
        ],
    );
    assert!(
        flag.contains("http-tokens = \"optional\"")
            && flag.contains("listen = [\"127.0.0.1:7002\"]"),
        "flag beats env: {flag}"
    );
    let via_env_file = show(&["print-config"], &[("FAKE_METADATA_CONFIG", f)]);
    assert_eq!(via_env_file, file, "FAKE_METADATA_CONFIG names the file");
    // What print-config prints is itself a valid config.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let printed = dir.join("printed.toml");
    std::fs::write(&printed, &file).unwrap();
    assert!(
        run(&["check-config", printed.to_str().unwrap()], &[])
            .status
            .success()
    );
}

fn get(d: &Daemon, path: &str) -> String {
    d.get(path).1
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < common::patience(Duration::from_secs(10)),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_reloads_on_sighup_and_keeps_serving_a_bad_file() {
    // World-readable: as root the daemon drops to `nobody` before reading it again.
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, "[instance]\ninstance-type = \"t3.micro\"\n").unwrap();
    let mut d = Daemon::serve(&cfg).start();
    assert_eq!(get(&d, "/latest/meta-data/instance-type"), "t3.micro");

    std::fs::write(
        &cfg,
        "[instance]\ninstance-type = \"t3.micro\"\nbogus-key = 1\n",
    )
    .unwrap();
    kill(d.pid(), Signal::SIGHUP).unwrap();
    d.wait_for_log(&format!("{}:3:1: unknown field `bogus-key`", cfg.display()));
    assert_eq!(
        get(&d, "/latest/meta-data/instance-type"),
        "t3.micro",
        "the old config keeps serving"
    );

    std::fs::write(&cfg, "[instance]\ninstance-type = \"c7g.xlarge\"\n").unwrap();
    kill(d.pid(), Signal::SIGHUP).unwrap();
    wait_for("the new value", || {
        get(&d, "/latest/meta-data/instance-type") == "c7g.xlarge"
    });

    kill(d.pid(), Signal::SIGTERM).unwrap();
    let status = d.child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    // The stderr reader thread may still be reading the last lines: wait for them.
    d.wait_for_log("stopping");
}

/// With no config file the instance is this machine's: the id derives from
/// `/etc/machine-id`, the address from the default route's interface.
#[test]
fn serve_needs_no_config_file_and_takes_defaults_from_the_box() {
    let d = Daemon::run(&["serve"]).listen("127.0.0.1:0").start();
    let facts = fake_metadata::machine::MachineFacts::gather();
    let want_id = facts.machine_id.as_deref().map_or(
        "i-0123456789abcdef0".to_string(),
        fake_metadata::machine::instance_id,
    );
    assert_eq!(get(&d, "/latest/meta-data/instance-id"), want_id);
    if let Some(nic) = &facts.primary {
        assert_eq!(
            get(&d, "/latest/meta-data/local-ipv4"),
            nic.ipv4.to_string()
        );
        if let Some(mac) = &nic.mac {
            assert_eq!(&get(&d, "/latest/meta-data/mac"), mac);
        }
    }
    let doc = get(&d, "/latest/dynamic/instance-identity/document");
    assert!(
        doc.contains(&format!("\"instanceId\" : \"{want_id}\"")),
        "{doc}"
    );
}
