//! Who asks: what the server knows of a request's client. The accept loop makes one
//! [`Client`] per connection and every request on it carries it down to the front that
//! answers and to the access-log line. Per-client views (what a container, or a local user,
//! is served) will read it; for now it is the peer's address.

use std::net::SocketAddr;

/// A request's client, as known when its connection was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The peer's address (an IPv4 client of a dual-stack listener shows as
    /// `::ffff:a.b.c.d`).
    pub peer: SocketAddr,
}
