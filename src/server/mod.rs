//! The socket side: binds the listeners, each for one [`Endpoint`], runs a hyper 1 HTTP/1.1
//! accept loop per listener, and hands each request to the front of its listener's endpoint
//! (`imds.rs`: the request as an [`crate::imds::Request`] view, [`crate::imds::respond`]'s
//! answer with EC2's headers). What is served lives in [`Published`], an `ArcSwap` of
//! immutable snapshots: a request loads one snapshot and uses it from start to end; a change
//! swaps in a new one. Per-connection state (the socket, the hop limit, a fault acted out)
//! is in `conn.rs`.
//!
//! Adding an endpoint's front: a file beside `imds.rs` and a match arm in `answer`.
//!
//! What one client may hold is bounded: at most `[server] max-connections` connections are
//! served at once, over all listeners (the rest wait in the kernel's listen backlog, costing
//! no descriptor), a client has [`HEADER_READ_TIMEOUT`] to send each request (hyper starts it
//! when it waits for the next request, so it is also the keep-alive idle timeout) and
//! [`WRITE_TIMEOUT`] to take each reply. When a burst of connections has ended, the memory it
//! used goes back to the system.

mod conn;
mod ecs;
mod imds;
mod pod_identity;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::Either;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutWriter;

use crate::client::Client;
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::fault::{FaultId, Hit};
use crate::owner::Lookup;
use crate::snapshot::{Published, Snapshot};
use conn::{Answer, Connection, NoReply, Waiting};

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
/// A reply that is withheld (a token reply whose hop limit is used up is never sent, as on
/// EC2 where its packets die in a router) holds its connection this long (clients give up
/// after a second or two).
const UNREACHABLE_HOLD: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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

/// A bound socket and the endpoint it serves.
#[derive(Debug)]
pub struct Listener {
    pub endpoint: Endpoint,
    pub socket: StdListener,
}

impl Listener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Binds every configured address of every endpoint. With the built-in defaults, a host
/// without IPv6 only loses the `[::1]` listeners; an address the user configured must bind.
pub fn bind(cfg: &Config) -> Result<Vec<Listener>, ServerError> {
    let mut out = Vec::new();
    for endpoint in Endpoint::ALL {
        for addr in cfg.server().listen(endpoint) {
            match StdListener::bind(addr) {
                Ok(socket) => out.push(Listener { endpoint, socket }),
                Err(e) if addr.is_ipv6() && cfg.server().is_default_listen(endpoint) => {
                    tracing::info!(%addr, %endpoint, error = %e, "no IPv6 loopback here; serving IPv4 only");
                }
                Err(source) => {
                    let hint = match (source.kind(), endpoint) {
                        (std::io::ErrorKind::AddrInUse, Endpoint::Imds) => {
                            " (another program uses that port: stop it, or set [server] listen / --listen)"
                        }
                        (std::io::ErrorKind::AddrInUse, Endpoint::Ecs) => {
                            " (another program uses that port: stop it, or set [server] ecs-listen, [] to serve no ECS endpoints)"
                        }
                        (std::io::ErrorKind::AddrInUse, Endpoint::PodIdentity) => {
                            " (another program uses that port: stop it, or set [server] pod-identity-listen, [] to serve no Pod Identity)"
                        }
                        (std::io::ErrorKind::PermissionDenied, _) => {
                            " (ports below 1024 need root: keep the defaults (1338 and up), interception maps port 80 to them)"
                        }
                        _ => "",
                    };
                    return Err(ServerError::Bind { addr, source, hint });
                }
            }
        }
    }
    Ok(out)
}

/// Binds the address containers reach `endpoint` at once DNATed (for IMDS
/// `169.254.169.254:<port>`, see `intercept::Plan::with_containers`); `None` when that
/// address is not on an interface here (`install` has not run). Binding is the check, as the
/// daemon's sandbox allows no netlink socket to list addresses. The socket outlives the
/// address being removed and added again (a restart of the interception unit) and receives
/// again once it is back.
pub fn bind_container(
    endpoint: Endpoint,
    addr: SocketAddr,
) -> Result<Option<Listener>, ServerError> {
    match StdListener::bind(addr) {
        Ok(socket) => Ok(Some(Listener { endpoint, socket })),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Ok(None),
        Err(source) => Err(ServerError::Bind {
            addr,
            hint: match (source.kind(), endpoint) {
                (std::io::ErrorKind::AddrInUse, Endpoint::Imds) => {
                    " (another program uses that port on 169.254.169.254: stop it, or turn the \
                     container path off with [intercept] containers = false)"
                }
                _ => "",
            },
            source,
        }),
    }
}

/// Serves on `listeners` until `shutdown` completes, then drains requests in flight. At most
/// `max_connections` connections, over all listeners, are served at once.
pub async fn serve(
    listeners: Vec<Listener>,
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
    // Each accept loop holds the slot of its next connection while it waits for it: one more
    // per listener beyond the first, so that idle listeners (another endpoint's, IPv6's) take
    // none of the connections' `max_connections` slots from a busy one.
    let slots = Arc::new(Slots::new(
        max_connections + listeners.len().saturating_sub(1),
    ));
    let owners = Arc::new(std::sync::OnceLock::new());
    let mut tasks = tokio::task::JoinSet::new();
    for Listener { endpoint, socket } in listeners {
        socket.set_nonblocking(true)?;
        let l = TcpListener::from_std(socket)?;
        tasks.spawn(accept_loop(
            l,
            endpoint,
            shared.clone(),
            builder.clone(),
            graceful.clone(),
            slots.clone(),
            owners.clone(),
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

/// The answer of the front that serves the connection's endpoint: now, later, or none.
#[inline]
fn answer<B>(conn: &Connection, shared: &Published, req: &hyper::Request<B>) -> Answer {
    match conn.endpoint {
        Endpoint::Imds => imds::answer(conn, shared, req),
        Endpoint::Ecs => ecs::answer(conn, shared, req),
        Endpoint::PodIdentity => pod_identity::answer(conn, shared, req),
    }
}

/// Which fault in force, if any, acts on this request to `endpoint`: one test of an empty
/// list inline, the rest out of the request path.
#[inline]
fn check_faults<B>(
    snap: &Snapshot,
    endpoint: Endpoint,
    conn: &Connection,
    req: &hyper::Request<B>,
    now_ms: u64,
) -> Option<Hit> {
    if snap.faults.is_empty() {
        None
    } else {
        fault_hit(snap, endpoint, conn, req, now_ms)
    }
}

#[cold]
#[inline(never)]
fn fault_hit<B>(
    snap: &Snapshot,
    endpoint: Endpoint,
    conn: &Connection,
    req: &hyper::Request<B>,
    now_ms: u64,
) -> Option<Hit> {
    snap.faults.check(
        endpoint,
        req.method(),
        req.uri().path(),
        crate::fault::Sender {
            peer: conn.client.peer.ip().to_canonical(),
            view: snap.view_of(&conn.client).map(|v| &*v.name),
        },
        now_ms,
        &mut fastrand::f64,
    )
}

/// The access-log line of a request to the ECS agent's or Pod Identity's endpoint; `path`
/// as it may be logged (without a secret), and what the request got when the front says
/// (never a token).
fn log_request<B>(
    conn: &Connection,
    req: &hyper::Request<B>,
    path: &str,
    status: u16,
    outcome: Option<&dyn std::fmt::Display>,
    hit: Option<Hit>,
) {
    tracing::info!(
        target: "fake_metadata::access",
        endpoint = %conn.endpoint,
        peer = %conn.client.peer,
        method = %req.method(),
        path,
        status,
        outcome = outcome.map(tracing::field::display),
        fault = hit.map(|h| tracing::field::display(fault_shown(&h))),
        "request"
    );
}

/// Records a request in the journal, with the view of `snap` (the snapshot that answered)
/// that served it. `status` is the reply's; what a fault made of it decides whether it was
/// sent.
#[allow(clippy::too_many_arguments)]
fn journal<B>(
    shared: &Published,
    snap: &Snapshot,
    conn: &Connection,
    req: &hyper::Request<B>,
    path: &str,
    status: u16,
    imds_version: Option<u8>,
    bytes: usize,
    hit: Option<Hit>,
    now_ms: u64,
) {
    use crate::fault::Effect;
    let (status, note) = match hit.map(|h| h.effect) {
        None | Some(Effect::Status(_)) => (Some(status), None),
        Some(Effect::Delay(_)) => (Some(status), Some("delayed by a fault")),
        Some(Effect::Withhold) => (None, Some("no reply: a fault")),
        Some(Effect::Reset) => (None, Some("reset by a fault")),
    };
    shared.journal.record(&crate::journal::Record {
        view: snap.view_of(&conn.client).map(|v| &v.name),
        time_ms: now_ms,
        endpoint: conn.endpoint,
        method: req.method(),
        path,
        status,
        imds_version,
        bytes: bytes as u64,
        fault: hit.map(|h| h.id),
        note,
        client: &conn.client,
    });
}

/// A `status` fault's reply on the ECS agent's and Pod Identity's endpoints: what Go's
/// `http.Error` sends for that status.
#[cold]
fn go_error(code: u16) -> crate::snapshot::GoReply {
    let status =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    crate::snapshot::GoReply {
        status,
        content_type: Some("text/plain; charset=utf-8"),
        location: None,
        nosniff: true,
        body: bytes::Bytes::from(format!(
            "{}\n",
            status.canonical_reason().unwrap_or("Error")
        )),
    }
}

/// A fault as the access log names it; one that leaves no reply says so.
fn fault_shown(h: &Hit) -> String {
    match h.effect {
        crate::fault::Effect::Withhold => format!("{} (no reply)", h.id),
        crate::fault::Effect::Reset => format!("{} (reset)", h.id),
        _ => h.id.to_string(),
    }
}

async fn accept_loop(
    mut l: TcpListener,
    endpoint: Endpoint,
    shared: Arc<Published>,
    builder: http1::Builder,
    graceful: Arc<GracefulShutdown>,
    slots: Arc<Slots>,
    owners: Arc<std::sync::OnceLock<Lookup>>,
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
        if let Some(id) = refusing(&shared, endpoint) {
            drop(permit);
            l = match refuse_connections(l, &shared, endpoint, id).await {
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
        // Who asks, once per connection, and only when the journal records it or a view
        // covers local users (the lookup's socket and caches are made then, at the first
        // such connection).
        let owner = if shared.snapshot.load().owners {
            owners.get_or_init(Lookup::new).owner(stream.as_fd(), peer)
        } else {
            None
        };
        let conn = Connection::new(&stream, endpoint, Client { peer, owner });
        let shared = shared.clone();
        let svc = service_fn(move |req| {
            // The usual answer is ready at once and needs no state machine; the rest (a
            // delay, a withheld reply) wait in a boxed future of their own.
            match answer(&conn, &shared, &req) {
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

/// The `refuse` fault in force for `endpoint`, if any.
fn refusing(shared: &Published, endpoint: Endpoint) -> Option<FaultId> {
    let snap = shared.snapshot.load();
    if snap.faults.is_empty() {
        return None;
    }
    snap.faults
        .refusing(endpoint, shared.clock.now_millis())
        .map(|a| a.id)
}

/// Stops listening while a `refuse` fault is in force, so that new connections are refused
/// by the kernel (a TCP RST to the SYN: `connection refused`), then listens again on the same
/// socket, keeping its port. Connections already accepted go on. The socket leaves the
/// runtime meanwhile: its readiness would not survive the pause.
async fn refuse_connections(
    l: TcpListener,
    shared: &Published,
    endpoint: Endpoint,
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
        let until = match shared.snapshot.load().faults.refusing(endpoint, now) {
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
