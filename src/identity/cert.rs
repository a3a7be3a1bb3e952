//! The self-signed X.509 certificate that verifies our signatures: what a user is handed in
//! place of AWS's.

use std::time::Duration;

use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::rand_core::{OsRng, RngCore};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::der::asn1::{
    BitString, GeneralizedTime, ObjectIdentifier, OctetString, SetOfVec, UtcTime, Utf8StringRef,
};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{self, Any, Encode};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use super::{CERT_COMMON_NAME, Cause};

/// Valid from 2000-01-01T00:00:00Z so that no guest clock, however wrong, finds it "not yet
/// valid" ...
const NOT_BEFORE: Duration = Duration::from_secs(946_684_800);
/// ... and until 9999-12-31T23:59:59Z, RFC 5280's "no well-defined expiration date".
const NOT_AFTER: Duration = Duration::from_secs(253_402_300_799);

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");

/// Our X.509 v3 certificate, as OpenSSL made it for earlier versions: CN and O in UTF8String,
/// a random positive 127-bit serial, BasicConstraints (critical, not a CA), KeyUsage
/// (critical, digitalSignature), SubjectKeyIdentifier (SHA-1 of the key, RFC 5280's method
/// 1 and OpenSSL's), sha256WithRSAEncryption.
pub(super) fn self_signed(key: &RsaPrivateKey) -> Result<Certificate, Cause> {
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
pub(super) fn asn1_time(since_epoch: Duration) -> der::Result<Time> {
    let whole = Duration::from_secs(since_epoch.as_secs());
    match UtcTime::from_unix_duration(whole) {
        Ok(utc) => Ok(Time::UtcTime(utc)),
        Err(_) => Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(
            whole,
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

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
}
