//! `respond` on hand-built requests, one rule at a time, with golden bodies from
//! `tests/fixtures/`.

use super::*;
use std::path::Path;

const T0: u64 = 1_767_323_045_000;

fn golden(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The state the server would serve for `toml`: built by the same path as the daemon's
/// (config, generated credentials), at a fixed time.
fn state(toml: &str) -> State {
    let cfg = Config::from_toml(toml, Path::new("t.toml")).unwrap();
    let clock = std::sync::Arc::new(crate::clock::ManualClock::fixed());
    let instance = crate::live::Instance::new(cfg, clock, None).unwrap();
    instance.shared().snapshot.load().imds.clone()
}

fn get(s: &State, path: &str) -> Response {
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

fn put_token(s: &State, a: &TokenAuthority, ttl: &str) -> Response {
    respond(
        s,
        a,
        T0,
        &Request {
            ttl: Some(ttl.as_bytes()),
            ..Request::new(&Method::PUT, "/latest/api/token")
        },
    )
}

#[test]
fn root_lists_every_version_then_latest() {
    let r = get(&state(""), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, golden("golden/versions.txt"));
}

#[test]
fn every_dated_prefix_serves_the_same_tree() {
    let s = state("");
    let latest = get(&s, "/latest/meta-data/instance-id");
    for v in ["2009-04-04", "2021-03-23", "2018-09-24", "1.0"] {
        assert_eq!(
            get(&s, &format!("/{v}/meta-data/instance-id")),
            latest,
            "{v}"
        );
        assert_eq!(
            get(&s, &format!("/{v}/meta-data/")).body,
            get(&s, "/latest/meta-data").body
        );
    }
    assert_eq!(get(&s, "/2099-01-01/meta-data/instance-id").status, 404);
}

#[test]
fn meta_data_listing_is_golden() {
    let r = get(&state(""), "/latest/meta-data/");
    assert_eq!(r.status, 200);
    assert_eq!(r.content, Content::Text);
    assert_eq!(
        body(&r),
        String::from_utf8(golden("golden/meta-data.txt")).unwrap()
    );
}

#[test]
fn identity_document_is_golden() {
    let r = get(&state(""), "/latest/dynamic/instance-identity/document");
    assert_eq!(
        body(&r),
        String::from_utf8(golden("golden/document.json")).unwrap()
    );
    assert_eq!(r.content, Content::Text, "EC2 labels JSON text/plain");
}

#[test]
fn path_forms_real_clients_send() {
    let s = state("");
    let leaf = get(&s, "/latest/meta-data/placement/availability-zone");
    assert_eq!(body(&leaf), "us-east-1a");
    // A leaf asked with a trailing slash answers the leaf (botocore, ohai).
    assert_eq!(
        get(&s, "/latest/meta-data/placement/availability-zone/"),
        leaf
    );
    // Double slashes collapse (amazon-ec2-utils).
    assert_eq!(
        get(&s, "/latest//meta-data//placement/availability-zone"),
        leaf
    );
    // `dir` and `dir/` both list, no redirect.
    let dir = get(&s, "/latest/meta-data/placement");
    assert_eq!(dir, get(&s, "/latest/meta-data/placement/"));
    assert_eq!(
        body(&dir),
        "availability-zone\navailability-zone-id\nregion"
    );
    assert_eq!(body(&get(&s, "/latest")), "dynamic\nmeta-data");
    assert_eq!(body(&get(&s, "/latest/")), "dynamic\nmeta-data");
    assert_eq!(
        body(&get(&s, "/latest/dynamic/instance-identity")),
        "document"
    );
}

#[test]
fn no_trailing_newline_anywhere() {
    let s = state("");
    for p in s.tree.paths() {
        let r = get(&s, &format!("/latest/{p}"));
        assert_eq!(r.status, 200, "{p}");
        assert!(!r.body.ends_with(b"\n"), "{p} ends with a newline");
    }
}

#[test]
fn errors_are_ec2_pages_byte_for_byte() {
    let s = state("");
    let r = get(&s, "/latest/meta-data/nope");
    assert_eq!(
        (r.status, r.content),
        (StatusCode::NOT_FOUND, Content::Html)
    );
    assert_eq!(r.body, golden("errors/404.html"));
    assert_eq!(
        put_token(&s, &TokenAuthority::with_key(b"k"), "0").body,
        golden("errors/400.html")
    );
    let bad = respond(
        &s,
        &TokenAuthority::with_key(b"k"),
        T0,
        &Request {
            token: Some(b"nonsense"),
            ..Request::new(&Method::GET, "/latest/meta-data/")
        },
    );
    assert_eq!(
        (bad.status, bad.body.clone()),
        (StatusCode::UNAUTHORIZED, golden("errors/401.html").into())
    );
    let off = state("[imds]\nhttp-endpoint = \"disabled\"\n");
    assert_eq!(
        get(&off, "/latest/meta-data/").body,
        golden("errors/403.html")
    );
}

#[test]
fn user_data_is_raw_bytes_and_listed_only_when_set() {
    let s = state("[user-data]\ntext = \"#cloud-config\\nhostname: x\\n\"\n");
    let r = get(&s, "/latest/user-data");
    assert_eq!((r.status, r.content), (StatusCode::OK, Content::Binary));
    assert_eq!(
        body(&r),
        "#cloud-config\nhostname: x\n",
        "exact bytes, newline kept"
    );
    assert_eq!(get(&s, "/latest/user-data/"), r);
    assert_eq!(body(&get(&s, "/latest/")), "dynamic\nmeta-data\nuser-data");
    assert_eq!(get(&state(""), "/latest/user-data").status, 404);
}

#[test]
fn token_put_grants_and_echoes_the_ttl_with_the_hop_limit() {
    let s = state("[imds]\nhttp-put-response-hop-limit = 2\n");
    let a = TokenAuthority::with_key(b"k");
    let r = put_token(&s, &a, "21600");
    assert_eq!(r.status, 200);
    assert_eq!(r.token_ttl, Some(21600));
    assert_eq!(r.hop_limit, Some(2));
    assert_eq!(r.body.len(), 56);
    assert_eq!(a.verify(&r.body, T0), Some(21600));
}

#[test]
fn token_put_rules() {
    let s = state("");
    let a = TokenAuthority::with_key(b"k");
    for ttl in ["", "0", "21601", "abc", "-5"] {
        assert_eq!(put_token(&s, &a, ttl).status, 400, "ttl {ttl:?}");
    }
    let no_ttl = respond(&s, &a, T0, &Request::new(&Method::PUT, "/latest/api/token"));
    assert_eq!(no_ttl.status, 400);
    let forwarded = Request {
        ttl: Some(b"60"),
        forwarded: true,
        ..Request::new(&Method::PUT, "/latest/api/token")
    };
    assert_eq!(respond(&s, &a, T0, &forwarded).status, 403);
    let expect = Request {
        ttl: Some(b"60"),
        expect_continue: true,
        ..Request::new(&Method::PUT, "/latest/api/token")
    };
    assert_eq!(respond(&s, &a, T0, &expect).status, 417);
    let versioned = Request {
        ttl: Some(b"60"),
        ..Request::new(&Method::PUT, "/2021-03-23/api/token")
    };
    assert_eq!(respond(&s, &a, T0, &versioned).status, 403);
    for m in [Method::GET, Method::POST, Method::DELETE, Method::HEAD] {
        let r = respond(&s, &a, T0, &Request::new(&m, "/latest/api/token"));
        assert_eq!(
            (r.status, r.allow),
            (StatusCode::METHOD_NOT_ALLOWED, Some("OPTIONS, PUT")),
            "{m}"
        );
        assert!(r.body.is_empty());
    }
}

#[test]
fn only_get_and_head_on_metadata() {
    let s = state("");
    let a = TokenAuthority::with_key(b"k");
    assert_eq!(
        respond(
            &s,
            &a,
            T0,
            &Request::new(&Method::HEAD, "/latest/meta-data/instance-id")
        )
        .status,
        200
    );
    for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let r = respond(
            &s,
            &a,
            T0,
            &Request::new(&m, "/latest/meta-data/instance-id"),
        );
        assert_eq!(r.status, 405, "{m}");
    }
}

#[test]
fn token_lifecycle_with_a_manual_clock() {
    use crate::clock::{Clock, ManualClock};
    use std::time::Duration;
    let s = state("[imds]\nhttp-tokens = \"required\"\n");
    let a = TokenAuthority::with_key(b"k");
    let clock = ManualClock::fixed();
    let put = Request {
        ttl: Some(b"60"),
        ..Request::new(&Method::PUT, "/latest/api/token")
    };
    let token = respond(&s, &a, clock.now_millis(), &put).body;
    let get = |now| {
        respond(
            &s,
            &a,
            now,
            &Request {
                token: Some(&token),
                ..Request::new(&Method::GET, "/latest/meta-data/instance-id")
            },
        )
    };
    let r = get(clock.now_millis());
    assert_eq!((r.status, r.token_ttl), (StatusCode::OK, Some(60)));
    clock.advance(Duration::from_secs(45));
    assert_eq!(
        get(clock.now_millis()).token_ttl,
        Some(15),
        "the remaining TTL"
    );
    clock.advance(Duration::from_secs(15));
    assert_eq!(get(clock.now_millis()).status, 401, "expired");
}

#[test]
fn required_mode_needs_a_token_and_optional_mode_rejects_a_bad_one() {
    let req = state("[imds]\nhttp-tokens = \"required\"\n");
    assert_eq!(get(&req, "/latest/meta-data/instance-id").status, 401);
    assert_eq!(get(&req, "/").status, 401);
    assert_eq!(
        get(&req, "/latest/meta-data/nope").status,
        401,
        "auth before lookup"
    );
    let opt = state("");
    assert_eq!(get(&opt, "/latest/meta-data/instance-id").status, 200);
    let a = TokenAuthority::with_key(b"k");
    let foreign = TokenAuthority::with_key(b"other").issue(T0, 60);
    let r = respond(
        &opt,
        &a,
        T0,
        &Request {
            token: Some(foreign.as_bytes()),
            ..Request::new(&Method::GET, "/latest/meta-data/instance-id")
        },
    );
    assert_eq!(
        r.status, 401,
        "an invalid token is refused in optional mode too"
    );
}

#[test]
fn forwarded_get_with_a_token_is_refused() {
    let s = state("");
    let a = TokenAuthority::with_key(b"k");
    let t = a.issue(T0, 60);
    let r = respond(
        &s,
        &a,
        T0,
        &Request {
            token: Some(t.as_bytes()),
            forwarded: true,
            ..Request::new(&Method::GET, "/latest/meta-data/instance-id")
        },
    );
    assert_eq!(r.status, 403);
}

#[test]
fn endpoint_disabled_refuses_everything() {
    let s = state("[imds]\nhttp-endpoint = \"disabled\"\n");
    let a = TokenAuthority::with_key(b"k");
    assert_eq!(get(&s, "/").status, 403);
    assert_eq!(put_token(&s, &a, "60").status, 403);
}

#[test]
fn extra_paths_and_overrides() {
    let s = state(
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
