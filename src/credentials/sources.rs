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
    /// What the command wrote is never shown: it may hold the very secrets it failed to
    /// print, in any shape. Run by hand, the user sees it.
    #[error(
        "the credential command failed ({status}){}; its output is not logged (it may hold secrets): run the [iam] command by hand as the daemon's user to see it",
        stderr_note(*.stderr_bytes)
    )]
    Failed { status: String, stderr_bytes: usize },
    #[error("the credential command's output {0}")]
    Output(String),
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

fn stderr_note(bytes: usize) -> String {
    if bytes == 0 {
        String::new()
    } else {
        format!(" after writing {bytes} bytes on standard error")
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
            stderr_bytes: stderr.len(),
        });
    }
    if stdout.len() as u64 > MAX_OUTPUT {
        return Err(SourceError::Output(format!(
            "is larger than {MAX_OUTPUT} bytes"
        )));
    }
    parse_process_output(&stdout)
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
    fn a_failing_command_s_output_is_never_in_its_error() {
        // Short, lower-case, quoted: no heuristic can tell such a secret from a message.
        let e = run_process(
            "echo 'password: opensesame'; echo 'token=abc' >&2; exit 3",
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("opensesame") && !e.contains("abc"), "{e}");
        assert!(e.contains("exit status 3"), "{e}");
        assert!(
            e.contains("after writing 10 bytes on standard error"),
            "{e}"
        );
        assert!(e.contains("run the [iam] command by hand"), "{e}");
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
