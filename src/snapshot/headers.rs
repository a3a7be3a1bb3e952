//! EC2's response headers, compiled once per snapshot: one [`HeaderMap`] per kind of body
//! (text, binary, XHTML page), without and with the token TTL header, in EC2's order. A
//! response clones one and sets its numbers in place, instead of building and hashing the
//! same map (or growing a clone) on every request.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;

use crate::imds::{self, Content};

pub(crate) const TOKEN_TTL: HeaderName =
    HeaderName::from_static("x-aws-ec2-metadata-token-ttl-seconds");
const EC2WS: HeaderValue = HeaderValue::from_static("EC2ws");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain");
const BINARY: HeaderValue = HeaderValue::from_static("application/octet-stream");
const HTML: HeaderValue = HeaderValue::from_static("text/html");
const CLOSE: HeaderValue = HeaderValue::from_static("close");
const NONE: HeaderValue = HeaderValue::from_static("none");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");
const ZERO: HeaderValue = HeaderValue::from_static("0");

/// The six header templates of one snapshot (see [`template_index`]).
#[derive(Debug)]
pub struct Headers([HeaderMap; 6]);

impl Headers {
    /// `now` stamps `Last-Modified`; without `keep_alive` every reply says `Connection: close`.
    pub fn new(now: SystemTime, keep_alive: bool) -> Headers {
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(now))
            .expect("an HTTP date is a valid header value");
        Headers([0, 1, 2, 3, 4, 5].map(|i| {
            let content = [Content::Text, Content::Binary, Content::Html][i / 2];
            let mut h = header_template(content, &last_modified, keep_alive);
            if i % 2 == 1 {
                h.insert(TOKEN_TTL, ZERO);
            }
            h
        }))
    }

    /// Adds EC2's headers. hyper sends no body for HEAD and keeps `Content-Length`.
    pub fn response(&self, r: imds::Response) -> http::Response<Full<Bytes>> {
        let mut h = self.0[template_index(r.content, r.token_ttl.is_some())].clone();
        // Replacing a value keeps the header's place.
        if let Some(v) = h.get_mut(header::CONTENT_LENGTH) {
            *v = number(r.body.len());
        }
        if let Some(t) = r.token_ttl
            && let Some(v) = h.get_mut(TOKEN_TTL)
        {
            *v = number(t as usize);
        }
        if let Some(a) = r.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(a));
        }
        let mut resp = http::Response::new(Full::new(r.body));
        *resp.status_mut() = r.status;
        *resp.headers_mut() = h;
        resp
    }
}

fn template_index(c: Content, token_ttl: bool) -> usize {
    let content = match c {
        Content::Text => 0,
        Content::Binary => 1,
        Content::Html => 2,
    };
    content * 2 + usize::from(token_ttl)
}

/// The headers every response of one kind carries; hyper adds `Date` last.
fn header_template(content: Content, last_modified: &HeaderValue, keep_alive: bool) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    h.insert(
        header::CONTENT_TYPE,
        match content {
            Content::Text => TEXT,
            Content::Binary => BINARY,
            Content::Html => HTML,
        },
    );
    h.insert(
        header::ACCEPT_RANGES,
        if content == Content::Binary {
            BYTES
        } else {
            NONE
        },
    );
    h.insert(header::LAST_MODIFIED, last_modified.clone());
    h.insert(header::CONTENT_LENGTH, ZERO);
    h.insert(header::SERVER, EC2WS);
    if !keep_alive {
        h.insert(header::CONNECTION, CLOSE);
    }
    h
}

/// Numbers up to here (every token TTL; every body but the largest) are sliced from
/// [`DIGITS`] instead of formatted into a new allocation.
const SMALL_NUMBERS: usize = imds::token::TTL_MAX as usize + 1;
/// "0123456789101112…21600": each number below [`SMALL_NUMBERS`] in decimal, back to back.
static DIGITS: [u8; digits_offset(SMALL_NUMBERS)] = digits();

const fn digits_width(n: usize) -> usize {
    match n {
        0..10 => 1,
        10..100 => 2,
        100..1_000 => 3,
        1_000..10_000 => 4,
        _ => 5,
    }
}

/// Where `n` starts in [`DIGITS`].
const fn digits_offset(n: usize) -> usize {
    match n {
        0..10 => n,
        10..100 => 10 + (n - 10) * 2,
        100..1_000 => 190 + (n - 100) * 3,
        1_000..10_000 => 2_890 + (n - 1_000) * 4,
        _ => 38_890 + (n - 10_000) * 5,
    }
}
const _: () = assert!(
    SMALL_NUMBERS <= 100_000,
    "DIGITS holds numbers of up to 5 digits"
);

const fn digits() -> [u8; digits_offset(SMALL_NUMBERS)] {
    let mut out = [0u8; digits_offset(SMALL_NUMBERS)];
    let (mut n, mut at) = (0, 0);
    while n < SMALL_NUMBERS {
        let w = digits_width(n);
        let (mut i, mut v) = (w, n);
        while i > 0 {
            i -= 1;
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += w;
        n += 1;
    }
    out
}

/// A decimal header value (`Content-Length`, the token TTL), without an allocation for the
/// usual sizes.
fn number(n: usize) -> HeaderValue {
    if n < SMALL_NUMBERS {
        let at = digits_offset(n);
        if let Ok(s) = std::str::from_utf8(&DIGITS[at..at + digits_width(n)]) {
            return HeaderValue::from_static(s);
        }
    }
    HeaderValue::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_their_formatted_value() {
        for n in (0..SMALL_NUMBERS + 100).chain([99_999, 1 << 20, usize::MAX]) {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn templates_keep_ec2s_header_order() {
        let lm = HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT");
        let names = |h: &HeaderMap| h.keys().map(|k| k.as_str().to_owned()).collect::<Vec<_>>();
        let close = header_template(Content::Text, &lm, false);
        assert_eq!(
            names(&close),
            [
                "content-type",
                "accept-ranges",
                "last-modified",
                "content-length",
                "server",
                "connection"
            ]
        );
        let mut h = header_template(Content::Binary, &lm, true);
        *h.get_mut(header::CONTENT_LENGTH).unwrap() = number(16_384);
        assert_eq!(names(&h)[3], "content-length");
        assert_eq!(h[header::CONTENT_LENGTH], "16384");
        assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert!(!h.contains_key(header::CONNECTION));
    }
}
