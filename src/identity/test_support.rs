//! What the identity tests share: a document like EC2's, and the real `openssl` binary run
//! with the commands AWS documents for its own instance identity document.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{IdentityKey, Signatures};

/// The signing time the tests pass (2026-01-02T03:04:05Z, `ManualClock::fixed`'s).
pub(super) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_323_045)
}

pub(super) const DOCUMENT: &str = r#"{
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

pub(super) fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("/usr/bin/openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run /usr/bin/openssl (Debian package `openssl`)")
}

/// AWS's steps: armour the body with `echo` lines, then `openssl smime -verify`.
pub(super) fn write_armoured(dir: &Path, name: &str, body: &str) {
    let pem = format!("-----BEGIN PKCS7-----\n{body}\n-----END PKCS7-----\n");
    fs::write(dir.join(name), pem).unwrap();
}

pub(super) fn setup() -> (tempfile::TempDir, IdentityKey, Signatures) {
    let dir = tempfile::tempdir().unwrap();
    let key = IdentityKey::ephemeral().unwrap();
    let sigs = key.sign(DOCUMENT.as_bytes(), now()).unwrap();
    fs::write(dir.path().join("document"), DOCUMENT).unwrap();
    fs::write(dir.path().join("certificate"), key.cert_pem()).unwrap();
    (dir, key, sigs)
}

/// Runs `openssl` and asserts it succeeded.
pub(super) fn run_openssl(dir: &Path, args: &[&str]) {
    let out = openssl(dir, args);
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// `openssl smime -verify` of `sigs.rsa2048` against the certificate file `cert`.
pub(super) fn assert_openssl_verifies(dir: &Path, sigs: &Signatures, cert: &str) {
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
