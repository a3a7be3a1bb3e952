//! Reading credentials from where the config says: a static key file, an AWS shared
//! credentials file, or a `credential_process` command. Each read is synchronous (the daemon
//! calls it from `spawn_blocking`). Errors describe what went wrong and where, and never carry
//! a key, a secret, a token or the command's standard output.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::config::Keys;
use super::secret::Secret;

/// A set of keys as read, with the expiry the source states (if it states one).
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub keys: Keys,
    pub expires: Option<SystemTime>,
}

/// Why a source gave no credentials. `Display` is safe to log: no secret is ever in it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is readable by group or others (mode {mode:04o}); it holds keys, so `chmod 600` it", path.display())]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{} has no [{profile}] profile", path.display())]
    NoProfile { path: PathBuf, profile: String },
    #[error("profile [{profile}] in {} has no `{key}`", path.display())]
    MissingKey {
        path: PathBuf,
        profile: String,
        key: &'static str,
    },
    #[error("cannot start `sh -c` for the credential command: {0}")]
    Spawn(std::io::Error),
    #[error("the credential command did not finish within {0:?} and was killed")]
    Timeout(Duration),
    #[error("the credential command failed ({status}){}", stderr_suffix(.stderr))]
    Failed { status: String, stderr: String },
    #[error("the credential command's output {0}")]
    Output(String),
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// Reads a static `credentials-file`: TOML with `access-key-id`, `secret-access-key` and
/// optionally `session-token`, readable by its owner only.
pub fn read_key_file(path: &Path) -> Result<Fetched, SourceError> {
    let text = read_private(path)?;
    let keys: Keys = toml::from_str(&text).map_err(|e| SourceError::Syntax {
        path: path.to_path_buf(),
        line: e
            .span()
            .map_or(1, |s| text[..s.start].matches('\n').count() + 1),
        // The message only, never toml's quoted source line: that line may hold a secret.
        message: e.message().trim().to_string(),
    })?;
    Ok(Fetched {
        keys,
        expires: None,
    })
}

fn read_private(path: &Path) -> Result<String, SourceError> {
    let read_err = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_err)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SourceError::Exposed {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    std::fs::read_to_string(path).map_err(read_err)
}

/// Reads `profile` from an AWS shared credentials file (`~/.aws/credentials` format).
pub fn read_shared_file(path: &Path, profile: &str) -> Result<Fetched, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_shared(&text, path, profile)
}

/// The subset of the INI dialect AWS SDKs read that a credentials profile uses: `[name]`
/// sections, `key = value` (or `key: value`) lines, `#`/`;` comment lines and comments after
/// whitespace at the end of a value; key names are case-insensitive, a repeated key or section
/// wins over the earlier one. Indented continuation lines (nested settings) are skipped.
fn parse_shared(text: &str, path: &Path, profile: &str) -> Result<Fetched, SourceError> {
    let syntax = |line: usize, message: &str| SourceError::Syntax {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    };
    let (mut in_profile, mut found) = (false, false);
    let (mut id, mut secret, mut token) = (None, None, None);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            let name = line
                .split_once(']')
                .map(|(n, _)| n[1..].trim())
                .ok_or_else(|| syntax(i + 1, "a section header lacks its `]`"))?;
            in_profile = name == profile;
            found |= in_profile;
            continue;
        }
        if raw.starts_with([' ', '\t']) || !in_profile {
            continue;
        }
        let (key, value) = line
            .split_once(['=', ':'])
            .ok_or_else(|| syntax(i + 1, "expected `key = value`"))?;
        let value = strip_comment(value.trim());
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => &mut id,
            "aws_secret_access_key" => &mut secret,
            "aws_session_token" | "aws_security_token" => &mut token,
            _ => continue,
        };
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(syntax(
                i + 1,
                "a key or token must be non-empty, without spaces",
            ));
        }
        *slot = Some(Secret::new(value));
    }
    if !found {
        return Err(SourceError::NoProfile {
            path: path.to_path_buf(),
            profile: profile.into(),
        });
    }
    let missing = |key| SourceError::MissingKey {
        path: path.to_path_buf(),
        profile: profile.into(),
        key,
    };
    Ok(Fetched {
        keys: Keys {
            access_key_id: id.ok_or_else(|| missing("aws_access_key_id"))?,
            secret_access_key: secret.ok_or_else(|| missing("aws_secret_access_key"))?,
            session_token: token,
        },
        expires: None,
    })
}

/// Drops a ` # comment` or ` ; comment` after a value. Keys and tokens never contain
/// whitespace, so this cannot cut one.
fn strip_comment(v: &str) -> &str {
    let cut = v
        .char_indices()
        .find(|&(i, c)| (c == '#' || c == ';') && v[..i].ends_with(char::is_whitespace))
        .map_or(v.len(), |(i, _)| i);
    v[..cut].trim_end()
}

/// The most of a command's standard output we read; credential JSON is a few KiB.
const MAX_OUTPUT: u64 = 64 * 1024;
/// How much of standard error ends up in a log line.
const MAX_STDERR_SHOWN: usize = 200;

/// Runs `command` with `sh -c` and reads the AWS `credential_process` JSON it prints:
/// `{"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?, "Expiration"?}`.
/// The command runs in its own process group, killed as a whole on timeout, so a shell
/// pipeline leaves nothing behind.
pub fn run_process(command: &str, timeout: Duration) -> Result<Fetched, SourceError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(SourceError::Spawn)?;

    // Both pipes are drained by threads so a chatty command cannot block on a full pipe.
    let (tx, rx) = mpsc::channel();
    for (is_out, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.by_ref().take(MAX_OUTPUT + 1).read_to_end(&mut buf);
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            let _ = tx.send((is_out, buf));
        });
    }

    // A subprocess timeout is real elapsed time, hence `Instant` rather than the `Clock`.
    let deadline = Instant::now() + timeout;
    let (mut status, mut stdout, mut stderr) = (None, None, None);
    while status.is_none() || stdout.is_none() || stderr.is_none() {
        if status.is_none() {
            status = child.try_wait().map_err(SourceError::Spawn)?;
        }
        if let Ok((is_out, buf)) = rx.recv_timeout(Duration::from_millis(20)) {
            *(if is_out { &mut stdout } else { &mut stderr }) = Some(buf);
        }
        if Instant::now() >= deadline {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            return Err(SourceError::Timeout(timeout));
        }
    }
    let (status, stdout, stderr) = (
        status.unwrap_or_default(),
        stdout.unwrap_or_default(),
        stderr.unwrap_or_default(),
    );
    if !status.success() {
        let status = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => status.to_string(),
        };
        return Err(SourceError::Failed {
            status,
            stderr: last_line(&stderr),
        });
    }
    if stdout.len() as u64 > MAX_OUTPUT {
        return Err(SourceError::Output(format!(
            "is larger than {MAX_OUTPUT} bytes"
        )));
    }
    parse_process_output(&stdout)
}

/// The last non-empty line of standard error, short and printable, for the log, with
/// anything that looks like a key or token redacted (a failing helper may dump its JSON, or
/// trace its commands with `sh -x`, on standard error).
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let line: String = line.trim().chars().filter(|c| !c.is_control()).collect();
    redact_key_like(&line)
        .chars()
        .take(MAX_STDERR_SHOWN)
        .collect()
}

/// The shortest run of key characters taken for a key: access key ids are 20, secret keys 40,
/// tokens hundreds.
const KEY_LIKE_MIN: usize = 16;

/// Replaces with `<redacted>` each run of base64/base64url characters that is at least
/// [`KEY_LIKE_MIN`] long and upper case (an access key id) or mixes letters and digits, or is
/// twice that long with both cases (a secret key without a digit). Words, CamelCase names,
/// paths and messages are kept.
fn redact_key_like(line: &str) -> String {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || "+/=-_".contains(c);
    let mut out = String::with_capacity(line.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let (upper, lower, digit) = (
            run.chars().any(|c| c.is_ascii_uppercase()),
            run.chars().any(|c| c.is_ascii_lowercase()),
            run.chars().any(|c| c.is_ascii_digit()),
        );
        let long = run.len() >= KEY_LIKE_MIN;
        let key_id = long && upper && !lower; // `ASIA` + 16 of A-Z 2-7, digits or not
        let mixed = long && digit && (upper || lower);
        let secret = run.len() >= 2 * KEY_LIKE_MIN && upper && lower;
        if key_id || mixed || secret {
            out.push_str(super::secret::REDACTED);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if is_key_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Checks the `credential_process` JSON field by field, with messages that never quote it.
fn parse_process_output(out: &[u8]) -> Result<Fetched, SourceError> {
    let bad = |what: String| SourceError::Output(what);
    let v: serde_json::Value = serde_json::from_slice(out).map_err(|e| {
        bad(format!(
            "is not JSON (error at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("is not a JSON object".into()))?;
    if obj.get("Version").and_then(serde_json::Value::as_u64) != Some(1) {
        return Err(bad("lacks `\"Version\": 1`".into()));
    }
    let field = |name: &str, required: bool| -> Result<Option<&str>, SourceError> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) if !required => Ok(None),
            Some(serde_json::Value::String(s))
                if !s.is_empty() && !s.contains(char::is_whitespace) =>
            {
                Ok(Some(s))
            }
            None => Err(bad(format!("lacks `{name}`"))),
            Some(_) => Err(bad(format!(
                "has an invalid `{name}`: it must be a non-empty string without spaces"
            ))),
        }
    };
    let secret = |name| field(name, true).map(|s| Secret::new(s.unwrap_or_default()));
    let keys = Keys {
        access_key_id: secret("AccessKeyId")?,
        secret_access_key: secret("SecretAccessKey")?,
        session_token: field("SessionToken", false)?.map(Secret::new),
    };
    let expires = match field("Expiration", false)? {
        None => None,
        Some(s) => Some(
            OffsetDateTime::parse(s, &Rfc3339)
                .map_err(|_| {
                    bad(format!(
                        "has an `Expiration` that is not an RFC 3339 time: `{s}`"
                    ))
                })?
                .into(),
        ),
    };
    Ok(Fetched { keys, expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(text: &str, profile: &str) -> Result<Fetched, String> {
        parse_shared(text, Path::new("creds"), profile).map_err(|e| e.to_string())
    }

    #[test]
    fn shared_file_subset() {
        let text = "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key=SECRETDEFAULT\n\n[dev]\n; another\nAWS_ACCESS_KEY_ID : AKIADEV   # trailing comment\naws_secret_access_key = SECRET/DEV+x\naws_session_token = TOKEN==\ns3 =\n  max_concurrent_requests = 10\nregion = eu-west-1\n";
        let d = shared(text, "default").unwrap();
        assert_eq!(d.keys.access_key_id.expose(), "AKIADEFAULT");
        assert_eq!(d.keys.secret_access_key.expose(), "SECRETDEFAULT");
        assert_eq!(d.keys.session_token, None);
        let d = shared(text, "dev").unwrap();
        assert_eq!(d.keys.access_key_id.expose(), "AKIADEV");
        assert_eq!(d.keys.secret_access_key.expose(), "SECRET/DEV+x");
        assert_eq!(d.keys.session_token.unwrap().expose(), "TOKEN==");

        assert_eq!(
            shared(text, "prod").unwrap_err(),
            "creds has no [prod] profile"
        );
        assert_eq!(
            shared("[default]\naws_access_key_id = A\n", "default").unwrap_err(),
            "profile [default] in creds has no `aws_secret_access_key`"
        );
        let e = shared("[default]\naws_secret_access_key = two words\n", "default").unwrap_err();
        assert_eq!(
            e,
            "creds:2: a key or token must be non-empty, without spaces"
        );
        assert_eq!(
            shared("[default\n", "default").unwrap_err(),
            "creds:1: a section header lacks its `]`"
        );
    }

    #[test]
    fn stderr_shown_in_the_log_has_keys_redacted() {
        // A helper that dumps its JSON on stderr, or traces itself with `sh -x`.
        let json = br#"{"Version": 1, "AccessKeyId": "ASIAV6FX5VHJDTQ6WQOQ", "SecretAccessKey": "k8ELC73F5KaNAMkhNzUSSnYyHiq9ETkstaHv0Jb/", "SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ"}"#;
        let shown = last_line(json);
        for secret in [
            "ASIAV6FX5VHJDTQ6WQOQ",
            "k8ELC73F5KaNAMkhNzUSSnYyHiq9ETkstaHv0Jb/",
            "IQoJb3JpZ2luX2Vj",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains(r#""AccessKeyId": "<redacted>""#), "{shown}");
        assert_eq!(
            last_line(b"+ false k8ELC73F5KaNAMkhNzUSSnYyHiq9ETkstaHv0Jb/\n"),
            "+ false <redacted>"
        );
        assert_eq!(
            last_line(b"no such key: ASIAXYZWVUTSRQPONMLK"),
            "no such key: <redacted>"
        );
        // What people write on stderr is kept.
        for msg in [
            "error: the token service at https://sts.example.com/assume-role is down",
            "/usr/local/bin/credential-helper: line 3: jq: command not found",
            "ExpiredTokenException: the security token included in the request is expired",
        ] {
            assert_eq!(last_line(msg.as_bytes()), msg);
        }
    }

    #[test]
    fn process_output_is_checked_without_quoting_secrets() {
        let ok = br#"{"Version": 1, "AccessKeyId": "AKIAX", "SecretAccessKey": "SEKRIT", "SessionToken": "TOK", "Expiration": "2026-01-02T09:04:05Z"}"#;
        let f = parse_process_output(ok).unwrap();
        assert_eq!(f.keys.session_token.unwrap().expose(), "TOK");
        assert_eq!(
            f.expires.unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_344_645)
        );
        let no_exp = br#"{"Version": 1, "AccessKeyId": "AKIAX", "SecretAccessKey": "SEKRIT"}"#;
        assert_eq!(parse_process_output(no_exp).unwrap().expires, None);

        for (out, want) in [
            (&b"SEKRIT not json"[..], "is not JSON"),
            (b"[1]", "is not a JSON object"),
            (
                br#"{"Version": 2, "AccessKeyId": "SEKRIT"}"#,
                "lacks `\"Version\": 1`",
            ),
            (
                br#"{"Version": 1, "AccessKeyId": "AKIAX"}"#,
                "lacks `SecretAccessKey`",
            ),
            (
                br#"{"Version": 1, "AccessKeyId": "AKIAX", "SecretAccessKey": ["SEKRIT"]}"#,
                "invalid `SecretAccessKey`",
            ),
        ] {
            let e = parse_process_output(out).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SEKRIT"), "{e}");
        }
    }
}
