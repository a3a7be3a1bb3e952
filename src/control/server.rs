//! The daemon's side: binds the socket (before root is dropped), checks each peer, and
//! carries out one request per connection on the live inputs.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Uid, User};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::protocol::{Command, Reply, parse_request};
use crate::config::{ControlConfig, DEFAULT_GROUP};
use crate::config::{Pod, Task};
use crate::live::{ChangeError, Inputs, WorkloadError};
use crate::types::ViewName;

/// The longest request line read.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    if !cfg.enabled() {
        tracing::info!("control socket off ([control] enabled = false)");
        return Ok(None);
    }
    let group = crate::accounts::group(cfg.group()).map(|gid| (cfg.group().to_string(), gid));
    if cfg.socket_is_configured() {
        let path = cfg.candidates()[0].clone();
        return bind_at(&path, group.clone())
            .map(Some)
            .map_err(|message| ControlError { path, message });
    }
    let mut tried = Vec::new();
    for path in cfg.candidates() {
        match bind_at(path, group.clone()) {
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
pub async fn serve(listener: Listener, inputs: Arc<Inputs>) {
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
        let inputs = inputs.clone();
        let group = group.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &inputs, &group).await {
                tracing::debug!(error = %e, "control connection");
            }
        });
    }
}

async fn connection(
    stream: tokio::net::UnixStream,
    inputs: &Arc<Inputs>,
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
                    Ok(Command::Requests { from, follow }) => {
                        let command = Command::Requests { from, follow };
                        tracing::info!(uid = cred.uid(), request = command.name(), "control");
                        let read = r.into_inner().into_inner();
                        return stream_requests(read, write, inputs, from, follow).await;
                    }
                    Ok(command) => {
                        let i = inputs.clone();
                        // What was asked, never the values it carries (a `set` may hold a
                        // secret).
                        tracing::info!(uid = cred.uid(), request = command.name(), "control");
                        match tokio::task::spawn_blocking(move || execute(&i, command)).await {
                            Ok(Ok(m)) => Reply::ok(m),
                            Ok(Err(e)) => Reply::error(e.to_string()),
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

/// How often a `follow` reader is sent what came since.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Sends the journal's entries from `from` on, one JSON object a line (a `{"missed":N}` line
/// where the ring lost some), then the reply. With `follow` it goes on sending what comes
/// until the client hangs up; a client that reads slowly only makes itself miss entries.
async fn stream_requests(
    mut read: tokio::net::unix::OwnedReadHalf,
    mut write: tokio::net::unix::OwnedWriteHalf,
    inputs: &Inputs,
    from: u64,
    follow: bool,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let journal = &inputs.published().journal;
    let (mut next, mut sent) = (from, 0u64);
    loop {
        let batch = journal.read(next);
        next = batch.next;
        let mut out = String::new();
        batch.write_json_lines(&mut out);
        sent += batch.entries.len() as u64;
        if !out.is_empty() {
            write.write_all(out.as_bytes()).await?;
        }
        if !follow {
            break;
        }
        let mut buf = [0u8; 64];
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            r = read.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) {
                return Ok(());
            },
        }
    }
    let reply = Reply::ok(format!("{sent} requests"));
    let mut out = serde_json::to_string(&reply).expect("a reply serializes");
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}

/// Why a command was refused: the reply's error.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("{0}")]
    Invalid(String),
}

/// Carries out one command on the live inputs; the message is the reply.
fn execute(inputs: &Inputs, command: Command) -> Result<String, Refusal> {
    let invalid = |e: &dyn std::fmt::Display| Refusal::Invalid(e.to_string());
    Ok(match command {
        Command::TaskAdd { task } => {
            inputs.add_task(Task::check(task).map_err(|e| invalid(&e))?)?
        }
        Command::TaskRemove { name } => inputs.remove_task(&name)?,
        Command::TaskList => inputs.task_list(),
        Command::TaskEnv { name, container } => inputs.task_env(&name, container.as_deref())?,
        Command::PodAdd { pod } => inputs.add_pod(Pod::check(pod).map_err(|e| invalid(&e))?)?,
        Command::PodRemove { service_account } => inputs.remove_pod(&service_account)?,
        Command::PodList => inputs.pod_list(),
        Command::PodToken { service_account } => inputs.pod_token(&service_account)?,
        Command::Status => inputs.status(),
        Command::RequestCounts => {
            let report = inputs.published().journal.tally().report();
            serde_json::to_string(&report).expect("counts serialize")
        }
        Command::RequestsClear => {
            inputs.clear_journal();
            "the request journal is cleared: counting from now".into()
        }
        Command::Requests { .. } => unreachable!("streamed by `connection`"),
        Command::Faults => inputs.faults(),
        Command::ViewList => inputs.view_list(),
        Command::RotateCredentials => {
            inputs.rotate_credentials();
            "issued new credentials for the instance's role and every task's and pod's".into()
        }
        Command::Reset => {
            inputs.reset();
            "back to the configured state".into()
        }
        Command::Change { change, when, view } => {
            inputs.change_in(view.as_ref().map(ViewName::as_str), change, when)?
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
