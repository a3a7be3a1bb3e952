//! The real binary: `check-config` on good and bad files (exit code and `FILE:LINE:COL`),
//! `print-config` precedence (flag > env > file > default), and `serve` from start to
//! SIGTERM, with a SIGHUP reload that keeps the running config when the file is broken.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

/// A `serve` process, killed on drop.
struct Daemon {
    child: Child,
    addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &Path) -> Daemon {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("FAKE_METADATA_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.split("addresses=").nth(1) {
                let _ = tx.send(a.split_whitespace().next().unwrap_or_default().to_string());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("serve logs `listening`");
    Daemon { child, addr, log }
}

fn get(addr: &str, path: &str) -> String {
    let resp = common::raw(
        addr.parse().unwrap(),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(resp)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(d: &Daemon, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.child.id() as i32), sig).unwrap();
}

#[test]
fn serve_reloads_on_sighup_and_keeps_serving_a_bad_file() {
    // World-readable: as root the daemon drops to `nobody` before reading it again.
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, "[instance]\ninstance-type = \"t3.micro\"\n").unwrap();
    let mut d = serve(&cfg);
    assert_eq!(get(&d.addr, "/latest/meta-data/instance-type"), "t3.micro");

    std::fs::write(
        &cfg,
        "[instance]\ninstance-type = \"t3.micro\"\nbogus-key = 1\n",
    )
    .unwrap();
    signal(&d, nix::sys::signal::Signal::SIGHUP);
    let needle = format!("{}:3:1: unknown field `bogus-key`", cfg.display());
    wait_for("the reload error in the log", || {
        d.log.lock().unwrap().contains(&needle)
    });
    assert_eq!(
        get(&d.addr, "/latest/meta-data/instance-type"),
        "t3.micro",
        "the old config keeps serving"
    );

    std::fs::write(&cfg, "[instance]\ninstance-type = \"c7g.xlarge\"\n").unwrap();
    signal(&d, nix::sys::signal::Signal::SIGHUP);
    wait_for("the new value", || {
        get(&d.addr, "/latest/meta-data/instance-type") == "c7g.xlarge"
    });

    signal(&d, nix::sys::signal::Signal::SIGTERM);
    let status = d.child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    assert!(d.log.lock().unwrap().contains("stopping"));
}

/// With no config file the instance is this machine's: the id derives from
/// `/etc/machine-id`, the address from the default route's interface.
#[test]
fn serve_needs_no_config_file_and_takes_defaults_from_the_box() {
    let child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("FAKE_METADATA_CONFIG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Daemon {
        child,
        addr: String::new(),
        log: Default::default(),
    };
    let mut line = String::new();
    let mut r = BufReader::new(guard.child.stderr.take().unwrap());
    while !line.contains("addresses=") {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "serve exited early");
    }
    guard.addr = line
        .split("addresses=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let facts = fake_metadata::host::HostFacts::gather();
    let want_id = facts.machine_id.as_deref().map_or(
        "i-0123456789abcdef0".to_string(),
        fake_metadata::host::instance_id,
    );
    assert_eq!(get(&guard.addr, "/latest/meta-data/instance-id"), want_id);
    if let Some(nic) = &facts.primary {
        assert_eq!(
            get(&guard.addr, "/latest/meta-data/local-ipv4"),
            nic.ipv4.to_string()
        );
        if let Some(mac) = &nic.mac {
            assert_eq!(&get(&guard.addr, "/latest/meta-data/mac"), mac);
        }
    }
    let doc = get(&guard.addr, "/latest/dynamic/instance-identity/document");
    assert!(
        doc.contains(&format!("\"instanceId\" : \"{want_id}\"")),
        "{doc}"
    );
}
