//! Raw HTTP over a fresh TCP connection: bytes out, everything the server sends until it
//! closes (or a timeout) back, parsed into a [`Reply`]. The one reader every test uses, so a
//! test sees exactly the bytes a client would, headers and order included.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::patience;

/// A parsed reply: status, the head (status line and headers), the body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    /// The body as text (lossy); [`Reply::bytes`] has it byte for byte.
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Reply {
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub fn status_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or_default()
    }

    /// The header fields in the order sent, as `(name, value)`; panics on a line that is not
    /// `name: value`.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.head
            .split("\r\n")
            .skip(1)
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("name: value");
                (n.to_string(), v.to_string())
            })
            .collect()
    }
}

/// What one connection returned: the request written, then everything read until the server
/// closed or `timeout` passed. `Err` only when the connection could not be made.
pub fn roundtrip(
    addr: impl ToSocketAddrs,
    request: &[u8],
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(out)
}

/// Sends raw bytes, reads until the server closes (or 5 s), returns what came back as text.
pub fn raw(addr: impl ToSocketAddrs, request: &[u8]) -> String {
    let out = roundtrip(addr, request, patience(Duration::from_secs(5))).expect("connect");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends raw bytes, reads until the server closes (or `timeout`). `None`: no connection, or
/// the server closed (or reset) without a status line.
pub fn exchange(addr: impl ToSocketAddrs, request: &[u8], timeout: Duration) -> Option<Reply> {
    parse(&roundtrip(addr, request, timeout).ok()?)
}

/// A reply from what a connection returned; `None` without a status line.
pub fn parse(out: &[u8]) -> Option<Reply> {
    let at = out.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, bytes) = match at {
        Some(i) => (&out[..i], &out[i + 4..]),
        None => (out, &[][..]),
    };
    let status = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    Some(Reply {
        status,
        head: String::from_utf8_lossy(head).into_owned(),
        body: String::from_utf8_lossy(bytes).into_owned(),
        bytes: bytes.to_vec(),
    })
}

/// Sends `request` and reads one reply as a kept-alive client does, without waiting for the
/// server to close: the head, each line of which must end in CRLF, then `Content-Length` bytes
/// of body (none for a `HEAD` request).
pub fn exchange_one(addr: impl ToSocketAddrs, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).expect("write");
    let mut r = BufReader::new(s);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(
            line.ends_with("\r\n"),
            "every header line ends with CRLF: {line:?}"
        );
        let line = line.trim_end_matches("\r\n").to_string();
        if line.is_empty() && !lines.is_empty() {
            break;
        }
        lines.push(line);
    }
    let head = lines.join("\r\n");
    let reply = Reply {
        status: head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0),
        head,
        body: String::new(),
        bytes: Vec::new(),
    };
    let len: usize = reply
        .headers()
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut bytes = vec![
        0;
        if request.starts_with(b"HEAD ") {
            0
        } else {
            len
        }
    ];
    r.read_exact(&mut bytes).unwrap();
    Reply {
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        ..reply
    }
}

/// `(status, head, body)` of one request (Host `169.254.169.254` and `headers`) on a fresh
/// connection; panics without a reply.
pub fn http(
    addr: impl ToSocketAddrs,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let r =
        exchange(addr, req.as_bytes(), patience(Duration::from_secs(5))).expect("an HTTP response");
    (r.status, r.head, r.body)
}

/// `GET path` (with an optional IMDSv2 token) on a new connection.
pub fn get(addr: impl ToSocketAddrs, path: &str, token: Option<&str>) -> Option<Reply> {
    let t = token
        .map(|t| format!("X-aws-ec2-metadata-token: {t}\r\n"))
        .unwrap_or_default();
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n{t}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
}

/// An IMDSv2 token.
pub fn token(addr: impl ToSocketAddrs) -> String {
    let r = exchange(
        addr,
        b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n",
        Duration::from_secs(5),
    )
    .expect("a token reply");
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}
