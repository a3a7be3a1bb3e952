//! The control socket: how `fake-metadata ctl` changes a running daemon without a restart.
//!
//! A Unix stream socket (`[control] socket`, default `/run/fake-metadata/control.sock`, the
//! systemd unit's `RuntimeDirectory`; a daemon started by hand that cannot create it falls
//! back to `$XDG_RUNTIME_DIR/fake-metadata/control.sock`). Mode 0660, group
//! `fake-metadata-ctl` when that group exists. The daemon also checks each peer's credentials
//! (`SO_PEERCRED`) and serves only uid 0, its own uid (unless that is the shared `nobody`)
//! and members of the group.
//!
//! Protocol, version 1: one JSON object per line each way, one request per connection.
//! ```text
//! > {"v":1,"do":"change","change":{"op":"spot","action":"stop"},"when":"+30s"}
//! < {"v":1,"ok":true,"message":"spot interruption notice: stop: scheduled for …"}
//! > {"v":1,"do":"change","change":{"op":"rebalance"},"view":"node-a"}   (one view's instance)
//! > {"v":1,"do":"status"}                  (also "reset", "rotate-credentials", "view-list")
//! < {"v":1,"ok":false,"error":"no scheduled event instance-event-…"}
//! ```
//! A change (see [`Change`]) is applied as one snapshot swap, or refused and nothing changes.

mod client;
mod protocol;
mod server;

pub use client::{ClientError, client_socket, request, request_lines};
pub use protocol::{Command, Reply, Request, VERSION, parse_request};
pub use server::{ControlError, Listener, bind, serve};
