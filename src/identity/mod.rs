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
//! The crypto is pure Rust (RustCrypto's `rsa`, `sha2`, `x509-cert` and `cms` types): linking
//! and initialising libcrypto cost ~4 MiB of resident memory and milliseconds at every start.
//! We assemble the certificate and the SignedData field by field, as OpenSSL's `X509_sign` and
//! `PKCS7_sign` (BINARY | NOCERTS | NOSMIMECAP) did, so files made by either read the same.
//! A private-key operation takes milliseconds, so beside a persistent key
//! [`IdentityKey::sign`] keeps the latest signatures (`identity-signatures.json`): a restart
//! that serves the same document answers without signing again.
//!
//! The module's parts, by concern: `key.rs` (the key store: loading or making the key and
//! certificate in the state directory), `cert.rs` (the self-signed certificate), `pkcs7.rs`
//! (the SignedData) and `cache.rs` (the on-disk signature cache). This file is the public
//! face: the key type, its errors and the signing entry point.

mod cache;
mod cert;
mod key;
mod pkcs7;
#[cfg(test)]
mod test_support;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cms::cert::IssuerAndSerialNumber;
use rsa::pkcs1v15::SigningKey;
use rsa::rand_core::OsRng;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use sha2::Sha256;
use x509_cert::der::asn1::ObjectIdentifier;

/// File name of the private key (PKCS#8 PEM, mode 0600) inside the state directory.
pub const KEY_FILE: &str = "identity-key.pem";
/// File name of the self-signed certificate (PEM, mode 0644) inside the state directory.
pub const CERT_FILE: &str = "identity-cert.pem";
/// File name of the signature cache (JSON, mode 0644: signatures are public) beside them.
pub const SIGNATURE_CACHE_FILE: &str = "identity-signatures.json";
/// Common name of the certificate we make, so nobody mistakes it for AWS's.
pub const CERT_COMMON_NAME: &str = "fake-metadata instance identity";

/// EC2 wraps its base64 bodies at 76 characters (MIME style).
const BASE64_LINE: usize = 76;

/// The key algorithm of a PKCS#8 key and of a SignerInfo's signature.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The cause behind an [`IdentityError`]: a parser's or the RSA code's own error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, naming the file and what to do about it. The cause (an `io::Error` or
/// a parser's or the RSA code's error) is the [`std::error::Error::source`], not repeated in
/// the message.
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
    BadKey { path: PathBuf, source: Cause },
    #[error("{path} is not an RSA key; the identity signatures need one")]
    NotRsa { path: PathBuf },
    #[error("{path} is not a PEM certificate; delete it to have a new one made for the key")]
    BadCert { path: PathBuf, source: Cause },
    #[error(
        "certificate {cert} does not belong to key {key}; delete the certificate to have a new \
         one made for the key"
    )]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error("cannot {what}")]
    Crypto { what: &'static str, source: Cause },
}

fn crypto<E: Into<Cause>>(what: &'static str) -> impl FnOnce(E) -> IdentityError {
    move |source| IdentityError::Crypto {
        what,
        source: source.into(),
    }
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
pub struct IdentityKey(Arc<Inner>);

struct Inner {
    signer: SigningKey<Sha256>,
    cert_der: Vec<u8>,
    cert_pem: String,
    /// How a SignerInfo names the certificate, taken from the certificate as it is.
    sid: IssuerAndSerialNumber,
    /// The signature cache, for a key kept in a directory.
    cache: Option<PathBuf>,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("IdentityKey").finish_non_exhaustive()
    }
}

impl IdentityKey {
    /// The certificate that verifies our signatures, PEM with a trailing newline: what a
    /// user saves as `certificate` in AWS's verification steps.
    pub fn cert_pem(&self) -> &str {
        &self.0.cert_pem
    }

    /// Signs `document` (the exact bytes served as `document`) in the three EC2 forms.
    ///
    /// `now` is the PKCS#7 signingTime: the caller's clock, not the system's (time is a
    /// parameter). Deterministic except for it, so sign once per document (when a snapshot is
    /// built), not per request. A key from [`Self::load_or_create`] first looks
    /// in its signature cache, which holds the last document's signatures: a hit costs a
    /// file read instead of two RSA operations (the first answer after a restart waits for
    /// this) and keeps the first signing's signingTime. The cache is best effort: an
    /// unreadable or foreign one is a miss, a failed write goes unnoticed.
    pub fn sign(&self, document: &[u8], now: SystemTime) -> Result<Signatures, IdentityError> {
        if let Some(hit) = self.cached(document) {
            return Ok(hit);
        }
        let signatures = self.sign_now(document, now)?;
        self.store(document, &signatures);
        Ok(signatures)
    }

    fn sign_now(&self, document: &[u8], now: SystemTime) -> Result<Signatures, IdentityError> {
        let raw = self
            .0
            .signer
            .try_sign_with_rng(&mut OsRng, document)
            .map_err(crypto("make the RSA-SHA256 signature"))?;
        let signed = self
            .pkcs7(document, now)
            .map_err(crypto("make the PKCS#7 signature"))?;
        let signed = mime_base64(&signed);
        Ok(Signatures {
            signature: mime_base64(&raw.to_bytes()),
            pkcs7: signed.clone(),
            rsa2048: signed,
        })
    }
}

/// Base64 in lines of 76 characters joined by `\n`, without a trailing newline, as EC2 serves.
fn mime_base64(bytes: &[u8]) -> String {
    let flat = BASE64.encode(bytes);
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

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use std::fs;
    use std::process::Command;

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
}
