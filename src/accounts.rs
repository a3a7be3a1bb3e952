//! Users and groups by name: from `/etc/passwd` and `/etc/group` when they are there (where
//! `adduser` puts system accounts, and the first source in Debian's `nsswitch.conf`), else from
//! the system databases. Reading the files first spares the daemon loading an NSS module (some
//! 300 KiB resident for the rest of its life, and a few ms at start).

use nix::unistd::{Gid, Group, Uid, User};

/// A user's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: Uid,
    pub gid: Gid,
}

/// The user `name`'s uid and primary gid.
pub fn user(name: &str) -> Option<Ids> {
    let from_file = field_of("/etc/passwd", name, |f| {
        Some(Ids {
            uid: Uid::from_raw(f.get(1)?.parse().ok()?),
            gid: Gid::from_raw(f.get(2)?.parse().ok()?),
        })
    });
    from_file.or_else(|| {
        User::from_name(name).ok().flatten().map(|u| Ids {
            uid: u.uid,
            gid: u.gid,
        })
    })
}

/// The group `name`'s id.
pub fn group(name: &str) -> Option<Gid> {
    field_of("/etc/group", name, |f| {
        Some(Gid::from_raw(f.get(1)?.parse().ok()?))
    })
    .or_else(|| Group::from_name(name).ok().flatten().map(|g| g.gid))
}

/// Parses the line of a colon-separated account file whose first field is `name`; `parse`
/// gets the fields after the name (password, then the ids).
fn field_of<T>(path: &str, name: &str, parse: impl Fn(&[&str]) -> Option<T>) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next() != Some(name) || name.is_empty() {
            return None;
        }
        parse(&fields.collect::<Vec<_>>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_come_from_the_files_or_the_databases() {
        assert_eq!(
            user("root"),
            Some(Ids {
                uid: Uid::from_raw(0),
                gid: Gid::from_raw(0)
            })
        );
        assert_eq!(group("root"), Some(Gid::from_raw(0)));
        let nobody = user("nobody").expect("nobody exists");
        assert_eq!(
            Some(nobody.uid),
            User::from_name("nobody").unwrap().map(|u| u.uid)
        );
        for missing in ["no-such-account-here", ""] {
            assert_eq!(user(missing), None);
            assert_eq!(group(missing), None);
        }
    }
}
