//! The socket side: binds the listeners, runs a hyper 1 HTTP/1.1 accept loop per listener,
//! turns each request into an [`imds::Request`] view, and writes [`imds::respond`]'s answer
//! with EC2's headers. What is served lives in [`Published`], an `ArcSwap` of immutable
//! snapshots: a request loads one snapshot and uses it from start to end; a change swaps in a
//! new one.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::imds;
use crate::snapshot::{Body, Published};

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
    shared: Arc<Published>,
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
    shared: Arc<Published>,
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
        shared: &Published,
        req: &hyper::Request<B>,
    ) -> Option<hyper::Response<Body>> {
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
        let now_ms = shared.clock.now_millis();
        let mut r = imds::respond(&snap.imds, &shared.tokens, now_ms, &view);
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
        Some(snap.headers.response(r, now_ms))
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
