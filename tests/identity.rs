//! The identity document's signatures, end to end through the real binary: the daemon makes
//! its key in the state directory, serves `signature`, `pkcs7` and `rsa2048`, and
//! `fake-metadata identity-cert` prints the certificate with which the real `openssl`
//! verifies them, the way users verify EC2's against AWS's certificate.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fake-metadata");

#[test]
fn openssl_verifies_the_served_signatures_with_the_published_certificate() {
    if !common::require(common::has_program("openssl", &["version"]), "openssl") {
        return;
    }
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // As root the daemon drops to `nobody`, which must be able to make its key here.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let state = dir.join("state");
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nstate-directory = \"{}\"\n", state.display()),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    let daemon = common::Daemon::serve(Path::new(cfg)).start();
    let get = |path: &str| {
        let (status, body) = daemon.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        body
    };
    let document = get("/latest/dynamic/instance-identity/document");
    let signature = get("/latest/dynamic/instance-identity/signature");
    let pkcs7 = get("/latest/dynamic/instance-identity/pkcs7");
    let rsa2048 = get("/latest/dynamic/instance-identity/rsa2048");
    assert_eq!(
        get("/latest/dynamic/instance-identity/"),
        "document\npkcs7\nrsa2048\nsignature"
    );
    drop(daemon);

    let openssl = common::identity::Openssl::with_cert_of(cfg, &dir);
    assert!(String::from_utf8_lossy(&openssl.cert).starts_with("-----BEGIN CERTIFICATE-----"));

    let w = |name: &str, data: &[u8]| std::fs::write(dir.join(name), data).unwrap();
    let armour = |b64: &str| format!("-----BEGIN PKCS7-----\n{b64}\n-----END PKCS7-----\n");
    w("pkcs7.pem", armour(&pkcs7).as_bytes());
    w("rsa2048.pem", armour(&rsa2048).as_bytes());

    // signature: RSA-SHA256 over the document bytes.
    let (ok, out) = openssl.verify(&document, &signature);
    assert!(ok && out.contains("Verified OK"), "{out}");

    // pkcs7 and rsa2048: as AWS documents it, the signed content is the document.
    let smime = |p7: &str, trust: &[&str]| {
        let verify = ["smime", "-verify", "-in", p7, "-inform", "PEM"];
        openssl.run(&[&verify[..], &["-certfile", "cert.pem"], trust].concat())
    };
    for p7 in ["pkcs7.pem", "rsa2048.pem"] {
        let (ok, out) = smime(p7, &["-noverify"]);
        assert!(ok, "{p7}: {out}");
        assert!(out.contains(&document), "{p7} carries the document");
        let (ok, out) = smime(p7, &["-CAfile", "cert.pem"]);
        assert!(ok, "{p7} with the cert as CA: {out}");
    }

    // A tampered document fails (one byte more; not a value that may already be there: an
    // arm64 box's document says arm64 by default).
    let tampered = format!("{document} ");
    assert_ne!(tampered, document);
    let (ok, _) = openssl.verify(&tampered, &signature);
    assert!(!ok, "a tampered document must not verify");

    // The key is kept: a second daemon start signs with the same certificate.
    let again = Command::new(BIN)
        .args(["identity-cert", "--config", cfg])
        .output()
        .unwrap();
    assert_eq!(again.stdout, openssl.cert);
    let mode = |name: &str| {
        let meta = std::fs::metadata(state.join(name)).unwrap();
        meta.permissions().mode() & 0o777
    };
    assert_eq!(mode("identity-key.pem"), 0o600, "the key is private");

    // The signatures were cached beside the key, and a restart serves them without signing:
    // a fresh PKCS#7 would carry a later signingTime, so wait until one would.
    assert_eq!(
        mode("identity-signatures.json") & 0o133,
        0,
        "public, not writable"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let daemon = common::Daemon::serve(Path::new(cfg)).start();
    for (leaf, before) in [
        ("signature", &signature),
        ("rsa2048", &rsa2048),
        ("pkcs7", &pkcs7),
    ] {
        let (status, body) = daemon.get(&format!("/latest/dynamic/instance-identity/{leaf}"));
        assert_eq!(status, 200, "{leaf}: {body}");
        assert_eq!(&body, before, "{leaf} served from the cache");
    }
}
