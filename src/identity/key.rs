//! The key store: the RSA key and its certificate in the state directory, loaded if there,
//! made if not, never silently replaced; or a key kept in memory only.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cms::cert::IssuerAndSerialNumber;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, PrivateKeyInfo};
use rsa::rand_core::OsRng;
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::Certificate;
use x509_cert::der::pem::{self, LineEnding};
use x509_cert::der::zeroize::Zeroizing;
use x509_cert::der::{self, Decode, DecodePem, Encode, EncodePem};

use super::cert::self_signed;
use super::{
    CERT_FILE, Cause, IdentityError, IdentityKey, Inner, KEY_FILE, RSA_ENCRYPTION,
    SIGNATURE_CACHE_FILE, crypto,
};

const KEY_BITS: usize = 2048;

impl IdentityKey {
    /// Loads the key and certificate from `dir`, making whichever is missing, so the
    /// certificate users were given stays valid across restarts.
    ///
    /// Creates `dir` if needed. A new key is written with mode 0600, the certificate with
    /// 0644 (it is public); both atomically (temporary file, then rename). A key or
    /// certificate that exists but cannot be used is an error, never silently replaced:
    /// someone may have handed that certificate out. Reads the PKCS#8 files OpenSSL wrote for
    /// earlier versions, and PKCS#1 (`RSA PRIVATE KEY`) ones.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| IdentityError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);

        let (key, fresh_key) = match fs::read(&key_path) {
            Ok(pem) => (load_key(&key_path, &Zeroizing::new(pem))?, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = generate_key()?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(crypto("encode the private key"))?;
                write_atomic(&key_path, pem.as_bytes(), 0o600)?;
                (key, true)
            }
            Err(source) => {
                return Err(IdentityError::Read {
                    path: key_path,
                    source,
                });
            }
        };

        // A certificate left over from an earlier key is replaced along with the key.
        let existing = if fresh_key {
            None
        } else {
            match fs::read(&cert_path) {
                Ok(pem) => Some(pem),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(IdentityError::Read {
                        path: cert_path,
                        source,
                    });
                }
            }
        };
        let cert = match existing {
            Some(pem) => {
                let cert =
                    Certificate::from_pem(&pem).map_err(|source| IdentityError::BadCert {
                        path: cert_path.clone(),
                        source: source.into(),
                    })?;
                if certified_key(&cert).as_ref() != Some(key.as_ref()) {
                    return Err(IdentityError::Mismatch {
                        key: key_path,
                        cert: cert_path,
                    });
                }
                cert
            }
            None => {
                let cert = self_signed(&key).map_err(crypto("make the certificate"))?;
                let pem = cert
                    .to_pem(LineEnding::LF)
                    .map_err(crypto("encode the certificate"))?;
                write_atomic(&cert_path, pem.as_bytes(), 0o644)?;
                cert
            }
        };
        Self::from_parts(key, &cert, Some(dir.join(SIGNATURE_CACHE_FILE)))
    }

    /// A new key kept in memory only, for when no state directory is usable: the
    /// certificate then changes on every start, and nothing is cached.
    pub fn ephemeral() -> Result<Self, IdentityError> {
        let key = generate_key()?;
        let cert = self_signed(&key).map_err(crypto("make the certificate"))?;
        Self::from_parts(key, &cert, None)
    }

    fn from_parts(
        key: RsaPrivateKey,
        cert: &Certificate,
        cache: Option<PathBuf>,
    ) -> Result<Self, IdentityError> {
        let cert_der = cert.to_der().map_err(crypto("encode the certificate"))?;
        let cert_pem = cert
            .to_pem(LineEnding::LF)
            .map_err(crypto("encode the certificate"))?;
        let tbs = &cert.tbs_certificate;
        Ok(Self(Arc::new(Inner {
            signer: SigningKey::new(key),
            cert_der,
            cert_pem,
            sid: IssuerAndSerialNumber {
                issuer: tbs.issuer.clone(),
                serial_number: tbs.serial_number.clone(),
            },
            cache,
        })))
    }
}

fn generate_key() -> Result<RsaPrivateKey, IdentityError> {
    RsaPrivateKey::new(&mut OsRng, KEY_BITS).map_err(crypto("generate an RSA-2048 key"))
}

/// Reads the PEM forms OpenSSL writes: PKCS#8 (`PRIVATE KEY`, of any algorithm) and the
/// traditional per-algorithm ones.
fn load_key(path: &Path, pem: &[u8]) -> Result<RsaPrivateKey, IdentityError> {
    let bad = |source: Cause| IdentityError::BadKey {
        path: path.to_owned(),
        source,
    };
    let not_rsa = || IdentityError::NotRsa {
        path: path.to_owned(),
    };
    let (label, der) = pem::decode_vec(pem).map_err(|e| bad(der::Error::from(e).into()))?;
    let der = Zeroizing::new(der);
    match label {
        "PRIVATE KEY" => {
            let info = PrivateKeyInfo::from_der(&der).map_err(|e| bad(e.into()))?;
            if info.algorithm.oid != RSA_ENCRYPTION {
                return Err(not_rsa());
            }
            RsaPrivateKey::try_from(info).map_err(|e| bad(e.into()))
        }
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| bad(e.into())),
        "EC PRIVATE KEY" | "DSA PRIVATE KEY" => Err(not_rsa()),
        other => Err(bad(format!("unexpected PEM label {other:?}").into())),
    }
}

/// The RSA public key `cert` certifies, if it is one.
fn certified_key(cert: &Certificate) -> Option<RsaPublicKey> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    RsaPublicKey::from_public_key_der(&spki).ok()
}

/// Writes `path` so that readers see the old file or the whole new one, never a part, and
/// makes it durable.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    replace_file(path, contents, mode, true).map_err(|source| IdentityError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Write to a temporary file, then rename it over `path`; with `sync`, fsync both.
pub(super) fn replace_file(path: &Path, contents: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    // Unique per process and call, so two threads never share a temporary file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        // A leftover from a crashed run with our pid would make create_new fail.
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        if sync {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if sync {
            // Make the rename itself durable.
            File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::CERT_COMMON_NAME;
    use super::super::test_support::*;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn openssl_reads_our_key_and_derives_the_same_key_identifier() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        IdentityKey::load_or_create(d).unwrap();
        let out = openssl(
            d,
            &["req", "-new", "-x509", "-key", KEY_FILE, "-subj", "/CN=x"]
                .into_iter()
                .chain(["-out", "openssl.pem"])
                .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{out:?}");
        let ski = |cert: &str| {
            let args = [
                "x509",
                "-in",
                cert,
                "-noout",
                "-ext",
                "subjectKeyIdentifier",
            ];
            let out = openssl(d, &args);
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let ours = ski(CERT_FILE);
        assert!(ours.contains("Subject Key Identifier"), "{ours}");
        assert_eq!(ours, ski("openssl.pem"));
    }

    #[test]
    fn load_or_create_persists_the_key() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state/identity"); // missing parents are made
        let first = IdentityKey::load_or_create(&dir).unwrap();
        let second = IdentityKey::load_or_create(&dir).unwrap();
        assert_eq!(first.cert_pem(), second.cert_pem());

        let mode = |name| fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE) & 0o600, 0o600);
        assert_eq!(
            fs::read_to_string(dir.join(CERT_FILE)).unwrap(),
            first.cert_pem()
        );
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");

        // A signature made after a restart verifies with the certificate from before it.
        let sigs = second.sign(DOCUMENT.as_bytes(), now()).unwrap();
        let d = root.path();
        fs::write(d.join("certificate"), first.cert_pem()).unwrap();
        write_armoured(d, "rsa2048", &sigs.rsa2048);
        let out = openssl(
            d,
            &["smime", "-verify", "-in", "rsa2048", "-inform", "PEM"]
                .into_iter()
                .chain(["-certfile", "certificate", "-CAfile", "certificate"])
                .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{out:?}");
    }

    #[test]
    fn a_missing_certificate_is_remade_for_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = IdentityKey::load_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        let second = IdentityKey::load_or_create(dir.path()).unwrap();
        let public = |k: &IdentityKey| certified_key(&Certificate::from_pem(k.cert_pem()).unwrap());
        assert_eq!(public(&first).unwrap(), public(&second).unwrap());
        assert_ne!(first.cert_pem(), second.cert_pem(), "a new serial");
    }

    fn chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut cause = err.source();
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    }

    #[test]
    fn unusable_files_are_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join(KEY_FILE);
        fs::write(&key_path, "not a key").unwrap();
        let err = IdentityKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::BadKey { .. }), "{err:?}");
        assert!(err.to_string().contains(&key_path.display().to_string()));
        assert_eq!(fs::read_to_string(&key_path).unwrap(), "not a key"); // left alone
        eprintln!("{}", chain(&err));

        // Keys of other algorithms, in PKCS#8 and in OpenSSL's traditional form.
        for args in [
            &["genpkey", "-algorithm", "ed25519"][..],
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        ] {
            let out = openssl(dir.path(), args);
            assert!(out.status.success(), "{out:?}");
            fs::write(&key_path, out.stdout).unwrap();
            let err = IdentityKey::load_or_create(dir.path()).unwrap_err();
            assert!(
                matches!(err, IdentityError::NotRsa { .. }),
                "{args:?}: {err:?}"
            );
            eprintln!("{}", chain(&err));
        }

        // PEM, but not a key; a PKCS#8 key cut short.
        let cert_pem = IdentityKey::ephemeral().unwrap().cert_pem().to_owned();
        let out = openssl(dir.path(), &["genpkey", "-algorithm", "RSA"]);
        let (_, der) = pem::decode_vec(&out.stdout).unwrap();
        let cut = pem::encode_string("PRIVATE KEY", LineEnding::LF, &der[..600]).unwrap();
        for text in [cert_pem, cut] {
            fs::write(&key_path, text).unwrap();
            let err = IdentityKey::load_or_create(dir.path()).unwrap_err();
            assert!(matches!(err, IdentityError::BadKey { .. }), "{err:?}");
            eprintln!("{}", chain(&err));
        }

        // A certificate from another key.
        fs::remove_file(&key_path).unwrap();
        IdentityKey::load_or_create(dir.path()).unwrap();
        let other = IdentityKey::ephemeral().unwrap();
        fs::write(dir.path().join(CERT_FILE), other.cert_pem()).unwrap();
        let err = IdentityKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Mismatch { .. }), "{err:?}");
        eprintln!("{}", chain(&err));

        // A directory that cannot be made.
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let err = IdentityKey::load_or_create(&blocker.join("sub")).unwrap_err();
        assert!(matches!(err, IdentityError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("file/sub"), "{err}");
        eprintln!("{}", chain(&err));
    }

    #[test]
    fn loads_the_keys_and_certificates_openssl_wrote() {
        // An existing install: PKCS#8 key and certificate, both made by OpenSSL.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        run_openssl(d, &["genpkey", "-algorithm", "RSA", "-out", KEY_FILE]);
        let subject = format!("/CN={CERT_COMMON_NAME}/O=fake-metadata");
        run_openssl(
            d,
            &["req", "-new", "-x509", "-key", KEY_FILE, "-subj", &subject]
                .into_iter()
                .chain(["-set_serial", "0x2522834A50BE635E007A747F9011F152"])
                .chain(["-days", "36500", "-out", CERT_FILE])
                .collect::<Vec<_>>(),
        );
        let written = fs::read_to_string(d.join(CERT_FILE)).unwrap();
        let key = IdentityKey::load_or_create(d).unwrap();
        assert_eq!(key.cert_pem(), written);
        assert_openssl_verifies(d, &key.sign(DOCUMENT.as_bytes(), now()).unwrap(), CERT_FILE);

        // PKCS#1 (`RSA PRIVATE KEY`), without a certificate yet: one is made, the key kept.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        run_openssl(d, &["genrsa", "-traditional", "-out", KEY_FILE, "2048"]);
        let pkcs1 = fs::read_to_string(d.join(KEY_FILE)).unwrap();
        assert!(
            pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
            "{pkcs1}"
        );
        let key = IdentityKey::load_or_create(d).unwrap();
        assert_eq!(fs::read_to_string(d.join(KEY_FILE)).unwrap(), pkcs1);
        assert_openssl_verifies(d, &key.sign(DOCUMENT.as_bytes(), now()).unwrap(), CERT_FILE);
    }
}
