//! A cgroup v2 id as its path (`/system.slice/cron.service`). The id the kernel gives for a
//! socket is the inode number of the cgroup's directory under the cgroup2 mount, and the
//! kernel has no unprivileged call from id to path (`open_by_handle_at` needs
//! CAP_DAC_READ_SEARCH), so the mount is walked (directory entries only: the inode is in
//! each entry, no `stat`) at start and the result kept. An id not in it (a service started
//! since) walks again, at most every [`REWALK`]; between walks such an id has no path. A walk
//! costs a few system calls per cgroup (about 3.5 ms for 300 cgroups; see
//! `examples/owner_cost.rs`), paid by the lookup that misses.

use std::collections::HashMap;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the hierarchy may be walked, at most.
pub const REWALK: Duration = Duration::from_secs(1);
/// Cgroups read at most in one walk.
pub const MAX_CGROUPS: usize = 65_536;

/// Paths by id, from the last walk.
#[derive(Debug)]
pub struct Cgroups {
    /// The cgroup2 mount: `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host;
    /// `None` without cgroup v2.
    root: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    paths: Arc<HashMap<u64, Arc<str>>>,
    walked: Option<Instant>,
}

impl Cgroups {
    /// Walks the hierarchy once now (at start-up, not at a first connection's expense).
    pub fn new() -> Cgroups {
        let cgroups = Cgroups::at(cgroup2_mount());
        if let Some(root) = &cgroups.root {
            cgroups.lock().paths = Arc::new(walk(root, MAX_CGROUPS));
        }
        cgroups
    }

    /// Paths under `root` (a cgroup2 mount, or any directory for a test).
    pub fn at(root: Option<PathBuf>) -> Cgroups {
        Cgroups {
            root,
            state: Mutex::new(State::default()),
        }
    }

    /// The path of cgroup `id`, as `/proc/PID/cgroup` writes it.
    pub fn path(&self, id: u64) -> Option<Arc<str>> {
        let root = self.root.as_deref()?;
        {
            let mut state = self.lock();
            if let Some(path) = state.paths.get(&id) {
                return Some(path.clone());
            }
            if state.walked.is_some_and(|t| t.elapsed() < REWALK) {
                return None;
            }
            // This caller walks; others find the old paths meanwhile.
            state.walked = Some(Instant::now());
        }
        let paths = Arc::new(walk(root, MAX_CGROUPS));
        let found = paths.get(&id).cloned();
        self.lock().paths = paths;
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Cgroups {
    fn default() -> Self {
        Cgroups::new()
    }
}

/// The cgroup2 mount, where systemd puts it.
pub fn cgroup2_mount() -> Option<PathBuf> {
    use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| statfs(p.as_path()).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC))
}

/// Every directory under `root` (itself as `/`) by inode, `max` at most.
pub fn walk(root: &Path, max: usize) -> HashMap<u64, Arc<str>> {
    let mut paths = HashMap::new();
    let Ok(meta) = std::fs::metadata(root) else {
        return paths;
    };
    paths.insert(meta.ino(), Arc::from("/"));
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, name)) = pending.pop() {
        // A cgroup removed meanwhile is skipped.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if paths.len() >= max {
                return paths;
            }
            let Some(child) = entry.file_name().to_str().map(|n| format!("{name}/{n}")) else {
                continue;
            };
            paths.insert(entry.ino(), Arc::from(child.as_str()));
            pending.push((entry.path(), child));
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_names_each_directory_by_inode_and_stops_at_its_bound() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("system.slice/cron.service")).unwrap();
        std::fs::create_dir_all(root.path().join("user.slice")).unwrap();
        std::fs::write(root.path().join("cgroup.procs"), "").unwrap();
        let ino = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().ino();

        let paths = walk(root.path(), 100);
        assert_eq!(paths.len(), 4, "{paths:?}");
        assert_eq!(&*paths[&ino("")], "/");
        assert_eq!(&*paths[&ino("system.slice")], "/system.slice");
        assert_eq!(
            &*paths[&ino("system.slice/cron.service")],
            "/system.slice/cron.service"
        );
        assert_eq!(&*paths[&ino("user.slice")], "/user.slice");
        assert_eq!(walk(root.path(), 2).len(), 2);
    }

    #[test]
    fn a_new_cgroup_is_found_by_the_next_walk_not_before() {
        let root = tempfile::tempdir().unwrap();
        let cgroups = Cgroups::at(Some(root.path().to_path_buf()));
        let root_ino = std::fs::metadata(root.path()).unwrap().ino();
        assert_eq!(cgroups.path(root_ino).as_deref(), Some("/"));

        std::fs::create_dir(root.path().join("new.scope")).unwrap();
        let new = std::fs::metadata(root.path().join("new.scope"))
            .unwrap()
            .ino();
        assert_eq!(cgroups.path(new), None, "walked less than REWALK ago");
        cgroups.lock().walked = Some(Instant::now() - REWALK);
        assert_eq!(cgroups.path(new).as_deref(), Some("/new.scope"));
    }
}
