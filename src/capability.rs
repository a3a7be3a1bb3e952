//! Capabilities: the unguessable strings that are the only key to a workload's credentials.
//! On ECS a task's credentials are read at `/v2/credentials/<id>` and its metadata at
//! `/v4/<id>`; with EKS Pod Identity a pod proves itself with a token. Whoever knows the
//! string gets the role, so it must not be guessable, and it must stay the same across a
//! daemon restart and a reload: the environment `ctl task env` printed is baked into running
//! containers.
//!
//! So each one is derived (HMAC-SHA256) from a per-box secret kept in the state directory
//! (`workload-secret`, 0600, made at the first start) and the workload's name: stable, and
//! unguessable without the secret. When the state directory cannot be written the secret
//! is made afresh per start (logged by the daemon), and the ids change at each start.
//! Nothing here logs; `Debug` never shows the secret.

use std::borrow::Cow;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The file in the state directory that holds the secret.
pub const SECRET_FILE: &str = "workload-secret";
const SECRET_LEN: usize = 32;

/// The per-box secret the capabilities are derived from.
#[derive(Clone, PartialEq, Eq)]
pub struct BoxSecret([u8; SECRET_LEN]);

/// Why the secret could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{path} holds {len} bytes, not the {SECRET_LEN} of a workload secret (remove it to make a new one; running containers then need `ctl task env` again)"
    )]
    Length { path: PathBuf, len: usize },
    #[error("{path} may be read by others (mode {mode:o}); make it 0600")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("no randomness from the system: {0}")]
    Random(getrandom::Error),
}

impl BoxSecret {
    /// The secret from `dir`, made and written there (0600) when there is none yet.
    pub fn load_or_create(dir: &Path) -> Result<BoxSecret, SecretError> {
        let path = dir.join(SECRET_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                let mode = fs::metadata(&path)
                    .map_err(|source| SecretError::Read {
                        path: path.clone(),
                        source,
                    })?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(SecretError::Exposed {
                        path,
                        mode: mode & 0o777,
                    });
                }
                let len = bytes.len();
                let bytes: [u8; SECRET_LEN] = bytes
                    .try_into()
                    .map_err(|_| SecretError::Length { path, len })?;
                Ok(BoxSecret(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let secret = BoxSecret::ephemeral()?;
                let write = || -> io::Result<()> {
                    let tmp = path.with_extension("tmp");
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    f.write_all(&secret.0)?;
                    f.sync_all()?;
                    fs::rename(&tmp, &path)
                };
                write().map_err(|source| SecretError::Write {
                    path: path.clone(),
                    source,
                })?;
                Ok(secret)
            }
            Err(source) => Err(SecretError::Read { path, source }),
        }
    }

    /// A secret for this process only.
    pub fn ephemeral() -> Result<BoxSecret, SecretError> {
        let mut b = [0u8; SECRET_LEN];
        getrandom::fill(&mut b).map_err(SecretError::Random)?;
        Ok(BoxSecret(b))
    }

    /// A fixed secret, for tests (and for a snapshot without tasks or pods, where nothing is
    /// derived).
    pub const fn from_bytes(b: [u8; SECRET_LEN]) -> BoxSecret {
        BoxSecret(b)
    }

    fn derive(&self, purpose: &str, name: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(name.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The id of a task's credentials (`/v2/credentials/<id>`): a UUID, as the ECS agent's.
    pub fn task_credentials_id(&self, task: &str) -> String {
        uuid(self.derive("ecs-task-credentials", task))
    }

    /// The id in a container's metadata URIs (`/v3/<id>`, `/v4/<id>`): a UUID, as the
    /// agent's `V3EndpointID`.
    pub fn container_endpoint_id(&self, task: &str, container: &str) -> String {
        let name = format!("{task}\0{container}");
        uuid(self.derive("ecs-container-endpoint", &name))
    }

    /// The token a pod of `service_account` (`NAMESPACE/NAME`) presents in `Authorization`.
    pub fn pod_token(&self, service_account: &str) -> String {
        hex(&self.derive("eks-pod-identity-token", service_account))
    }
}

/// Shows no byte of the secret.
impl fmt::Debug for BoxSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxSecret(<redacted>)")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A version-4-shaped UUID from the first 16 bytes of `d`.
pub fn uuid(d: [u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `s` (a path to be shown) with every run shaped like our ids (a UUID: 8-4-4-4-12 hex
/// digits) replaced by `<id>`: a task's credentials id or a container's endpoint id sent to
/// any endpoint, in any path, is never shown. Borrowed (one scan) when there is none.
pub fn without_ids(s: &str) -> Cow<'_, str> {
    const LEN: usize = 36;
    let is_uuid = |w: &[u8]| {
        w.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
    };
    let b = s.as_bytes();
    if b.len() < LEN || !(0..=b.len() - LEN).any(|i| is_uuid(&b[i..i + LEN])) {
        return Cow::Borrowed(s);
    }
    let (mut out, mut i) = (String::with_capacity(s.len()), 0);
    while i < b.len() {
        if i + LEN <= b.len() && is_uuid(&b[i..i + LEN]) {
            out.push_str("<id>");
            i += LEN;
        } else {
            let c = s[i..].chars().next().expect("on a char boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_secret_and_name_and_differ_otherwise() {
        let a = BoxSecret::from_bytes([1; 32]);
        let b = BoxSecret::from_bytes([2; 32]);
        assert_eq!(a.task_credentials_id("web"), a.task_credentials_id("web"));
        assert_ne!(a.task_credentials_id("web"), a.task_credentials_id("api"));
        assert_ne!(a.task_credentials_id("web"), b.task_credentials_id("web"));
        assert_ne!(
            a.container_endpoint_id("web", "app"),
            a.container_endpoint_id("web", "sidecar")
        );
        let id = a.task_credentials_id("web");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version 4: {id}");
        assert!(
            matches!(&id[19..20], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
        assert_eq!(a.pod_token("default/app").len(), 64);
        assert_eq!(format!("{a:?}"), "BoxSecret(<redacted>)");
    }

    #[test]
    fn the_secret_is_kept_in_the_state_directory_and_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = BoxSecret::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(SECRET_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(BoxSecret::load_or_create(dir.path()).unwrap(), first);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = BoxSecret::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("make it 0600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"short").unwrap();
        let err = BoxSecret::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("holds 5 bytes"), "{err}");
    }
}
