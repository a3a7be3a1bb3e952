//! botocore (the engine of boto3 and the AWS CLI) as a peer: its IMDS fetcher, token flow and
//! region provider against the real server, with the endpoint override the way users set it
//! (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, trailing `/` included).

mod common;

use std::path::Path;

/// Runs the peer script against `url`; `None` when botocore is missing outside CI.
pub fn botocore(url: &str, args: &[&str]) -> Option<serde_json::Value> {
    let available = common::has_program("python3", &["-c", "import botocore"]);
    if !common::require(available, "python3 with botocore (pip install botocore)") {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/botocore_imds.py");
    let out = common::aws_env(Some(url))
        .command("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "botocore peer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the peer prints JSON"))
}

async fn check(toml: &str) {
    let s = common::start(toml);
    let url = s.url();
    let Some(v) = tokio::task::spawn_blocking(move || botocore(&url, &[]))
        .await
        .unwrap()
    else {
        return;
    };
    assert_eq!(v["token"], true, "botocore got an IMDSv2 token");
    assert_eq!(v["instance_id"], "i-0123456789abcdef0");
    assert_eq!(
        v["listing"],
        "availability-zone\navailability-zone-id\nregion"
    );
    assert_eq!(
        v["zone"], "us-east-1a",
        "a leaf asked with a trailing slash"
    );
    assert_eq!(v["region"], "us-east-1");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn botocore_with_tokens_optional() {
    check("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn botocore_with_tokens_required() {
    check("[imds]\nhttp-tokens = \"required\"\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn botocore_instance_metadata_provider_gets_role_credentials() {
    let s = common::start("[iam]\nrole = \"app-role\"\n");
    let url = s.url();
    let Some(v) = tokio::task::spawn_blocking(move || botocore(&url, &["credentials"]))
        .await
        .unwrap()
    else {
        return;
    };
    assert_eq!(v["credentials"]["role_name"], "app-role");
    let key = v["credentials"]["access_key"].as_str().unwrap();
    assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
    assert_eq!(v["has_secret"], true);
    assert!(
        v["credentials"]["expiry_time"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    s.stop().await.unwrap();
}

/// The AWS CLI (v1 from PyPI, on botocore) resolves its credentials from the instance role:
/// `aws configure list` names the source `iam-role` and shows the key's last characters.
#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_takes_credentials_from_the_instance_role() {
    if !common::require(
        common::has_program("aws", &["--version"]),
        "the AWS CLI (pip install awscli)",
    ) {
        return;
    }
    let s = common::start("");
    let url = s.url();
    let addr = s.addr();
    let (listed, creds) = tokio::task::spawn_blocking(move || {
        let out = common::aws_env(Some(&url))
            .command("aws")
            .args(["configure", "list"])
            .output()
            .expect("aws runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let resp = common::raw(addr, b"GET /latest/meta-data/iam/security-credentials/fake-metadata-role HTTP/1.1\r\nHost: x\r\n\r\n");
        (String::from_utf8(out.stdout).unwrap(), resp)
    })
    .await
    .unwrap();
    let key_line = listed
        .lines()
        .find(|l| l.trim_start().starts_with("access_key"))
        .unwrap();
    assert!(key_line.contains("iam-role"), "{listed}");
    let body: serde_json::Value =
        serde_json::from_str(creds.split_once("\r\n\r\n").unwrap().1).unwrap();
    let key = body["AccessKeyId"].as_str().unwrap();
    assert!(
        key_line.contains(&key[16..]),
        "the CLI shows the served key's last 4 characters: {key_line} vs {key}"
    );
    s.stop().await.unwrap();
}
