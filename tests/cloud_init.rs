//! cloud-init's Ec2 datasource as a peer, in the cargo tier: its version probe and its crawler
//! (Debian's cloud-init package, unpacked by `tests/all.sh` into `target/cloud-init`, or an
//! installed one) against the real server on loopback, in its 2009-04-04 mode and its
//! extended (2021-03-23) mode, with IMDSv1 allowed and with IMDSv2 required.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cloud-init's Python package is: unpacked by the test command, else installed.
fn cloud_init_path() -> Option<PathBuf> {
    let unpacked = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/cloud-init/usr/lib/python3/dist-packages");
    let works = |p: &Path| {
        Command::new("python3")
            .args(["-c", "import cloudinit.sources.helpers.ec2"])
            .env("PYTHONPATH", p)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    [unpacked, PathBuf::new()].into_iter().find(|p| works(p))
}

fn crawl(url: &str, mode: &str) -> Option<serde_json::Value> {
    let path = cloud_init_path();
    if !common::require(
        path.is_some(),
        "cloud-init's Python package (tests/all.sh unpacks Debian's into target/cloud-init)",
    ) {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/cloud_init_ec2.py");
    let out = common::aws_env(None)
        .set("PYTHONPATH", path.unwrap())
        .command("python3")
        .arg(script)
        .args([url, mode])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "cloud-init peer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the peer prints JSON"))
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

async fn check(toml: &str, mode: &'static str) {
    let s = common::start(toml);
    let url = s.url();
    let Some(v) = tokio::task::spawn_blocking(move || crawl(&url, mode))
        .await
        .unwrap()
    else {
        return;
    };
    eprintln!("cloud-init {}", v["cloud_init"]);
    assert_eq!(v["chosen"], "2021-03-23", "the extended version probe");
    let old = &v["trees"]["2009-04-04"]["meta-data"];
    let new = &v["trees"]["2021-03-23"]["meta-data"];
    assert_eq!(old["instance-id"], "i-0123456789abcdef0");
    assert_eq!(new["instance-id"], "i-0123456789abcdef0");
    assert_eq!(v["trees"]["2009-04-04"]["user-data"], "#cloud-config\n");
    assert_eq!(v["trees"]["2021-03-23"]["user-data"], "#cloud-config\n");
    // The 2009-04-04 tree as crawled on a real t2.micro (cloud-init issue 2750, 2017).
    for gone in [
        "iam", "mac", "metrics", "network", "services", "events", "system",
    ] {
        assert!(
            old.get(gone).is_none(),
            "{gone} in 2009-04-04: {:?}",
            keys(old)
        );
    }
    assert_eq!(old["profile"], "default-hvm");
    assert_eq!(keys(&old["placement"]), ["availability-zone"]);
    assert_eq!(old["block-device-mapping"]["root"], "/dev/xvda");
    // The extended tree: what cloud-init reads for networking and the role.
    let mac = new["mac"].as_str().unwrap();
    assert_eq!(
        new["network"]["interfaces"]["macs"][mac]["local-ipv4s"],
        new["local-ipv4"]
    );
    assert!(new["iam"]["info"].is_object() || new["iam"]["info"].is_string());
    assert_eq!(new["services"]["partition"], "aws");
    assert_eq!(
        keys(&new["placement"]),
        ["availability-zone", "availability-zone-id", "region"]
    );
    assert!(
        new.get("system").is_none(),
        "system is newer than 2021-03-23"
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_init_crawls_both_versions_with_v1() {
    check("[user-data]\ntext = \"#cloud-config\\n\"\n", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_init_crawls_both_versions_with_v2_required() {
    check(
        "[imds]\nhttp-tokens = \"required\"\n[user-data]\ntext = \"#cloud-config\\n\"\n",
        "v2",
    )
    .await;
}
