//! A peer of the VM tier (tests/vagrant/workloads.sh): the AWS SDK for Rust's default
//! credential chain (`aws-config`'s `DefaultCredentialsChain`, unmodified) resolving
//! credentials with nothing but the environment it was started with, as a program in an ECS
//! task or an EKS pod does (`fake-metadata ctl task env` / `ctl pod env`). Prints one JSON
//! object on stdout and exits 1 when the chain found no credentials.
//!
//! Never the key itself: its first four characters (`ASIA`) and a SHA-256 fingerprint, which
//! the test compares across peers and with what the daemon serves.
//!
//! The region comes from `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`: only the STS
//! providers of the chain use it, and the default region chain would ask IMDS, which a
//! container behind hop limit 1 cannot reach with a token (seconds of timeouts).
//!
//! Built by the cargo tier (`cargo test --all-targets` builds examples) or by
//! `cargo build --example aws_credential_chain`; the host is Debian bookworm like the box.

use std::time::SystemTime;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::ProvideCredentials;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else("us-east-1");
    let region = region.region().await;
    let chain = DefaultCredentialsChain::builder()
        .region(region.clone())
        .build()
        .await;
    let out = match chain.provide_credentials().await {
        Ok(creds) => {
            let key = creds.access_key_id();
            // The provider's name is only in Debug, which starts with it (before the key).
            let debug = format!("{creds:?}");
            let provider = debug
                .split('"')
                .nth(1)
                .filter(|_| debug.starts_with("Credentials { provider_name: \""))
                .unwrap_or("?")
                .to_owned();
            let features: Vec<String> = creds
                .get_property::<Vec<AwsCredentialFeature>>()
                .map(|f| f.iter().map(|f| format!("{f:?}")).collect())
                .unwrap_or_default();
            json!({
                "peer": "rust-aws-config",
                "provider": provider,
                "features": features,
                "key_prefix": key.get(..4).unwrap_or(""),
                "key_sha256": fingerprint(key),
                "secret": !creds.secret_access_key().is_empty(),
                "token": creds.session_token().is_some_and(|t| !t.is_empty()),
                "expiry": creds.expiry().map(rfc3339),
                "account_id": creds.account_id().map(|a| a.as_str().to_owned()),
            })
        }
        Err(e) => json!({
            "peer": "rust-aws-config",
            "error": format!("{}", aws_smithy_error(&e)),
        }),
    };
    println!("{out}");
    if out.get("error").is_some() {
        std::process::exit(1);
    }
}

/// The first 16 hex digits of the key id's SHA-256: enough to compare, nothing to use.
fn fingerprint(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

/// The error and its sources on one line (the chain's own error says little by itself).
fn aws_smithy_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
