//! The on-disk signature cache beside a persistent key (`identity-signatures.json`): the last
//! document's signatures, so a restart that serves the same document answers without signing
//! again. Best effort throughout.

use std::fs::File;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::key::replace_file;
use super::{IdentityKey, Signatures};

/// Bumped whenever the bodies we make change shape, so an old cache is not served.
const CACHE_FORMAT: u32 = 1;
/// A real cache file is ~3 KiB; anything much bigger is not ours.
const CACHE_MAX_BYTES: u64 = 64 * 1024;

impl IdentityKey {
    /// What the cache file must name for `document`: our certificate (so the bodies of
    /// another key are never served) and the document, both hashed.
    fn cache_digest(&self, document: &[u8]) -> String {
        let digest = Sha256::new()
            .chain_update(&self.0.cert_der)
            .chain_update(document)
            .finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cached signatures of `document`, if the cache file holds them; no RSA here.
    pub(super) fn cached(&self, document: &[u8]) -> Option<Signatures> {
        let path = self.0.cache.as_deref()?;
        let mut text = String::new();
        File::open(path)
            .ok()?
            .take(CACHE_MAX_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        let entry: CacheEntry = serde_json::from_str(&text).ok()?;
        let hit = entry.format == CACHE_FORMAT && entry.sha256 == self.cache_digest(document);
        hit.then_some(Signatures {
            signature: entry.signature,
            pkcs7: entry.pkcs7,
            rsa2048: entry.rsa2048,
        })
    }

    /// Replaces the cache with `signatures`, best effort: without it we only sign again.
    pub(super) fn store(&self, document: &[u8], signatures: &Signatures) {
        let Some(path) = self.0.cache.as_deref() else {
            return;
        };
        let entry = CacheEntry {
            format: CACHE_FORMAT,
            sha256: self.cache_digest(document),
            signature: signatures.signature.clone(),
            pkcs7: signatures.pkcs7.clone(),
            rsa2048: signatures.rsa2048.clone(),
        };
        let written = serde_json::to_vec(&entry)
            .map_err(io::Error::other)
            // No fsync: a cache lost in a crash is only a miss.
            .and_then(|json| replace_file(path, &json, 0o644, false));
        if let Err(e) = written {
            tracing::debug!(
                "cannot cache the identity signatures in {}: {e}",
                path.display()
            );
        }
    }
}

/// The signature cache file: the last document's signatures, and its
/// [`IdentityKey::cache_digest`].
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    format: u32,
    sha256: String,
    signature: String,
    pkcs7: String,
    rsa2048: String,
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{CERT_FILE, KEY_FILE, SIGNATURE_CACHE_FILE};
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn signatures_are_cached_beside_a_persistent_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = IdentityKey::load_or_create(d).unwrap();
        assert_eq!(first.cached(DOCUMENT.as_bytes()), None);
        let sigs = first.sign(DOCUMENT.as_bytes(), now()).unwrap();
        let mode = fs::metadata(d.join(SIGNATURE_CACHE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o733, 0o600, "0644 less the umask: {mode:o}");

        // After a restart the same document is answered from the file, with no RSA at all:
        // `sign` returns what `cached` finds, down to the first signing's signingTime.
        let again = IdentityKey::load_or_create(d).unwrap();
        assert_eq!(again.cached(DOCUMENT.as_bytes()), Some(sigs.clone()));
        assert_eq!(again.sign(DOCUMENT.as_bytes(), now()).unwrap(), sigs);

        // Another document misses, and takes the (single) entry.
        let other = DOCUMENT.replace("t3.micro", "t3.large");
        assert_eq!(again.cached(other.as_bytes()), None);
        let other_sigs = again.sign(other.as_bytes(), now()).unwrap();
        assert_ne!(other_sigs.signature, sigs.signature);
        assert_eq!(again.cached(other.as_bytes()), Some(other_sigs));
        assert_eq!(again.cached(DOCUMENT.as_bytes()), None);

        let mut files: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, [CERT_FILE, KEY_FILE, SIGNATURE_CACHE_FILE]);
    }

    #[test]
    fn a_corrupt_cache_is_a_miss_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = IdentityKey::load_or_create(d).unwrap();
        key.sign(DOCUMENT.as_bytes(), now()).unwrap();
        let path = d.join(SIGNATURE_CACHE_FILE);
        let good = fs::read(&path).unwrap();
        let wrong_format = String::from_utf8(good.clone())
            .unwrap()
            .replace(r#""format":1"#, r#""format":99"#);
        for junk in [
            &good[..good.len() / 2],
            b"{not json",
            b"",
            &[0xff; 100],
            wrong_format.as_bytes(),
        ] {
            fs::write(&path, junk).unwrap();
            assert_eq!(key.cached(DOCUMENT.as_bytes()), None);
            let sigs = key.sign(DOCUMENT.as_bytes(), now()).unwrap();
            assert_eq!(key.cached(DOCUMENT.as_bytes()), Some(sigs.clone()));
            fs::write(d.join("certificate"), key.cert_pem()).unwrap();
            assert_openssl_verifies(d, &sigs, "certificate");
        }
        // One that cannot be written is no error either: we sign every time.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(key.sign(DOCUMENT.as_bytes(), now()).is_ok());
        assert_eq!(key.cached(DOCUMENT.as_bytes()), None);
    }

    #[test]
    fn another_certificates_cache_is_never_served() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let key_a = IdentityKey::load_or_create(a.path()).unwrap();
        let key_b = IdentityKey::load_or_create(b.path()).unwrap();
        key_a.sign(DOCUMENT.as_bytes(), now()).unwrap();
        let cache = |dir: &tempfile::TempDir| dir.path().join(SIGNATURE_CACHE_FILE);
        fs::copy(cache(&a), cache(&b)).unwrap();
        assert_eq!(key_b.cached(DOCUMENT.as_bytes()), None);
        assert_openssl_verifies(
            b.path(),
            &key_b.sign(DOCUMENT.as_bytes(), now()).unwrap(),
            CERT_FILE,
        );

        // The same key with a remade certificate (new serial): signatures naming the old
        // certificate are not served for the new one.
        key_a.sign(DOCUMENT.as_bytes(), now()).unwrap();
        fs::remove_file(a.path().join(CERT_FILE)).unwrap();
        let remade = IdentityKey::load_or_create(a.path()).unwrap();
        assert_eq!(remade.cached(DOCUMENT.as_bytes()), None);
        assert_openssl_verifies(
            a.path(),
            &remade.sign(DOCUMENT.as_bytes(), now()).unwrap(),
            CERT_FILE,
        );
    }

    #[test]
    fn ephemeral_keys_keep_no_cache() {
        let key = IdentityKey::ephemeral().unwrap();
        assert!(key.0.cache.is_none());
        key.sign(DOCUMENT.as_bytes(), now()).unwrap();
        assert_eq!(key.cached(DOCUMENT.as_bytes()), None);
    }
}
