//! Malformed and hostile HTTP against the real server: junk request lines, control characters
//! in header values, oversized heads, bodies where none belong, a 10 MiB PUT on the token
//! path, request smuggling through a GET body, 500 half-open connections and a slow drip.
//! Each gets an error status (400/413/414/431) or a closed connection, never a 200 it should
//! not; the daemon's memory (VmHWM of a spawned binary) stays bounded; and a well-behaved
//! client keeps being answered quickly meanwhile.
//!
//! Protocol cases run on [`Running::start`] in this process; the resource cases spawn the
//! binary, so that its `/proc/PID/status` measures the server alone.

mod common;
use common::daemon;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::http::{self, Reply, exchange};
use daemon::Daemon;

const ID_PATH: &str = "/latest/meta-data/instance-id";
const ID: &str = "i-0123456789abcdef0";

/// Sends `request` while reading: the server may answer (and close) before it has read all
/// of a large request, so the write runs on its own thread and may fail with a reset.
fn send_big(addr: SocketAddr, request: Vec<u8>) -> (Option<Reply>, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&request);
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let elapsed = t.elapsed();
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    (http::parse(&out), elapsed)
}

/// Runs `f` against an in-process server of `toml` on a blocking thread.
async fn with_server<T: Send + 'static>(
    toml: &str,
    f: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> T {
    let s = common::start(toml);
    let addr = s.addr();
    let out = tokio::task::spawn_blocking(move || f(addr)).await.unwrap();
    s.stop().await.unwrap();
    out
}

fn assert_served(addr: SocketAddr, what: &str) {
    let r = http::get(addr, ID_PATH, None).unwrap_or_else(|| panic!("after {what}: no reply"));
    assert_eq!((r.status, r.body.as_str()), (200, ID), "after {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn junk_request_lines_get_400_and_a_closed_connection() {
    with_server("", |addr| {
        let cases: &[(&str, &[u8])] = &[
            ("a word", b"HELLO\r\n\r\n"),
            ("two words", b"HELLO THERE\r\n\r\n"),
            ("no target", b"GET\r\n\r\n"),
            ("HTTP/0.9", b"GET /\r\n\r\n"),
            ("unknown version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
            ("trailing junk", b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
            ("NUL in the method", b"G\0T / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("no method", b" / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("DEL in the path", b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("space in the path", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
            (
                "bad absolute form",
                b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            ("header without colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n"),
            (
                "space in a header name",
                b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
            ),
            ("empty header name", b"GET / HTTP/1.1\r\n: x\r\n\r\n"),
            ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            ("binary", &[0xff; 512]),
        ];
        for (what, req) in cases {
            let t = Instant::now();
            let r = exchange(addr, req, Duration::from_secs(12));
            let took = t.elapsed();
            match r {
                Some(r) => assert!(
                    matches!(r.status, 400 | 505),
                    "{what}: got {} ({:?})",
                    r.status,
                    r.head
                ),
                // An unanswerable request may only be closed, never left hanging: the
                // header-read timeout (10 s) is the bound.
                None => eprintln!("{what}: closed without a status line"),
            }
            assert!(took < Duration::from_secs(11), "{what}: open for {took:?}");
        }
        assert_served(addr, "junk request lines");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_in_header_values_are_refused() {
    with_server("", |addr| {
        let cases: &[(&str, &[u8])] = &[
            ("CR", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"),
            ("bare LF inside a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n"),
            ("NUL", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"),
            ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
            (
                "CR in the token",
                b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token: abc\rdef\r\n\r\n",
            ),
            (
                "CR in the TTL",
                b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r1\r\n\r\n",
            ),
            (
                "header injection in the path",
                b"GET /latest/meta-data/\r\nX-Forwarded-For: 1.2.3.4 HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
        ];
        for (what, req) in cases {
            let r = exchange(addr, req, Duration::from_secs(12));
            match &r {
                Some(r) => assert_eq!(r.status, 400, "{what}: {:?}", r.head),
                None => panic!("{what}: closed without a 400"),
            }
        }
        assert_served(addr, "control characters");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_heads_get_431_and_the_connection_closes() {
    with_server("", |addr| {
        let mib = 1024 * 1024;
        let mut one_header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        one_header.extend(std::iter::repeat_n(b'a', mib));
        one_header.extend(b"\r\n\r\n");
        let mut many_headers = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..20_000 {
            many_headers.extend(format!("X-H{i}: v\r\n").as_bytes());
        }
        many_headers.extend(b"\r\n");
        let mut long_uri = b"GET /latest/meta-data/".to_vec();
        long_uri.extend(std::iter::repeat_n(b'a', mib));
        long_uri.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut token =
            b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token: ".to_vec();
        token.extend(std::iter::repeat_n(b'A', mib));
        token.extend(b"\r\n\r\n");
        let mut no_end = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        no_end.extend(std::iter::repeat_n(b'a', mib));
        for (what, req) in [
            ("a 1 MiB header", one_header),
            ("20,000 headers", many_headers),
            ("a 1 MiB URI", long_uri),
            ("a 1 MiB token", token),
            ("1 MiB of head with no end", no_end),
        ] {
            let (r, took) = send_big(addr, req);
            match r {
                Some(r) => assert!(
                    matches!(r.status, 431 | 414 | 400),
                    "{what}: got {} {:?}",
                    r.status,
                    r.head
                ),
                None => eprintln!("{what}: reset without a status line"),
            }
            assert!(took < Duration::from_secs(11), "{what}: open for {took:?}");
        }
        assert_served(addr, "oversized heads");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_on_get_is_ignored_and_never_read_as_a_request() {
    // A GET with a body is answered; with keep-alive on, a body that looks like a second
    // request is skipped as the body it is (no request smuggling), and the next real request
    // on the connection is answered.
    let smuggled = "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n";
    for cfg in ["", "[server]\nkeep-alive = true\n"] {
        let req = format!(
            "GET {ID_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}GET /latest/meta-data/instance-type HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            smuggled.len()
        );
        let chunked = format!(
            "GET {ID_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        );
        let keep_alive = !cfg.is_empty();
        with_server(cfg, move |addr| {
            for (what, req) in [("content-length", req), ("chunked", chunked)] {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
                s.write_all(req.as_bytes()).unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {out}");
                assert!(out.contains(ID), "{what}: {out}");
                assert!(
                    !out.contains("ami-0abcdef1234567890"),
                    "{what}: the body was answered as a request: {out}"
                );
                let answers = out.matches("HTTP/1.1 ").count();
                if keep_alive && what == "content-length" {
                    assert_eq!(answers, 2, "{what}: {out}");
                    assert!(out.ends_with("t3.micro"), "{out}");
                } else if !keep_alive {
                    assert_eq!(answers, 1, "Connection: close after one answer: {out}");
                }
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_framing_is_refused() {
    with_server("[server]\nkeep-alive = true\n", |addr| {
        let cases: &[(&str, &[u8])] = &[
            (
                "two different Content-Lengths",
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            ),
            (
                "a negative Content-Length",
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            ),
            (
                "a Content-Length that overflows",
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            ),
            (
                "a transfer coding other than chunked last",
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            ),
            (
                "a bad chunk size",
                b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            ),
        ];
        for (what, req) in cases {
            let r = exchange(addr, req, Duration::from_secs(12));
            if let Some(r) = &r {
                // The token PUT is answered before its body is read; what matters is that
                // the bad framing ends the connection instead of being parsed as requests.
                assert!(
                    r.status == 400 || (r.status == 200 && what.contains("chunk size")),
                    "{what}: got {} {:?}",
                    r.status,
                    r.head
                );
            }
        }
        assert_served(addr, "ambiguous framing");
    })
    .await;
}

/// A spawned daemon for the resource tests.
fn spawn(tag: &str, extra: &str) -> (tempfile::TempDir, Daemon) {
    let dir = daemon::workdir(tag);
    let cfg = dir.path().join("config.toml");
    daemon::write_config(&cfg, &format!("{}{extra}", daemon::base_config(dir.path())));
    let d = Daemon::serve(&cfg).start();
    (dir, d)
}

/// A client that GETs the instance id in a loop until `stop`, and reports the slowest
/// answer and any failure.
struct Prober {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(u64, Duration, Vec<String>)>,
}

impl Prober {
    fn start(addr: SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut n, mut worst, mut failures) = (0u64, Duration::ZERO, Vec::new());
            let until = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < until {
                let t = Instant::now();
                match http::get(addr, ID_PATH, None) {
                    Some(r) if r.status == 200 && r.body == ID => {}
                    other => failures.push(format!("{other:?}")),
                }
                worst = worst.max(t.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (n, worst, failures)
        });
        Prober { stop, handle }
    }

    /// Stops and checks: some answers, none failed, the slowest under `bound`.
    fn finish(self, what: &str, bound: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let (n, worst, failures) = self.handle.join().unwrap();
        eprintln!("{what}: a good client got {n} answers meanwhile, slowest {worst:?}");
        assert!(n > 0, "{what}: the good client got no turn");
        assert!(
            failures.is_empty(),
            "{what}: {} failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(2)]
        );
        assert!(worst < bound, "{what}: slowest answer {worst:?}");
    }
}

#[test]
fn a_huge_put_body_is_not_buffered() {
    let (_dir, d) = spawn("huge-body", "");
    let addr = d.addr;
    let (_, hwm_before) = d.memory_kib();
    let prober = Prober::start(addr);
    let ten_mib = 10 * 1024 * 1024;
    for round in 0..3 {
        let mut cl = format!(
            "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: {ten_mib}\r\n\r\n"
        )
        .into_bytes();
        cl.extend(std::iter::repeat_n(b'x', ten_mib));
        let mut chunked = b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..10 {
            chunked.extend(format!("{:x}\r\n", 1024 * 1024).as_bytes());
            chunked.extend(std::iter::repeat_n(b'y', 1024 * 1024));
            chunked.extend(b"\r\n");
        }
        chunked.extend(b"0\r\n\r\n");
        let mut get =
            format!("GET {ID_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {ten_mib}\r\n\r\n")
                .into_bytes();
        get.extend(std::iter::repeat_n(b'z', ten_mib));
        for (what, req) in [
            ("10 MiB PUT (content-length)", cl),
            ("10 MiB PUT (chunked)", chunked),
            ("10 MiB GET body", get),
        ] {
            let (r, took) = send_big(addr, req);
            let r = r.unwrap_or_else(|| panic!("{what}: no answer"));
            // The token is issued from the head alone (a body means nothing to EC2); the
            // connection closes after the reply, so the rest is never read.
            assert!(matches!(r.status, 200 | 413), "{what}: {r:?}");
            if r.status == 200 && what.contains("PUT") {
                assert_eq!(r.body.len(), 56, "{what}: {r:?}");
            }
            assert!(r.head.contains("Connection: close"), "{what}: {:?}", r.head);
            assert!(
                took < Duration::from_secs(10),
                "{what} round {round}: {took:?}"
            );
        }
    }
    prober.finish("10 MiB bodies", Duration::from_secs(2));
    let (rss, hwm) = d.memory_kib();
    eprintln!("daemon memory: VmHWM {hwm_before} KiB before, {hwm} KiB after; VmRSS {rss} KiB");
    assert!(
        hwm < hwm_before + 16 * 1024,
        "90 MiB of bodies grew the daemon's peak memory from {hwm_before} to {hwm} KiB"
    );
}

#[test]
fn slowloris_is_cut_off_and_others_are_served() {
    let (_dir, d) = spawn("slowloris", "");
    let addr = d.addr;
    let fds_before = d.open_fds();
    let (_, hwm_before) = d.memory_kib();
    let prober = Prober::start(addr);

    // 500 connections that send half a head, then nothing.
    let t0 = Instant::now();
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|i| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(
                format!("GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ").as_bytes(),
            )
            .unwrap();
            c
        })
        .collect();
    // And one that drips a byte every 200 ms, forever.
    let dripped = Arc::new(AtomicU64::new(0));
    let drip = {
        let dripped = dripped.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(30) {
                if c.write_all(b"X").is_err() {
                    break;
                }
                dripped.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
            t.elapsed()
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let fds_held = d.open_fds();
    assert!(
        fds_held >= fds_before + 400,
        "the daemon should hold the connections for now: {fds_before} -> {fds_held}"
    );

    // The header-read timeout (10 s) closes every one of them.
    let mut closed = 0;
    for c in &mut slow {
        c.set_read_timeout(Some(
            Duration::from_secs(15)
                .saturating_sub(t0.elapsed())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        let mut buf = [0u8; 512];
        match c.read(&mut buf) {
            Ok(_) => closed += 1, // EOF, or a 408 before the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    let cut_after = t0.elapsed();
    assert_eq!(
        closed, 500,
        "half-open connections still open after {cut_after:?}"
    );
    let drip_cut = drip.join().unwrap();
    eprintln!(
        "500 half-open connections closed after {cut_after:?}; the dripper was cut after {drip_cut:?} ({} bytes)",
        dripped.load(Ordering::Relaxed)
    );
    assert!(
        drip_cut < Duration::from_secs(15),
        "a slow drip is cut like the rest"
    );
    prober.finish("slowloris", Duration::from_secs(2));
    drop(slow);

    let t = Instant::now();
    while d.open_fds() > fds_before + 5 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let fds_after = d.open_fds();
    assert!(
        fds_after <= fds_before + 5,
        "fds: {fds_before} -> {fds_held} -> {fds_after}"
    );
    let (_, hwm) = d.memory_kib();
    eprintln!("fds {fds_before} -> {fds_held} -> {fds_after}; VmHWM {hwm_before} -> {hwm} KiB");
    assert!(
        hwm < hwm_before + 32 * 1024,
        "VmHWM {hwm_before} -> {hwm} KiB"
    );
}

#[test]
fn a_flood_of_malformed_requests_leaves_memory_bounded() {
    let (_dir, d) = spawn("flood", "[log]\nrequests = true\n");
    let addr = d.addr;
    // Warm up, so allocator arenas of the worker threads exist before the baseline.
    for _ in 0..200 {
        http::get(addr, ID_PATH, None).unwrap();
    }
    let (rss_before, _) = d.memory_kib();
    let prober = Prober::start(addr);
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend(b"\r\n\r\n");
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(vec![
        b"HELLO\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n".to_vec(),
        (0u8..=255).cycle().take(2048).collect(),
        b"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 99999\r\n\r\n"
            .to_vec(),
        b"GET /latest/meta-data/ HTTP/1.1\r\nX-aws-ec2-metadata-token: forged\r\n\r\n".to_vec(),
        big,
    ]);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut statuses = std::collections::BTreeMap::<String, u32>::new();
                for i in 0..600 {
                    let req = requests[(i + w) % requests.len()].clone();
                    let (r, _) = send_big(addr, req);
                    *statuses
                        .entry(r.map_or("closed".into(), |r| r.status.to_string()))
                        .or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    let mut all = std::collections::BTreeMap::<String, u32>::new();
    for w in workers {
        for (k, v) in w.join().unwrap() {
            *all.entry(k).or_default() += v;
        }
    }
    prober.finish("flood", Duration::from_secs(2));
    let (rss, hwm) = d.memory_kib();
    eprintln!("2400 hostile requests: {all:?}; VmRSS {rss_before} -> {rss} KiB (VmHWM {hwm})");
    assert!(!all.contains_key("200"), "{all:?}");
    assert!(
        rss < rss_before + 16 * 1024,
        "VmRSS {rss_before} -> {rss} KiB"
    );
}
