//! `fake-metadata snapshot` and `[replay]` through the real binary: a round trip through our
//! own daemon with a rich config (the crawl of the replay is the crawl of the original, and
//! no credential reaches the file or the tool's output), the replay of a recorded real
//! instance's tree (`fixtures/replay/`, served by a recorded-IMDS server in this file), and
//! bad endpoints (not an IMDS, a 401 without a token path, replies cut short, too big or
//! never finished, listings that loop), each ending quickly with a clear error or a file
//! marked partial.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::Daemon;
use common::daemon::{self, BIN};
use common::http;

/// `fake-metadata snapshot ARGS…`: exit status, stdout, stderr; killed after 60 s.
fn snapshot(args: &[&str]) -> (bool, String, String, Duration) {
    let t = Instant::now();
    let mut child = Command::new(BIN)
        .arg("snapshot")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut e = String::new();
        let _ = se.read_to_string(&mut e);
        e
    });
    let _ = so.read_to_string(&mut out);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            err.push_str(&reader.join().unwrap());
            return (status.success(), out, err, t.elapsed());
        }
        if t.elapsed() > common::patience(Duration::from_secs(60)) {
            let _ = child.kill();
            panic!("snapshot {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(status, body bytes)` of a GET with an optional token, on a fresh connection.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let r = http::get(addr, path, token).expect("an HTTP reply");
    (r.status, r.bytes)
}
/// A parsed snapshot file's `[replay]`: path → bytes, listings keyed `DIR/`.
fn replayed(file: &Path) -> BTreeMap<String, Vec<u8>> {
    let cfg = fake_metadata::config::Config::from_file(file)
        .unwrap_or_else(|e| panic!("{} does not load: {e}", file.display()));
    let r = cfg.replay().expect("a [replay] section");
    let mut m: BTreeMap<String, Vec<u8>> = r
        .leaves
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.0.to_vec()))
        .collect();
    for (k, v) in &r.listings {
        m.insert(format!("{}/", k.as_str()), v.clone().into_bytes());
    }
    m
}

/// The file without the lines that name the endpoint and the time.
fn without_provenance(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !l.starts_with("# fake-metadata snapshot of")
                && !l.starts_with("source = ")
                && !l.starts_with("taken = ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A config serving `snapshot` with the test's control and state settings.
fn replay_config(dir: &Path, state: &str, snapshot: &Path) -> PathBuf {
    let state = dir.join(state);
    std::fs::create_dir_all(&state).unwrap();
    let text = format!(
        "[control]\nenabled = false\n[server]\nstate-directory = \"{}\"\n{}",
        state.display(),
        std::fs::read_to_string(snapshot).unwrap()
    );
    let p = dir.join(format!("{state:?}.toml").replace(['"', '/'], "_"));
    daemon::write_config(&p, &text);
    p
}

const ACCESS_KEY: &str = "AKIAREPLAYTEST000042";
const SECRET_KEY: &str = "replaySecretKey/ShouldNeverBeCopied+0000042";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEReplaySessionTokenNeverCopied0042";
const ACCOUNT: &str = "210987654321";
/// A profile whose name is not its role's (`web`), with a path: what the IAM API allows.
const PROFILE_ARN: &str = "arn:aws:iam::210987654321:instance-profile/team/web-profile";

/// A JSON document's string field.
fn field(body: &[u8], key: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}"))
        .to_string()
}

#[test]
fn round_trip_through_our_own_daemon_is_byte_for_byte_and_copies_no_secret() {
    let dir = daemon::workdir("replay");
    let user_data = dir.path().join("user-data.bin");
    // Binary user data (gzip magic, an invalid UTF-8 byte): the file must carry it as base64.
    std::fs::write(&user_data, b"\x1f\x8b\x08\x00\xffcloud-config\n\x00end").unwrap();
    let a_cfg = dir.path().join("a.toml");
    daemon::write_config(
        &a_cfg,
        &format!(
            "[control]\nenabled = false\n[server]\nstate-directory = \"{state}\"\n\
             [imds]\nhttp-tokens = \"required\"\ninstance-metadata-tags = \"enabled\"\n\
             [instance]\nfrom-host = false\ninstance-id = \"i-0abcdef0123456789\"\n\
             account-id = \"{ACCOUNT}\"\navailability-zone = \"eu-west-1b\"\nlocal-ipv4 = \"10.1.2.3\"\n\
             mac = \"0e:aa:bb:cc:dd:01\"\nipv6 = \"2a05:d018::10\"\nhibernation = true\n\
             public-key = {{ name = \"deploy\", openssh-key = \"ssh-ed25519 AAAAC3Nza deploy@ci\" }}\n\
             [[instance.network-interfaces]]\nmac = \"0e:aa:bb:cc:dd:02\"\ndevice-number = 1\n\
             interface-id = \"eni-0222\"\nlocal-ipv4s = [\"10.1.3.5\", \"10.1.3.6\"]\n\
             public-ipv4s = [\"3.3.3.3\"]\nipv6s = [\"2a05:d018::20\", \"2a05:d018::21\"]\n\
             [[instance.network-interfaces]]\nmac = \"0e:aa:bb:cc:dd:03\"\ndevice-number = 2\n\
             network-card-index = 1\ninterface-id = \"eni-0333\"\nlocal-ipv4s = [\"10.1.4.7\"]\n\
             [tags]\nName = \"web-1\"\nteam = \"core\"\n\
             [user-data]\nfile = \"{ud}\"\n\
             [paths]\n\"meta-data/custom/build\" = \"1234\\n\"\n\"dynamic/custom/x\" = \"y \\\"q\\\"\"\n\
             [iam]\nrole = \"web\"\ninstance-profile-arn = \"{PROFILE_ARN}\"\n\
             source = \"static\"\naccess-key-id = \"{ACCESS_KEY}\"\n\
             secret-access-key = \"{SECRET_KEY}\"\nsession-token = \"{SESSION_TOKEN}\"\n",
            state = dir.path().join("state").display(),
            ud = user_data.display(),
        ),
    );
    let a = Daemon::serve(&a_cfg).start();
    // The original does serve the keys the crawl must never copy.
    let token = http::token(a.addr);
    let (s, creds) = get(
        a.addr,
        "/latest/meta-data/iam/security-credentials/web",
        Some(&token),
    );
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&creds).contains(SECRET_KEY));

    let first = dir.path().join("first.toml");
    let endpoint = format!("http://{}", a.addr);
    let (ok, out, err, took) = snapshot(&["--endpoint", &endpoint, "-o", first.to_str().unwrap()]);
    assert!(ok, "{err}");
    eprintln!("first crawl: {took:?}; {err}");
    let text = std::fs::read_to_string(&first).unwrap();
    for secret in [ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, &token] {
        for (what, s) in [("file", &text), ("stdout", &out), ("stderr", &err)] {
            assert!(!s.contains(secret), "the {what} holds a secret:\n{s}");
        }
    }
    assert!(text.contains("\"user-data\" = { base64 = "), "{text}");
    assert!(
        text.contains("#     meta-data/iam/security-credentials/web"),
        "{text}"
    );
    assert!(!text.contains("PARTIAL"), "{text}");

    // Served from the file: every crawled path answers what the crawl saw.
    let b_cfg = replay_config(dir.path(), "b-state", &first);
    let b = Daemon::serve(&b_cfg).start();
    let b_token = http::token(b.addr);
    let crawled = replayed(&first);
    assert!(crawled.len() > 60, "{}", crawled.len());
    for (path, want) in &crawled {
        let (s, got) = get(b.addr, &format!("/latest/{path}"), Some(&b_token));
        assert_eq!(
            (s, &got),
            (200, want),
            "{path}: {}",
            String::from_utf8_lossy(&got)
        );
        let (s, orig) = get(a.addr, &format!("/latest/{path}"), Some(&token));
        assert_eq!((s, &orig), (200, want), "the original's {path}");
    }
    // Crawled again: the same file, but for where and when.
    let second = dir.path().join("second.toml");
    let endpoint_b = format!("http://{}", b.addr);
    let (ok, out2, err2, _) =
        snapshot(&["--endpoint", &endpoint_b, "-o", second.to_str().unwrap()]);
    assert!(ok, "{err2}");
    let text2 = std::fs::read_to_string(&second).unwrap();
    assert_eq!(without_provenance(&text), without_provenance(&text2));
    for s in [&text2, &out2, &err2] {
        assert!(!s.contains(SECRET_KEY) && !s.contains(ACCESS_KEY));
    }

    // What the box makes itself: IMDSv1 refused as on the original, credentials of its own
    // under the same role and profile, the crawled document signed with its own key.
    assert_eq!(get(b.addr, "/latest/meta-data/instance-id", None).0, 401);
    assert!(
        text.contains(&format!("instance-profile-arn = \"{PROFILE_ARN}\"")),
        "{text}"
    );
    for (addr, t) in [(a.addr, &token), (b.addr, &b_token)] {
        let (s, info) = get(addr, "/latest/meta-data/iam/info", Some(t));
        assert_eq!(s, 200);
        assert_eq!(field(&info, "InstanceProfileArn"), PROFILE_ARN);
        let (s, id) = get(
            addr,
            "/latest/meta-data/identity-credentials/ec2/info",
            Some(t),
        );
        assert_eq!((s, field(&id, "AccountId")), (200, ACCOUNT.to_string()));
    }
    let (s, creds) = get(
        b.addr,
        "/latest/meta-data/iam/security-credentials/web",
        Some(&b_token),
    );
    assert_eq!(s, 200);
    let creds = String::from_utf8(creds).unwrap();
    assert!(
        creds.contains("\"AccessKeyId\" : \"ASIA") && !creds.contains(ACCESS_KEY),
        "{creds}"
    );
    let doc = &crawled["dynamic/instance-identity/document"];
    let sig = |addr, t: &str| get(addr, "/latest/dynamic/instance-identity/rsa2048", Some(t)).1;
    let signed = base64::engine::general_purpose::STANDARD
        .decode(
            String::from_utf8(sig(b.addr, &b_token))
                .unwrap()
                .replace('\n', ""),
        )
        .unwrap();
    assert!(
        signed.windows(doc.len()).any(|w| w == &doc[..]),
        "the replay's rsa2048 embeds the crawled document"
    );
    assert_ne!(
        sig(a.addr, &token),
        sig(b.addr, &b_token),
        "signed with the box's key"
    );

    // No progress line into a pipe; one on a terminal (util-linux `script` gives it a pty).
    assert!(!err2.contains("in flight"), "{err2}");
    let on_tty = dir.path().join("tty.toml");
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{BIN} snapshot --endpoint {endpoint_b} -o {}",
            on_tty.display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux script runs");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{shown}");
    assert!(
        shown.contains("\r\x1b[Kcrawled ") && shown.contains(" in flight"),
        "{shown:?}"
    );
    assert_eq!(replayed(&on_tty), replayed(&second));

    // --no-user-data: not fetched, and the file says so.
    let no_ud = dir.path().join("no-ud.toml");
    let (ok, _, err, _) = snapshot(&[
        "--endpoint",
        &endpoint_b,
        "-o",
        no_ud.to_str().unwrap(),
        "--no-user-data",
    ]);
    assert!(ok, "{err}");
    let mut expect = replayed(&second);
    expect.remove("user-data");
    assert_eq!(replayed(&no_ud), expect);
    assert!(
        std::fs::read_to_string(&no_ud)
            .unwrap()
            .contains("# - user data: --no-user-data")
    );

    // An existing file is kept.
    let (ok, _, err, _) = snapshot(&["--endpoint", &endpoint_b, "-o", second.to_str().unwrap()]);
    assert!(
        !ok && err.contains("exists; pass --force to replace it"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&second).unwrap(), text2);
}

// ---- a recorded instance, served by a small IMDS of our own ----

/// The recorded tree: `listings` (dir → listing) and `leaves` (path → value).
#[derive(serde::Deserialize)]
struct Fixture {
    listings: BTreeMap<String, String>,
    leaves: BTreeMap<String, String>,
}

fn fixture() -> Fixture {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/replay/ec2-2019-us-east-2.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// How the recorded service misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// As EC2, tokens required.
    Faithful,
    /// An old service: no token path, IMDSv1 only.
    V1Only,
    /// A web server: HTML to everything.
    NotImds,
    /// GETs need a token, and there is no token path.
    NoTokenPath,
    /// `meta-data/` also lists `cut` (cut short), `huge` (1 MiB), `slow` (never ends) and
    /// `loop/` (lists itself).
    Faults,
}

const TOKEN: &str = "AQAEAR-recorded-token==";

fn reply(s: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(body);
}

fn serve_one(mut s: TcpStream, mode: Mode, tree: &Fixture) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if s.read(&mut b).unwrap_or(0) == 0 {
            return;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let has_token = head.lines().any(|l| {
        l.to_ascii_lowercase()
            == format!("x-aws-ec2-metadata-token: {}", TOKEN.to_ascii_lowercase())
    });
    match mode {
        Mode::NotImds => {
            return reply(
                &mut s,
                "200 OK",
                "text/html",
                b"<html><body>It works!</body></html>",
            );
        }
        Mode::NoTokenPath if method == "PUT" => {
            return reply(&mut s, "404 Not Found", "text/html", b"");
        }
        _ if method == "PUT" && path == "/latest/api/token" => {
            return reply(&mut s, "200 OK", "text/plain", TOKEN.as_bytes());
        }
        _ => {}
    }
    if !has_token && mode != Mode::V1Only {
        return reply(&mut s, "401 Unauthorized", "text/plain", b"");
    }
    let p = path
        .strip_prefix("/latest/")
        .unwrap_or("")
        .trim_end_matches('/');
    if mode == Mode::Faults {
        match p {
            "meta-data" => {
                let l = format!("{}\ncut\nhuge\nslow\nloop/", tree.listings["meta-data"]);
                return reply(&mut s, "200 OK", "text/plain", l.as_bytes());
            }
            "meta-data/cut" => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
                return;
            }
            "meta-data/huge" => return reply(&mut s, "200 OK", "text/plain", &vec![b'x'; 1 << 20]),
            "meta-data/slow" => return std::thread::sleep(Duration::from_secs(10)),
            _ if p.starts_with("meta-data/loop") => {
                return reply(&mut s, "200 OK", "text/plain", b"loop/\nleaf");
            }
            _ => {}
        }
    }
    if let Some(l) = tree.listings.get(p) {
        reply(&mut s, "200 OK", "text/plain", l.as_bytes())
    } else if let Some(v) = tree.leaves.get(p) {
        reply(&mut s, "200 OK", "text/plain", v.as_bytes())
    } else {
        reply(&mut s, "404 Not Found", "text/html", b"not found")
    }
}

/// Serves the fixture on a free loopback port, one thread per connection, until the test
/// process ends.
fn recorded(mode: Mode) -> SocketAddr {
    serve_tree(mode, fixture())
}

/// Serves `tree` as [`recorded`] serves the fixture.
fn serve_tree(mode: Mode, tree: Fixture) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let tree = Arc::new(tree);
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let tree = tree.clone();
            std::thread::spawn(move || serve_one(s, mode, &tree));
        }
    });
    addr
}

#[test]
fn a_recorded_real_instance_is_replayed_byte_for_byte() {
    let dir = daemon::workdir("replay-rec");
    let tree = fixture();
    let addr = recorded(Mode::Faithful);
    let file = dir.path().join("snap.toml");
    let (ok, _, err, took) = snapshot(&[
        "--endpoint",
        &format!("http://{addr}"),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    eprintln!("crawl of the recorded instance: {took:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    // The document's edited instance id is no EC2 id: kept in the replay, not in [instance].
    assert!(text.contains("# not kept ("), "{text}");
    assert!(text.contains("role = \"\""), "no instance profile: {text}");
    let cfg = replay_config(dir.path(), "state", &file);
    let d = Daemon::serve(&cfg).start();
    let t = http::token(d.addr);
    // The identity credentials are the box's own (their info leaf is checked below).
    let own = |p: &str| p == "meta-data/identity-credentials/ec2/info";
    let mut checked = 0;
    for (p, v) in tree.leaves.iter().filter(|(p, _)| !own(p)) {
        let (s, got) = get(d.addr, &format!("/latest/{p}"), Some(&t));
        assert_eq!(
            (s, String::from_utf8(got).unwrap()),
            (200, v.clone()),
            "{p}"
        );
        checked += 1;
    }
    // Every listing as recorded, identity-credentials/ included: the box serves its own
    // identity credentials, as EC2 does on every instance, with or without a role.
    for (p, want) in &tree.listings {
        let want = match p.as_str() {
            // The box signs with all three forms.
            "dynamic/instance-identity" => "document\npkcs7\nrsa2048\nsignature".into(),
            _ => want.clone(),
        };
        let (s, got) = get(d.addr, &format!("/latest/{p}/"), Some(&t));
        assert_eq!((s, String::from_utf8(got).unwrap()), (200, want), "{p}/");
        checked += 1;
    }
    assert!(checked > 50, "{checked}");
    // The box's own identity credentials: in the replayed document's account.
    let (s, info) = get(
        d.addr,
        "/latest/meta-data/identity-credentials/ec2/info",
        Some(&t),
    );
    assert_eq!(s, 200);
    assert_eq!(field(&info, "Code"), "Success");
    let doc = &tree.leaves["dynamic/instance-identity/document"];
    assert_eq!(
        field(&info, "AccountId"),
        field(doc.as_bytes(), "accountId")
    );
    let (s, creds) = get(
        d.addr,
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        Some(&t),
    );
    assert_eq!(s, 200);
    assert!(field(&creds, "AccessKeyId").starts_with("ASIA"));
    // No role on the recorded instance: no iam/, as on EC2.
    assert_eq!(get(d.addr, "/latest/meta-data/iam/", Some(&t)).0, 404);
}

#[test]
fn bad_endpoints_end_quickly_with_a_clear_error_or_a_partial_file() {
    let dir = daemon::workdir("replay-bad");
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    let not_imds = recorded(Mode::NotImds);
    let (ok, _, err, _) = snapshot(&["--endpoint", &format!("http://{not_imds}"), "-o", &out("a")]);
    assert!(
        !ok && err.contains("is not an instance metadata service"),
        "{err}"
    );
    assert!(!Path::new(&out("a")).exists());

    let no_token = recorded(Mode::NoTokenPath);
    let (ok, _, err, _) = snapshot(&["--endpoint", &format!("http://{no_token}"), "-o", &out("b")]);
    assert!(
        !ok && err.contains("requires an IMDSv2 token (GET answered 401)")
            && err.contains("PUT /latest/api/token answered 404"),
        "{err}"
    );
    assert!(!Path::new(&out("b")).exists());

    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (ok, _, err, _) = snapshot(&["--endpoint", &format!("http://{closed}"), "-o", &out("c")]);
    assert!(!ok && err.contains("cannot reach"), "{err}");
    let (ok, _, err, _) = snapshot(&["--endpoint", "https://169.254.169.254", "-o", &out("c")]);
    assert!(
        !ok && err.contains("--endpoint `https://169.254.169.254`: only http://"),
        "{err}"
    );

    // Cut short, huge, never finished, looping: a file marked partial, soon.
    let faults = recorded(Mode::Faults);
    let (ok, _, err, took) = snapshot(&[
        "--endpoint",
        &format!("http://{faults}"),
        "-o",
        &out("d"),
        "--timeout",
        "1",
    ]);
    assert!(!ok && err.contains("a partial snapshot"), "{err}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let text = std::fs::read_to_string(out("d")).unwrap();
    for want in [
        "# PARTIAL",
        "/latest/meta-data/cut: the reply was cut short",
        "/latest/meta-data/huge: the reply is 1048576 bytes, over the 65536-byte limit",
        "/latest/meta-data/slow: no complete reply within 1s",
        "levels deep: not followed (a loop in the listings?)",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    // It still loads, marked, with what was fetched.
    let kept = replayed(Path::new(&out("d")));
    assert_eq!(kept["meta-data/instance-id"], b"i-069e01e8cc43732f8");
    let status = Command::new(BIN)
        .args(["check-config", &out("d")])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let cfg = replay_config(dir.path(), "state", Path::new(&out("d")));
    let d = Daemon::serve(&cfg).start();
    d.wait_log(
        "[replay] is partial (the crawl did not finish)",
        1,
        Duration::from_secs(5),
    );
    let t = http::token(d.addr);
    assert_eq!(
        get(d.addr, "/latest/meta-data/instance-id", Some(&t)),
        (200, b"i-069e01e8cc43732f8".to_vec())
    );
}

// ---- a hostile endpoint (issue 27, items 1–4) ----

/// Values that, written into a comment with their newlines (as `snapshot` did: once in the
/// parser's reason, once as the value), became configuration that loads: `[iam] source =
/// "process"` (a command run as the daemon's user; the rest of `[iam]` becomes tags) in
/// `iam/info`'s `InstanceProfileId`, and `[server] listen` on every interface in
/// `meta-data/mac` (the second copy swallowed by a multi-line string).
const TO_PROCESS: &str = "\nsource = \"process\"\ncommand = \"id >&2; echo {}\"\n[tags]\nx = '''#";
const TO_LAN: &str = "\n[server]\nlisten = [\"0.0.0.0:1338\"]\nstate-directory = '''#";

/// Where the hostile endpoint puts its value.
#[derive(Debug, Clone, Copy)]
enum Place {
    Mac,
    ProfileId,
    Zone,
}

/// The recorded instance with an instance profile, `evil` at `place`, and `user_data`
/// bytes of user data.
fn hostile_tree(place: Place, evil: &str, user_data: usize) -> Fixture {
    let mut t = fixture();
    let listing = t.listings.get_mut("meta-data").unwrap();
    listing.push_str("\niam/");
    t.listings
        .insert("meta-data/iam".into(), "info\nsecurity-credentials/".into());
    t.listings
        .insert("meta-data/iam/security-credentials".into(), "web".into());
    let id = match place {
        Place::ProfileId => format!("AIPA{evil}"),
        _ => "AIPAVMQT32F2Q43IXV2TC".into(),
    };
    t.leaves.insert(
        "meta-data/iam/info".into(),
        serde_json::json!({
            "Code": "Success",
            "InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/web",
            "InstanceProfileId": id,
        })
        .to_string(),
    );
    if let Place::Mac = place {
        t.leaves
            .insert("meta-data/mac".into(), format!("0a:07:84:3d:6e:38{evil}"));
    }
    let doc = "dynamic/instance-identity/document";
    let mut d: serde_json::Value = serde_json::from_str(&t.leaves[doc]).unwrap();
    d["accountId"] = "123456789012".into();
    if let Place::Zone = place {
        d["availabilityZone"] = format!("us-west-2b{evil}").into();
    }
    t.leaves.insert(doc.into(), d.to_string());
    t.leaves.insert("user-data".into(), "u".repeat(user_data));
    t
}

#[test]
fn a_crawled_value_never_becomes_configuration() {
    let dir = daemon::workdir("replay-evil");
    let cases = [
        (Place::Mac, TO_LAN),
        (Place::ProfileId, TO_PROCESS),
        (Place::Zone, TO_LAN),
        (Place::Mac, TO_PROCESS),
        (Place::ProfileId, TO_LAN),
        (Place::Mac, "\n"),
        (Place::ProfileId, "\r"),
    ];
    for (i, (place, evil)) in cases.into_iter().enumerate() {
        let case = format!("{place:?} {evil:?}");
        let tree = hostile_tree(place, evil, 10);
        let addr = serve_tree(Mode::Faithful, hostile_tree(place, evil, 10));
        let file = dir.path().join(format!("evil-{i}.toml"));
        let (ok, _, err, _) = snapshot(&[
            "--endpoint",
            &format!("http://{addr}"),
            "-o",
            file.to_str().unwrap(),
        ]);
        assert!(ok, "{case}: {err}");
        let text = std::fs::read_to_string(&file).unwrap();
        let status = Command::new(BIN)
            .args(["check-config", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{case}: check-config refused it:\n{text}");
        let cfg = fake_metadata::config::Config::from_file(&file).unwrap();
        let builtin = fake_metadata::config::Config::builtin();
        assert_eq!(cfg.server(), builtin.server(), "{case}:\n{text}");
        assert_eq!(cfg.iam().source, builtin.iam().source, "{case}:\n{text}");
        assert!(cfg.tags().is_empty(), "{case}:\n{text}");
        // Every crawled byte is in [replay], as crawled.
        let got = replayed(&file);
        for p in ["meta-data/mac", "dynamic/instance-identity/document"] {
            assert_eq!(got[p], tree.leaves[p].as_bytes(), "{case} {p}");
        }
        // No line of the file starts with what the endpoint sent.
        for l in text.lines() {
            assert!(
                !l.starts_with("source = \"process")
                    && !l.starts_with("command =")
                    && !l.starts_with("listen =")
                    && !l.starts_with("[server]")
                    && !l.starts_with("[tags]"),
                "{case}: {l}"
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn the_snapshot_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = daemon::workdir("replay-mode");
    let addr = recorded(Mode::Faithful);
    let file = dir.path().join("snap.toml");
    let ep = format!("http://{addr}");
    let (ok, _, err, _) = snapshot(&["--endpoint", &ep, "-o", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    // Replacing a world-readable file leaves one readable by its owner only.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err, _) = snapshot(&["--endpoint", &ep, "-o", file.to_str().unwrap(), "--force"]);
    assert!(ok, "{err}");
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn user_data_the_loader_refuses_is_not_written() {
    let dir = daemon::workdir("replay-ud");
    // 16 KiB is kept, byte for byte.
    let addr = serve_tree(Mode::Faithful, hostile_tree(Place::Mac, "", 16 * 1024));
    let file = dir.path().join("exact.toml");
    let (ok, _, err, _) = snapshot(&[
        "--endpoint",
        &format!("http://{addr}"),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(replayed(&file)["user-data"].len(), 16 * 1024);
    // One byte more: not kept, said, and the file loads.
    let addr = serve_tree(Mode::Faithful, hostile_tree(Place::Mac, "", 16 * 1024 + 1));
    let file = dir.path().join("over.toml");
    let (ok, _, err, _) = snapshot(&[
        "--endpoint",
        &format!("http://{addr}"),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("a partial snapshot"), "{err}");
    assert!(
        err.contains("/latest/user-data: the reply is 16385 bytes, over the 16384-byte limit"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!replayed(&file).contains_key("user-data"));
}

#[test]
fn a_snapshot_to_a_closed_stdout_fails() {
    let addr = recorded(Mode::Faithful);
    // As a shell closes it: `>&-`.
    let out = Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" snapshot --endpoint \"$1\" -o - >&-",
            BIN,
            &format!("http://{addr}"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cannot write standard output: it is closed") && !err.contains("wrote"),
        "{err}"
    );
}
