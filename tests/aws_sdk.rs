//! The AWS SDK for Rust (`aws-config`) as a peer over a real socket: its IMDS client (which
//! always does the IMDSv2 token flow) reads values and listings, and its region provider
//! resolves the region, with tokens optional and required.

mod common;

use aws_config::imds::client::Client;
use aws_config::imds::region::ImdsRegionProvider;

async fn check(toml: &str) {
    let s = common::start(toml);
    let client = Client::builder().endpoint(s.url()).unwrap().build();
    let id = client
        .get("/latest/meta-data/instance-id")
        .await
        .expect("instance id");
    assert_eq!(id.as_ref(), "i-0123456789abcdef0");
    let listing = client
        .get("/latest/meta-data/placement/")
        .await
        .expect("listing");
    assert_eq!(
        listing.as_ref(),
        "availability-zone\navailability-zone-id\nregion"
    );
    let doc = client
        .get("/latest/dynamic/instance-identity/document")
        .await
        .expect("document");
    assert!(
        doc.as_ref()
            .contains("\"instanceId\" : \"i-0123456789abcdef0\"")
    );
    let missing = client.get("/latest/meta-data/no-such-thing").await;
    assert!(missing.is_err(), "404 is an error to the SDK");

    let region = ImdsRegionProvider::builder()
        .imds_client(client)
        .build()
        .region()
        .await;
    assert_eq!(region.as_ref().map(|r| r.as_ref()), Some("us-east-1"));
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_reads_metadata_and_region_with_tokens_optional() {
    check("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_reads_metadata_and_region_with_tokens_required() {
    check("[imds]\nhttp-tokens = \"required\"\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_reads_a_configured_region() {
    let s = common::start("[instance]\navailability-zone = \"eu-central-1b\"\n");
    let client = Client::builder().endpoint(s.url()).unwrap().build();
    let region = ImdsRegionProvider::builder()
        .imds_client(client)
        .build()
        .region()
        .await;
    assert_eq!(region.as_ref().map(|r| r.as_ref()), Some("eu-central-1"));
    s.stop().await.unwrap();
}
