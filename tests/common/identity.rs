//! The real `openssl` checking the identity document's signatures with the certificate that
//! `fake-metadata identity-cert` prints, the way users check EC2's with AWS's certificate.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::daemon::BIN;

/// `openssl` in a work directory that holds the daemon's certificate (`cert.pem`) and its
/// public key (`pub.pem`).
pub struct Openssl {
    dir: PathBuf,
    /// What `identity-cert` printed (PEM).
    pub cert: Vec<u8>,
}

impl Openssl {
    /// `fake-metadata identity-cert --config CONFIG` (it must succeed) as `cert.pem` in `dir`
    /// (made if missing), and its public key as `pub.pem`.
    pub fn with_cert_of(config: &str, dir: &Path) -> Openssl {
        let out = Command::new(BIN)
            .args(["identity-cert", "--config", config])
            .output()
            .expect("identity-cert runs");
        assert!(
            out.status.success(),
            "identity-cert --config {config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("cert.pem"), &out.stdout).unwrap();
        let openssl = Openssl {
            dir: dir.to_path_buf(),
            cert: out.stdout,
        };
        let (ok, said) = openssl.run(&[
            "x509", "-in", "cert.pem", "-pubkey", "-noout", "-out", "pub.pem",
        ]);
        assert!(ok, "{said}");
        openssl
    }

    /// `openssl ARGS` in the work directory: whether it succeeded, and its stdout + stderr.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Checks `signature` (base64, as IMDS serves it) as an RSA-SHA256 signature over
    /// `document` with the certificate's key (`openssl dgst -verify`): whether it verified,
    /// and what openssl said. The files are left in the work directory (`document`,
    /// `signature.b64`, `signature.bin`).
    pub fn verify(&self, document: &str, signature: &str) -> (bool, String) {
        std::fs::write(self.dir.join("document"), document).unwrap();
        std::fs::write(self.dir.join("signature.b64"), format!("{signature}\n")).unwrap();
        let (ok, said) = self.run(&[
            "base64",
            "-d",
            "-in",
            "signature.b64",
            "-out",
            "signature.bin",
        ]);
        assert!(ok, "{said}");
        self.run(&[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "signature.bin",
            "document",
        ])
    }
}
