//! The request journal: who asked what. Every request to every endpoint is recorded as an
//! [`Entry`]: when, which endpoint, method and path (never a secret: the fronts pass the path
//! as it may be shown), the status, whether an IMDS request carried a token, the bytes sent,
//! the fault that acted, and the [`Client`] (its address, and for a local process the
//! socket's owner).
//!
//! Memory is bounded twice: the entries live in a ring of a fixed size (the oldest go first;
//! a reader that fell behind is told how many it missed), and the counts since the start (or
//! the last [`Journal::clear`]) live in a [`Tally`] table with at most [`MAX_CLIENTS`]
//! clients and [`MAX_PATHS`] paths (what falls past them is counted, not itemized). A slot of
//! the ring keeps its path buffer when it is reused, so a full ring records without
//! allocating. Pure: no I/O; the daemon writes the file, the control socket reads it out.

pub mod assert;
mod entry;
mod tally;
#[cfg(test)]
mod tests;

use std::sync::Mutex;

use crate::client::Client;
use crate::endpoint::Endpoint;
use crate::fault::FaultId;

pub use entry::{Asker, Entry, EntryJson, rfc3339_millis};
pub use tally::{ClientTally, MAX_CLIENTS, MAX_PATHS, PathTally, Tally, TallyReport};

/// The ring's size when `[journal] size` does not say.
pub const DEFAULT_SIZE: usize = 4096;
/// The longest path kept; a longer one is cut there (and ends in `…`).
pub const MAX_PATH: usize = 512;

/// One request, as a front saw it: what [`Journal::record`] keeps.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub time_ms: u64,
    pub endpoint: Endpoint,
    pub method: &'a http::Method,
    /// The path as it may be shown (the ECS front takes its ids out).
    pub path: &'a str,
    /// The status sent; `None` when no reply reached the client.
    pub status: Option<u16>,
    /// IMDS only: 2 for a token request or one that carried a token, else 1.
    pub imds_version: Option<u8>,
    /// The body's length.
    pub bytes: u64,
    pub fault: Option<FaultId>,
    /// What became of the reply when not simply sent ("withheld: beyond the hop limit").
    pub note: Option<&'static str>,
    pub client: &'a Client,
    /// The view that served the client (`None`: the box).
    pub view: Option<&'a std::sync::Arc<str>>,
}

/// What a reader gets: the entries after the sequence number it asked from.
#[derive(Debug, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
    /// Entries after the asked number that the ring no longer holds.
    pub missed: u64,
    /// The number to ask from next time.
    pub next: u64,
}

impl Batch {
    /// Appends the batch as JSON lines to `out`: a `{"missed":N}` line first where the ring
    /// lost some, then one object an entry (as `ctl requests --json` and the journal file
    /// show them).
    pub fn write_json_lines(&self, out: &mut String) {
        if self.missed > 0 {
            out.push_str(&format!("{{\"missed\":{}}}\n", self.missed));
        }
        for e in &self.entries {
            out.push_str(&serde_json::to_string(&e.to_json()).expect("an entry serializes"));
            out.push('\n');
        }
    }
}

/// The journal of one daemon (shared by every listener).
#[derive(Debug)]
pub struct Journal {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    size: usize,
    /// Slots in sequence order modulo `size`; fewer than `size` until the ring first fills.
    ring: Vec<Entry>,
    /// The sequence number of the next entry (the first is 1).
    next_seq: u64,
    /// Entries numbered below this were cleared.
    cleared_below: u64,
    tally: Tally,
}

impl Inner {
    /// The entries from `from` (but none below `floor`) that the ring holds, and how many
    /// of those it lost.
    fn read(&self, from: u64, floor: u64) -> Batch {
        let from = from.max(floor);
        let held = self.ring.len() as u64;
        let oldest = self.next_seq.saturating_sub(held).max(floor);
        let start = from.max(oldest);
        let entries = (start..self.next_seq)
            .map(|seq| self.ring[((seq - 1) % self.size as u64) as usize].clone())
            .collect();
        Batch {
            entries,
            missed: start - from.min(start),
            next: self.next_seq,
        }
    }
}

impl Journal {
    /// A journal that keeps the last `size` entries (at least one).
    pub fn new(size: usize, now_ms: u64) -> Journal {
        Journal {
            inner: Mutex::new(Inner {
                size: size.max(1),
                ring: Vec::new(),
                next_seq: 1,
                cleared_below: 1,
                tally: Tally::new(now_ms),
            }),
        }
    }

    /// Records one request.
    pub fn record(&self, r: &Record<'_>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let slot = ((seq - 1) % inner.size as u64) as usize;
        if slot < inner.ring.len() {
            inner.ring[slot].overwrite(seq, r);
        } else {
            // The ring fills in order: slot == len.
            inner.ring.push(Entry::new(seq, r));
        }
        inner.tally.count(r);
    }

    /// The entries numbered `from` and later that the ring still holds since the last clear,
    /// and how many of those it lost.
    pub fn read(&self, from: u64) -> Batch {
        let inner = self.lock();
        inner.read(from, inner.cleared_below)
    }

    /// As [`Journal::read`], but a clear does not hide what it still holds: the journal's
    /// file keeps every entry (a clear within one of its reads must not lose any).
    pub fn read_through_clears(&self, from: u64) -> Batch {
        let inner = self.lock();
        inner.read(from, 1)
    }

    /// The number the next entry will have: a reader that wants only new entries starts
    /// there.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// The counts since the start or the last clear.
    pub fn tally(&self) -> Tally {
        self.lock().tally.clone()
    }

    /// Forgets the entries and the counts: assertions start again from `now_ms`.
    pub fn clear(&self, now_ms: u64) {
        let mut inner = self.lock();
        inner.cleared_below = inner.next_seq;
        inner.tally = Tally::new(now_ms);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
