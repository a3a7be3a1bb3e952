//! Fault injection against real clients: what botocore (the engine of the AWS CLI and boto3),
//! the AWS CLI itself and the AWS SDK for Rust (`aws-config`) really do when the service
//! answers 503, drops the token PUT, answers late, resets or refuses connections, or
//! throttles. Each test prints what the SDKs said (`--nocapture`). Each test starts the real server with `[[fault]]`
//! tables (the same faults `ctl fault add` makes: `tests/ctl.rs` drives those), so a
//! fault's count starts afresh in every test.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_config::imds::client::Client;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;

/// The IAM credentials path, which SDKs read twice (the role, then its document).
const CREDS: &str = "path = \"meta-data/iam/security-credentials/*\"\n";

/// botocore's credential chain against `url` with `env` set as users set it; `None` when
/// botocore is missing outside CI.
fn botocore(url: &str, env: &[(&str, &str)]) -> Option<serde_json::Value> {
    let available = common::has_program("python3", &["-c", "import botocore"]);
    if !common::require(available, "python3 with botocore (pip install botocore)") {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/botocore_credentials.py");
    let out = common::aws_env(Some(url))
        .set_all(env)
        .command("python3")
        .arg(script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "botocore peer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the peer prints JSON"))
}

async fn botocore_async(
    url: String,
    env: Vec<(&'static str, &'static str)>,
) -> Option<serde_json::Value> {
    tokio::task::spawn_blocking(move || botocore(&url, &env))
        .await
        .unwrap()
}

/// The Rust SDK's IMDS credentials provider, with its defaults (4 attempts, 1 s timeouts).
async fn rust_sdk(url: &str) -> (Result<String, String>, Duration) {
    let client = Client::builder().endpoint(url).unwrap().build();
    let t = Instant::now();
    let r = ImdsCredentialsProvider::builder()
        .imds_client(client)
        .build()
        .provide_credentials()
        .await
        .map(|c| c.access_key_id()[..4].to_string())
        .map_err(|e| error_chain(&e));
    (r, t.elapsed())
}

/// An error with its sources, as the SDK would report it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn hits(s: &fake_metadata::daemon::Running) -> String {
    s.inputs.faults()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_503_on_credentials_botocore_needs_a_second_attempt_rust_retries() {
    let cfg = format!("[[fault]]\n{CREDS}status = 503\ncount = 1\n");
    // botocore's default is one attempt (metadata_service_num_attempts = 1): the 503 leaves
    // it without credentials, and it says why in its log.
    let s = common::start(&cfg);
    let Some(v) = botocore_async(s.url(), vec![]).await else {
        return;
    };
    assert_eq!(v["credentials"], false, "{v}");
    let log = v["log"].to_string();
    assert!(log.contains("status code of 503"), "{log}");
    assert!(log.contains("Max number of attempts exceeded (1)"), "{log}");
    assert!(hits(&s).contains("1 hit(s), used up"), "{}", hits(&s));
    s.stop().await.unwrap();

    // With two attempts, as users configure it, it gets through.
    let s = common::start(&cfg);
    let v = botocore_async(s.url(), vec![("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "2")])
        .await
        .unwrap();
    assert_eq!(v["credentials"], true, "{v}");
    assert_eq!(v["method"], "iam-role");
    s.stop().await.unwrap();

    // The Rust SDK retries 5xx on its own (4 attempts).
    let s = common::start(&cfg);
    let (r, took) = rust_sdk(&s.url()).await;
    eprintln!("one 503: Rust SDK {r:?} after {took:?}");
    assert_eq!(r.as_deref(), Ok("ASIA"), "{r:?}");
    assert!(hits(&s).contains("1 hit(s), used up"), "{}", hits(&s));
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_token_put_times_out_both_sdks() {
    let drop_token = "[[fault]]\npath = \"api/token\"\nmethod = \"PUT\"\ndrop = true\n";
    // Tokens required: botocore waits out its 1 s timeout on the PUT, falls back to IMDSv1,
    // gets 401 and ends without credentials.
    let s = common::start(&format!("[imds]\nhttp-tokens = \"required\"\n{drop_token}"));
    let Some(v) = botocore_async(s.url(), vec![]).await else {
        return;
    };
    assert_eq!(v["credentials"], false, "{v}");
    let secs = v["seconds"].as_f64().unwrap();
    assert!(secs >= 1.0, "botocore waited its timeout: {v}");
    // The Rust SDK never falls back to IMDSv1: each of its attempts times out on the PUT.
    let (r, took) = rust_sdk(&s.url()).await;
    eprintln!("tokens required, PUT dropped: botocore {v}; Rust SDK {r:?} after {took:?}");
    let e = r.expect_err("no credentials without a token");
    assert!(
        e.to_lowercase().contains("timeout") || e.contains("timed out"),
        "{e}"
    );
    assert!(took >= Duration::from_secs(1), "{took:?}");
    s.stop().await.unwrap();

    // Tokens optional: botocore's fallback to IMDSv1 gets it credentials after its timeout.
    let s = common::start(drop_token);
    let v = botocore_async(s.url(), vec![]).await.unwrap();
    assert_eq!(v["credentials"], true, "{v}");
    assert!(v["seconds"].as_f64().unwrap() >= 1.0, "{v}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delay_beyond_the_timeout_fails_and_a_short_one_does_not() {
    let s = common::start(&format!("[[fault]]\n{CREDS}delay = \"1500ms\"\n"));
    let Some(v) = botocore_async(s.url(), vec![]).await else {
        return;
    };
    let (r, took) = rust_sdk(&s.url()).await;
    eprintln!("delay 1500ms: botocore {v}; Rust SDK {r:?} after {took:?}");
    assert_eq!(v["credentials"], false, "botocore's 1 s timeout: {v}");
    assert!(
        r.is_err(),
        "the Rust SDK's 1 s read timeout, every attempt: {r:?}"
    );
    s.stop().await.unwrap();

    let s = common::start(&format!("[[fault]]\n{CREDS}delay = \"300ms\"\n"));
    let v = botocore_async(s.url(), vec![]).await.unwrap();
    assert_eq!(v["credentials"], true, "{v}");
    assert!(
        v["seconds"].as_f64().unwrap() >= 0.6,
        "two delayed GETs: {v}"
    );
    let (r, _) = rust_sdk(&s.url()).await;
    assert_eq!(r.as_deref(), Ok("ASIA"), "{r:?}");
    s.stop().await.unwrap();
}

/// One GET with a read timeout: `Some(status)` or `None` when nothing came in time.
fn get_within(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n");
    common::http::exchange(addr, req.as_bytes(), timeout).map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_client_sees_timeouts_while_other_paths_are_served() {
    let s = common::start("[[fault]]\npath = \"meta-data/iam/*\"\nthrottle = 3\n");
    let addr = s.addr();
    let (throttled, other, took) = tokio::task::spawn_blocking(move || {
        // Ten requests at once from one address: about three get answers, the rest nothing.
        let burst: Vec<_> = (0..10)
            .map(|_| {
                std::thread::spawn(move || {
                    get_within(
                        addr,
                        "/latest/meta-data/iam/info",
                        Duration::from_millis(800),
                    )
                })
            })
            .collect();
        // Meanwhile another path, sequentially.
        let t = Instant::now();
        let other: Vec<Option<u16>> = (0..200)
            .map(|_| {
                get_within(
                    addr,
                    "/latest/meta-data/instance-id",
                    Duration::from_secs(1),
                )
            })
            .collect();
        let took = t.elapsed();
        let throttled: Vec<Option<u16>> = burst.into_iter().map(|h| h.join().unwrap()).collect();
        (throttled, other, took)
    })
    .await
    .unwrap();
    let answered = throttled.iter().filter(|r| r.is_some()).count();
    // A burst that straddles a second boundary gets two seconds' worth.
    assert!((3..=6).contains(&answered), "{throttled:?}");
    assert!(
        throttled.iter().flatten().all(|s| *s == 200),
        "the throttle sends no error status, only silence: {throttled:?}"
    );
    assert!(other.iter().all(|r| *r == Some(200)), "{other:?}");
    eprintln!("200 GETs of another path during the throttle: {took:?}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_or_a_refused_connection_leaves_both_sdks_without_credentials() {
    for (fault, botocore_says, rust_says) in [
        (
            format!("{CREDS}reset = true\n"),
            "Connection was closed",
            "connection reset",
        ),
        (
            "refuse = true\nfor = \"1m\"\n".to_string(),
            "Could not connect",
            "connection refused",
        ),
    ] {
        let s = common::start(&format!("[[fault]]\n{fault}"));
        let Some(v) = botocore_async(s.url(), vec![]).await else {
            return;
        };
        let (r, took) = rust_sdk(&s.url()).await;
        eprintln!("{fault:?}: botocore {v}; Rust SDK {r:?} after {took:?}");
        assert_eq!(v["credentials"], false, "{v}");
        assert!(v["log"].to_string().contains(botocore_says), "{v}");
        let e = r.expect_err("no credentials");
        assert!(e.to_lowercase().contains(rust_says), "{e}");
        s.stop().await.unwrap();
    }
}

/// The AWS CLI as users run it: `aws configure list` finds no credentials after one 503 (one
/// attempt by default) and finds the role's with two attempts.
#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_after_one_503() {
    if !common::require(
        common::has_program("aws", &["--version"]),
        "the AWS CLI (pip install awscli)",
    ) {
        return;
    }
    for (attempts, source) in [("1", "<not set>"), ("2", "iam-role")] {
        let s = common::start(&format!("[[fault]]\n{CREDS}status = 503\ncount = 1\n"));
        let url = s.url();
        let listed = tokio::task::spawn_blocking(move || {
            let out = common::aws_env(Some(&url))
                .set("AWS_METADATA_SERVICE_NUM_ATTEMPTS", attempts)
                .command("aws")
                .args(["configure", "list"])
                .output()
                .expect("aws runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .await
        .unwrap();
        let key_line = listed
            .lines()
            .find(|l| l.trim_start().starts_with("access_key"))
            .unwrap_or_default()
            .to_string();
        assert!(key_line.contains(source), "attempts {attempts}: {listed}");
        s.stop().await.unwrap();
    }
}
