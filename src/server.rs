//! The socket side: binds the listeners, runs a hyper 1 HTTP/1.1 accept loop per listener,
//! turns each request into an [`imds::Request`] view, and writes [`imds::respond`]'s answer
//! with EC2's headers. What is served lives in [`Published`], an `ArcSwap` of immutable
//! snapshots: a request loads one snapshot and uses it from start to end; a change swaps in a
//! new one.
//!
//! What one client may hold is bounded: at most `[server] max-connections` connections are
//! served at once (the rest wait in the kernel's listen backlog, costing no descriptor), a
//! client has [`HEADER_READ_TIMEOUT`] to send each request (hyper starts it when it waits
//! for the next request, so it is also the keep-alive idle timeout) and [`WRITE_TIMEOUT`] to
//! take each reply. When a burst of connections has ended, the memory it used goes back to
//! the system.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::Either;
use http::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutWriter;

use crate::config::Config;
use crate::fault::{Effect, FaultId, Faults, Hit};
use crate::imds;
use crate::snapshot::{Body, Published};

/// A client has this long to send a request's headers (slowloris guard); on a keep-alive
/// connection the time waiting for the next request counts too.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A client has this long to take a reply off the socket once the kernel's buffer is full; a
/// client that sends and never reads is then dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A burst of at least this many connections at once gives its memory back when the last
/// one ends. Fewer keep at most ~3 MiB in the allocator's arenas, and a steady load (the
/// soak's 200 connections) never pays for trimming nor sees its resident size dip and
/// climb back.
const BURST: usize = 256;
/// At most one "accept failed" line this often; the next one counts those left out.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);
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

/// Binds the address containers are DNATed to (`169.254.169.254:<port>`, see
/// `intercept::Plan::with_containers`); `None` when that address is not on an interface here
/// (`install` has not run). Binding is the check, as the daemon's sandbox allows no netlink
/// socket to list addresses. The socket outlives the address being removed and added again
/// (a restart of the interception unit) and receives again once it is back.
pub fn bind_container(addr: SocketAddr) -> Result<Option<StdListener>, ServerError> {
    match StdListener::bind(addr) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Ok(None),
        Err(source) => Err(ServerError::Bind {
            addr,
            hint: if source.kind() == std::io::ErrorKind::AddrInUse {
                " (another program uses that port on 169.254.169.254: stop it, or turn the \
                 container path off with [intercept] containers = false)"
            } else {
                ""
            },
            source,
        }),
    }
}

/// Serves on `listeners` until `shutdown` completes, then drains requests in flight. At most
/// `max_connections` connections, over all listeners, are served at once.
pub async fn serve(
    listeners: Vec<StdListener>,
    shared: Arc<Published>,
    max_connections: usize,
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
    let slots = Arc::new(Slots::new(max_connections));
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        l.set_nonblocking(true)?;
        let l = TcpListener::from_std(l)?;
        tasks.spawn(accept_loop(
            l,
            shared.clone(),
            builder.clone(),
            graceful.clone(),
            slots.clone(),
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
    mut l: TcpListener,
    shared: Arc<Published>,
    builder: http1::Builder,
    graceful: Arc<GracefulShutdown>,
    slots: Arc<Slots>,
) {
    let mut warn = Throttle::default();
    // Woken by a publish, to look for a `refuse` fault; armed once and again after each
    // wake, not per connection.
    let mut changed = Box::pin(shared.changed.notified());
    changed.as_mut().enable();
    loop {
        // A free slot first: while all are taken, new connections wait in the kernel's
        // backlog instead of taking a descriptor each.
        let permit = slots.reserve().await;
        // A `refuse` fault closes the listener until it ends.
        if let Some(id) = refusing(&shared) {
            drop(permit);
            l = match refuse_connections(l, &shared, id).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "a listener is lost after a `refuse` fault");
                    return;
                }
            };
            continue;
        }
        let accepted = tokio::select! {
            // A waiting connection first: then the wake-up is not even polled.
            biased;
            r = l.accept() => r,
            _ = changed.as_mut() => {
                changed.set(shared.changed.notified());
                changed.as_mut().enable();
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning, and
                // say so once in a while, not at every try.
                if let Some(left_out) = warn.ready(Instant::now()) {
                    tracing::warn!(error = %e, repeats_not_logged = left_out, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = slots.hold(permit);
        let conn = Connection::new(&stream, peer);
        let shared = shared.clone();
        let svc = service_fn(move |req| {
            // The usual answer is ready at once and needs no state machine; the rest (a
            // delay, a withheld reply) wait in a boxed future of their own.
            match conn.handle(&shared, &req) {
                Answer::Now(resp) => Either::Left(std::future::ready(Ok(resp))),
                Answer::Later(delay, resp) => Either::Right(Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    Ok(resp)
                }) as Waiting),
                Answer::Withhold => Either::Right(Box::pin(async move {
                    // Held in its slot, so withheld replies are bounded too.
                    tokio::time::sleep(UNREACHABLE_HOLD).await;
                    Err(NoReply::Withheld)
                }) as Waiting),
                Answer::Reset => Either::Left(std::future::ready(Err(NoReply::Reset))),
            }
        });
        let mut io = Box::pin(TimeoutWriter::new(stream));
        io.as_mut().set_timeout_pinned(Some(WRITE_TIMEOUT));
        let fut = graceful.watch(builder.serve_connection(TokioIo::new(io), svc));
        tokio::spawn(async move {
            // Client errors (bad requests, resets, write timeouts) are answered or dropped by
            // hyper; nothing to do here.
            let _ = fut.await;
            drop(slot);
        });
    }
}

/// The `refuse` fault in force, if any.
fn refusing(shared: &Published) -> Option<FaultId> {
    let snap = shared.snapshot.load();
    if snap.faults.is_empty() {
        return None;
    }
    snap.faults
        .refusing(shared.clock.now_millis())
        .map(|a| a.id)
}

/// Stops listening while a `refuse` fault is in force, so that new connections are refused
/// by the kernel (a TCP RST to the SYN: `connection refused`), then listens again on the same
/// socket, keeping its port. Connections already accepted go on. The socket leaves the
/// runtime meanwhile: its readiness would not survive the pause.
async fn refuse_connections(
    l: TcpListener,
    shared: &Published,
    id: FaultId,
) -> std::io::Result<TcpListener> {
    let l = l.into_std()?;
    let addr = l.local_addr().ok();
    debug_assert!(addr.is_some(), "a bound listener has an address");
    match nix::sys::socket::shutdown(l.as_raw_fd(), nix::sys::socket::Shutdown::Read) {
        Ok(()) => tracing::info!(fault = %id, listener = ?addr, "refusing new connections"),
        Err(e) => {
            tracing::warn!(error = %e, fault = %id, "cannot stop listening for a `refuse` fault");
            tokio::time::sleep(Duration::from_millis(100)).await;
            return TcpListener::from_std(l);
        }
    }
    loop {
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = shared.clock.now_millis();
        let until = match shared.snapshot.load().faults.refusing(now) {
            None => break,
            Some(a) => a.until_ms,
        };
        let wait = until.map_or(Duration::from_secs(3600), |u| {
            Duration::from_millis(u.saturating_sub(now))
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut changed => {}
        }
    }
    // A port the kernel chose (`:0`) is given up by the shutdown (though the socket still
    // names it): bind it again. A port that was asked for stays bound (EINVAL here).
    if let Some(a) = addr {
        match nix::sys::socket::bind(l.as_raw_fd(), &nix::sys::socket::SockaddrStorage::from(a)) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(e.into()),
        }
    }
    nix::sys::socket::listen(&l, nix::sys::socket::Backlog::MAXCONN)?;
    tracing::info!(listener = ?addr, "accepting connections again");
    TcpListener::from_std(l)
}

/// The connection slots: a semaphore bounds them; `live` counts the connections, and `peak`
/// the most at once since memory was last given back.
struct Slots {
    free: Arc<Semaphore>,
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            free: Arc::new(Semaphore::new(max)),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Waits for a free slot.
    async fn reserve(&self) -> OwnedSemaphorePermit {
        self.free
            .clone()
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the semaphore is never closed"))
    }

    /// A reserved slot, now that a connection holds it.
    fn hold(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(live, Ordering::Relaxed);
        Slot {
            _permit: permit,
            slots: self.clone(),
        }
    }
}

/// One connection's slot; when the last connection of a burst ends, memory goes back.
struct Slot {
    _permit: OwnedSemaphorePermit,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let s = &self.slots;
        if s.live.fetch_sub(1, Ordering::Relaxed) == 1 && s.peak.swap(0, Ordering::Relaxed) >= BURST
        {
            // Off the runtime's threads: trimming walks every malloc arena. (A runtime
            // shutting down drops its connections outside its context: trim here then.)
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(release_free_memory)),
                Err(_) => release_free_memory(),
            }
        }
    }
}

/// Hands the heap's free pages back to the system. glibc keeps what a burst of connections
/// freed in its per-thread arenas, where it would stay resident; `malloc_trim` releases the
/// free pages of every arena. musl (the static release binaries) has no `malloc_trim` and
/// needs none: its allocator unmaps freed groups itself, so there this does nothing.
#[allow(unsafe_code)]
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only takes the allocator's own locks and returns free pages to the
    // kernel; it touches no memory that is in use and is safe to call from any thread.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Lets a repeated message through at most once per [`ACCEPT_WARN_EVERY`].
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    left_out: u64,
}

impl Throttle {
    /// `Some(how many were left out since the last one)` when this one may be logged.
    fn ready(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < ACCEPT_WARN_EVERY => {
                self.left_out += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.left_out))
            }
        }
    }
}

/// A `status` fault's reply.
#[cold]
fn status_reply(code: u16, generation: imds::Generation) -> imds::Response {
    let status =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    imds::Response::for_status(status, generation)
}

/// A reply that comes later, or not at all.
type Waiting = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<hyper::Response<Body>, NoReply>> + Send>,
>;

/// What a request gets.
enum Answer {
    Now(hyper::Response<Body>),
    /// A `delay` fault: the reply, later.
    Later(Duration, hyper::Response<Body>),
    /// Nothing, as when EC2's reply would not reach the client (beyond the hop limit, a
    /// `drop` or `throttle` fault): the connection is held, then ends without a reply.
    Withhold,
    /// A `reset` fault: the connection is reset.
    Reset,
}

/// Why a connection ended without a reply.
#[derive(Debug)]
enum NoReply {
    Withheld,
    Reset,
}

impl std::fmt::Display for NoReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoReply::Withheld => "reply withheld: beyond the hop limit, or a fault",
            NoReply::Reset => "connection reset by a fault",
        })
    }
}

impl std::error::Error for NoReply {}

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

    /// The answer: now, later, or none.
    fn handle<B>(&self, shared: &Published, req: &hyper::Request<B>) -> Answer {
        let snap = shared.snapshot.load();
        let mut view = imds::Request::new(req.method(), req.uri().path());
        // One pass over the few headers a client sends, instead of hashing five names to look
        // each up; as `HeaderMap::get` does, the first value of a name counts.
        let (mut token, mut ttl, mut expect, mut hosts) = (None, None, None, 0u32);
        for (name, value) in req.headers() {
            if *name == header::HOST {
                hosts += 1;
            } else if *name == TOKEN {
                token = token.or(Some(value));
            } else if *name == TOKEN_TTL {
                ttl = ttl.or(Some(value));
            } else if *name == FORWARDED_FOR {
                view.forwarded = true;
            } else if *name == header::EXPECT {
                expect = expect.or(Some(value));
            }
        }
        // RFC 9112 section 3.2: an HTTP/1.1 request without `Host`, or with more than one, is a
        // 400 (HTTP/1.0 had no `Host`).
        if hosts != 1 && (hosts > 1 || req.version() != http::Version::HTTP_10) {
            let r = imds::Response::bad_request(snap.imds.service.options.generation);
            return Answer::Now(snap.imds.headers.response(r, shared.clock.now_millis()));
        }
        view.token = token.map(HeaderValue::as_bytes);
        view.ttl = ttl.map(HeaderValue::as_bytes);
        view.expect_continue =
            expect.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let now_ms = shared.clock.now_millis();
        let hit = if snap.faults.is_empty() {
            None
        } else {
            self.check_faults(&snap.faults, req, now_ms)
        };
        let mut r = match hit {
            Some(Hit {
                effect: Effect::Status(code),
                ..
            }) => status_reply(code, snap.imds.service.options.generation),
            _ => imds::respond(&snap.imds.service, &shared.tokens, now_ms, &view),
        };
        if let Some(limit) = r.hop_limit {
            // A peer on this host gets every reply: no router lies between, so the TTL would
            // change nothing and setting it costs system calls on the v2 hot path. A peer that
            // is not this host (a container behind a bridge) is one hop away, as it is on EC2
            // where IMDS lies beyond the instance; the kernel's TTL does the rest.
            if self.peer_is_local() {
                r.hop_limit = None;
            } else if limit == 1 {
                tracing::debug!(peer = %self.peer, "token reply withheld: beyond the hop limit");
                return Answer::Withhold;
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
                // A fault that leaves no reply says so: the status above was never sent.
                fault = hit.map(|h| tracing::field::display(match h.effect {
                    Effect::Withhold => format!("{} (no reply)", h.id),
                    Effect::Reset => format!("{} (reset)", h.id),
                    _ => h.id.to_string(),
                })),
                "request"
            );
        }
        let resp = snap.imds.headers.response(r, now_ms);
        match hit {
            None => Answer::Now(resp),
            Some(h) => self.act_out(h.effect, resp),
        }
    }

    /// Which fault, if any, acts on this request (only asked when there are faults).
    #[cold]
    #[inline(never)]
    fn check_faults<B>(
        &self,
        faults: &Faults,
        req: &hyper::Request<B>,
        now_ms: u64,
    ) -> Option<Hit> {
        faults.check(
            req.method(),
            req.uri().path(),
            self.peer.ip().to_canonical(),
            now_ms,
            &mut fastrand::f64,
        )
    }

    /// What a fault makes of the reply.
    #[cold]
    #[inline(never)]
    fn act_out(&self, effect: Effect, resp: hyper::Response<Body>) -> Answer {
        match effect {
            Effect::Withhold => Answer::Withhold,
            Effect::Reset => {
                // An RST instead of a FIN when the connection is closed.
                if let Err(e) = with_socket(self.fd, |s| s.set_linger(Some(Duration::ZERO))) {
                    tracing::warn!(error = %e, "cannot set up a reset for a `reset` fault");
                }
                Answer::Reset
            }
            Effect::Delay(d) => Answer::Later(d, resp),
            Effect::Status(_) => Answer::Now(resp),
        }
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
        local.is_some_and(|l| l.ip() == ip) || is_own_address(self.peer)
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

/// Whether `peer`'s address is one of this host's, as the kernel's routing says, without
/// netlink (the packaged unit's `RestrictAddressFamilies` allows only AF_INET, AF_INET6 and
/// AF_UNIX, so `getifaddrs` fails under it): a UDP socket connected to one of our own
/// addresses is routed through the local table and takes that very address as its source
/// (for IPv6, RFC 6724 rule 1: the same address); connected anywhere else, it takes the
/// source of its route, another address. Connecting a UDP socket sends nothing.
fn is_own_address(peer: SocketAddr) -> bool {
    let domain = socket2::Domain::for_address(peer);
    socket2::Socket::new(domain, socket2::Type::DGRAM, None)
        .and_then(|sock| {
            sock.connect(&peer.into())?;
            sock.local_addr()
        })
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|source| source.ip() == peer.ip())
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
