//! The socket side: binds the listeners, runs a hyper 1 HTTP/1.1 accept loop per listener,
//! turns each request into an [`imds::Request`] view, and writes [`imds::respond`]'s answer
//! with EC2's headers. The configuration lives in an [`ArcSwap`] of immutable [`Snapshot`]s:
//! a request loads one snapshot and uses it from start to end; a reload swaps in a new one.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::clock::Clock;
use crate::config::Config;
use crate::identity::IdentityKey;
use crate::imds::{self, Content, TokenAuthority};
use crate::live::Instance;

/// A client has this long to send a request's headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head we read; larger ones get an error and a closed connection.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// A token reply whose hop limit is used up is never sent, as on EC2 where its packets die
/// in a router; the connection is held this long (clients give up after a second or two).
const UNREACHABLE_HOLD: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

const TOKEN: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token");
const TOKEN_TTL: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token-ttl-seconds");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const EC2WS: HeaderValue = HeaderValue::from_static("EC2ws");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain");
const BINARY: HeaderValue = HeaderValue::from_static("application/octet-stream");
const HTML: HeaderValue = HeaderValue::from_static("text/html");
const CLOSE: HeaderValue = HeaderValue::from_static("close");
const NONE: HeaderValue = HeaderValue::from_static("none");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");
const ZERO: HeaderValue = HeaderValue::from_static("0");

/// Everything a request needs, compiled once per configuration.
#[derive(Debug)]
pub struct Snapshot {
    pub imds: imds::State,
    pub config: Config,
    log_requests: bool,
    /// EC2's response headers for each [`Content`], without and with the token TTL header
    /// (indexed by [`template_index`]), in EC2's order, `Content-Length` and the TTL
    /// placeholders: a response clones one and sets its values in place, instead of building
    /// and hashing the same map (or growing a clone) on every request.
    headers: [HeaderMap; 6],
}

impl Snapshot {
    /// Compiles a configuration; `now` stamps `Last-Modified`.
    pub fn new(config: Config, imds: imds::State, now: SystemTime) -> Snapshot {
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(now))
            .expect("an HTTP date is a valid header value");
        let keep_alive = config.server.keep_alive;
        let headers = [0, 1, 2, 3, 4, 5].map(|i| {
            let content = [Content::Text, Content::Binary, Content::Html][i / 2];
            let mut h = header_template(content, &last_modified, keep_alive);
            if i % 2 == 1 {
                h.insert(TOKEN_TTL, ZERO);
            }
            h
        });
        Snapshot {
            log_requests: config.log.requests,
            headers,
            imds,
            config,
        }
    }
}

fn template_index(c: Content, token_ttl: bool) -> usize {
    let content = match c {
        Content::Text => 0,
        Content::Binary => 1,
        Content::Html => 2,
    };
    content * 2 + usize::from(token_ttl)
}

/// The headers every response of one kind carries; hyper adds `Date` last.
fn header_template(content: Content, last_modified: &HeaderValue, keep_alive: bool) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    h.insert(
        header::CONTENT_TYPE,
        match content {
            Content::Text => TEXT,
            Content::Binary => BINARY,
            Content::Html => HTML,
        },
    );
    h.insert(
        header::ACCEPT_RANGES,
        if content == Content::Binary {
            BYTES
        } else {
            NONE
        },
    );
    h.insert(header::LAST_MODIFIED, last_modified.clone());
    h.insert(header::CONTENT_LENGTH, ZERO);
    h.insert(header::SERVER, EC2WS);
    if !keep_alive {
        h.insert(header::CONNECTION, CLOSE);
    }
    h
}

/// State shared by every connection.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub tokens: TokenAuthority,
    pub clock: Arc<dyn Clock>,
}

impl Shared {
    pub fn new(snapshot: Snapshot, clock: Arc<dyn Clock>) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            tokens: TokenAuthority::random(),
            clock,
        })
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
}

/// Binds every configured address. With the built-in defaults, a host without IPv6 only loses
/// the `[::1]` listener; an address the user configured must bind.
pub fn bind(cfg: &Config) -> Result<Vec<StdListener>, ServerError> {
    let mut out = Vec::new();
    for addr in cfg.server.listen_addrs() {
        match StdListener::bind(addr) {
            Ok(l) => out.push(l),
            Err(e) if addr.is_ipv6() && cfg.server.listen_is_default() => {
                tracing::info!(%addr, error = %e, "no IPv6 loopback here; serving IPv4 only");
            }
            Err(source) => {
                let hint = match source.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        " (another program uses that port: stop it, or set [server] listen / --listen)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        " (ports below 1024 need root: keep the default 1338, interception maps port 80 to it)"
                    }
                    _ => "",
                };
                return Err(ServerError::Bind { addr, source, hint });
            }
        }
    }
    Ok(out)
}

/// Serves on `listeners` until `shutdown` completes, then drains requests in flight.
pub async fn serve(
    listeners: Vec<StdListener>,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .title_case_headers(true)
        .keep_alive(true);
    let graceful = Arc::new(GracefulShutdown::new());
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        l.set_nonblocking(true)?;
        let l = TcpListener::from_std(l)?;
        tasks.spawn(accept_loop(
            l,
            shared.clone(),
            builder.clone(),
            graceful.clone(),
        ));
    }
    shutdown.await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| unreachable!("accept loops ended"));
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still in flight after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}

async fn accept_loop(
    l: TcpListener,
    shared: Arc<Shared>,
    builder: http1::Builder,
    graceful: Arc<GracefulShutdown>,
) {
    loop {
        let (stream, peer) = match l.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = Connection::new(&stream, peer);
        let shared = shared.clone();
        let svc = service_fn(move |req| {
            let answer = conn.handle(&shared, &req);
            async move {
                match answer {
                    Some(resp) => Ok(resp),
                    None => {
                        tokio::time::sleep(UNREACHABLE_HOLD).await;
                        Err(Unreachable)
                    }
                }
            }
        });
        let fut = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            // Client errors (bad requests, resets) are answered or dropped by hyper; nothing
            // to do here.
            let _ = fut.await;
        });
    }
}

/// A reply that, on EC2, would not reach the client: the connection ends without one.
#[derive(Debug)]
struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("token reply withheld: the client is beyond the hop limit")
    }
}

impl std::error::Error for Unreachable {}

/// Per-connection state: the socket, to set the hop limit of a token reply on it.
struct Connection {
    fd: RawFd,
    /// An IPv6 socket (the peer's address has the socket's family: an IPv4 client of a
    /// dual-stack listener shows as `::ffff:a.b.c.d`).
    ipv6: bool,
    peer: SocketAddr,
    /// The socket's own TTL before a token reply lowered it, to restore for later replies.
    lowered_from: std::cell::Cell<Option<u32>>,
    /// Whether the peer is on this host, once a token PUT asked.
    local: std::cell::Cell<Option<bool>>,
}

impl Connection {
    /// No system call here: the connection's own address is asked for only by a token PUT
    /// from a peer that is not loopback (see [`Connection::peer_is_local`]).
    fn new(stream: &TcpStream, peer: SocketAddr) -> Self {
        Connection {
            fd: stream.as_raw_fd(),
            ipv6: peer.is_ipv6(),
            peer,
            lowered_from: std::cell::Cell::new(None),
            local: std::cell::Cell::new(None),
        }
    }

    /// The answer, or `None` when EC2's answer would never reach this client.
    fn handle<B>(
        &self,
        shared: &Shared,
        req: &hyper::Request<B>,
    ) -> Option<hyper::Response<Full<Bytes>>> {
        let snap = shared.snapshot.load();
        let mut view = imds::Request::new(req.method(), req.uri().path());
        // One pass over the few headers a client sends, instead of hashing four names to look
        // each up; as `HeaderMap::get` does, the first value of a name counts.
        let (mut token, mut ttl, mut expect) = (None, None, None);
        for (name, value) in req.headers() {
            if *name == TOKEN {
                token = token.or(Some(value));
            } else if *name == TOKEN_TTL {
                ttl = ttl.or(Some(value));
            } else if *name == FORWARDED_FOR {
                view.forwarded = true;
            } else if *name == header::EXPECT {
                expect = expect.or(Some(value));
            }
        }
        view.token = token.map(HeaderValue::as_bytes);
        view.ttl = ttl.map(HeaderValue::as_bytes);
        view.expect_continue =
            expect.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let mut r = imds::respond(&snap.imds, &shared.tokens, shared.clock.now_millis(), &view);
        if let Some(limit) = r.hop_limit {
            // A peer on this host gets every reply: no router lies between, so the TTL would
            // change nothing and setting it costs system calls on the v2 hot path. A peer that
            // is not this host (a container behind a bridge) is one hop away, as it is on EC2
            // where IMDS lies beyond the instance; the kernel's TTL does the rest.
            if self.peer_is_local() {
                r.hop_limit = None;
            } else if limit == 1 {
                tracing::debug!(peer = %self.peer, "token reply withheld: beyond the hop limit");
                return None;
            } else {
                r.hop_limit = Some(limit - 1);
            }
        }
        self.set_hop_limit(r.hop_limit);
        if snap.log_requests {
            tracing::info!(
                target: "fake_metadata::access",
                peer = %self.peer,
                method = %req.method(),
                path = req.uri().path(),
                status = r.status.as_u16(),
                v2 = view.token.is_some(),
                "request"
            );
        }
        Some(to_http(r, &snap))
    }

    /// Whether the client runs on this host: loopback, the IMDS address itself (the source
    /// of a REDIRECTed connection), the connection's own address, or any address of ours.
    fn peer_is_local(&self) -> bool {
        if let Some(local) = self.local.get() {
            return local;
        }
        let local = self.find_peer_is_local();
        self.local.set(Some(local));
        local
    }

    fn find_peer_is_local(&self) -> bool {
        let ip = self.peer.ip();
        if ip.is_loopback() || ip == crate::intercept::IMDS_V4 || ip == crate::intercept::IMDS_V6 {
            return true;
        }
        let local = with_socket(self.fd, |sock| sock.local_addr())
            .ok()
            .and_then(|a| a.as_socket());
        if local.is_some_and(|l| l.ip() == ip) {
            return true;
        }
        nix::ifaddrs::getifaddrs().is_ok_and(|mut addrs| {
            addrs.any(|a| {
                a.address.is_some_and(|s| {
                    s.as_sockaddr_in().map(|v4| std::net::IpAddr::V4(v4.ip())) == Some(ip)
                        || s.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())) == Some(ip)
                })
            })
        })
    }

    /// EC2's hop limit: the token reply leaves with the configured IP TTL, so a client more
    /// hops away never receives it. Later replies on the same connection get the TTL back.
    fn set_hop_limit(&self, hop: Option<u8>) {
        let want = match (hop, self.lowered_from.get()) {
            (Some(h), _) => u32::from(h),
            (None, Some(orig)) => orig,
            (None, None) => return,
        };
        let result = with_socket(self.fd, |sock| {
            let current = if self.ipv6 {
                sock.unicast_hops_v6()?
            } else {
                sock.ttl_v4()?
            };
            if hop.is_some() && self.lowered_from.get().is_none() {
                self.lowered_from.set(Some(current));
            } else if hop.is_none() {
                self.lowered_from.set(None);
            }
            if self.ipv6 {
                sock.set_unicast_hops_v6(want)
            } else {
                sock.set_ttl_v4(want)
            }
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot set the hop limit on a connection");
        }
    }
}

/// Lends the connection's socket to `f`, to set a socket option.
#[allow(unsafe_code)]
fn with_socket<T>(fd: RawFd, f: impl FnOnce(socket2::SockRef<'_>) -> T) -> T {
    // SAFETY: `fd` belongs to the TcpStream that hyper owns for this connection. The service
    // holding the `Connection` is owned by the same connection future, so it is only called
    // while the stream (and so the fd) is open, and the borrow ends with this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    f(socket2::SockRef::from(&fd))
}

/// Adds EC2's headers. hyper sends no body for HEAD and keeps `Content-Length`.
fn to_http(r: imds::Response, snap: &Snapshot) -> hyper::Response<Full<Bytes>> {
    let mut h = snap.headers[template_index(r.content, r.token_ttl.is_some())].clone();
    // Replacing a value keeps the header's place.
    if let Some(v) = h.get_mut(header::CONTENT_LENGTH) {
        *v = number(r.body.len());
    }
    if let Some(t) = r.token_ttl
        && let Some(v) = h.get_mut(TOKEN_TTL)
    {
        *v = number(t as usize);
    }
    if let Some(a) = r.allow {
        h.insert(header::ALLOW, HeaderValue::from_static(a));
    }
    let mut resp = hyper::Response::new(Full::new(r.body));
    *resp.status_mut() = r.status;
    *resp.headers_mut() = h;
    resp
}

/// Numbers up to here (every token TTL; every body but the largest) are sliced from
/// [`DIGITS`] instead of formatted into a new allocation.
const SMALL_NUMBERS: usize = imds::token::TTL_MAX as usize + 1;
/// "0123456789101112…21600": each number below [`SMALL_NUMBERS`] in decimal, back to back.
static DIGITS: [u8; digits_offset(SMALL_NUMBERS)] = digits();

const fn digits_width(n: usize) -> usize {
    match n {
        0..10 => 1,
        10..100 => 2,
        100..1_000 => 3,
        1_000..10_000 => 4,
        _ => 5,
    }
}

/// Where `n` starts in [`DIGITS`].
const fn digits_offset(n: usize) -> usize {
    match n {
        0..10 => n,
        10..100 => 10 + (n - 10) * 2,
        100..1_000 => 190 + (n - 100) * 3,
        1_000..10_000 => 2_890 + (n - 1_000) * 4,
        _ => 38_890 + (n - 10_000) * 5,
    }
}
const _: () = assert!(
    SMALL_NUMBERS <= 100_000,
    "DIGITS holds numbers of up to 5 digits"
);

const fn digits() -> [u8; digits_offset(SMALL_NUMBERS)] {
    let mut out = [0u8; digits_offset(SMALL_NUMBERS)];
    let (mut n, mut at) = (0, 0);
    while n < SMALL_NUMBERS {
        let w = digits_width(n);
        let (mut i, mut v) = (w, n);
        while i > 0 {
            i -= 1;
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += w;
        n += 1;
    }
    out
}

/// A decimal header value (`Content-Length`, the token TTL), without an allocation for the
/// usual sizes.
fn number(n: usize) -> HeaderValue {
    if n < SMALL_NUMBERS {
        let at = digits_offset(n);
        if let Ok(s) = std::str::from_utf8(&DIGITS[at..at + digits_width(n)]) {
            return HeaderValue::from_static(s);
        }
    }
    HeaderValue::from(n)
}

/// A server running in the background on the current tokio runtime, for tests and tools.
pub struct Running {
    pub addrs: Vec<SocketAddr>,
    pub instance: Arc<Instance>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    timers: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts serving `config` (its `listen` addresses; port 0 picks a free one).
    pub fn start(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
        let listeners = bind(&config)?;
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<_, _>>()?;
        let instance = Instance::new(config, clock, Some(IdentityKey::ephemeral()?))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(listeners, instance.shared().clone(), async {
            let _ = rx.await;
        }));
        let timers = tokio::spawn(crate::live::run_timers(instance.clone()));
        Ok(Running {
            addrs,
            instance,
            stop: Some(tx),
            task,
            timers,
        })
    }

    /// The first address, e.g. `127.0.0.1:43127`.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// `http://ADDR` of the first listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Stops accepting and drains.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.timers.abort();
        (&mut self.task).await.expect("server task does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_their_formatted_value() {
        for n in (0..SMALL_NUMBERS + 100).chain([99_999, 1 << 20, usize::MAX]) {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn templates_keep_ec2s_header_order() {
        let lm = HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT");
        let names = |h: &HeaderMap| h.keys().map(|k| k.as_str().to_owned()).collect::<Vec<_>>();
        let close = header_template(Content::Text, &lm, false);
        assert_eq!(
            names(&close),
            [
                "content-type",
                "accept-ranges",
                "last-modified",
                "content-length",
                "server",
                "connection"
            ]
        );
        let mut h = header_template(Content::Binary, &lm, true);
        *h.get_mut(header::CONTENT_LENGTH).unwrap() = number(16_384);
        assert_eq!(names(&h)[3], "content-length");
        assert_eq!(h[header::CONTENT_LENGTH], "16384");
        assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert!(!h.contains_key(header::CONNECTION));
    }
}
