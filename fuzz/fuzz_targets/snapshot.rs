//! `fake-metadata snapshot`'s renderer on any crawled tree: the fuzzer plays the crawled
//! endpoint, answering each fetch of the real walk (`crawl::plan::Walk`) with any bytes, a
//! status or a failure; the file rendered from what the walk kept must meet
//! `crawl::contract::check`: it loads, its `[replay]` is exactly the crawled tree, nothing
//! the endpoint sent is anywhere else but the values the renderer keeps (each at its own key,
//! as crawled), and each line stands alone.
//!
//! Input: one flag byte (bit 0: the endpoint refused IMDSv1), then per fetch, in the walk's
//! order, one byte (`% 16`: 0 a 404, 1 a failure, else a body) and for a body or a failure
//! a little-endian u16 length (`% 1024`) and that many bytes. The input's end answers 404.
#![no_main]

use bytes::Bytes;
use fake_metadata::crawl::contract;
use fake_metadata::crawl::plan::{Limits, Outcome, Walk};
use fake_metadata::crawl::render::{Header, render};
use libfuzzer_sys::fuzz_target;

struct Answers<'a>(&'a [u8]);

impl Answers<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn next(&mut self) -> Outcome {
        let Some(&kind) = self.take(1).first() else {
            return Outcome::Status(404);
        };
        if kind % 16 == 0 {
            return Outcome::Status(404);
        }
        let len = match self.take(2) {
            [a, b] => usize::from(u16::from_le_bytes([*a, *b])) % 1024,
            _ => 0,
        };
        let body = self.take(len).to_vec();
        if kind % 16 == 1 {
            Outcome::Failed(String::from_utf8_lossy(&body).into_owned())
        } else {
            Outcome::Body(Bytes::from(body))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_paths: 300,
        max_depth: 6,
        max_body: 1024,
        max_kept: 64 * 1024,
    };
    let mut answers = Answers(rest);
    let mut walk = Walk::new(limits, true);
    while let Some(f) = walk.next_fetch() {
        let o = answers.next();
        walk.record(f, o);
    }
    let h = Header {
        source: "http://169.254.169.254".into(),
        taken: "2026-12-03T20:00:00Z".into(),
        tokens_required: flags & 1 == 1,
    };
    let text = render(&walk.crawled, &h);
    if let Err(e) = contract::check(&walk.crawled, &h, &text) {
        panic!("{e}\n{:#?}\n{text}", walk.crawled);
    }
});
