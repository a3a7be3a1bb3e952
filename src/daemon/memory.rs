//! Giving back the memory start-up needed and serving does not.
//!
//! Start-up runs code that never runs again: the command line, the TOML parser and its
//! checks, key generation and certificate signing. The kernel maps the executable's code
//! into the process as it is first run, 64 KiB around each page touched, and keeps it mapped:
//! after start-up, more than half of the resident set is code that will not run again.
//! Dropping the mapping of our own code once serving has begun hands those pages back (they
//! stay in the page cache, clean, for the kernel to reclaim); the pages the request path
//! needs are mapped again by its first requests, from the page cache, without I/O.

/// Unmaps the pages of our own executable's code (`r-xp` mappings of `/proc/self/exe`); they
/// come back, from the file, as they are run. Best effort: a failure only costs memory.
pub fn release_startup_code() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let exe = exe.to_string_lossy();
    for (start, end) in code_mappings(&maps, &exe) {
        if let Err(e) = drop_pages(start, end - start) {
            tracing::debug!(error = %e, "cannot release start-up code");
        }
    }
}

/// The address ranges of `exe`'s code in a `/proc/PID/maps` listing: read-only, executable,
/// private file mappings, whose pages are never written and so are always the file's.
fn code_mappings<'a>(maps: &'a str, exe: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
    maps.lines().filter_map(move |line| {
        // address perms offset dev inode path (the path may hold spaces: the rest)
        let mut f = line.splitn(6, ' ');
        let (range, perms) = (f.next()?, f.next()?);
        let path = f.nth(3)?.trim_start();
        if perms != "r-xp" || path != exe {
            return None;
        }
        let (a, b) = range.split_once('-')?;
        Some((
            usize::from_str_radix(a, 16).ok()?,
            usize::from_str_radix(b, 16).ok()?,
        ))
    })
}

#[allow(unsafe_code)]
fn drop_pages(start: usize, len: usize) -> nix::Result<()> {
    let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return Ok(());
    };
    // SAFETY: the range is a private, read-only, executable file mapping of our own binary
    // (from /proc/self/maps): nothing in it was ever written, so MADV_DONTNEED loses no data;
    // the next access faults the same bytes back in from the file, which a running
    // executable keeps (it cannot be written while mapped, and a package upgrade replaces
    // it by a new inode).
    unsafe { nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_code_is_released() {
        let maps = "\
55d0c0a00000-55d0c0b00000 r--p 00000000 fd:01 42 /usr/bin/fake-metadata
55d0c0b00000-55d0c0f00000 r-xp 00100000 fd:01 42 /usr/bin/fake-metadata
55d0c0f00000-55d0c0f80000 r--p 00500000 fd:01 42 /usr/bin/fake-metadata
55d0c0f80000-55d0c0f90000 rw-p 00580000 fd:01 42 /usr/bin/fake-metadata
7f0000000000-7f0000100000 r-xp 00028000 fd:01 7 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7f1000000000-7f1000001000 r-xp 00000000 fd:01 43 /opt/my app/fake-metadata (deleted)
";
        let got: Vec<_> = code_mappings(maps, "/usr/bin/fake-metadata").collect();
        assert_eq!(got, [(0x55d0c0b00000, 0x55d0c0f00000)]);
        let spaced: Vec<_> = code_mappings(maps, "/opt/my app/fake-metadata (deleted)").collect();
        assert_eq!(spaced, [(0x7f1000000000, 0x7f1000001000)]);
    }

    fn resident_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn releasing_shrinks_the_resident_code_and_the_code_still_runs() {
        let before = resident_file_kib();
        release_startup_code();
        let after = resident_file_kib();
        assert!(
            after < before,
            "resident file pages {before} KiB -> {after} KiB"
        );
        // Code runs again after its pages were dropped: they come back from the file.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
