//! One connection: its socket (to set the hop limit of a token reply on it, or to reset it),
//! the endpoint it reached and the client it came from, and what a request on it gets
//! ([`Answer`]). The endpoint's front decides the answer; this is what it does with the
//! socket.

use std::cell::Cell;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::client::Client;
use crate::endpoint::{Endpoint, IMDS_V4, IMDS_V6};
use crate::fault::Effect;
use crate::snapshot::Body;

/// A reply that comes later, or not at all.
pub(super) type Waiting = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<hyper::Response<Body>, NoReply>> + Send>,
>;

/// What a request gets.
pub(super) enum Answer {
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
pub(super) enum NoReply {
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

/// Per-connection state.
pub(super) struct Connection {
    /// The endpoint whose front answers.
    pub endpoint: Endpoint,
    pub client: Client,
    fd: RawFd,
    /// An IPv6 socket (the peer's address has the socket's family: an IPv4 client of a
    /// dual-stack listener shows as `::ffff:a.b.c.d`).
    ipv6: bool,
    /// The socket's own TTL before a token reply lowered it, to restore for later replies.
    lowered_from: Cell<Option<u32>>,
    /// Whether the peer is on this host, once a token PUT asked.
    local: Cell<Option<bool>>,
}

impl Connection {
    /// No system call here: the connection's own address is asked for only by a token PUT
    /// from a peer that is not loopback (see [`Connection::peer_is_local`]).
    pub fn new(stream: &TcpStream, endpoint: Endpoint, client: Client) -> Self {
        Connection {
            endpoint,
            fd: stream.as_raw_fd(),
            ipv6: client.peer.is_ipv6(),
            client,
            lowered_from: Cell::new(None),
            local: Cell::new(None),
        }
    }

    /// What a fault makes of the reply.
    #[cold]
    #[inline(never)]
    pub fn act_out(&self, effect: Effect, resp: hyper::Response<Body>) -> Answer {
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
    pub fn peer_is_local(&self) -> bool {
        if let Some(local) = self.local.get() {
            return local;
        }
        let local = self.find_peer_is_local();
        self.local.set(Some(local));
        local
    }

    fn find_peer_is_local(&self) -> bool {
        let peer = self.client.peer;
        let ip = peer.ip();
        if ip.is_loopback() || ip == IMDS_V4 || ip == IMDS_V6 {
            return true;
        }
        let local = with_socket(self.fd, |sock| sock.local_addr())
            .ok()
            .and_then(|a| a.as_socket());
        local.is_some_and(|l| l.ip() == ip) || crate::owner::local::is_own_address(peer.ip())
    }

    /// EC2's hop limit: the token reply leaves with the configured IP TTL, so a client more
    /// hops away never receives it. Later replies on the same connection get the TTL back.
    pub fn set_hop_limit(&self, hop: Option<u8>) {
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
