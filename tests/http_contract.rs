//! The HTTP contract over a real socket: EC2's headers, robust handling of bad input, slow
//! clients, HEAD, keep-alive, IPv6.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{raw, start};

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_ec2_headers_and_closes() {
    let s = start("");
    let addr = s.addr();
    let resp = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        )
    })
    .await
    .unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for h in [
        "Server: EC2ws",
        "Content-Type: text/plain",
        "Content-Length: 19",
        "Connection: close",
        "Accept-Ranges: none",
        "Last-Modified: ",
        "Date: ",
    ] {
        assert!(
            head.contains(&format!("\r\n{h}")),
            "missing {h:?} in\n{head}"
        );
    }
    assert_eq!(body, "i-0123456789abcdef0");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn token_reply_carries_the_ttl_header_and_head_has_no_body() {
    let s = start("");
    let addr = s.addr();
    let (put, head) = tokio::task::spawn_blocking(move || {
        (
            raw(
                addr,
                b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nx-aws-ec2-metadata-token-ttl-seconds: 300\r\nContent-Length: 0\r\n\r\n",
            ),
            raw(addr, b"HEAD /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
    })
    .await
    .unwrap();
    assert!(put.starts_with("HTTP/1.1 200 OK\r\n"), "{put}");
    assert!(
        put.contains("\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 300\r\n"),
        "{put}"
    );
    assert_eq!(put.split_once("\r\n\r\n").unwrap().1.len(), 56);
    assert!(head.contains("\r\nContent-Length: 21\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD sends no body: {head:?}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_an_error_and_a_closed_connection() {
    let s = start("");
    let addr = s.addr();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("junk request line", b"HELLO THERE\r\n\r\n".to_vec()),
        (
            "CR inside a header value",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n".to_vec(),
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".to_vec(),
        ),
        ("oversized header", {
            let mut r = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
            r.extend(std::iter::repeat_n(b'a', 64 * 1024));
            r.extend(b"\r\n\r\n");
            r
        }),
        ("binary junk", (0u8..=255).cycle().take(4096).collect()),
    ];
    for (what, req) in cases {
        let resp = tokio::task::spawn_blocking(move || raw(addr, &req))
            .await
            .unwrap();
        let status: u16 = resp
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no status line in {resp:?}"));
        assert!((400..500).contains(&status), "{what}: got {status}");
        // `raw` returned, so the server closed the connection.
    }
    // And the server still serves.
    let ok = tokio::task::spawn_blocking(move || raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_do_not_stall_others() {
    let s = start("");
    let addr = s.addr();
    let answered_in = tokio::task::spawn_blocking(move || {
        // Fifty connections that send half a request and then nothing.
        let mut slow: Vec<TcpStream> = (0..50)
            .map(|_| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
                c
            })
            .collect();
        let t = Instant::now();
        let resp = raw(
            addr,
            b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(resp.ends_with("i-0123456789abcdef0"), "{resp}");
        slow.clear();
        t.elapsed()
    })
    .await
    .unwrap();
    assert!(answered_in < Duration::from_secs(2), "took {answered_in:?}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_when_configured() {
    let s = start("[server]\nkeep-alive = true\n");
    let addr = s.addr();
    let resp = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\nGET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(resp.matches("HTTP/1.1 200 OK").count(), 2, "{resp}");
    assert!(
        !resp
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .contains("Connection: close")
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_loopback_serves_too() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        assert!(!common::in_ci(), "CI machines have IPv6 loopback");
        return;
    }
    let c = common::config("").with_listen(vec!["[::1]:0".parse().unwrap()]);
    let s = common::start_with(c, std::sync::Arc::new(fake_metadata::clock::SystemClock));
    let addr = s.addr();
    let resp = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            b"GET /latest/meta-data/local-ipv4 HTTP/1.1\r\nHost: x\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(resp.ends_with("\r\n\r\n172.31.16.10"), "{resp}");
    s.stop().await.unwrap();
}
