//! The daemon's bytes against replies captured on real EC2 instances
//! (`tests/fixtures/captures/*.http`, sources in that folder's README): through the real
//! server and a raw socket, so nothing normalises what is compared. Each fixture is the
//! status line, the headers in EC2's order (`*` for a value that differs per reply: dates,
//! tokens), a blank line and the exact body (`*`: not compared). `# order: exact` compares
//! names, order and values; `set` the same without the order; `partial` only the lines given.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::http::{self, Reply};
use common::start;

/// Sends `request` and reads one reply off the socket.
fn exchange(addr: SocketAddr, request: &str) -> Reply {
    http::exchange_one(addr, request.as_bytes())
}

/// Compares a reply with a fixture.
fn check(reply: &Reply, fixture: &str) {
    let headers = reply.headers();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captures")
        .join(fixture);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut order = "exact";
    let mut rest = text.as_str();
    while let Some(comment) = rest.strip_prefix('#') {
        let (line, after) = comment.split_once('\n').unwrap();
        if let Some(o) = line.trim().strip_prefix("order: ") {
            order = o;
        }
        rest = after;
    }
    let (head, body) = rest.split_once("\n\n").unwrap();
    let mut lines = head.lines();
    assert_eq!(
        reply.status_line(),
        lines.next().unwrap(),
        "{fixture}: status"
    );
    let want: Vec<(&str, &str)> = lines.map(|l| l.split_once(": ").unwrap()).collect();
    let matches =
        |(n, v): &(&str, &str), (gn, gv): &(String, String)| n == gn && (*v == "*" || v == gv);
    match order {
        "exact" => {
            let got: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            let names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
            assert_eq!(got, names, "{fixture}: header names and order");
            for (w, g) in want.iter().zip(headers.iter()) {
                assert!(matches(w, g), "{fixture}: {w:?} vs {g:?}");
            }
        }
        "set" => {
            assert_eq!(headers.len(), want.len(), "{fixture}: {:?}", headers);
            for w in &want {
                assert!(
                    headers.iter().any(|g| matches(w, g)),
                    "{fixture}: {w:?} missing in {:?}",
                    headers
                );
            }
        }
        "partial" => {
            for w in &want {
                assert!(
                    headers.iter().any(|g| matches(w, g)),
                    "{fixture}: {w:?} missing in {:?}",
                    headers
                );
            }
        }
        other => panic!("{fixture}: unknown order {other}"),
    }
    if body != "*" {
        assert_eq!(
            String::from_utf8_lossy(&reply.bytes),
            body,
            "{fixture}: body"
        );
    }
}

fn get(path: &str, token: Option<&str>) -> String {
    let token = token.map_or(String::new(), |t| {
        format!("X-aws-ec2-metadata-token: {t}\r\n")
    });
    format!(
        "GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.2.1\r\nAccept: */*\r\n{token}\r\n"
    )
}

fn put_token(addr: SocketAddr) -> String {
    let r = exchange(addr, PUT_TOKEN);
    assert_eq!(r.status_line(), "HTTP/1.1 200 OK");
    String::from_utf8(r.bytes).unwrap()
}

const PUT_TOKEN: &str = "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.14.1\r\nAccept: */*\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n";

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn nitro_replies_match_the_captures() {
    let s = start("[instance]\nlocal-ipv4 = \"10.1.2.194\"\n");
    let addr = s.addr();
    blocking(move || {
        let token = put_token(addr);
        check(&exchange(addr, PUT_TOKEN), "token-put.http");
        check(
            &exchange(addr, &get("/latest/meta-data/", Some(&token))),
            "meta-data-v2.http",
        );
        check(
            &exchange(addr, &get("/latest/meta-data/local-ipv4", Some(&token))),
            "local-ipv4-v2.http",
        );
        check(
            &exchange(addr, &get("/latest/meta-data/iam/info", None)),
            "iam-info-v1.http",
        );
        check(&exchange(addr, &get("/", None)), "versions.http");
        check(
            &exchange(
                addr,
                "PUT /latest/api/token/ HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/7.74.0\r\nAccept: */*\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nconnection: keep-alive\r\n\r\n",
            ),
            "token-trailing-slash-403.http",
        );
        check(
            &exchange(
                addr,
                "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-Forwarded-For: 10.0.0.5\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n",
            ),
            "token-forwarded-403.http",
        );
    })
    .await;
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_match_the_captures() {
    let nitro = start("[imds]\nhttp-tokens = \"required\"\n");
    let xen =
        start("[imds]\nhttp-tokens = \"required\"\n[instance]\ninstance-type = \"t2.micro\"\n");
    let no_role = start("[iam]\nrole = \"\"\n");
    let (n, x, r) = (nitro.addr(), xen.addr(), no_role.addr());
    blocking(move || {
        check(
            &exchange(n, &get("/latest/meta-data/local-ipv4", None)),
            "nitro-401.http",
        );
        check(
            &exchange(
                x,
                "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
            ),
            "xen-401.http",
        );
        check(
            &exchange(
                x,
                "OPTIONS /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/7.48.0\r\nAccept: */*\r\n\r\n",
            ),
            "xen-options-token.http",
        );
        let token = put_token(r);
        check(
            &exchange(
                r,
                &get("/latest/meta-data/iam/security-credentials", Some(&token)),
            ),
            "404-v2.http",
        );
    })
    .await;
    for s in [nitro, xen, no_role] {
        s.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_date_comes_before_server_and_is_now() {
    let s = start("");
    let addr = s.addr();
    let reply = blocking(move || exchange(addr, &get("/latest/meta-data/instance-id", None))).await;
    let headers = reply.headers();
    let date = &headers
        .iter()
        .find(|(n, _)| n == "Date")
        .expect("a Date header")
        .1;
    let t = httpdate::parse_http_date(date).unwrap();
    let skew = fake_metadata::clock::Clock::now(&fake_metadata::clock::SystemClock)
        .duration_since(t)
        .unwrap_or_default();
    assert!(skew < Duration::from_secs(5), "{date}");
    assert_eq!(
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("date"))
            .count(),
        1,
        "hyper adds no second Date"
    );
    s.stop().await.unwrap();
}
