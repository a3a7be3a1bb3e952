//! The snapshot build end to end, from a config as the daemon compiles it (with generated
//! credentials and the configured scenario), through `imds::respond`.

use std::path::Path;
use std::sync::Arc;

use http::Method;

use super::*;
use crate::clock::ManualClock;
use crate::credentials::CredentialManager;
use crate::imds::{Content, Request, Response, respond};
use crate::scenario::EventId;

const T0: u64 = 1_767_323_045_000;

fn golden(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What the daemon would serve for `toml`, at a fixed time.
fn served(toml: &str) -> imds::Service {
    let cfg = Config::from_toml(toml, Path::new("t.toml")).unwrap();
    let clock = Arc::new(ManualClock::fixed());
    let mut credentials =
        CredentialManager::new(&cfg.iam, cfg.instance.account_id.as_str(), clock.clone());
    let _ = credentials.refresh();
    let now = clock.now();
    let scenario = Scenario::new(&cfg.scenario, now, &mut EventId::random);
    build(&cfg, None, credentials.leaves(), &scenario, now).imds
}

fn get(s: &imds::Service, path: &str) -> Response {
    respond(
        s,
        &TokenAuthority::with_key(b"k"),
        T0,
        &Request::new(&Method::GET, path),
    )
}

fn body(r: &Response) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

#[test]
fn meta_data_listing_is_golden() {
    let r = get(&served(""), "/latest/meta-data/");
    assert_eq!(r.status, 200);
    assert_eq!(r.content, Content::Text);
    assert_eq!(
        body(&r),
        String::from_utf8(golden("golden/meta-data.txt")).unwrap()
    );
}

#[test]
fn identity_document_is_golden() {
    let r = get(&served(""), "/latest/dynamic/instance-identity/document");
    assert_eq!(
        body(&r),
        String::from_utf8(golden("golden/document.json")).unwrap()
    );
    assert_eq!(r.content, Content::Text, "EC2 labels JSON text/plain");
}

#[test]
fn no_trailing_newline_anywhere() {
    let s = served("");
    for p in s.tree.paths() {
        let r = get(&s, &format!("/latest/{p}"));
        assert_eq!(r.status, 200, "{p}");
        assert!(!r.body.ends_with(b"\n"), "{p} ends with a newline");
    }
}

#[test]
fn extra_paths_and_overrides() {
    let s = served(
        "[paths]\n\"meta-data/custom/thing\" = \"42\"\n\"meta-data/instance-type\" = \"m7g.large\"\n",
    );
    assert_eq!(body(&get(&s, "/latest/meta-data/custom/thing")), "42");
    assert_eq!(body(&get(&s, "/latest/meta-data/custom")), "thing");
    assert_eq!(
        body(&get(&s, "/latest/meta-data/instance-type")),
        "m7g.large"
    );
    assert!(body(&get(&s, "/latest/meta-data")).contains("custom/\n"));
}
