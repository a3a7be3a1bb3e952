//! A uid's name, from the user database (NSS: `/etc/passwd`, systemd's dynamic users, a
//! directory), asked once per uid rather than per connection: a bounded cache. A uid without a
//! name is asked again after [`RETRY_UNNAMED`], so a user created later gets its name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Uids remembered at most; past that the cache starts over.
pub const MAX_USERS: usize = 1024;
/// How long "no such user" is believed.
pub const RETRY_UNNAMED: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Users {
    names: Mutex<HashMap<u32, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    name: Option<Arc<str>>,
    asked: Instant,
}

impl Users {
    /// `uid`'s name, `None` when the user database has none.
    pub fn name(&self, uid: u32) -> Option<Arc<str>> {
        if let Some(e) = self.lock().get(&uid)
            && (e.name.is_some() || e.asked.elapsed() < RETRY_UNNAMED)
        {
            return e.name.clone();
        }
        // The database is asked without the lock: NSS may be slow, other uids need not wait.
        let name: Option<Arc<str>> = match nix::unistd::User::from_uid(uid.into()) {
            Ok(user) => user.map(|u| u.name.into()),
            Err(e) => {
                tracing::debug!(uid, error = %e, "cannot ask the user database");
                None
            }
        };
        let mut names = self.lock();
        if names.len() >= MAX_USERS {
            names.clear();
        }
        names.insert(
            uid,
            Entry {
                name: name.clone(),
                asked: Instant::now(),
            },
        );
        name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_once_and_an_unknown_uid_is_not() {
        let users = Users::default();
        assert_eq!(users.name(0).as_deref(), Some("root"));
        let first = users.name(0).unwrap();
        let again = users.name(0).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second answer comes from the cache"
        );
        // Far above any allocated uid (and not the overflow uid 65534).
        assert_eq!(users.name(3_999_999_999), None);
        assert!(
            users.lock().contains_key(&3_999_999_999),
            "the miss is remembered"
        );
    }
}
