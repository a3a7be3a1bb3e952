//! "Does the daemon answer through the interception?" — one metadata GET over a plain std
//! `TcpStream`, so `status` needs no HTTP client and no runtime.
//!
//! It asks for an IMDSv2 token first (PUT /latest/api/token) and sends it if it got one, so the
//! check passes whether the daemon is configured for IMDSv1 or v2-only. HTTP/1.0 keeps the
//! response simple: no chunking, the server closes the connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{IMDS_V4, InterceptError};
use crate::endpoint::Endpoint;

/// The path `status` fetches.
pub const INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id";

/// Largest response we read; instance ids are ~20 bytes.
const MAX_RESPONSE: u64 = 64 * 1024;

/// GETs `http://169.254.169.254/latest/meta-data/instance-id`; `Ok(body)` on 200.
pub fn probe_instance_id(timeout: Duration) -> Result<String, InterceptError> {
    probe(SocketAddr::from((IMDS_V4, 80)), INSTANCE_ID_PATH, timeout)
}

/// Asks `endpoint` at `target` what only the daemon would answer, as `status` does for each
/// endpoint it routes; `Ok` with the answer, described ("instance id i-…").
pub fn ask(
    endpoint: Endpoint,
    target: SocketAddr,
    timeout: Duration,
) -> Result<String, InterceptError> {
    match endpoint {
        Endpoint::Imds => {
            probe(target, INSTANCE_ID_PATH, timeout).map(|id| format!("instance id {id}"))
        }
        // No id and no token: the agents' refusals, which say that they answer (and give
        // nothing away).
        Endpoint::Ecs => refused(target, "/v2/credentials/", timeout)
            .map(|s| format!("the ECS agent's refusal of a request without an id (HTTP {s})")),
        Endpoint::PodIdentity => refused(target, "/v1/credentials", timeout)
            .map(|s| format!("Pod Identity's refusal of a request without a token (HTTP {s})")),
    }
}

/// GETs `path` from `target` with no credentials id or token; `Ok(status)` when it is
/// refused as the agents refuse it (a 4xx with a JSON or text body).
fn refused(target: SocketAddr, path: &str, timeout: Duration) -> Result<u16, InterceptError> {
    let fail = |message: String| InterceptError::Probe {
        target: target.to_string(),
        path: path.to_string(),
        message,
    };
    match request(target, "GET", path, "", timeout).map_err(fail)? {
        (status @ 400..=499, body) if !body.is_empty() => Ok(status),
        (status, _) => Err(fail(format!(
            "HTTP status {status}, not the agent's refusal"
        ))),
    }
}

/// GETs `path` from `target` (each connection limited by `timeout`); `Ok(body)` on 200.
pub fn probe(target: SocketAddr, path: &str, timeout: Duration) -> Result<String, InterceptError> {
    let fail = |message: String| InterceptError::Probe {
        target: target.to_string(),
        path: path.to_string(),
        message,
    };
    let token = match request(
        target,
        "PUT",
        "/latest/api/token",
        "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n",
        timeout,
    ) {
        Ok((200, body)) => Some(body),
        Ok(_) => None,
        Err(e) => return Err(fail(e)),
    };
    let header = token
        .map(|t| format!("X-aws-ec2-metadata-token: {}\r\n", t.trim()))
        .unwrap_or_default();
    match request(target, "GET", path, &header, timeout).map_err(fail)? {
        (200, body) => Ok(body),
        (status, _) => Err(fail(format!("HTTP status {status}"))),
    }
}

/// One HTTP/1.0 exchange; returns the status code and the body.
fn request(
    target: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let host = match target {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    let req =
        format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n{headers}\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading the response: {e}"))?;
    parse_response(&raw)
}

/// Splits a raw HTTP/1.x response into status and body (cut to Content-Length if given).
fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "not an HTTP response (no end of headers)".to_string())?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let body = match length {
        Some(n) => body.get(..n).unwrap_or(body),
        None => body,
    };
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};
    use std::thread;

    /// Serves `responses` in order, one per connection; returns the requests it saw.
    fn serve(responses: Vec<&'static str>) -> (SocketAddr, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            for response in responses {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                conn.write_all(response.as_bytes()).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn sends_the_token_it_gets() {
        let (addr, server) = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ntoken",
            "HTTP/1.1 200 OK\r\ncontent-length: 19\r\n\r\ni-0123456789abcdef0",
        ]);
        let body = probe(addr, INSTANCE_ID_PATH, Duration::from_secs(5)).unwrap();
        assert_eq!(body, "i-0123456789abcdef0");
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with("PUT /latest/api/token HTTP/1.0\r\n"));
        assert!(seen[1].starts_with("GET /latest/meta-data/instance-id HTTP/1.0\r\n"));
        assert!(seen[1].contains("X-aws-ec2-metadata-token: token\r\n"));
    }

    #[test]
    fn works_without_a_token_and_reports_bad_status() {
        let (addr, server) = serve(vec![
            "HTTP/1.1 403 Forbidden\r\n\r\n",
            "HTTP/1.0 200 OK\r\n\r\nbody-until-close",
        ]);
        assert_eq!(
            probe(addr, "/x", Duration::from_secs(5)).unwrap(),
            "body-until-close"
        );
        assert!(!server.join().unwrap()[1].contains("token:"));

        let (addr, _server) = serve(vec![
            "HTTP/1.1 404 Not Found\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\n\r\n",
        ]);
        let err = probe(addr, "/x", Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("HTTP status 404"), "{err}");
    }

    #[test]
    fn nobody_listening_is_an_error_naming_the_target() {
        let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap(); // the listener is dropped: the port is closed
        let err = probe(addr, INSTANCE_ID_PATH, Duration::from_secs(1)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("http://{addr}/latest/meta-data/instance-id")),
            "{msg}"
        );
        assert!(msg.contains("fake-metadata serve"), "{msg}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
