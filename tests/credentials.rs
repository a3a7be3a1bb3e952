//! IAM role credentials end to end over a real socket: the AWS SDK for Rust's IMDS
//! credentials provider and its default chain, botocore's provider, the AWS CLI; and rotation
//! with a manual clock.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::imds::client::Client;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use fake_metadata::clock::{Clock, ManualClock, SystemClock};

#[tokio::test(flavor = "multi_thread")]
async fn sdk_imds_provider_and_default_chain_get_credentials() {
    let s = common::start("[iam]\nrole = \"web-server\"\n");
    let client = Client::builder().endpoint(s.url()).unwrap().build();
    let creds = ImdsCredentialsProvider::builder()
        .imds_client(client.clone())
        .build()
        .provide_credentials()
        .await
        .expect("credentials from IMDS");
    assert!(creds.access_key_id().starts_with("ASIA") && creds.access_key_id().len() == 20);
    assert_eq!(creds.secret_access_key().len(), 40);
    assert!(creds.session_token().is_some_and(|t| t.len() > 300));
    let left = creds
        .expiry()
        .unwrap()
        .duration_since(SystemClock.now())
        .unwrap();
    assert!(
        left >= Duration::from_secs(3600),
        "at least 1 h left, got {left:?}"
    );

    let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .imds_client(client.clone())
        .build()
        .await;
    let via_chain = chain
        .provide_credentials()
        .await
        .expect("the default chain reaches IMDS");
    assert_eq!(via_chain.access_key_id(), creds.access_key_id());

    let info = client.get("/latest/meta-data/iam/info").await.unwrap();
    assert!(info.as_ref().contains(
        "\"InstanceProfileArn\" : \"arn:aws:iam::123456789012:instance-profile/web-server\""
    ));
    assert_eq!(
        client
            .get("/latest/meta-data/iam/security-credentials/")
            .await
            .unwrap()
            .as_ref(),
        "web-server"
    );
    assert!(
        client
            .get("/latest/meta-data/iam/security-credentials/other-role")
            .await
            .is_err(),
        "unknown role: 404"
    );
    s.stop().await.unwrap();
}

/// No role: no `iam/` (EC2 answers 404 there), but the instance identity credentials, which
/// EC2 serves on every instance.
#[tokio::test(flavor = "multi_thread")]
async fn no_role_no_iam_but_identity_credentials() {
    let s = common::start("[iam]\nrole = \"\"\n");
    let client = Client::builder().endpoint(s.url()).unwrap().build();
    let listing = client.get("/latest/meta-data/").await.unwrap();
    let names: Vec<&str> = listing.as_ref().lines().collect();
    assert!(!names.contains(&"iam/"), "{}", listing.as_ref());
    assert!(
        names.contains(&"identity-credentials/"),
        "{}",
        listing.as_ref()
    );
    assert!(client.get("/latest/meta-data/iam/info").await.is_err());
    let id = client
        .get("/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(id.as_ref()).unwrap();
    assert_eq!(v["Code"], "Success");
    assert!(v["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    s.stop().await.unwrap();
}

fn credentials_at(addr: std::net::SocketAddr) -> serde_json::Value {
    let resp = common::raw(addr, b"GET /latest/meta-data/iam/security-credentials/fake-metadata-role HTTP/1.1\r\nHost: x\r\n\r\n");
    let body = resp.split_once("\r\n\r\n").unwrap().1;
    assert!(body.contains("\"Code\" : \"Success\""), "{body}");
    serde_json::from_str(body).unwrap()
}

fn expiry(v: &serde_json::Value) -> SystemTime {
    let t = time::OffsetDateTime::parse(
        v["Expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    SystemTime::from(t)
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_with_a_manual_clock_never_hands_out_less_than_the_minimum() {
    let clock = Arc::new(ManualClock::fixed());
    let s = common::start_with(
        common::config("[iam]\nlifetime = \"6h\"\nrefresh-before = \"1h\"\n"),
        clock.clone(),
    );
    let addr = s.addr();
    let mut previous = tokio::task::spawn_blocking(move || credentials_at(addr))
        .await
        .unwrap();
    for _ in 0..8 {
        // Just before the refresh point: the same set, at least the minimum left.
        let refresh_at = expiry(&previous) - Duration::from_secs(3600);
        let now = clock.now();
        clock.advance(refresh_at.duration_since(now).unwrap() - Duration::from_secs(1));
        s.inputs.tick();
        let same = tokio::task::spawn_blocking(move || credentials_at(addr))
            .await
            .unwrap();
        assert_eq!(same["AccessKeyId"], previous["AccessKeyId"]);
        assert!(expiry(&same).duration_since(clock.now()).unwrap() >= Duration::from_secs(3600));
        // At the refresh point: a new set.
        clock.advance(Duration::from_secs(1));
        s.inputs.tick();
        let next = tokio::task::spawn_blocking(move || credentials_at(addr))
            .await
            .unwrap();
        assert_ne!(next["AccessKeyId"], previous["AccessKeyId"], "rotated");
        assert!(expiry(&next).duration_since(clock.now()).unwrap() >= Duration::from_secs(3600));
        previous = next;
    }
    s.stop().await.unwrap();
}
