//! No secret reaches a log: the real binary with `[log] file`, request logging and the most
//! verbose level serves credentials (static role keys and generated identity credentials),
//! IMDSv2 tokens, bad and tampered tokens, reloads broken configs that hold the keys, and runs
//! failing `process` sources that print secret-looking JSON. Then neither the log file nor
//! stderr may hold an access key id beyond its first 4 characters, a secret key, a session
//! token or an IMDSv2 token (checked as any 8 consecutive characters of each). `print-config`
//! and `check-config` are held to the same.
//!
//! journald is not on this host: the system tier (tests/system/nspawn.sh, a booted systemd)
//! is where the journal is read.

mod common;
use common::daemon;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::http::{self, get};
use daemon::Daemon;
use nix::sys::signal::Signal;

/// Random characters from `alphabet`.
fn random(alphabet: &[u8], n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A fresh, unmistakable set of keys for this run.
struct Keys {
    id: String,
    secret: String,
    token: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            id: format!("{prefix}{}", random(UPPER, 16)),
            secret: random(B64, 40),
            token: format!("IQoJb3JpZ2luX2Vj{}", random(B64, 300)),
        }
    }

    fn all(&self, name: &str) -> Vec<(String, String)> {
        vec![
            (format!("{name} access key id"), self.id.clone()),
            (format!("{name} secret key"), self.secret.clone()),
            (format!("{name} session token"), self.token.clone()),
        ]
    }
}

/// Fails if any 8 consecutive characters of a secret appear in `text`, or an access key id
/// shows more than its first 4 characters.
fn assert_no_leak(where_: &str, text: &str, secrets: &[(String, String)]) {
    for (name, s) in secrets {
        let n = s.len().min(8);
        for i in 0..=s.len() - n {
            let w = &s[i..i + n];
            assert!(
                !text.contains(w),
                "{where_} shows part of the {name} ({w:?} of {s:?}):\n{}",
                text.lines()
                    .filter(|l| l.contains(w))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if name.contains("access key id") {
            assert!(
                !text.contains(&s[..5]),
                "{where_} shows 5 characters of the {name}"
            );
        }
    }
}

fn static_iam(k: &Keys) -> String {
    format!(
        "[iam]\nrole = \"web\"\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = \"{}\"\nsession-token = \"{}\"\n",
        k.id, k.secret, k.token
    )
}

fn log_section(file: &Path) -> String {
    format!(
        "[log]\nrequests = true\nlevel = \"trace\"\nfile = \"{}\"\n",
        file.display()
    )
}

fn start(cfg: &Path) -> Daemon {
    Daemon::serve(cfg).env("FAKE_METADATA_LOG", "trace").start()
}

fn reload(d: &Daemon, cfg: &Path, text: &str, needle: &str, count: usize) {
    daemon::write_config(cfg, text);
    d.signal(Signal::SIGHUP);
    d.wait_log(needle, count, Duration::from_secs(10));
}

/// Stops the daemon and returns (stderr, log file).
fn stop(mut d: Daemon, log_file: &Path) -> (String, String) {
    d.signal(Signal::SIGTERM);
    let _ = d.child.wait();
    d.wait_log("stopped", 1, Duration::from_secs(5));
    (
        d.log(),
        std::fs::read_to_string(log_file).expect("the log file was written"),
    )
}

fn json_field(body: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {body}"))
        .to_string()
}

#[test]
fn no_credential_or_token_reaches_the_log_file_or_stderr() {
    let dir = daemon::workdir("secrets");
    let cfg = dir.path().join("config.toml");
    let log_file = dir.path().join("fake-metadata.log");
    let base = format!(
        "{}{}",
        daemon::base_config(dir.path()),
        log_section(&log_file)
    );
    let keys = Keys::new("AKIA");
    daemon::write_config(&cfg, &format!("{base}{}", static_iam(&keys)));
    let d = start(&cfg);
    let addr = d.addr;
    let mut secrets = keys.all("static");

    // Tokens, credentials, the identity credentials.
    let token = http::token(addr);
    secrets.push(("IMDSv2 token".into(), token.clone()));
    let creds = get(
        addr,
        "/latest/meta-data/iam/security-credentials/web",
        Some(&token),
    )
    .unwrap();
    assert_eq!(creds.status, 200);
    assert_eq!(
        json_field(&creds.body, "AccessKeyId"),
        keys.id,
        "the keys are served"
    );
    assert_eq!(json_field(&creds.body, "SecretAccessKey"), keys.secret);
    assert_eq!(json_field(&creds.body, "Token"), keys.token);
    let ident = get(
        addr,
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        Some(&token),
    )
    .unwrap();
    assert_eq!(ident.status, 200);
    for (name, key) in [
        ("identity access key id", "AccessKeyId"),
        ("identity secret key", "SecretAccessKey"),
        ("identity session token", "Token"),
    ] {
        secrets.push((name.into(), json_field(&ident.body, key)));
    }
    assert_eq!(
        get(addr, "/latest/meta-data/iam/info", None)
            .unwrap()
            .status,
        200
    );
    let v1 = get(addr, "/latest/meta-data/iam/security-credentials/web", None).unwrap();
    assert_eq!(v1.status, 200, "IMDSv1 too");

    // Bad tokens: forged, tampered, a token with a secret in it.
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    secrets.push(("tampered IMDSv2 token".into(), tampered.clone()));
    let forged = random(b"abcdefghijklmnopqrstuvwxyz0123456789-_", 56);
    secrets.push(("forged IMDSv2 token".into(), forged.clone()));
    for t in [&tampered, &forged, &keys.secret] {
        let r = get(
            addr,
            "/latest/meta-data/iam/security-credentials/web",
            Some(t),
        )
        .unwrap();
        assert_eq!(r.status, 401);
    }
    let bad_ttl = http::exchange(
        addr,
        format!("PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: {}\r\n\r\n", keys.secret).as_bytes(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(bad_ttl.status, 400);

    // Broken reloads with the keys in them: a typo'd key name, a value with a space, a string
    // left open, a bare value, a wrong type, a key for another source.
    let broken = [
        format!(
            "[iam]\nrole = \"web\"\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-acess-key = \"{}\"\n",
            keys.id, keys.secret
        ),
        format!(
            "[iam]\nrole = \"web\"\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = \"{} x\"\n",
            keys.id, keys.secret
        ),
        format!(
            "[iam]\nrole = \"web\"\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = \"{}\nsession-token = \"{}\"\n",
            keys.id, keys.secret, keys.token
        ),
        format!(
            "[iam]\nrole = \"web\"\nsource = \"static\"\naccess-key-id = {}\nsecret-access-key = \"{}\"\n",
            keys.id, keys.secret
        ),
        format!(
            "[iam]\nrole = \"web\"\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = [\"{}\"]\n",
            keys.id, keys.secret
        ),
        format!(
            "[iam]\nrole = \"web\"\nsource = \"generated\"\naccess-key-id = \"{}\"\nsession-token = \"{}\"\n",
            keys.id, keys.token
        ),
        format!(
            "[iam]\nrole = \"web\"\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = \"{}\"\nsession-token = \"<redacted>\"\n",
            keys.id, keys.secret
        ),
    ];
    for (i, text) in broken.iter().enumerate() {
        reload(
            &d,
            &cfg,
            &format!("{base}{text}"),
            "config reload failed",
            i + 1,
        );
    }
    // A good reload to new keys: the old and the new stay out of the log.
    let rotated = Keys::new("AKIA");
    secrets.extend(rotated.all("rotated"));
    reload(
        &d,
        &cfg,
        &format!("{base}{}", static_iam(&rotated)),
        "config reloaded",
        1,
    );
    let creds = get(
        addr,
        "/latest/meta-data/iam/security-credentials/web",
        Some(&token),
    )
    .unwrap();
    assert_eq!(json_field(&creds.body, "AccessKeyId"), rotated.id);

    let (stderr, file) = stop(d, &log_file);
    assert!(
        file.contains("config reload failed"),
        "the log file has the story:\n{file}"
    );
    assert!(file.contains("new credentials"), "{file}");
    assert!(
        file.contains("status=401"),
        "request lines are logged:\n{file}"
    );
    assert_no_leak("stderr", &stderr, &secrets);
    assert_no_leak("the log file", &file, &secrets);
    eprintln!(
        "checked {} secrets against {} lines of stderr and {} of the log file",
        secrets.len(),
        stderr.lines().count(),
        file.lines().count()
    );
}

#[test]
fn a_failing_process_source_never_logs_what_it_printed() {
    let dir = daemon::workdir("secrets-process");
    let cfg = dir.path().join("config.toml");
    let log_file = dir.path().join("fake-metadata.log");
    let base = format!(
        "{}{}",
        daemon::base_config(dir.path()),
        log_section(&log_file)
    );
    let keys = Keys::new("ASIA");
    let json = format!(
        r#"{{"Version": 1, "AccessKeyId": "{}", "SecretAccessKey": "{}", "SessionToken": "{}", "Expiration": "2099-01-01T00:00:00Z"}}"#,
        keys.id, keys.secret, keys.token
    );
    // Each command is written to a script, so the config itself holds no secret.
    let script = |name: &str, body: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p
    };
    let cases = [
        (
            "prints the JSON, then fails",
            script(
                "fails.sh",
                format!(
                    "cat <<'EOF'\n{json}\nEOF\necho 'error: the token service is down' >&2\nexit 1"
                ),
            ),
        ),
        (
            "prints it with the wrong version",
            script(
                "version.sh",
                format!(
                    "cat <<'EOF'\n{}\nEOF",
                    json.replace("\"Version\": 1", "\"Version\": 2")
                ),
            ),
        ),
        (
            "prints it with a bad expiration",
            script(
                "expiry.sh",
                format!(
                    "cat <<'EOF'\n{}\nEOF",
                    json.replace("2099-01-01T00:00:00Z", "soon")
                ),
            ),
        ),
        (
            "prints it expired",
            script(
                "expired.sh",
                format!("cat <<'EOF'\n{}\nEOF", json.replace("2099", "2001")),
            ),
        ),
        (
            "prints it, broken",
            script(
                "broken.sh",
                format!("cat <<'EOF'\n{}\nEOF", &json[..json.len() - 1]),
            ),
        ),
        (
            "prints it with a space in the secret",
            script(
                "space.sh",
                format!(
                    "cat <<'EOF'\n{}\nEOF",
                    json.replace(&keys.secret, &format!("{} x", keys.secret))
                ),
            ),
        ),
        (
            "prints it on stderr and fails",
            script("stderr.sh", format!("cat >&2 <<'EOF'\n{json}\nEOF\nexit 3")),
        ),
        (
            "prints it while traced (sh -x) and fails",
            script(
                "traced.sh",
                format!("set -x\nKEY='{}'\nfalse \"$KEY\"", keys.secret),
            ),
        ),
        (
            "times out after printing it",
            script("slow.sh", format!("cat <<'EOF'\n{json}\nEOF\nsleep 30")),
        ),
    ];
    let iam = |cmd: &Path, timeout: &str| {
        format!(
            "[iam]\nrole = \"web\"\nsource = \"process\"\ncommand = \"{}\"\ncommand-timeout = \"{timeout}\"\n",
            cmd.display()
        )
    };
    daemon::write_config(&cfg, &format!("{base}{}", iam(&cases[0].1, "5s")));
    let d = start(&cfg);
    d.wait_log("cannot get credentials", 1, Duration::from_secs(15));
    for (i, (what, cmd)) in cases.iter().enumerate().skip(1) {
        let timeout = if what.contains("times out") {
            "1s"
        } else {
            "5s"
        };
        reload(
            &d,
            &cfg,
            &format!("{base}{}", iam(cmd, timeout)),
            "config reloaded",
            i,
        );
        d.wait_log("cannot get credentials", i + 1, Duration::from_secs(15));
        eprintln!("{what}: reported");
    }
    let failure = get(
        d.addr,
        "/latest/meta-data/iam/security-credentials/web",
        None,
    )
    .unwrap();
    assert!(
        failure.body.contains("CredentialsUnavailable"),
        "{failure:?}"
    );

    // And the happy path: the keys are served, and only their hint is logged.
    let good = script("good.sh", format!("cat <<'EOF'\n{json}\nEOF"));
    reload(
        &d,
        &cfg,
        &format!("{base}{}", iam(&good, "5s")),
        "new credentials",
        1,
    );
    let creds = get(
        d.addr,
        "/latest/meta-data/iam/security-credentials/web",
        None,
    )
    .unwrap();
    assert_eq!(json_field(&creds.body, "SecretAccessKey"), keys.secret);

    let (stderr, file) = stop(d, &log_file);
    assert!(file.contains("exit status 1"), "{file}");
    assert!(
        !file.contains("the token service is down"),
        "a helper's output is never logged:\n{file}"
    );
    assert!(
        file.contains("run the [iam] command by hand"),
        "the log says how to see it:\n{file}"
    );
    let secrets = keys.all("process");
    assert_no_leak("stderr", &stderr, &secrets);
    assert_no_leak("the log file", &file, &secrets);
}

#[test]
fn print_config_and_check_config_never_show_the_keys() {
    let dir = daemon::workdir("secrets-cli");
    let keys = Keys::new("AKIA");
    let cfg = dir.path().join("config.toml");
    daemon::write_config(&cfg, &static_iam(&keys));
    let run = |args: &[&str]| {
        Command::new(daemon::BIN)
            .args(args)
            .env_remove("FAKE_METADATA_CONFIG")
            .env_remove("FAKE_METADATA_LISTEN")
            .env_remove("FAKE_METADATA_HTTP_TOKENS")
            .output()
            .unwrap()
    };
    let c = cfg.to_str().unwrap();
    let out = run(&["print-config", "--config", c]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("access-key-id = \"<redacted>\""), "{shown}");
    assert!(
        shown.contains("secret-access-key = \"<redacted>\""),
        "{shown}"
    );
    assert!(shown.contains("session-token = \"<redacted>\""), "{shown}");
    let secrets = keys.all("static");
    assert_no_leak("print-config's output", &shown, &secrets);
    assert_no_leak(
        "print-config's stderr",
        &String::from_utf8_lossy(&out.stderr),
        &secrets,
    );

    for text in [
        format!(
            "[iam]\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = \"{}\n",
            keys.id, keys.secret
        ),
        format!(
            "[iam]\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = \"{} {}\"\n",
            keys.id, keys.secret, keys.token
        ),
        format!(
            "[iam]\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-key = {}\n",
            keys.id, keys.secret
        ),
        format!(
            "[iam]\nsource = \"static\"\naccess-key-id = \"{}\"\nsecret-access-keys = \"{}\"\n",
            keys.id, keys.secret
        ),
    ] {
        daemon::write_config(&cfg, &text);
        for args in [vec!["check-config", c], vec!["print-config", "--config", c]] {
            let out = run(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?} on {text}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.starts_with(c), "{err}");
            assert_no_leak(&format!("{} on a broken file", args[0]), &err, &secrets);
            assert_no_leak(args[0], &String::from_utf8_lossy(&out.stdout), &secrets);
        }
    }
}

/// GET `path` at `addr` with the `Host` an agent's client sends and `headers`:
/// `(status, body)`.
fn agent_get(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let r = http::exchange(addr, req.as_bytes(), Duration::from_secs(5)).expect("an HTTP reply");
    (r.status, r.body)
}

/// The value of `key` in `KEY=VALUE` lines.
fn env_value(lines: &str, key: &str) -> String {
    lines
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {lines}"))
        .to_string()
}

/// The three parts of a credentials document (IMDS's, the ECS agent's, Pod Identity's).
fn credential_parts(name: &str, body: &str) -> Vec<(String, String)> {
    [
        ("access key id", "AccessKeyId"),
        ("secret key", "SecretAccessKey"),
        ("session token", "Token"),
    ]
    .into_iter()
    .map(|(what, key)| (format!("{name} {what}"), json_field(body, key)))
    .collect()
}

/// Issue 24: the request journal records every request to every endpoint, and with it no
/// secret. The real daemon with a task and a pod, the journal on (with `[journal] file`),
/// request logging at the most verbose level and `[log] file`, is asked for everything
/// secret there is: an IMDSv2 token and the role's and the identity credentials with it (and
/// a tampered token), the task's credentials by its id (and a guessed id), its metadata by
/// the container's endpoint id (v3 and v4), the pod's credentials with its token (and a
/// wrong token). Then no 8 characters of any of those appear in `ctl requests` (JSON and
/// text), `ctl watch`, `ctl status`, `ctl assert`, the journal file, stderr or the log file;
/// while the journal does hold every request, with the ECS ids shown as `<id>`.
#[test]
fn no_token_credentials_or_id_reaches_the_request_journal() {
    let dir = daemon::workdir("secrets-journal");
    let cfg = dir.path().join("config.toml");
    let log_file = dir.path().join("fake-metadata.log");
    let journal_file = dir.path().join("requests.jsonl");
    let socket = dir.path().join("control.sock");
    daemon::write_config(
        &cfg,
        &format!(
            "[control]\nsocket = \"{}\"\n[server]\nstate-directory = \"{}\"\n{}\
             [journal]\nenabled = true\nfile = \"{}\"\n\
             [[task]]\nname = \"web\"\nrole = \"web-task-role\"\n\
             [[pod]]\nservice-account = \"shop/cart\"\nrole = \"cart-pod-role\"\n\
             [instance]\nfrom-host = false\n",
            socket.display(),
            dir.path().join("state").display(),
            log_section(&log_file),
            journal_file.display(),
        ),
    );
    let d = Daemon::serve(&cfg)
        .env("FAKE_METADATA_LOG", "trace")
        .control_socket(socket)
        .start();
    let (imds, ecs, pod) = (
        d.addr,
        d.endpoint_addr("ecs"),
        d.endpoint_addr("pod_identity"),
    );
    let mut secrets = Vec::new();
    let mut requests = 0;

    // IMDS: the token, the role's credentials with it (and without), the identity's.
    let token = http::token(imds);
    requests += 1;
    secrets.push(("IMDSv2 token".to_string(), token.clone()));
    let iam = "/latest/meta-data/iam/security-credentials/";
    let role = get(imds, iam, Some(&token)).unwrap().body;
    let creds = get(imds, &format!("{iam}{}", role.trim()), Some(&token)).unwrap();
    assert_eq!(creds.status, 200, "{creds:?}");
    secrets.extend(credential_parts("IAM", &creds.body));
    let v1 = get(imds, &format!("{iam}{}", role.trim()), None).unwrap();
    assert_eq!(v1.body, creds.body, "IMDSv1 gets the same credentials");
    let ident = get(
        imds,
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        Some(&token),
    )
    .unwrap();
    assert_eq!(ident.status, 200);
    secrets.extend(credential_parts("identity", &ident.body));
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(get(imds, iam, Some(&tampered)).unwrap().status, 401);
    secrets.push(("tampered IMDSv2 token".into(), tampered));
    requests += 5;

    // The ECS agent: the task's credentials by their id, its metadata by the endpoint id.
    let task_env = d.ctl_ok(&["task", "env", "web"]);
    let relative = env_value(&task_env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    let credentials_id = relative.rsplit('/').next().unwrap().to_string();
    assert!(
        relative.starts_with("/v2/credentials/") && credentials_id.len() >= 32,
        "{relative}"
    );
    secrets.push(("ECS credentials id".into(), credentials_id));
    let (status, body) = agent_get(ecs, "169.254.170.2", &relative, &[]);
    assert_eq!(status, 200, "{body}");
    secrets.extend(credential_parts("task", &body));
    let mut metadata_paths = Vec::new();
    for key in [
        "ECS_CONTAINER_METADATA_URI_V4",
        "ECS_CONTAINER_METADATA_URI",
    ] {
        let uri = env_value(&task_env, key);
        let path = uri.trim_start_matches("http://169.254.170.2").to_string();
        let id = path.rsplit('/').next().unwrap().to_string();
        assert!(id.len() >= 16, "{key}={uri}");
        secrets.push((format!("{key}'s endpoint id"), id));
        metadata_paths.extend([path.clone(), format!("{path}/task")]);
    }
    for path in &metadata_paths {
        let (status, body) = agent_get(ecs, "169.254.170.2", path, &[]);
        assert_eq!(status, 200, "{path}: {body}");
    }
    let guessed = "/v2/credentials/0f1e2d3c-4b5a-4697-8877-a1b2c3d4e5f6";
    assert!(agent_get(ecs, "169.254.170.2", guessed, &[]).0 >= 400);
    secrets.push((
        "guessed ECS credentials id".into(),
        guessed[16..].to_string(),
    ));
    requests += 2 + metadata_paths.len();

    // Pod Identity: the pod's credentials with its token, and a wrong token.
    let token_file = dir.path().join("pod-token");
    d.ctl_ok(&[
        "pod",
        "env",
        "shop/cart",
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    let pod_token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(pod_token.len() >= 16, "{pod_token}");
    secrets.push(("Pod Identity token".into(), pod_token.clone()));
    let (status, body) = agent_get(
        pod,
        "169.254.170.23",
        "/v1/credentials",
        &[("Authorization", &pod_token)],
    );
    assert_eq!(status, 200, "{body}");
    secrets.extend(credential_parts("pod", &body));
    let wrong = random(B64, 48);
    let (status, _) = agent_get(
        pod,
        "169.254.170.23",
        "/v1/credentials",
        &[("Authorization", &wrong)],
    );
    assert!((400..500).contains(&status), "a wrong pod token: {status}");
    secrets.push(("wrong Pod Identity token".into(), wrong));
    requests += 2;

    // Everything the journal shows, every way it shows it.
    let ctl = |args: &[&str]| {
        let out = d.ctl(args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let json = ctl(&["requests", "--json", "--no-docker"]);
    assert_eq!(
        json.lines().count(),
        requests,
        "every request is in the journal:\n{json}"
    );
    for shown in [
        "\"/v2/credentials/<id>\"",
        "\"/v4/<id>/task\"",
        "\"/v3/<id>\"",
        "\"pod-identity\"",
    ] {
        assert!(json.contains(shown), "{shown} in the journal:\n{json}");
    }
    let shown = [
        ("`ctl requests --json`", json),
        ("`ctl requests`", ctl(&["requests", "--no-docker"])),
        (
            "`ctl watch`",
            ctl(&["watch", "--count", "1", "--no-docker"]),
        ),
        ("`ctl status`", ctl(&["status"])),
        ("`ctl assert --no-v1`", ctl(&["assert", "--no-v1"])),
        (
            "`ctl assert --path`",
            ctl(&["assert", "--path", "/v2/*", "--max", "0"]),
        ),
    ];
    // The file is written by a task of its own: wait until it holds every request.
    let t = std::time::Instant::now();
    let file = loop {
        let text = std::fs::read_to_string(&journal_file).unwrap_or_default();
        if text.lines().count() >= requests || t.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(file.lines().count(), requests, "the journal file:\n{file}");
    let (stderr, log) = stop(d, &log_file);
    for (where_, text) in &shown {
        assert_no_leak(where_, text, &secrets);
    }
    assert_no_leak("the journal file", &file, &secrets);
    assert_no_leak("stderr", &stderr, &secrets);
    assert_no_leak("the log file", &log, &secrets);
    eprintln!(
        "checked {} secrets against {} journal entries, the journal file, ctl's views, {} lines of stderr and {} of the log file",
        secrets.len(),
        requests,
        stderr.lines().count(),
        log.lines().count()
    );
}

/// The ECS agent's endpoint is also asked with its id in a path that is not quite the
/// agent's: a base URI with a trailing slash joined to the relative URI (`//v2/credentials/
/// <id>`), a doubled slash inside, a dot segment (each redirected, as Go's router does), and
/// the agent's v1 form with the id in the query. The id is
/// still the key to the task's credentials: neither the journal (`ctl requests`, its file)
/// nor the log may show it.
#[test]
fn a_credentials_id_in_a_malformed_ecs_path_stays_out_of_the_journal_and_the_log() {
    let dir = daemon::workdir("secrets-ecs-paths");
    let cfg = dir.path().join("config.toml");
    let log_file = dir.path().join("fake-metadata.log");
    let journal_file = dir.path().join("requests.jsonl");
    let socket = dir.path().join("control.sock");
    daemon::write_config(
        &cfg,
        &format!(
            "[control]\nsocket = \"{}\"\n[server]\nstate-directory = \"{}\"\n{}\
             [journal]\nenabled = true\nfile = \"{}\"\n\
             [[task]]\nname = \"web\"\nrole = \"web-task-role\"\n\
             [instance]\nfrom-host = false\n",
            socket.display(),
            dir.path().join("state").display(),
            log_section(&log_file),
            journal_file.display(),
        ),
    );
    let d = Daemon::serve(&cfg).control_socket(socket).start();
    let ecs = d.endpoint_addr("ecs");
    let relative = env_value(
        &d.ctl_ok(&["task", "env", "web"]),
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    );
    let id = relative.rsplit('/').next().unwrap().to_string();
    let paths = [
        format!("/{relative}"),
        format!("/v2//credentials/{id}"),
        format!("/v2/credentials/./{id}"),
        format!("/v1/credentials?id={id}"),
    ];
    for path in &paths {
        let (status, _) = agent_get(ecs, "169.254.170.2", path, &[]);
        eprintln!("{status} for {}", path.replace(&id, "<id>"));
    }
    // The relative URI sent by mistake to IMDS and to Pod Identity: no id there either.
    let (status, _, _) = common::http::http(d.addr, "GET", &relative, &[]);
    assert_eq!(status, 404);
    let pod = d.endpoint_addr("pod_identity");
    agent_get(pod, "169.254.170.23", &relative, &[]);
    let paths: Vec<String> = paths
        .iter()
        .cloned()
        .chain([relative.clone(), relative])
        .collect();
    let t = std::time::Instant::now();
    let file = loop {
        let text = std::fs::read_to_string(&journal_file).unwrap_or_default();
        if text.lines().count() >= paths.len() || t.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = d.ctl(&["requests", "--json", "--no-docker"]);
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(json.lines().count(), paths.len(), "{json}");
    let (stderr, log) = stop(d, &log_file);
    let secrets = [("ECS credentials id".to_string(), id)];
    assert_no_leak("`ctl requests --json`", &json, &secrets);
    assert_no_leak("the journal file", &file, &secrets);
    assert_no_leak("stderr", &stderr, &secrets);
    assert_no_leak("the log file", &log, &secrets);
}
