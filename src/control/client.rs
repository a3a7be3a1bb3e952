//! The `ctl` side: one request, one reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Command, Reply, Request, VERSION};
use crate::config::{ControlConfig, DEFAULT_GROUP};

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
    request_lines(socket, command, Some(Duration::from_secs(30)), |_| true)
}

/// Sends one command whose reply comes after lines of data (`requests`): `line` gets each
/// one and returns whether to go on (false: hang up, an `Ok` with no message). `timeout`
/// bounds each wait for a line (`None` for `follow`, which waits for new requests).
pub fn request_lines(
    socket: &Path,
    command: Command,
    timeout: Option<Duration>,
    mut on_line: impl FnMut(&str) -> bool,
) -> Result<String, ClientError> {
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
    s.set_read_timeout(timeout).map_err(io)?;
    let mut line = serde_json::to_string(&Request {
        v: VERSION,
        command,
    })
    .expect("a request serializes");
    line.push('\n');
    // A refused peer gets its reply without the daemon reading: a failed write is no error
    // as long as the reply arrives.
    let _ = s.write_all(line.as_bytes());
    let mut reader = BufReader::new(&s);
    let mut reply = String::new();
    loop {
        reply.clear();
        reader.read_line(&mut reply).map_err(io)?;
        // The reply is the line with `"ok"`; the lines before it are data.
        if reply.is_empty() || reply.starts_with("{\"v\":") {
            break;
        }
        if !on_line(reply.trim_end()) {
            return Ok(String::new());
        }
    }
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
    if cfg.socket_is_configured() {
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
