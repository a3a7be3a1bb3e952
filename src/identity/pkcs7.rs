//! The PKCS#7 SignedData that EC2 serves as `pkcs7` and `rsa2048`: the document embedded,
//! signed attributes as EC2's carry them, no certificates.

use std::time::{SystemTime, UNIX_EPOCH};

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use rsa::rand_core::OsRng;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use x509_cert::der::{self, Any, Encode, Tag};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::cert::asn1_time;
use super::{Cause, IdentityKey, RSA_ENCRYPTION};

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const PKCS7_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const PKCS7_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");

impl IdentityKey {
    /// The DER PKCS#7 SignedData that OpenSSL's `PKCS7_sign(BINARY | NOCERTS | NOSMIMECAP)`
    /// makes: version 1, SHA-256 with NULL parameters, the document embedded as `data`, no
    /// certificates or CRLs, one SignerInfo naming our certificate by issuer and serial, with
    /// the signed attributes EC2's carry, signed with `rsaEncryption` (PKCS#1 v1.5).
    pub(super) fn pkcs7(&self, document: &[u8], now: SystemTime) -> Result<Vec<u8>, Cause> {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{CERT_FILE, KEY_FILE, mime_base64};
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use std::fs;
    use std::path::Path;

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
        let sigs = key.sign(DOCUMENT.as_bytes(), now()).unwrap();
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
}
