//! The one part of `pod_identity` with side effects: writing a pod's token where a container
//! will read it (`ctl pod env --token-file PATH`, mounted at
//! [`TOKEN_FILE`](super::TOKEN_FILE)).
//!
//! The token is the key to the pod's role, so the file is made readable by its owner only
//! (0600), appears whole or not at all (a temporary file in the same directory, synced, then
//! renamed over the path), and a symbolic link at the path is refused rather than followed
//! (nobody can redirect the write to a file of their choosing).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `token` (as is: no newline, as kubelet writes a projected token) to `path`, mode
/// 0600, atomically, replacing a regular file there; refuses a symbolic link or a directory
/// at `path`.
pub fn write_token_file(path: &Path, token: &str) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link: refusing to write a token through it",
                    path.display()
                ),
            ));
        }
        Ok(m) if !m.file_type().is_file() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} exists and is not a regular file", path.display()),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        fastrand::u64(..)
    ));
    let write = || -> io::Result<()> {
        // O_EXCL: never an existing file or link; O_NOFOLLOW for good measure.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_the_token_alone_readable_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eks-pod-identity-token");
        write_token_file(&path, "abc123").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "abc123");
        assert_eq!(mode(&path), 0o600);
        assert!(leftovers(dir.path()).is_empty());
    }

    /// An existing file (even one others could read) is replaced by a new 0600 one.
    #[test]
    fn replaces_a_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs::write(&path, "an older and longer token").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_token_file(&path, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode(&path), 0o600);
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn refuses_a_symlink_and_leaves_its_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        fs::write(&target, "keep").unwrap();
        let link = dir.path().join("token");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write_token_file(&link, "secret").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A dangling link too: nothing is created at its target.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("absent"), &dangling).unwrap();
        assert!(write_token_file(&dangling, "secret").is_err());
        assert!(!dir.path().join("absent").exists());
    }

    #[test]
    fn refuses_a_directory_and_a_missing_parent() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_token_file(dir.path(), "t").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = write_token_file(&dir.path().join("no/such/dir/token"), "t").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(leftovers(dir.path()).is_empty());
    }
}
