//! The process holding a socket, found off the request path. The kernel does not say which
//! process holds a socket; its inode is among the holder's `/proc/PID/fd` links
//! (`socket:[INODE]`), readable only for the daemon's own uid (without CAP_SYS_PTRACE; under
//! the unit's `ProtectProc=invisible` the others are not even listed). A thread receives the
//! sockets to find through a bounded channel (full: the socket is dropped, its owner keeps no
//! process), takes all that are waiting, reads the fds of the daemon's uid's processes once for
//! all of them and fills each [`Owner::process`]. A process that ended first is not found.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, Weak};

use crate::client::{Owner, Process};

/// Sockets waiting at most; more are dropped.
pub const QUEUE: usize = 256;

/// A socket to find and the owner to tell.
type Job = (u64, Weak<Owner>);

/// The resolver thread's queue, started at the first socket to find (a daemon that never has
/// one never starts it); the thread ends with the [`Resolver`].
#[derive(Debug, Default)]
pub struct Resolver {
    queue: OnceLock<Option<SyncSender<Job>>>,
}

impl Resolver {
    /// Queues socket `inode` to be found; never waits.
    pub fn find(&self, inode: u64, owner: &Arc<Owner>) {
        let Some(queue) = self.queue.get_or_init(start) else {
            return;
        };
        match queue.try_send((inode, Arc::downgrade(owner))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!(
                    inode,
                    "process lookups are behind; this socket's process is not looked for"
                );
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn start() -> Option<SyncSender<Job>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    match std::thread::Builder::new()
        .name("owner-process".into())
        .spawn(move || run(&rx))
    {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the thread that finds clients' processes; none will be recorded");
            None
        }
    }
}

fn run(rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut waiting: HashMap<u64, Vec<Weak<Owner>>> = HashMap::new();
        for (inode, owner) in std::iter::once(first).chain(rx.try_iter()) {
            waiting.entry(inode).or_default().push(owner);
        }
        waiting.retain(|_, owners| {
            owners.retain(|o| o.strong_count() > 0);
            !owners.is_empty()
        });
        if waiting.is_empty() {
            continue;
        }
        for (inode, process) in holders(&waiting, nix::unistd::geteuid().as_raw()) {
            for owner in waiting.get(&inode).into_iter().flatten() {
                if let Some(owner) = owner.upgrade() {
                    let _ = owner.process.set(process.clone());
                }
            }
        }
    }
}

/// The process (the lowest pid, when several share it; the daemon itself last) holding each
/// of `inodes` among the processes of `uid`.
pub fn holders<V>(inodes: &HashMap<u64, V>, uid: u32) -> HashMap<u64, Process> {
    let mut found = HashMap::new();
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return found;
    };
    let mut pids: Vec<u32> = proc
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The daemon last: it holds a socket per connection, and is a client of itself only in
    // tests.
    let me = std::process::id();
    pids.sort_unstable_by_key(|&pid| (pid == me, pid));
    for pid in pids {
        if found.len() == inodes.len() {
            break;
        }
        let dir = format!("/proc/{pid}");
        if !std::fs::metadata(&dir).is_ok_and(|m| m.uid() == uid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("{dir}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Some(inode) = std::fs::read_link(fd.path())
                .ok()
                .and_then(|link| socket_inode(link.to_str()?))
            else {
                continue;
            };
            if inodes.contains_key(&inode) && !found.contains_key(&inode) {
                // A process that ended since is skipped.
                let Ok(comm) = std::fs::read_to_string(format!("{dir}/comm")) else {
                    break;
                };
                let command = Arc::from(comm.trim_end_matches('\n'));
                found.insert(inode, Process { pid, command });
            }
        }
    }
    found
}

/// The inode of an fd link `socket:[INODE]`.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_give_their_inode_and_others_none() {
        assert_eq!(socket_inode("socket:[123456]"), Some(123_456));
        for link in [
            "/dev/null",
            "pipe:[42]",
            "socket:[]",
            "socket:[12",
            "anon_inode:[eventfd]",
        ] {
            assert_eq!(socket_inode(link), None, "{link}");
        }
    }
}
