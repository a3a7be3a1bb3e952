//! Faults around the real binary: SIGHUP with broken configs under load, kill -9 under load
//! and a restart on the same port, a log directory the daemon cannot write, and a full disk
//! under the log file. In each, the daemon keeps serving, and says what is wrong once.
//!
//! (That a kill -9 leaves no duplicate interception rules behind is the install idempotency
//! that `tests/netns.rs` checks: `install` twice adds one rule.)

mod common;
use common::daemon;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::http::{self, get};
use daemon::Daemon;
use nix::sys::signal::Signal;

const TYPE_PATH: &str = "/latest/meta-data/instance-type";

/// One request's outcome: when it ended, and the body of a 200 or what went wrong.
type Outcome = (Instant, Result<String, String>);

/// Threads that GET `path` in a loop until stopped, each result stamped with its time.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    fn start(addr: SocketAddr, threads: usize, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    let until = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        let r = match get(addr, path, None) {
                            Some(r) if r.status == 200 => Ok(r.body),
                            Some(r) => Err(format!("status {}", r.status)),
                            None => Err("no answer".into()),
                        };
                        out.push((Instant::now(), r));
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    out
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<_> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_by_key(|(t, _)| *t);
        all
    }
}

#[test]
fn sighup_with_broken_configs_under_load_fails_no_request() {
    let dir = daemon::workdir("hup-load");
    let cfg = dir.path().join("config.toml");
    let base = daemon::base_config(dir.path());
    let good = format!("{base}instance-type = \"t3.micro\"\n");
    daemon::write_config(&cfg, &good);
    let d = Daemon::serve(&cfg).start();
    let addr = d.addr;
    let token = http::token(addr);
    let load = Load::start(addr, 4, TYPE_PATH);
    std::thread::sleep(Duration::from_millis(300));

    let big_user_data = format!("{base}[user-data]\ntext = \"{}\"\n", "x".repeat(20_000));
    let broken: Vec<(&str, Vec<u8>)> = vec![
        (
            "syntax",
            format!("{base}instance-type = \"t3.micro\n").into_bytes(),
        ),
        ("unknown key", format!("{good}bogus = 1\n").into_bytes()),
        (
            "bad value",
            format!("{good}[imds]\nhttp-put-response-hop-limit = 0\n").into_bytes(),
        ),
        ("user-data over 16 KiB", big_user_data.into_bytes()),
        (
            "not UTF-8",
            b"[instance]\ninstance-type = \"\xff\xfe\"\n".to_vec(),
        ),
        (
            "paths that clash",
            format!("{good}[paths]\n\"meta-data/a\" = \"1\"\n\"meta-data/a/b\" = \"2\"\n")
                .into_bytes(),
        ),
        (
            "a log filter that does not parse",
            format!("{good}[log]\nlevel = \"=[\"\n").into_bytes(),
        ),
    ];
    let n = broken.len();
    for (i, (what, text)) in broken.into_iter().enumerate() {
        std::fs::write(&cfg, text).unwrap();
        d.signal(Signal::SIGHUP);
        d.wait_log("config reload failed", i + 1, Duration::from_secs(10));
        eprintln!("broken config {}: {what}: refused", i + 1);
        std::thread::sleep(Duration::from_millis(150));
    }
    // And one the daemon cannot read at all.
    std::fs::write(&cfg, &good).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o000)).unwrap();
    // (As root the daemon has dropped to `nobody` by now, so it cannot read it either.)
    d.signal(Signal::SIGHUP);
    d.wait_log("config reload failed", n + 1, Duration::from_secs(10));
    eprintln!("broken config {}: unreadable: refused", n + 1);
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();

    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.as_deref() != Ok("t3.micro"))
        .collect();
    eprintln!(
        "{} requests during the reloads, {} failed",
        results.len(),
        failed.len()
    );
    assert!(results.len() > 100, "the load ran: {}", results.len());
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let log = d.log();
    assert!(!log.contains("config reloaded"), "{log}");
    assert!(log.contains("keeping the running configuration"), "{log}");
    let t = get(addr, TYPE_PATH, Some(&token)).unwrap();
    assert_eq!(
        (t.status, t.body.as_str()),
        (200, "t3.micro"),
        "a token survives reloads"
    );

    // A good file is taken again.
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    daemon::write_config(&cfg, &format!("{base}instance-type = \"c7g.xlarge\"\n"));
    d.signal(Signal::SIGHUP);
    d.wait_log("config reloaded", 1, Duration::from_secs(10));
    assert_eq!(get(addr, TYPE_PATH, None).unwrap().body, "c7g.xlarge");
}

#[test]
fn kill_9_under_load_then_a_restart_on_the_same_port_serves_again() {
    let dir = daemon::workdir("kill9");
    let cfg = dir.path().join("config.toml");
    daemon::write_config(&cfg, &daemon::base_config(dir.path()));
    let mut d = Daemon::serve(&cfg).start();
    let addr = d.addr;
    let old_token = http::token(addr);
    let load = Load::start(addr, 3, "/latest/meta-data/instance-id");
    std::thread::sleep(Duration::from_millis(500));

    d.signal(Signal::SIGKILL);
    let killed = Instant::now();
    let status = d.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    std::thread::sleep(Duration::from_millis(300));
    let d2 = Daemon::serve(&cfg).listen(&addr.to_string()).start(); // panics if the port cannot be bound again (TIME_WAIT, …)
    let listening = Instant::now();
    eprintln!(
        "restarted on {addr} {:?} after the kill",
        listening - killed
    );
    std::thread::sleep(Duration::from_millis(700));
    let results = load.finish();

    let before = results.iter().filter(|(t, _)| *t < killed).count();
    let down: Vec<_> = results
        .iter()
        .filter(|(t, _)| *t >= killed && *t < listening)
        .collect();
    let after: Vec<_> = results.iter().filter(|(t, _)| *t >= listening).collect();
    let after_failed: Vec<_> = after
        .iter()
        .filter(|(_, r)| r.as_deref() != Ok("i-0123456789abcdef0"))
        .collect();
    eprintln!(
        "{before} answers before the kill; {} requests while down ({} failed); {} after the restart ({} failed)",
        down.len(),
        down.iter().filter(|(_, r)| r.is_err()).count(),
        after.len(),
        after_failed.len()
    );
    assert!(before > 10 && after.len() > 10);
    // A request in flight at the moment of the restart may have hit the dead socket; any
    // that started a moment after the new daemon listens must succeed.
    let settled: Vec<_> = after_failed
        .iter()
        .filter(|(t, _)| *t > listening + Duration::from_millis(100))
        .collect();
    assert!(settled.is_empty(), "{settled:?}");
    // Tokens die with the process, as on EC2 after a stop; SDKs get a 401 and fetch another.
    let r = get(addr, "/latest/meta-data/instance-id", Some(&old_token)).unwrap();
    assert_eq!(r.status, 401);
    let fresh = http::token(addr);
    assert_eq!(
        get(addr, "/latest/meta-data/instance-id", Some(&fresh))
            .unwrap()
            .status,
        200
    );
    drop(d2);
}

/// Serves `n` requests and checks each.
fn serve_n(addr: SocketAddr, n: usize) {
    for i in 0..n {
        let r = get(addr, TYPE_PATH, None).unwrap_or_else(|| panic!("request {i}: no answer"));
        assert_eq!(r.status, 200, "request {i}");
    }
}

#[test]
fn a_log_directory_the_daemon_cannot_write_is_reported_once() {
    let dir = daemon::workdir("log-ro");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o555)).unwrap();
    let log_file = logs.join("fake-metadata.log");
    let cfg = dir.path().join("config.toml");
    daemon::write_config(
        &cfg,
        &format!(
            "{}[log]\nrequests = true\nfile = \"{}\"\n",
            daemon::base_config(dir.path()),
            log_file.display()
        ),
    );
    let mut spawn = Daemon::serve(&cfg);
    if daemon::is_root() {
        // Root writes anywhere: run the daemon as `nobody` from the start, as it would be if
        // systemd started it as its own user.
        spawn = spawn.user(65534, 65534);
    }
    let mut d = spawn.start();
    serve_n(d.addr, 30);
    for _ in 0..3 {
        d.signal(Signal::SIGHUP); // logrotate's postrotate: each reopen fails again
        std::thread::sleep(Duration::from_millis(200));
    }
    d.wait_log("config reloaded", 3, Duration::from_secs(10));
    serve_n(d.addr, 30);
    assert!(d.alive());
    let log = d.log();
    let said: Vec<&str> = log.lines().filter(|l| l.contains("log file")).collect();
    eprintln!("{said:#?}");
    assert_eq!(
        said.len(),
        1,
        "said once, not per line or per SIGHUP:\n{log}"
    );
    assert!(said[0].contains("cannot open the log file"), "{}", said[0]);
    assert!(
        said[0].contains(&log_file.display().to_string()),
        "names the file"
    );
    assert!(
        said[0].contains("ermission denied"),
        "says why: {}",
        said[0]
    );
    assert!(!log_file.exists());
}

/// The checks shared by both full-disk tests: `n` requests are served, the failure is said
/// once, and the daemon lives on.
fn full_disk_is_said_once(d: &mut daemon::Daemon, log_file: &Path) {
    serve_n(d.addr, 600);
    assert!(d.alive());
    let log = d.log();
    let said: Vec<&str> = log.lines().filter(|l| l.contains("log file")).collect();
    eprintln!("{said:#?}");
    assert_eq!(
        said.len(),
        1,
        "said once:\n{}",
        &log[log.len().saturating_sub(2000)..]
    );
    assert!(said[0].contains("cannot write the log file"), "{}", said[0]);
    assert!(said[0].contains("No space left on device"), "{}", said[0]);
    assert!(
        said[0].contains(&log_file.display().to_string()),
        "{}",
        said[0]
    );
}

#[test]
fn a_full_disk_under_the_log_file_is_reported_once() {
    // A 64 KiB tmpfs in a mount namespace of the daemon's own: the first few hundred request
    // lines fit, then every write fails with ENOSPC.
    let root = daemon::is_root();
    let userns = !root && common::has_program("unshare", &["-r", "-m", "true"]);
    if !common::require(
        (root && common::has_program("unshare", &["-m", "true"])) || userns,
        "unshare -m (a private mount namespace for a tiny tmpfs)",
    ) {
        return;
    }
    let dir = daemon::workdir("log-full");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let log_file = mnt.join("fake-metadata.log");
    let cfg = dir.path().join("config.toml");
    daemon::write_config(
        &cfg,
        &format!(
            "{}[log]\nrequests = true\nfile = \"{}\"\n",
            daemon::base_config(dir.path()),
            log_file.display()
        ),
    );
    let spawn = Daemon::serve(&cfg);
    let mut wrapper: Vec<String> = vec!["unshare".into()];
    if userns {
        wrapper.push("-r".into());
    }
    wrapper.extend(
        [
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k,mode=0777 fake-metadata-test \"$0\" && exec \"$@\"",
        ]
        .map(String::from),
    );
    wrapper.push(mnt.display().to_string());
    let mut d = spawn.wrapper(&wrapper).start();
    full_disk_is_said_once(&mut d, &log_file);
    // The file is in the daemon's namespace only: nothing leaks onto the host.
    assert!(!log_file.exists(), "the tmpfs is private to the daemon");
}

#[test]
fn a_log_file_on_dev_full_is_reported_once() {
    // /dev/full: every write fails with ENOSPC, from the first one on.
    let dir = daemon::workdir("log-devfull");
    let log_file = dir.path().join("fake-metadata.log");
    std::os::unix::fs::symlink("/dev/full", &log_file).unwrap();
    let cfg = dir.path().join("config.toml");
    daemon::write_config(
        &cfg,
        &format!(
            "{}[log]\nrequests = true\nfile = \"{}\"\n",
            daemon::base_config(dir.path()),
            log_file.display()
        ),
    );
    let mut d = Daemon::serve(&cfg).start();
    full_disk_is_said_once(&mut d, &log_file);
}

#[test]
fn a_daemon_started_as_root_keeps_its_log_file_across_sighup_and_rotation() {
    // Root opens the log file, then drops to `nobody`; SIGHUP reopens it as `nobody`. The
    // file the daemon created must therefore be `nobody`'s (it was root's, and the first
    // SIGHUP lost the log file: "cannot open the log file ... Permission denied").
    if !common::require(
        daemon::is_root(),
        "root (the daemon drops privileges only as root)",
    ) {
        return;
    }
    let dir = daemon::workdir("log-hup");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Like systemd's LogsDirectory=: the directory belongs to the service user.
    std::os::unix::fs::chown(&logs, Some(65534), Some(65534)).unwrap();
    let log_file = logs.join("fake-metadata.log");
    let cfg = dir.path().join("config.toml");
    daemon::write_config(
        &cfg,
        &format!(
            "{}[log]\nrequests = true\nfile = \"{}\"\n",
            daemon::base_config(dir.path()),
            log_file.display()
        ),
    );
    let d = Daemon::serve(&cfg).start();
    let owner = |p: &Path| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap());
    assert_eq!(
        owner(&log_file),
        65534,
        "the daemon's own file is handed to its user"
    );
    d.signal(Signal::SIGHUP);
    d.wait_log("config reloaded", 1, Duration::from_secs(10));
    serve_n(d.addr, 3);
    // logrotate: rename, then SIGHUP; the daemon makes a new file and writes there.
    let rotated = logs.join("fake-metadata.log.1");
    std::fs::rename(&log_file, &rotated).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log("config reloaded", 2, Duration::from_secs(10));
    serve_n(d.addr, 3);
    let log = d.log();
    assert!(!log.contains("cannot open the log file"), "{log}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("SIGHUP: reopened log file"), "{old}");
    let new = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        new.contains("SIGHUP: reopened log file") && new.contains("status=200"),
        "{new}"
    );
    assert_eq!(owner(&log_file), 65534);
}
