//! The key that signs the instance identity document, and the three signed forms EC2
//! serves beside it: `dynamic/instance-identity/{signature,pkcs7,rsa2048}`.
//!
//! We cannot sign as AWS, so we sign with our own RSA-2048 key and publish a self-signed
//! certificate ([`IdentityKey::cert_pem`]); the commands AWS documents then succeed when
//! given *our* certificate instead of AWS's.
//!
//! Formats, matched to a capture from a real instance (us-west-2, 2021):
//! - `signature`: base64 of an RSA PKCS#1 v1.5 SHA-256 signature over the document bytes
//!   (AWS signs with a 1024-bit key, 172 characters; ours is 2048-bit, 344 characters).
//! - `rsa2048`: base64 of a PKCS#7 SignedData, SHA-256 with RSA, that **embeds** the
//!   document (not detached), signed attributes contentType, signingTime and messageDigest
//!   only, and **no certificates**: AWS's docs verify it with
//!   `openssl smime -verify -in rsa2048 -inform PEM -certfile certificate -noverify`,
//!   which prints the document. With `-content document` OpenSSL 3 checks that file
//!   instead of the embedded copy, so that form works too.
//! - `pkcs7`: the same shape, which AWS signs with DSA/SHA-1; an RSA key cannot, so we
//!   serve the `rsa2048` value there too; `openssl smime` takes either algorithm.
//! - All three: 76-character base64 lines joined by `\n`, no PEM armour, no trailing newline
//!   (AWS's docs add the armour and the last newline themselves).
//!
//! AWS encodes SignedData as BER with indefinite lengths; we emit DER, which is valid BER, so
//! every reader that handles AWS's bytes handles ours.
//!
//! The crypto is OpenSSL's (the `openssl` crate): key generation takes a fraction of a second
//! even in a debug build, `PKCS7_sign` builds the SignedData, and Debian ships `libssl3`.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::base64;
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};

/// File name of the private key (PKCS#8 PEM, mode 0600) inside the state directory.
pub const KEY_FILE: &str = "identity-key.pem";
/// File name of the self-signed certificate (PEM, mode 0644) inside the state directory.
pub const CERT_FILE: &str = "identity-cert.pem";
/// Common name of the certificate we make, so nobody mistakes it for AWS's.
pub const CERT_COMMON_NAME: &str = "fake-metadata instance identity";

const KEY_BITS: u32 = 2048;
/// EC2 wraps its base64 bodies at 76 characters (MIME style).
const BASE64_LINE: usize = 76;
/// Valid from 2000 so that no guest clock, however wrong, finds it "not yet valid" ...
const NOT_BEFORE: &str = "20000101000000Z";
/// ... and until RFC 5280's "no well-defined expiration date".
const NOT_AFTER: &str = "99991231235959Z";

/// What went wrong, naming the file and what to do about it. The cause (an `io::Error` or
/// OpenSSL's error stack) is the [`std::error::Error::source`], not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot create identity key directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a PEM private key; move it away to have a new key made (the certificate \
         changes with it)"
    )]
    BadKey { path: PathBuf, source: ErrorStack },
    #[error("{path} is not an RSA key; the identity signatures need one")]
    NotRsa { path: PathBuf },
    #[error("{path} is not a PEM certificate; delete it to have a new one made for the key")]
    BadCert { path: PathBuf, source: ErrorStack },
    #[error(
        "certificate {cert} does not belong to key {key}; delete the certificate to have a new \
         one made for the key"
    )]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error("OpenSSL failed to {what}")]
    Crypto {
        what: &'static str,
        source: ErrorStack,
    },
}

fn crypto(what: &'static str) -> impl FnOnce(ErrorStack) -> IdentityError {
    move |source| IdentityError::Crypto { what, source }
}

/// The ready-to-serve bodies of the three signature leaves, each exactly as EC2 formats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// `dynamic/instance-identity/signature`: base64 RSA-SHA256 over the document.
    pub signature: String,
    /// `dynamic/instance-identity/pkcs7`: base64 PKCS#7 SignedData embedding the document.
    pub pkcs7: String,
    /// `dynamic/instance-identity/rsa2048`: base64 PKCS#7 SignedData embedding the document.
    pub rsa2048: String,
}

/// The signing key and its self-signed certificate. Cheap to clone (reference counted).
#[derive(Clone)]
pub struct IdentityKey {
    key: PKey<Private>,
    cert: X509,
    cert_pem: String,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("IdentityKey").finish_non_exhaustive()
    }
}

impl IdentityKey {
    /// Loads the key and certificate from `dir`, making whichever is missing, so the
    /// certificate users were given stays valid across restarts.
    ///
    /// Creates `dir` if needed. A new key is written with mode 0600, the certificate with
    /// 0644 (it is public); both atomically (temporary file, then rename). A key or
    /// certificate that exists but cannot be used is an error, never silently replaced:
    /// someone may have handed that certificate out.
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
            Ok(pem) => (load_key(&key_path, &pem)?, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = generate_key()?;
                let pem = key
                    .private_key_to_pem_pkcs8()
                    .map_err(crypto("encode the private key"))?;
                write_atomic(&key_path, &pem, 0o600)?;
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
                let cert = X509::from_pem(&pem).map_err(|source| IdentityError::BadCert {
                    path: cert_path.clone(),
                    source,
                })?;
                let public = cert.public_key().map_err(|source| IdentityError::BadCert {
                    path: cert_path.clone(),
                    source,
                })?;
                if !public.public_eq(&key) {
                    return Err(IdentityError::Mismatch {
                        key: key_path,
                        cert: cert_path,
                    });
                }
                cert
            }
            None => {
                let cert = self_signed(&key).map_err(crypto("make the certificate"))?;
                let pem = cert.to_pem().map_err(crypto("encode the certificate"))?;
                write_atomic(&cert_path, &pem, 0o644)?;
                cert
            }
        };
        Self::from_parts(key, cert)
    }

    /// A new key kept in memory only, for when no state directory is usable: the
    /// certificate then changes on every start.
    pub fn ephemeral() -> Result<Self, IdentityError> {
        let key = generate_key()?;
        let cert = self_signed(&key).map_err(crypto("make the certificate"))?;
        Self::from_parts(key, cert)
    }

    fn from_parts(key: PKey<Private>, cert: X509) -> Result<Self, IdentityError> {
        let pem = cert.to_pem().map_err(crypto("encode the certificate"))?;
        let cert_pem = String::from_utf8(pem).expect("PEM is ASCII");
        Ok(Self {
            key,
            cert,
            cert_pem,
        })
    }

    /// The certificate that verifies our signatures, PEM with a trailing newline: what a
    /// user saves as `certificate` in AWS's verification steps.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs `document` (the exact bytes served as `document`) in the three EC2 forms.
    ///
    /// Deterministic except for the PKCS#7 signingTime, so sign once per document (when a
    /// snapshot is built), not per request.
    pub fn sign(&self, document: &[u8]) -> Result<Signatures, IdentityError> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)
            .map_err(crypto("start the RSA-SHA256 signature"))?;
        let raw = signer
            .sign_oneshot_to_vec(document)
            .map_err(crypto("make the RSA-SHA256 signature"))?;

        // BINARY: keep the document's bytes (no LF -> CRLF). NOCERTS, NOSMIMECAP: carry what
        // EC2's carries and no more. Not DETACHED: EC2 embeds the document.
        let flags = Pkcs7Flags::BINARY | Pkcs7Flags::NOCERTS | Pkcs7Flags::NOSMIMECAP;
        let no_extra_certs = Stack::new().map_err(crypto("make a certificate stack"))?;
        let signed = Pkcs7::sign(&self.cert, &self.key, &no_extra_certs, document, flags)
            .and_then(|p7| p7.to_der())
            .map_err(crypto("make the PKCS#7 signature"))?;
        let signed = mime_base64(&signed);

        Ok(Signatures {
            signature: mime_base64(&raw),
            pkcs7: signed.clone(),
            rsa2048: signed,
        })
    }
}

fn generate_key() -> Result<PKey<Private>, IdentityError> {
    Rsa::generate(KEY_BITS)
        .and_then(PKey::from_rsa)
        .map_err(crypto("generate an RSA-2048 key"))
}

fn load_key(path: &Path, pem: &[u8]) -> Result<PKey<Private>, IdentityError> {
    let key = PKey::private_key_from_pem(pem).map_err(|source| IdentityError::BadKey {
        path: path.to_owned(),
        source,
    })?;
    if key.id() != Id::RSA {
        return Err(IdentityError::NotRsa {
            path: path.to_owned(),
        });
    }
    Ok(key)
}

fn self_signed(key: &PKey<Private>) -> Result<X509, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, CERT_COMMON_NAME)?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "fake-metadata")?;
    let name = name.build();

    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;

    let mut cert = X509::builder()?;
    cert.set_version(2)?; // X.509 v3, for the extensions
    let serial = serial.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(key)?;
    let (not_before, not_after) = (
        Asn1Time::from_str_x509(NOT_BEFORE)?,
        Asn1Time::from_str_x509(NOT_AFTER)?,
    );
    cert.set_not_before(&not_before)?;
    cert.set_not_after(&not_after)?;
    cert.append_extension(BasicConstraints::new().critical().build()?)?;
    cert.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&cert.x509v3_context(None, None))?;
    cert.append_extension(ski)?;
    cert.sign(key, MessageDigest::sha256())?;
    Ok(cert.build())
}

/// Base64 in lines of 76 characters joined by `\n`, without a trailing newline, as EC2 serves.
fn mime_base64(bytes: &[u8]) -> String {
    let flat = base64::encode_block(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / BASE64_LINE);
    let mut start = 0;
    while start < flat.len() {
        let end = (start + BASE64_LINE).min(flat.len());
        if start > 0 {
            out.push('\n');
        }
        out.push_str(&flat[start..end]); // base64 is ASCII: any index is a char boundary
        start = end;
    }
    out
}

/// Writes `path` so that readers see the old file or the whole new one, never a part.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        // A leftover from a crashed run with our pid would make create_new fail.
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| IdentityError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    //! The signatures are checked by the real `openssl` binary, with the commands AWS
    //! documents for its own instance identity document.

    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Output};

    const DOCUMENT: &str = r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "us-east-1a",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0123456789abcdef0",
  "instanceId" : "i-0123456789abcdef0",
  "instanceType" : "t3.micro",
  "kernelId" : null,
  "pendingTime" : "2024-01-01T00:00:00Z",
  "privateIp" : "10.0.0.10",
  "ramdiskId" : null,
  "region" : "us-east-1",
  "version" : "2017-09-30"
}"#;

    fn openssl(dir: &Path, args: &[&str]) -> Output {
        Command::new("/usr/bin/openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run /usr/bin/openssl (Debian package `openssl`)")
    }

    /// AWS's steps: armour the body with `echo` lines, then `openssl smime -verify`.
    fn write_armoured(dir: &Path, name: &str, body: &str) {
        let pem = format!("-----BEGIN PKCS7-----\n{body}\n-----END PKCS7-----\n");
        fs::write(dir.join(name), pem).unwrap();
    }

    fn setup() -> (tempfile::TempDir, IdentityKey, Signatures) {
        let dir = tempfile::tempdir().unwrap();
        let key = IdentityKey::ephemeral().unwrap();
        let sigs = key.sign(DOCUMENT.as_bytes()).unwrap();
        fs::write(dir.path().join("document"), DOCUMENT).unwrap();
        fs::write(dir.path().join("certificate"), key.cert_pem()).unwrap();
        (dir, key, sigs)
    }

    fn assert_ec2_base64(body: &str) {
        assert!(!body.is_empty());
        assert!(!body.ends_with('\n'), "no trailing newline");
        assert!(!body.contains("-----"), "no PEM armour");
        let lines: Vec<&str> = body.split('\n').collect();
        let (last, full) = lines.split_last().unwrap();
        assert!(full.iter().all(|l| l.len() == 76), "{lines:?}");
        assert!(!last.is_empty() && last.len() <= 76);
        assert!(
            body.bytes()
                .all(|b| b == b'\n' || b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        );
    }

    #[test]
    fn bodies_are_formatted_as_ec2_serves_them() {
        let (_dir, _key, sigs) = setup();
        for body in [&sigs.signature, &sigs.pkcs7, &sigs.rsa2048] {
            assert_ec2_base64(body);
        }
        // RSA-2048: 256 bytes -> 344 characters -> 76 * 4 + 40.
        assert_eq!(sigs.signature.len(), 344 + 4);
    }

    #[test]
    fn mime_base64_wraps_at_76() {
        assert_eq!(mime_base64(b""), "");
        assert_eq!(mime_base64(&[0; 57]).len(), 76); // exactly one full line, no newline
        let two = mime_base64(&[0; 58]);
        assert_eq!(two.split('\n').map(str::len).collect::<Vec<_>>(), [76, 4]);
    }

    #[test]
    fn openssl_verifies_signature_and_rejects_a_tampered_document() {
        let (dir, _key, sigs) = setup();
        let d = dir.path();
        fs::write(d.join("signature.b64"), &sigs.signature).unwrap();
        // As AWS documents: `base64 -d`, then the public key out of the certificate.
        let decoded = Command::new("base64")
            .args(["-d", "signature.b64"])
            .current_dir(d)
            .output()
            .unwrap();
        assert!(decoded.status.success());
        fs::write(d.join("signature"), decoded.stdout).unwrap();
        let out = openssl(d, &["x509", "-pubkey", "-noout", "-in", "certificate"]);
        assert!(out.status.success());
        fs::write(d.join("key"), out.stdout).unwrap();

        let verify = [
            "dgst",
            "-sha256",
            "-verify",
            "key",
            "-signature",
            "signature",
        ];
        let out = openssl(d, &[&verify[..], &["document"]].concat());
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");

        fs::write(d.join("tampered"), DOCUMENT.replace("t3.micro", "t3.large")).unwrap();
        let out = openssl(d, &[&verify[..], &["tampered"]].concat());
        assert!(!out.status.success(), "{out:?}");
    }

    #[test]
    fn openssl_verifies_pkcs7_and_rsa2048_as_aws_documents() {
        let (dir, _key, sigs) = setup();
        let d = dir.path();
        for (name, body) in [("pkcs7", &sigs.pkcs7), ("rsa2048", &sigs.rsa2048)] {
            write_armoured(d, name, body);
            // AWS's command: the embedded document comes out on stdout.
            let out = openssl(
                d,
                &[
                    "smime",
                    "-verify",
                    "-in",
                    name,
                    "-inform",
                    "PEM",
                    "-certfile",
                    "certificate",
                    "-noverify",
                ],
            );
            assert!(out.status.success(), "{name}: {out:?}");
            assert_eq!(out.stdout, DOCUMENT.as_bytes(), "{name}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("Verification successful"));

            // Better: trust our certificate instead of skipping the chain check.
            let out = openssl(
                d,
                &[
                    "smime",
                    "-verify",
                    "-in",
                    name,
                    "-inform",
                    "PEM",
                    "-certfile",
                    "certificate",
                    "-CAfile",
                    "certificate",
                ],
            );
            assert!(out.status.success(), "{name}: {out:?}");
            assert_eq!(out.stdout, DOCUMENT.as_bytes(), "{name}");
        }
    }

    #[test]
    fn pkcs7_matches_ec2s_structure() {
        let (dir, _key, sigs) = setup();
        let d = dir.path();
        write_armoured(d, "rsa2048", &sigs.rsa2048);
        let out = openssl(d, &["asn1parse", "-in", "rsa2048", "-inform", "PEM"]);
        assert!(out.status.success(), "{out:?}");
        let dump = String::from_utf8_lossy(&out.stdout);
        for expected in [
            ":pkcs7-signedData",
            ":sha256",
            ":pkcs7-data",
            ":contentType",
            ":signingTime",
            ":messageDigest",
            ":rsaEncryption",
            r#""instanceId" : "i-0123456789abcdef0""#, // the document is embedded
        ] {
            assert!(dump.contains(expected), "missing {expected}:\n{dump}");
        }
        assert!(!dump.contains("SMIME Capabilities"), "{dump}");
        // No certificates inside, like EC2's: verifying needs -certfile.
        let out = openssl(d, &["pkcs7", "-in", "rsa2048", "-print_certs"]);
        assert!(out.status.success(), "{out:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn pkcs7_verifies_against_a_separate_document_too() {
        let (dir, _key, sigs) = setup();
        let d = dir.path();
        write_armoured(d, "pkcs7", &sigs.pkcs7);
        fs::write(d.join("tampered"), DOCUMENT.replace("t3.micro", "t3.large")).unwrap();
        for (content, ok) in [("document", true), ("tampered", false)] {
            let out = openssl(
                d,
                &[
                    "smime",
                    "-verify",
                    "-in",
                    "pkcs7",
                    "-inform",
                    "PEM",
                    "-content",
                    content,
                    "-certfile",
                    "certificate",
                    "-noverify",
                ],
            );
            assert_eq!(out.status.success(), ok, "{content}: {out:?}");
        }
    }

    #[test]
    fn tampered_pkcs7_fails_verification() {
        let (dir, _key, sigs) = setup();
        let d = dir.path();
        let mut der = base64::decode_block(&sigs.rsa2048.replace('\n', "")).unwrap();
        let at = der.windows(8).position(|w| w == b"t3.micro").unwrap();
        der[at + 3] = b'x'; // "t3.xicro": same length, so the structure still parses
        write_armoured(d, "tampered", &mime_base64(&der));
        let out = openssl(
            d,
            &[
                "smime",
                "-verify",
                "-in",
                "tampered",
                "-inform",
                "PEM",
                "-certfile",
                "certificate",
                "-noverify",
            ],
        );
        assert!(!out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("digest failure"), "{stderr}");
    }

    #[test]
    fn certificate_names_us_and_never_expires() {
        let key = IdentityKey::ephemeral().unwrap();
        let cert = X509::from_pem(key.cert_pem().as_bytes()).unwrap();
        let cn = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next();
        let cn = cn.unwrap().data().to_string().unwrap();
        assert_eq!(cn, CERT_COMMON_NAME);
        assert_eq!(cert.not_after().to_string(), "Dec 31 23:59:59 9999 GMT");
        assert!(key.cert_pem().ends_with("-----END CERTIFICATE-----\n"));
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
        let sigs = second.sign(DOCUMENT.as_bytes()).unwrap();
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
        let public = |k: &IdentityKey| k.cert.public_key().unwrap().public_key_to_pem().unwrap();
        assert_eq!(public(&first), public(&second));
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

        let ed25519 = PKey::generate_ed25519().unwrap();
        fs::write(&key_path, ed25519.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let err = IdentityKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::NotRsa { .. }), "{err:?}");
        eprintln!("{}", chain(&err));

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
}
