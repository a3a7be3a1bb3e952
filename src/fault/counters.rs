//! What a fault has done so far: its hits, the requests its `count` leaves, a throttle's
//! per-client window. Shared (an `Arc`) by every snapshot the fault is in, so a rebuilt
//! snapshot keeps them.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::spec::Spec;

/// At most this many client addresses are counted per second by a throttle; more are not
/// throttled (memory stays bounded whatever the peers).
const THROTTLE_PEERS: usize = 4096;

/// What a fault has done so far, shared by every snapshot it is in.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests (or, for `refuse`, pauses of the listener) it acted on.
    hits: AtomicU64,
    /// Requests it may still act on, when it has a `count`.
    left: AtomicU32,
    /// Per client address, this second's requests (for `throttle`).
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    second: u64,
    seen: std::collections::HashMap<IpAddr, u32>,
}

impl Counters {
    pub fn new(spec: &Spec) -> std::sync::Arc<Counters> {
        std::sync::Arc::new(Counters {
            left: AtomicU32::new(spec.count.unwrap_or(0)),
            ..Counters::default()
        })
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Counts one request acted on.
    pub(super) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a fault with a `count` has used it up.
    pub fn used_up(&self, spec: &Spec) -> bool {
        spec.count.is_some() && self.left.load(Ordering::Relaxed) == 0
    }

    /// Takes one of the remaining requests: `None` when none is left, else whether it was
    /// the last.
    pub(super) fn take(&self) -> Option<bool> {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .ok()
            .map(|before| before == 1)
    }

    /// Counts a request from `peer` in this second; true when it is beyond `limit`.
    pub(super) fn over_limit(&self, peer: IpAddr, limit: u32, now_ms: u64) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let second = now_ms / 1000;
        if w.second != second {
            w.second = second;
            w.seen.clear();
        }
        if w.seen.len() >= THROTTLE_PEERS && !w.seen.contains_key(&peer) {
            return false;
        }
        let n = w.seen.entry(peer).or_insert(0);
        *n = n.saturating_add(1);
        *n > limit
    }
}
