//! The control socket: how `fake-metadata ctl` changes a running daemon without a restart.
//!
//! A Unix stream socket (`[control] socket`, default `/run/fake-metadata/control.sock`, the
//! systemd unit's `RuntimeDirectory`; a daemon started by hand that cannot create it falls
//! back to `$XDG_RUNTIME_DIR/fake-metadata/control.sock`). Mode 0660, group
//! `fake-metadata-ctl` when that group exists. The daemon also checks each peer's credentials
//! (`SO_PEERCRED`) and serves only uid 0, its own uid (unless that is the shared `nobody`)
//! and members of the group.
//!
//! Protocol, version 1: one JSON object per line each way, one request per connection.
//! ```text
//! > {"v":1,"do":"change","change":{"op":"spot","action":"stop"},"when":"+30s"}
//! < {"v":1,"ok":true,"message":"spot interruption notice: stop: scheduled for …"}
//! > {"v":1,"do":"status"}                  (also "reset", "rotate-credentials")
//! < {"v":1,"ok":false,"error":"no scheduled event instance-event-…"}
//! ```
//! A change (see [`Change`]) is applied as one snapshot swap, or refused and nothing changes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Uid, User};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::live::Instance;
use crate::scenario::{Change, Moment};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Where the socket is by default: the systemd unit's `RuntimeDirectory`.
pub const DEFAULT_SOCKET: &str = "/run/fake-metadata/control.sock";
/// The group whose members may use the socket (the package creates it).
pub const DEFAULT_GROUP: &str = "fake-metadata-ctl";
/// The longest request line read.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ControlConfig {
    /// `false` turns the control socket off.
    pub enabled: bool,
    /// The socket's path. Default: `/run/fake-metadata/control.sock`, else
    /// `$XDG_RUNTIME_DIR/fake-metadata/control.sock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// The group given the socket, whose members may use it.
    pub group: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            enabled: true,
            socket: None,
            group: DEFAULT_GROUP.into(),
        }
    }
}

impl ControlConfig {
    /// Where to look for the socket, in order: the configured path, or the default and the
    /// per-user fallback.
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.socket {
            return vec![p.clone()];
        }
        let mut v = vec![PathBuf::from(DEFAULT_SOCKET)];
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
            v.push(PathBuf::from(x).join("fake-metadata/control.sock"));
        }
        v
    }
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Command {
    /// Apply a change now, or schedule it (`when`: `+D` from now, or an absolute time).
    Change {
        change: Change,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<Moment>,
    },
    /// Issue a new IAM credential set now.
    RotateCredentials,
    /// What is set and pending.
    Status,
    /// Back to the state the configuration describes (live changes dropped, the config's
    /// timeline replayed from the daemon's start).
    Reset,
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    fn ok(message: String) -> Reply {
        Reply {
            v: VERSION,
            ok: true,
            message: Some(message),
            error: None,
        }
    }

    fn error(error: String) -> Reply {
        Reply {
            v: VERSION,
            ok: false,
            message: None,
            error: Some(error),
        }
    }
}

/// Parses a request line; the error is the reply to send.
pub fn parse_request(line: &str) -> Result<Command, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("the request is not JSON: {e}"))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "control protocol version {v} is not supported: this daemon speaks version {VERSION} (use a matching `fake-metadata ctl`)"
            ));
        }
        None => return Err("the request has no protocol version `v`".into()),
    }
    serde_json::from_value::<Request>(value)
        .map(|r| r.command)
        .map_err(|e| format!("invalid request: {e}"))
}

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("control socket {}: {message}", path.display())]
pub struct ControlError {
    pub path: PathBuf,
    pub message: String,
}

/// A bound control socket; the file is removed when it is dropped.
#[derive(Debug)]
pub struct Listener {
    listener: StdUnixListener,
    path: PathBuf,
    group: Option<(String, Gid)>,
}

impl Listener {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the control socket as configured (before the daemon drops root, like its TCP
/// listeners). A configured path that cannot be used is an error; when the default paths
/// cannot be used, control is off and the log says why.
pub fn bind(cfg: &ControlConfig) -> Result<Option<Listener>, ControlError> {
    if !cfg.enabled {
        tracing::info!("control socket off ([control] enabled = false)");
        return Ok(None);
    }
    let group = crate::accounts::group(&cfg.group).map(|gid| (cfg.group.clone(), gid));
    if cfg.socket.is_some() {
        let path = cfg.candidates().remove(0);
        return bind_at(&path, group.clone())
            .map(Some)
            .map_err(|message| ControlError { path, message });
    }
    let mut tried = Vec::new();
    for path in cfg.candidates() {
        match bind_at(&path, group.clone()) {
            Ok(l) => return Ok(Some(l)),
            Err(message) => {
                tracing::debug!(path = %path.display(), "control socket: {message}");
                tried.push(format!("{}: {message}", path.display()));
            }
        }
    }
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        tried.push("$XDG_RUNTIME_DIR is not set".into());
    }
    tracing::warn!(
        "control is off: no control socket could be created ({}); set [control] socket = \"PATH\" to choose one",
        tried.join("; ")
    );
    Ok(None)
}

fn bind_at(path: &Path, group: Option<(String, Gid)>) -> Result<Listener, String> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match StdUnixStream::connect(path) {
            Ok(_) => return Err("another daemon is answering on it".into()),
            Err(_) => {
                // Stale, left by a daemon that did not stop cleanly.
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale socket: {e}"))?;
            }
        },
        Ok(_) => return Err("it exists and is not a socket; not touching it".into()),
        Err(_) => {}
    }
    let listener = StdUnixListener::bind(path).map_err(|e| e.to_string())?;
    let listener = Listener {
        listener,
        path: path.to_path_buf(),
        group: group.clone(),
    };
    if let Some((name, gid)) = &group
        && let Err(e) = nix::unistd::chown(path, None, Some(*gid))
    {
        tracing::warn!(
            "control socket {}: cannot give it to group {name} ({e}): the daemon is not a member; only root and the daemon's user can use it",
            path.display()
        );
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set its mode to 0660: {e}"))?;
    tracing::info!(
        path = %path.display(),
        group = group.as_ref().map_or("(none)", |g| g.0.as_str()),
        "control socket ready"
    );
    Ok(listener)
}

/// Serves control requests until the task is dropped.
pub async fn serve(listener: Listener, instance: Arc<Instance>) {
    if let Err(e) = listener.listener.set_nonblocking(true) {
        tracing::error!("control socket: {e}; control is off");
        return;
    }
    let l = match listener
        .listener
        .try_clone()
        .and_then(tokio::net::UnixListener::from_std)
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("control socket: {e}; control is off");
            return;
        }
    };
    let group = Arc::new(listener.group.clone());
    loop {
        let stream = match l.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let instance = instance.clone();
        let group = group.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &instance, &group).await {
                tracing::debug!(error = %e, "control connection");
            }
        });
    }
}

async fn connection(
    stream: tokio::net::UnixStream,
    instance: &Arc<Instance>,
    group: &Option<(String, Gid)>,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    let reply = match allowed(cred.uid(), cred.gid(), group) {
        Err(refusal) => {
            tracing::warn!(uid = cred.uid(), pid = ?cred.pid(), "control socket: refused a client");
            Reply::error(refusal)
        }
        Ok(()) => {
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
            match tokio::time::timeout(REQUEST_TIMEOUT, r.read_line(&mut line)).await {
                Err(_) => Reply::error("no request within 10s".into()),
                Ok(Err(e)) => Reply::error(format!("cannot read the request: {e}")),
                Ok(Ok(_)) if !line.ends_with('\n') => {
                    Reply::error("the request is not one line of at most 64 KiB".into())
                }
                Ok(Ok(_)) => match parse_request(&line) {
                    Err(e) => Reply::error(e),
                    Ok(command) => {
                        let i = instance.clone();
                        tracing::info!(uid = cred.uid(), request = line.trim_end(), "control");
                        match tokio::task::spawn_blocking(move || i.control(command)).await {
                            Ok(Ok(m)) => Reply::ok(m),
                            Ok(Err(e)) => Reply::error(e),
                            Err(_) => Reply::error("the daemon failed on this request".into()),
                        }
                    }
                },
            }
        }
    };
    let mut out = serde_json::to_string(&reply).expect("a reply serializes");
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}

/// uid 0, the daemon's own uid (unless it runs as the shared `nobody`), and members of the
/// control group (by primary group or the group database).
fn allowed(uid: u32, gid: u32, group: &Option<(String, Gid)>) -> Result<(), String> {
    let me = Uid::effective();
    if uid == 0 || (uid == me.as_raw() && !is_nobody(me)) {
        return Ok(());
    }
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
    let who = match &user {
        Some(u) => format!("user {} (uid {uid})", u.name),
        None => format!("uid {uid}"),
    };
    let Some((name, g)) = group else {
        return Err(format!(
            "{who} may not use the control socket: it serves root and the daemon's own user (group {DEFAULT_GROUP} does not exist here)"
        ));
    };
    let member = gid == g.as_raw()
        || user.as_ref().is_some_and(|u| {
            std::ffi::CString::new(u.name.as_str())
                .ok()
                .and_then(|c| nix::unistd::getgrouplist(&c, u.gid).ok())
                .is_some_and(|gs| gs.contains(g))
        });
    if member {
        Ok(())
    } else {
        Err(format!(
            "{who} may not use the control socket: it serves root, the daemon's user and members of group {name} (sudo usermod -aG {name} USER, then log in again)"
        ))
    }
}

fn is_nobody(uid: Uid) -> bool {
    crate::accounts::user("nobody").map_or(uid.as_raw() == 65534, |ids| ids.uid == uid)
}

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Io(String),
    /// The daemon refused or could not do it.
    #[error("{0}")]
    Refused(String),
}

/// Sends one command and waits for the reply; `Ok` is the daemon's message.
pub fn request(socket: &Path, command: Command) -> Result<String, ClientError> {
    let mut s = StdUnixStream::connect(socket).map_err(|e| {
        ClientError::Connect(match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "no control socket at {}: is the daemon running? (or give --socket PATH / --config FILE)",
                socket.display()
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "permission denied on {}: the control socket is for root and members of group {DEFAULT_GROUP} (sudo usermod -aG {DEFAULT_GROUP} $USER, then log in again)",
                socket.display()
            ),
            std::io::ErrorKind::ConnectionRefused => format!(
                "nothing answers on {} (a stale socket: is the daemon running?)",
                socket.display()
            ),
            _ => format!("cannot connect to {}: {e}", socket.display()),
        })
    })?;
    let io =
        |e: std::io::Error| ClientError::Io(format!("control socket {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let mut line = serde_json::to_string(&Request {
        v: VERSION,
        command,
    })
    .expect("a request serializes");
    line.push('\n');
    // A refused peer gets its reply without the daemon reading: a failed write is no error
    // as long as the reply arrives.
    let _ = s.write_all(line.as_bytes());
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).map_err(io)?;
    if reply.is_empty() {
        return Err(ClientError::Io(format!(
            "the daemon closed the control connection {} without a reply",
            socket.display()
        )));
    }
    let reply: Reply = serde_json::from_str(&reply)
        .map_err(|e| ClientError::Io(format!("unreadable reply from the daemon: {e}")))?;
    if reply.ok {
        Ok(reply.message.unwrap_or_default())
    } else {
        Err(ClientError::Refused(reply.error.unwrap_or_else(|| {
            "the daemon refused without saying why".into()
        })))
    }
}

/// The socket `ctl` talks to: `--socket`, else the config's, else the first default that
/// exists.
pub fn client_socket(explicit: Option<&Path>, cfg: &ControlConfig) -> Result<PathBuf, ClientError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let c = cfg.candidates();
    if cfg.socket.is_some() {
        return Ok(c[0].clone());
    }
    if let Some(p) = c.iter().find(|p| p.exists()) {
        return Ok(p.clone());
    }
    Err(ClientError::Connect(format!(
        "no control socket at {}: is the daemon running with control on? (or give --socket PATH)",
        c.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Moment, SpotAction};

    #[test]
    fn requests_round_trip_and_versions_are_checked() {
        let cmd = Command::Change {
            change: Change::Spot {
                action: SpotAction::Stop,
                time: None,
            },
            when: Some("+30s".parse::<Moment>().unwrap()),
        };
        let line = serde_json::to_string(&Request {
            v: VERSION,
            command: cmd.clone(),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"v":1,"do":"change","change":{"op":"spot","action":"stop"},"when":"+30s"}"#
        );
        assert_eq!(parse_request(&line).unwrap(), cmd);
        assert_eq!(
            parse_request(r#"{"v":1,"do":"status"}"#).unwrap(),
            Command::Status
        );
        assert!(
            parse_request(r#"{"v":2,"do":"status"}"#)
                .unwrap_err()
                .contains("version 2 is not supported")
        );
        let e = parse_request(r#"{"v":1,"do":"change","change":{"op":"spot","action":"explode"}}"#)
            .unwrap_err();
        assert!(e.contains("invalid request"), "{e}");
        let e = parse_request(
            r#"{"v":1,"do":"change","change":{"op":"tag-set","key":"a b","value":"x"}}"#,
        )
        .unwrap_err();
        assert!(e.contains("is not a tag key"), "{e}");
    }

    #[test]
    fn root_and_group_members_are_allowed() {
        assert!(allowed(0, 0, &None).is_ok());
        let g = Some(("ctl".to_string(), Gid::from_raw(4242)));
        assert!(allowed(54321, 4242, &g).is_ok(), "primary group");
        let e = allowed(54321, 54321, &g).unwrap_err();
        assert!(
            e.contains("uid 54321 may not use the control socket"),
            "{e}"
        );
        assert!(e.contains("usermod -aG ctl"), "{e}");
    }
}
