//! `imds::respond` on arbitrary requests: any method, path and header bytes, against two fixed
//! services built from plain values (EC2's default options, and a richer one with
//! `http-tokens = required`, tags, user-data and extra paths), with arbitrary, genuine and
//! tampered IMDSv2 tokens. No config, daemon or server is involved.
//!
//! Input: one flag byte, then up to five `\n`-separated fields:
//! `METHOD \n PATH \n TOKEN \n TTL \n NOW-OFFSET-MS`.
//! Flags: bit 0 rich snapshot, bit 1 `X-Forwarded-For`, bit 2 `Expect: 100-continue`,
//! bits 3..=5 the token: 0 none, 1 TOKEN as given, 2 a genuine token of TTL seconds
//! (TOKEN as decimal), 3 a genuine token with one character replaced, 4 a token from a PUT
//! through `respond` itself.
//!
//! Checked besides "no panic": only EC2's statuses, each with its exact page (or none); a 405 names
//! `Allow`; a token reply is a 56-character token that verifies for exactly the TTL asked;
//! a genuine token verifies for what it has left (rounded up) and a tampered one never does.
#![no_main]

use std::sync::OnceLock;

use fake_metadata::clock::ManualClock;
use fake_metadata::imds::{self, Options, Request, Service, TokenAuthority, pages, token};
use fake_metadata::metadata::TreeBuilder;
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;

/// The leaves both services share: an instance's usual values, from plain data.
fn instance_tree() -> TreeBuilder {
    let mut b = TreeBuilder::default();
    for (p, v) in [
        ("meta-data/instance-id", "i-0123456789abcdef0"),
        ("meta-data/instance-type", "t3.micro"),
        ("meta-data/local-ipv4", "172.31.16.10"),
        ("meta-data/placement/availability-zone", "us-east-1a"),
        ("meta-data/placement/region", "us-east-1"),
        ("meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/device-number", "0"),
        ("meta-data/iam/security-credentials/role", "{\n  \"Code\" : \"Success\"\n}"),
        ("dynamic/instance-identity/document", "{\n  \"region\" : \"us-east-1\"\n}"),
    ] {
        b.text(p, v);
    }
    b
}

struct Fixture {
    default: Service,
    /// `http-tokens = required`, tags, user-data, extra paths, a public address.
    rich: Service,
    tokens: TokenAuthority,
    now_ms: u64,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rich = instance_tree();
        rich.binary("user-data", &b"#!/bin/sh\necho hi\n"[..])
            .text("meta-data/tags/instance/Name", "web")
            .text("meta-data/tags/instance/aws:autoscaling:groupName", "g")
            .text("meta-data/custom/a", "1")
            .text("dynamic/custom/b/c", "2")
            .text("meta-data/public-ipv4", "3.4.5.6");
        Fixture {
            default: Service::new(Options::default(), &instance_tree()),
            rich: Service::new(
                Options {
                    tokens_required: true,
                    ..Options::default()
                },
                &rich,
            ),
            tokens: TokenAuthority::random(),
            now_ms: fake_metadata::clock::Clock::now_millis(&ManualClock::fixed()),
        }
    })
}

const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::OPTIONS,
    Method::PATCH,
    Method::TRACE,
    Method::CONNECT,
];

fn check(resp: &imds::Response, req: &Request<'_>, tokens: &TokenAuthority, now: u64) {
    // Both services are of the Nitro generation (the default): its 400, 401 and 403 are empty.
    let page = match resp.status {
        StatusCode::OK => None,
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Some(""),
        StatusCode::NOT_FOUND => Some(pages::NOT_FOUND),
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::EXPECTATION_FAILED => Some(""),
        other => panic!("status {other} is not one EC2 answers: {req:?}"),
    };
    if let Some(page) = page {
        assert_eq!(&resp.body[..], page.as_bytes(), "{req:?}");
        assert!(resp.hop_limit.is_none());
    }
    assert_eq!(
        resp.allow.is_some(),
        resp.status == StatusCode::METHOD_NOT_ALLOWED
            || (resp.status == StatusCode::OK && req.method == Method::OPTIONS),
        "{req:?} -> {resp:?}"
    );
    if let Some(hop) = resp.hop_limit {
        // A token reply: exactly the TTL asked, verifiable, 56 characters like EC2's.
        assert_eq!(resp.status, StatusCode::OK);
        let ttl = token::parse_ttl(req.ttl.expect("a token reply answers a TTL header"))
            .expect("a token is issued only for a valid TTL");
        assert_eq!(resp.token_ttl, Some(ttl));
        assert_eq!(resp.body.len(), token::TOKEN_LEN);
        assert_eq!(tokens.verify(&resp.body, now), Some(ttl));
        assert!((1..=64).contains(&hop));
    }
    if resp.status == StatusCode::OK
        && (req.method == Method::GET || req.method == Method::HEAD)
        && req.token.is_some()
    {
        assert!(
            resp.token_ttl.is_some(),
            "an authenticated GET says what is left"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let state = if flags & 1 == 0 { &f.default } else { &f.rich };
    let tokens = &f.tokens;
    let mut fields = rest.splitn(5, |&b| b == b'\n');
    let method_bytes = fields.next().unwrap_or_default();
    let path = String::from_utf8_lossy(fields.next().unwrap_or_default());
    let token_field = fields.next().unwrap_or_default();
    let ttl = fields.next();
    let offset: u64 = fields
        .next()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map_or(0, u64::from);
    let now = f.now_ms + offset;

    let method = match method_bytes {
        [] => Method::GET,
        [b] if !b.is_ascii_alphabetic() => METHODS[usize::from(*b) % METHODS.len()].clone(),
        m => Method::from_bytes(m).unwrap_or(Method::GET),
    };

    // The token the request carries.
    let genuine_ttl = || -> u32 {
        std::str::from_utf8(token_field)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(60)
            .clamp(token::TTL_MIN, token::TTL_MAX)
    };
    let owned: Option<Vec<u8>> = match (flags >> 3) & 7 {
        0 => None,
        1 => Some(token_field.to_vec()),
        2 => {
            let ttl = genuine_ttl();
            let t = tokens.issue(f.now_ms, ttl);
            let left_ms = u64::from(ttl) * 1000;
            let want = (offset < left_ms).then(|| (left_ms - offset).div_ceil(1000) as u32);
            assert_eq!(
                tokens.verify(t.as_bytes(), now),
                want,
                "ttl {ttl} at +{offset} ms"
            );
            Some(t.into_bytes())
        }
        3 => {
            let mut t = tokens.issue(f.now_ms, genuine_ttl()).into_bytes();
            let at = (offset as usize) % t.len();
            let with = token_field.first().copied().unwrap_or(b'A');
            if t[at] != with {
                t[at] = with;
                assert_eq!(
                    tokens.verify(&t, f.now_ms),
                    None,
                    "a tampered token verifies"
                );
            }
            Some(t)
        }
        4 => {
            let put = Request {
                ttl: Some(b"21600"),
                ..Request::new(&Method::PUT, "/latest/api/token")
            };
            let r = imds::respond(state, tokens, f.now_ms, &put);
            assert_eq!(r.status, StatusCode::OK);
            Some(r.body.to_vec())
        }
        _ => Some(token_field.iter().rev().copied().collect()),
    };
    if let Some(t) = &owned {
        // Bytes from the input never verify: forging needs the key (made at random at start).
        if (flags >> 3) & 7 == 1 || (flags >> 3) & 7 > 4 {
            assert_eq!(tokens.verify(t, now), None, "{t:?} verified");
        }
    }

    let req = Request {
        method: &method,
        path: &path,
        token: owned.as_deref(),
        ttl,
        forwarded: flags & 2 != 0,
        expect_continue: flags & 4 != 0,
        // Every client is served the same today.
        client: None,
    };
    let resp = imds::respond(state, tokens, now, &req);
    check(&resp, &req, tokens, now);
});
