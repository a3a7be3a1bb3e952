//! The kernel's socket table, asked for one TCP socket by its addresses: NETLINK_SOCK_DIAG's
//! exact lookup (`SOCK_DIAG_BY_FAMILY` without `NLM_F_DUMP`). The kernel finds the socket in
//! its connection hash, O(1) however many sockets are open, and says its uid, inode and
//! (Linux 5.7+) cgroup id; no privilege is needed. `/proc/net/tcp` says the same of every
//! socket at once, as text: its cost grows with the number of sockets, and under the packaged
//! unit (`ProcSubset=pid`) it is not there at all.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_LISTEN};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddr};

/// `INET_DIAG_CGROUP_ID` (linux/inet_diag.h, 5.7+): the socket's cgroup v2 id, sent with
/// every answer (no extension flag asks for it).
const INET_DIAG_CGROUP_ID: u16 = 21;
/// `INET_DIAG_NOCOOKIE`: match the socket by its addresses alone.
const NO_COOKIE: [u8; 8] = [0xff; 8];

/// What the kernel says of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The socket's owner (its creator's fsuid).
    pub uid: u32,
    /// The socket's inode: `socket:[INODE]` among its holder's `/proc/PID/fd`.
    pub inode: u64,
    /// The socket's cgroup v2 id (the inode of its directory under the cgroup2 mount);
    /// `None` before Linux 5.7.
    pub cgroup: Option<u64>,
}

/// Why the kernel could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error(
        "cannot open a NETLINK_SOCK_DIAG socket ({0}); under systemd, the unit's \
         RestrictAddressFamilies= must list AF_NETLINK"
    )]
    Open(#[source] io::Error),
    #[error("cannot ask the kernel's socket table (sock_diag): {0}")]
    Ask(#[source] io::Error),
    #[error("the kernel's socket table (sock_diag) refused the lookup: {0}")]
    Refused(#[source] io::Error),
    #[error("cannot read the kernel's socket table's answer (sock_diag): {0}")]
    Decode(String),
}

/// A netlink socket to the kernel's socket table, for one lookup at a time (the kernel
/// answers within `send`, so the lock is held for two system calls).
#[derive(Debug)]
pub struct SockDiag {
    channel: Mutex<Channel>,
}

#[derive(Debug)]
struct Channel {
    socket: Socket,
    /// The last request's sequence number: an answer to another is left behind.
    seq: u32,
    buf: Vec<u8>,
}

impl SockDiag {
    /// A non-blocking socket: a lookup never waits for the kernel.
    pub fn open() -> Result<SockDiag, DiagError> {
        let socket = Socket::new(NETLINK_SOCK_DIAG).map_err(DiagError::Open)?;
        socket.set_non_blocking(true).map_err(DiagError::Open)?;
        Ok(SockDiag {
            channel: Mutex::new(Channel {
                socket,
                seq: 0,
                buf: vec![0; 8192],
            }),
        })
    }

    /// The TCP socket whose own address is `src` and whose peer is `dst`: `None` when this
    /// network namespace has none (or only a listener or a TIME_WAIT remnant there).
    pub fn find(&self, src: SocketAddr, dst: SocketAddr) -> Result<Option<Found>, DiagError> {
        let Some(request) = request(src, dst) else {
            return Ok(None);
        };
        let mut channel = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        channel.seq = channel.seq.wrapping_add(1);
        let seq = channel.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut message = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
        message.finalize();
        let mut out = [0u8; 128];
        let out = &mut out[..message.buffer_len()];
        message.serialize(out);
        channel
            .socket
            .send_to(out, &NetlinkAddr::new(0, 0), 0)
            .map_err(DiagError::Ask)?;
        let Channel { socket, buf, .. } = &mut *channel;
        loop {
            let n = match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => n.min(buf.len()),
                // The kernel answers within `send`: nothing queued means no answer.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DiagError::Ask(e)),
            };
            if let Reply::Answer(found) = answer(&buf[..n], seq, src, dst)? {
                return Ok(found);
            }
        }
    }
}

/// The request for the socket at `src` connected to `dst`, or `None` when the two are not of
/// one family.
fn request(src: SocketAddr, dst: SocketAddr) -> Option<InetRequest> {
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => AF_INET6,
        _ => return None,
    };
    let interface_id = match src {
        SocketAddr::V6(a) => a.scope_id(),
        SocketAddr::V4(_) => 0,
    };
    Some(InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::all(),
        socket_id: SocketId {
            source_port: src.port(),
            destination_port: dst.port(),
            source_address: src.ip(),
            destination_address: dst.ip(),
            interface_id,
            cookie: NO_COOKIE,
        },
    })
}

/// A datagram from the kernel.
enum Reply {
    /// The answer to the request: the socket, or none.
    Answer(Option<Found>),
    /// An answer to an earlier request, abandoned.
    Stale,
}

/// What one datagram says to request `seq`.
fn answer(datagram: &[u8], seq: u32, src: SocketAddr, dst: SocketAddr) -> Result<Reply, DiagError> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(rest)
            .map_err(|e| DiagError::Decode(e.to_string()))?;
        let len = (message.header.length as usize).max(16);
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        if message.header.sequence_number != seq {
            continue;
        }
        return match message.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                Ok(Reply::Answer(matching(&response, src, dst)))
            }
            NetlinkPayload::Error(e) => match e.code.map(|c| -c.get()) {
                None => Ok(Reply::Answer(None)),
                Some(code) if code == nix::errno::Errno::ENOENT as i32 => Ok(Reply::Answer(None)),
                Some(code) => Err(DiagError::Refused(io::Error::from_raw_os_error(code))),
            },
            _ => continue,
        };
    }
    Ok(Reply::Stale)
}

/// The socket the kernel found, if it is the one asked for: the exact lookup falls back to a
/// listener on `src`'s port, and a TIME_WAIT socket has no owner (inode 0).
fn matching(response: &InetResponse, src: SocketAddr, dst: SocketAddr) -> Option<Found> {
    let h = &response.header;
    let id = &h.socket_id;
    let same = id.source_port == src.port()
        && id.destination_port == dst.port()
        && id.source_address == src.ip()
        && id.destination_address == dst.ip();
    if !same || h.state == TCP_LISTEN || h.inode == 0 {
        return None;
    }
    let cgroup = response.nlas.iter().find_map(|nla| match nla {
        Nla::Other(attr) if netlink_packet_core::Nla::kind(attr) == INET_DIAG_CGROUP_ID => {
            let mut value = [0u8; 8];
            (netlink_packet_core::Nla::value_len(attr) == 8).then(|| {
                netlink_packet_core::Nla::emit_value(attr, &mut value);
                u64::from_ne_bytes(value)
            })
        }
        _ => None,
    });
    Some(Found {
        uid: h.uid,
        inode: u64::from(h.inode),
        cgroup,
    })
}
