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

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, PrivateKeyInfo};
use rsa::rand_core::{OsRng, RngCore};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::attr::{Attribute, AttributeTypeAndValue};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::der::asn1::{
    BitString, GeneralizedTime, ObjectIdentifier, OctetString, SetOfVec, UtcTime, Utf8StringRef,
};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::pem::{self, LineEnding};
use x509_cert::der::zeroize::Zeroizing;
use x509_cert::der::{self, Any, Decode, DecodePem, Encode, EncodePem, Tag};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

/// File name of the private key (PKCS#8 PEM, mode 0600) inside the state directory.
pub const KEY_FILE: &str = "identity-key.pem";
/// File name of the self-signed certificate (PEM, mode 0644) inside the state directory.
pub const CERT_FILE: &str = "identity-cert.pem";
/// File name of the signature cache (JSON, mode 0644: signatures are public) beside them.
pub const SIGNATURE_CACHE_FILE: &str = "identity-signatures.json";
/// Common name of the certificate we make, so nobody mistakes it for AWS's.
pub const CERT_COMMON_NAME: &str = "fake-metadata instance identity";

const KEY_BITS: usize = 2048;
/// EC2 wraps its base64 bodies at 76 characters (MIME style).
const BASE64_LINE: usize = 76;
/// Valid from 2000-01-01T00:00:00Z so that no guest clock, however wrong, finds it "not yet
/// valid" ...
const NOT_BEFORE: Duration = Duration::from_secs(946_684_800);
/// ... and until 9999-12-31T23:59:59Z, RFC 5280's "no well-defined expiration date".
const NOT_AFTER: Duration = Duration::from_secs(253_402_300_799);
/// Bumped whenever the bodies we make change shape, so an old cache is not served.
const CACHE_FORMAT: u32 = 1;
/// A real cache file is ~3 KiB; anything much bigger is not ours.
const CACHE_MAX_BYTES: u64 = 64 * 1024;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const PKCS7_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const PKCS7_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");

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

    /// The certificate that verifies our signatures, PEM with a trailing newline: what a
    /// user saves as `certificate` in AWS's verification steps.
    pub fn cert_pem(&self) -> &str {
        &self.0.cert_pem
    }

    /// Signs `document` (the exact bytes served as `document`) in the three EC2 forms.
    ///
    /// Deterministic except for the PKCS#7 signingTime, so sign once per document (when a
    /// snapshot is built), not per request. A key from [`Self::load_or_create`] first looks
    /// in its signature cache, which holds the last document's signatures: a hit costs a
    /// file read instead of two RSA operations (the first answer after a restart waits for
    /// this) and keeps the first signing's signingTime. The cache is best effort: an
    /// unreadable or foreign one is a miss, a failed write goes unnoticed.
    pub fn sign(&self, document: &[u8]) -> Result<Signatures, IdentityError> {
        if let Some(hit) = self.cached(document) {
            return Ok(hit);
        }
        let signatures = self.sign_now(document, SystemTime::now())?;
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

    /// The DER PKCS#7 SignedData that OpenSSL's `PKCS7_sign(BINARY | NOCERTS | NOSMIMECAP)`
    /// makes: version 1, SHA-256 with NULL parameters, the document embedded as `data`, no
    /// certificates or CRLs, one SignerInfo naming our certificate by issuer and serial, with
    /// the signed attributes EC2's carry, signed with `rsaEncryption` (PKCS#1 v1.5).
    fn pkcs7(&self, document: &[u8], now: SystemTime) -> Result<Vec<u8>, Cause> {
        let sha256 = AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: Some(Any::null()),
        };
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let attribute = |oid, value| -> der::Result<Attribute> {
            Ok(Attribute {
                oid,
                values: SetOfVec::try_from(vec![value])?,
            })
        };
        // SetOfVec keeps DER order, which is what the signature covers and verifiers rebuild.
        let attributes = SetOfVec::try_from(vec![
            attribute(CONTENT_TYPE, Any::encode_from(&PKCS7_DATA)?)?,
            attribute(SIGNING_TIME, Any::encode_from(&asn1_time(since_epoch)?)?)?,
            attribute(
                MESSAGE_DIGEST,
                Any::new(Tag::OctetString, Sha256::digest(document).as_slice())?,
            )?,
        ])?;
        // RFC 5652 5.4: the signature covers the attributes' DER with the SET OF tag.
        let signature = self
            .0
            .signer
            .try_sign_with_rng(&mut OsRng, &attributes.to_der()?)?;
        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(self.0.sid.clone()),
            digest_alg: sha256.clone(),
            signed_attrs: Some(attributes),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            signature: OctetString::new(signature.to_vec())?,
            unsigned_attrs: None,
        };
        let signed_data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![sha256])?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: PKCS7_DATA,
                econtent: Some(Any::new(Tag::OctetString, document)?),
            },
            certificates: None,
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer])?),
        };
        let content_info = ContentInfo {
            content_type: PKCS7_SIGNED_DATA,
            content: Any::encode_from(&signed_data)?,
        };
        Ok(content_info.to_der()?)
    }

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
    fn cached(&self, document: &[u8]) -> Option<Signatures> {
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
    fn store(&self, document: &[u8], signatures: &Signatures) {
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

/// Our X.509 v3 certificate, as OpenSSL made it for earlier versions: CN and O in UTF8String,
/// a random positive 127-bit serial, BasicConstraints (critical, not a CA), KeyUsage
/// (critical, digitalSignature), SubjectKeyIdentifier (SHA-1 of the key, RFC 5280's method
/// 1 and OpenSSL's), sha256WithRSAEncryption.
fn self_signed(key: &RsaPrivateKey) -> Result<Certificate, Cause> {
    let name = our_name()?;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // 127 bits, as OpenSSL's BN_rand(127, MAYBE_ZERO)
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key())?;
    let ski = SubjectKeyIdentifier(OctetString::new(
        Sha1::digest(spki.subject_public_key.raw_bytes()).as_slice(),
    )?);
    let sha256_with_rsa = AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        parameters: Some(Any::null()),
    };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial)?,
        signature: sha256_with_rsa.clone(),
        issuer: name.clone(),
        validity: Validity {
            not_before: asn1_time(NOT_BEFORE)?,
            not_after: asn1_time(NOT_AFTER)?,
        },
        subject: name,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(vec![
            extension(
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                true,
            )?,
            extension(&KeyUsage(KeyUsages::DigitalSignature.into()), true)?,
            extension(&ski, false)?,
        ]),
    };
    let signature =
        SigningKey::<Sha256>::new(key.clone()).try_sign_with_rng(&mut OsRng, &tbs.to_der()?)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: sha256_with_rsa,
        signature: BitString::from_bytes(&signature.to_bytes())?,
    })
}

/// `CN=fake-metadata instance identity, O=fake-metadata`, in that order.
fn our_name() -> der::Result<Name> {
    let rdn = |oid, value: &str| -> der::Result<RelativeDistinguishedName> {
        let value = Any::encode_from(&Utf8StringRef::new(value)?)?;
        let atv = AttributeTypeAndValue { oid, value };
        Ok(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?))
    };
    Ok(RdnSequence(vec![
        rdn(COMMON_NAME, CERT_COMMON_NAME)?,
        rdn(ORGANIZATION, "fake-metadata")?,
    ]))
}

fn extension<T: AssociatedOid + Encode>(value: &T, critical: bool) -> der::Result<Extension> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// UTCTime through 2049, GeneralizedTime after, as RFC 5280 and RFC 5652 ask (and OpenSSL
/// does); whole seconds.
fn asn1_time(since_epoch: Duration) -> der::Result<Time> {
    let whole = Duration::from_secs(since_epoch.as_secs());
    match UtcTime::from_unix_duration(whole) {
        Ok(utc) => Ok(Time::UtcTime(utc)),
        Err(_) => Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(
            whole,
        )?)),
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

/// Writes `path` so that readers see the old file or the whole new one, never a part, and
/// makes it durable.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    replace_file(path, contents, mode, true).map_err(|source| IdentityError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Write to a temporary file, then rename it over `path`; with `sync`, fsync both.
fn replace_file(path: &Path, contents: &[u8], mode: u32, sync: bool) -> io::Result<()> {
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
            let verify = |chain: &[&str]| {
                let base = ["smime", "-verify", "-in", name, "-inform", "PEM"];
                let args = [&base[..], &["-certfile", "certificate"], chain].concat();
                let out = openssl(d, &args);
                assert!(out.status.success(), "{name} {chain:?}: {out:?}");
                assert_eq!(out.stdout, DOCUMENT.as_bytes(), "{name} {chain:?}");
                out
            };
            // AWS's command: the embedded document comes out on stdout.
            let out = verify(&["-noverify"]);
            assert!(String::from_utf8_lossy(&out.stderr).contains("Verification successful"));
            // Better: trust our certificate instead of skipping the chain check.
            verify(&["-CAfile", "certificate"]);
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
        let mut der = BASE64.decode(sigs.rsa2048.replace('\n', "")).unwrap();
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
        let (dir, key, _sigs) = setup();
        let d = dir.path();
        let out = openssl(
            d,
            &[
                "x509",
                "-in",
                "certificate",
                "-noout",
                "-subject",
                "-issuer",
            ]
            .into_iter()
            .chain(["-startdate", "-enddate", "-serial", "-text"])
            .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let name = format!("CN = {CERT_COMMON_NAME}, O = fake-metadata");
        for expected in [
            format!("subject={name}\n"),
            format!("issuer={name}\n"),
            "notBefore=Jan  1 00:00:00 2000 GMT\n".into(),
            "notAfter=Dec 31 23:59:59 9999 GMT\n".into(),
            "Version: 3 (0x2)".into(),
            "Signature Algorithm: sha256WithRSAEncryption".into(),
            "Public-Key: (2048 bit)".into(),
            "X509v3 Basic Constraints: critical\n                CA:FALSE\n".into(),
            "X509v3 Key Usage: critical\n                Digital Signature\n".into(),
            "X509v3 Subject Key Identifier: \n".into(),
        ] {
            assert!(text.contains(&expected), "missing {expected:?}:\n{text}");
        }
        // A positive serial of at most 127 bits.
        let serial = text
            .lines()
            .find_map(|l| l.strip_prefix("serial="))
            .unwrap();
        let serial = u128::from_str_radix(serial, 16).unwrap();
        assert!(serial > 0 && serial < 1 << 127, "{serial:x}");
        assert!(key.cert_pem().ends_with("-----END CERTIFICATE-----\n"));

        // The self-signature holds (OpenSSL skips it for a trust anchor unless asked).
        let out = openssl(
            d,
            &[
                "verify",
                "-check_ss_sig",
                "-CAfile",
                "certificate",
                "certificate",
            ],
        );
        assert!(out.status.success(), "{out:?}");
    }

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

    /// OpenSSL's `asn1parse` dump of a base64 or DER PKCS#7, with the two values that differ
    /// between any two signings (signingTime, the signature) blanked.
    fn shape(dir: &Path, file: &str, inform: &str) -> String {
        let out = openssl(dir, &["asn1parse", "-in", file, "-inform", inform]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(
                |l| match l.find("UTCTIME").or_else(|| l.find("[HEX DUMP]")) {
                    Some(at) if l.contains("UTCTIME") || l.contains("l= 256") => &l[..at],
                    _ => l,
                },
            )
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn pkcs7_is_what_openssls_pkcs7_sign_makes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = IdentityKey::load_or_create(d).unwrap();
        let sigs = key.sign(DOCUMENT.as_bytes()).unwrap();
        write_armoured(d, "ours", &sigs.rsa2048);
        fs::write(d.join("document"), DOCUMENT).unwrap();
        // What the `openssl` crate's Pkcs7::sign(BINARY | NOCERTS | NOSMIMECAP) called.
        let out = openssl(
            d,
            &[
                "smime",
                "-sign",
                "-binary",
                "-nocerts",
                "-nosmimecap",
                "-nodetach",
            ]
            .into_iter()
            .chain(["-md", "sha256", "-signer", CERT_FILE, "-inkey", KEY_FILE])
            .chain(["-in", "document", "-outform", "DER", "-out", "openssl.der"])
            .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{out:?}");
        let ours = shape(d, "ours", "PEM");
        assert_eq!(ours, shape(d, "openssl.der", "DER"));
        // Only the two values were blanked (and the messageDigest, equal, was kept).
        assert_eq!(ours.matches("prim: \n").count(), 1, "{ours}");
        assert!(ours.ends_with("l= 256 prim: OCTET STRING      "), "{ours}");
        assert!(ours.contains(":messageDigest"), "{ours}");
    }

    /// Runs `openssl` and asserts it succeeded.
    fn run_openssl(dir: &Path, args: &[&str]) {
        let out = openssl(dir, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    /// `openssl smime -verify` of `sigs.rsa2048` against the certificate file `cert`.
    fn assert_openssl_verifies(dir: &Path, sigs: &Signatures, cert: &str) {
        fs::write(dir.join("document"), DOCUMENT).unwrap();
        write_armoured(dir, "rsa2048", &sigs.rsa2048);
        let out = openssl(
            dir,
            &["smime", "-verify", "-in", "rsa2048", "-inform", "PEM"]
                .into_iter()
                .chain(["-certfile", cert, "-CAfile", cert])
                .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, DOCUMENT.as_bytes());
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
        assert_openssl_verifies(d, &key.sign(DOCUMENT.as_bytes()).unwrap(), CERT_FILE);

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
        assert_openssl_verifies(d, &key.sign(DOCUMENT.as_bytes()).unwrap(), CERT_FILE);
    }

    #[test]
    fn signatures_are_cached_beside_a_persistent_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = IdentityKey::load_or_create(d).unwrap();
        assert_eq!(first.cached(DOCUMENT.as_bytes()), None);
        let sigs = first.sign(DOCUMENT.as_bytes()).unwrap();
        let mode = fs::metadata(d.join(SIGNATURE_CACHE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o733, 0o600, "0644 less the umask: {mode:o}");

        // After a restart the same document is answered from the file, with no RSA at all:
        // `sign` returns what `cached` finds, down to the first signing's signingTime.
        let again = IdentityKey::load_or_create(d).unwrap();
        assert_eq!(again.cached(DOCUMENT.as_bytes()), Some(sigs.clone()));
        assert_eq!(again.sign(DOCUMENT.as_bytes()).unwrap(), sigs);

        // Another document misses, and takes the (single) entry.
        let other = DOCUMENT.replace("t3.micro", "t3.large");
        assert_eq!(again.cached(other.as_bytes()), None);
        let other_sigs = again.sign(other.as_bytes()).unwrap();
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
        key.sign(DOCUMENT.as_bytes()).unwrap();
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
            let sigs = key.sign(DOCUMENT.as_bytes()).unwrap();
            assert_eq!(key.cached(DOCUMENT.as_bytes()), Some(sigs.clone()));
            fs::write(d.join("certificate"), key.cert_pem()).unwrap();
            assert_openssl_verifies(d, &sigs, "certificate");
        }
        // One that cannot be written is no error either: we sign every time.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(key.sign(DOCUMENT.as_bytes()).is_ok());
        assert_eq!(key.cached(DOCUMENT.as_bytes()), None);
    }

    #[test]
    fn another_certificates_cache_is_never_served() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let key_a = IdentityKey::load_or_create(a.path()).unwrap();
        let key_b = IdentityKey::load_or_create(b.path()).unwrap();
        key_a.sign(DOCUMENT.as_bytes()).unwrap();
        let cache = |dir: &tempfile::TempDir| dir.path().join(SIGNATURE_CACHE_FILE);
        fs::copy(cache(&a), cache(&b)).unwrap();
        assert_eq!(key_b.cached(DOCUMENT.as_bytes()), None);
        assert_openssl_verifies(
            b.path(),
            &key_b.sign(DOCUMENT.as_bytes()).unwrap(),
            CERT_FILE,
        );

        // The same key with a remade certificate (new serial): signatures naming the old
        // certificate are not served for the new one.
        key_a.sign(DOCUMENT.as_bytes()).unwrap();
        fs::remove_file(a.path().join(CERT_FILE)).unwrap();
        let remade = IdentityKey::load_or_create(a.path()).unwrap();
        assert_eq!(remade.cached(DOCUMENT.as_bytes()), None);
        assert_openssl_verifies(
            a.path(),
            &remade.sign(DOCUMENT.as_bytes()).unwrap(),
            CERT_FILE,
        );
    }

    #[test]
    fn ephemeral_keys_keep_no_cache() {
        let key = IdentityKey::ephemeral().unwrap();
        assert!(key.0.cache.is_none());
        key.sign(DOCUMENT.as_bytes()).unwrap();
        assert_eq!(key.cached(DOCUMENT.as_bytes()), None);
    }
}
