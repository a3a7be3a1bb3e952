//! Start-up and the user data, through the real binary: what an outside attack run found
//! (issue 17, findings 1–3), each as the behaviour that must hold.
//! - the user data is read when the config is loaded, never on a rebuild: a file that goes
//!   away after start freezes nothing;
//! - a user-data file is read boundedly and never blocks: `/dev/zero` and a FIFO are refused
//!   at once by `check-config`, `serve` and a reload, with the key's FILE:LINE:COL;
//! - a SIGHUP at any point of start-up (logrotate sends one) never kills the daemon.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fake-metadata"));
    c.env_remove("FAKE_METADATA_CONFIG")
        .env_remove("FAKE_METADATA_LISTEN")
        .env_remove("FAKE_METADATA_HTTP_TOKENS");
    c
}

/// Runs the binary to its end, failing the test if it takes more than `limit`.
fn run_within(mut c: Command, limit: Duration) -> Output {
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("the command did not finish within {limit:?} (it blocked)");
        }
    }
}

fn config(dir: &Path, user_data_file: &Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate-directory = \"{}\"\n[control]\nsocket = \"{}\"\n\n[user-data]\nfile = \"{}\"\n{extra}",
            dir.join("state").display(),
            dir.join("control.sock").display(),
            user_data_file.display()
        ),
    )
    .unwrap();
    cfg
}

/// `serve` with `cfg`, on a free loopback port, as a command to run to its end.
fn serve_command(cfg: &Path) -> Command {
    let mut c = bin();
    c.args([
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    c
}

/// `serve` with `cfg`, on a free loopback port, running.
fn serve(cfg: &Path) -> common::Daemon {
    common::Daemon::serve(cfg).start()
}

fn ctl(dir: &Path, args: &[&str]) -> Output {
    let mut c = bin();
    c.arg("ctl")
        .arg("--socket")
        .arg(dir.join("control.sock"))
        .args(args);
    run_within(c, Duration::from_secs(20))
}

#[test]
fn user_data_that_disappears_after_start_freezes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ud = dir.path().join("user-data");
    std::fs::write(&ud, "#cloud-config\nhostname: a\n").unwrap();
    let cfg = config(dir.path(), &ud, "[iam]\nrole = \"web\"\n");
    let d = serve(&cfg);
    let creds = |d: &common::Daemon| d.get("/latest/meta-data/iam/security-credentials/web").1;
    let before = creds(&d);
    std::fs::remove_file(&ud).unwrap();

    // A ctl change, a scheduled one when it comes due, and a credential rotation are all
    // published: nothing re-reads the user data.
    let out = ctl(dir.path(), &["set", "meta-data/custom/x", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.get("/latest/meta-data/custom/x"), (200, "1".into()));
    let out = ctl(dir.path(), &["credentials", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(creds(&d), before, "the rotation is served");
    let out = ctl(dir.path(), &["spot", "--action", "stop", "--in", "1s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.get("/latest/meta-data/spot/instance-action").0, 200);
    // The user data loaded at start is still what is served.
    assert_eq!(
        d.get("/latest/user-data"),
        (200, "#cloud-config\nhostname: a\n".into())
    );
    assert!(!d.log().contains("cannot publish"), "{}", d.log());
}

/// `check-config` and `serve` on a config whose user data is `target`: both end at once, with
/// an error at the `file` key (line 7, column 1 of the file [`config`] writes).
fn refused_at_once(target: &Path, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), target, "");
    let mut c = bin();
    c.args(["check-config", cfg.to_str().unwrap()]);
    let out = run_within(c, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let at = format!("{}:7:1: user data file {}", cfg.display(), target.display());
    assert!(err.starts_with(&at), "{at}\n{err}");
    assert!(err.contains(why), "{err}");
    assert_eq!(err.lines().count(), 1, "said once:\n{err}");

    let out = run_within(serve_command(&cfg), Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&at), "{at}\n{err}");
}

#[test]
fn endless_and_blocking_user_data_files_are_refused_at_once() {
    refused_at_once(Path::new("/dev/zero"), "is not a regular file");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    refused_at_once(&fifo, "is not a regular file");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 16 * 1024 + 1]).unwrap();
    refused_at_once(&big, "is over 16 KiB");
    let exact = dir.path().join("exact");
    std::fs::write(&exact, vec![b'x'; 16 * 1024]).unwrap();
    let cfg = config(dir.path(), &exact, "");
    let mut c = bin();
    c.args(["check-config", cfg.to_str().unwrap()]);
    let out = run_within(c, Duration::from_secs(10));
    assert!(out.status.success(), "16 KiB is allowed: {out:?}");
}

#[test]
fn a_reload_onto_a_fifo_keeps_the_running_config_and_sigterm_still_stops() {
    let dir = tempfile::tempdir().unwrap();
    let ud = dir.path().join("user-data");
    std::fs::write(&ud, "one").unwrap();
    let cfg = config(dir.path(), &ud, "");
    // Started as root (CI), the daemon reloads as `nobody`: it must be able to open the FIFO.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = serve(&cfg);
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    config(dir.path(), &fifo, "");
    kill(d.pid(), Signal::SIGHUP).unwrap();
    d.wait_for_log("config reload failed, keeping the running configuration");
    assert!(d.log().contains("is not a regular file"), "{}", d.log());
    assert_eq!(d.get("/latest/user-data"), (200, "one".into()));
    kill(d.pid(), Signal::SIGTERM).unwrap();
    let t = Instant::now();
    let mut d = d;
    loop {
        if d.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "SIGTERM ignored");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` has a handler for SIGHUP (`SigCgt` in /proc).
fn catches_hup(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1 << (Signal::SIGHUP as u64 - 1)) != 0)
}

#[test]
fn sighup_at_any_point_of_start_up_never_kills_the_daemon() {
    // A first start that has to make the identity key (the longest start-up), then starts
    // that find it: HUPs from the moment the handler exists until the daemon answers, and the
    // port never accepts before the handler is installed.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nstate-directory = \"{}\"\n[control]\nenabled = false\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    for round in 0..4 {
        let mut child = bin()
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let t = Instant::now();
        let mut hups = 0;
        let answered = loop {
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: the daemon died after {hups} SIGHUPs"
            );
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "round {round}: no answer"
            );
            let handler = catches_hup(pid);
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                assert!(
                    handler,
                    "round {round}: the port accepted before the SIGHUP handler was installed"
                );
                break true;
            }
            if handler {
                kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGHUP).unwrap();
                hups += 1;
            }
            std::thread::sleep(Duration::from_micros(300));
        };
        assert!(answered);
        for _ in 0..3 {
            kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGHUP).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: died after answering"
        );
        let (status, _, _) = common::http(
            format!("127.0.0.1:{port}"),
            "GET",
            "/latest/meta-data/instance-id",
            &[],
        );
        assert_eq!(status, 200);
        let _ = child.kill();
        let _ = child.wait();
    }
}
