//! The real `curl` binary as a peer: the v1 GET and the v2 PUT + GET flow that shell scripts
//! use, in optional and required mode.

mod common;

use std::process::Command;

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn have_curl() -> bool {
    common::require(common::has_program("curl", &["--version"]), "curl")
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_v1_and_v2_with_tokens_optional() {
    if !have_curl() {
        return;
    }
    let s = common::start("");
    let base = s.url();
    tokio::task::spawn_blocking(move || {
        let (rc, id) = curl(&["-f", &format!("{base}/latest/meta-data/instance-id")]);
        assert_eq!((rc, id.as_str()), (0, "i-0123456789abcdef0"), "v1");
        let (rc, token) = curl(&[
            "-f",
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 21600",
            &format!("{base}/latest/api/token"),
        ]);
        assert_eq!((rc, token.len()), (0, 56), "token {token:?}");
        let (rc, zone) = curl(&[
            "-f",
            "-H",
            &format!("X-aws-ec2-metadata-token: {token}"),
            &format!("{base}/latest/meta-data/placement/availability-zone"),
        ]);
        assert_eq!((rc, zone.as_str()), (0, "us-east-1a"), "v2");
        let (_, code) = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "X-aws-ec2-metadata-token: junk",
            &format!("{base}/latest/meta-data/"),
        ]);
        assert_eq!(code, "401", "a bad token is refused in optional mode too");
    })
    .await
    .unwrap();
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_v1_is_refused_when_tokens_are_required() {
    if !have_curl() {
        return;
    }
    let s = common::start("[imds]\nhttp-tokens = \"required\"\n");
    let base = s.url();
    tokio::task::spawn_blocking(move || {
        let (_, code) = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/latest/meta-data/instance-id"),
        ]);
        assert_eq!(code, "401");
        let (_, token) = curl(&[
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 60",
            &format!("{base}/latest/api/token"),
        ]);
        let (rc, id) = curl(&[
            "-f",
            "-H",
            &format!("X-aws-ec2-metadata-token: {token}"),
            &format!("{base}/latest/meta-data/instance-id"),
        ]);
        assert_eq!((rc, id.as_str()), (0, "i-0123456789abcdef0"));
    })
    .await
    .unwrap();
    s.stop().await.unwrap();
}
