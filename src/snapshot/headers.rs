//! EC2's response headers, compiled once per snapshot: one [`HeaderMap`] per kind of reply
//! ([`Shape`]) and body ([`Content`]), without and with the token TTL header, each in the order
//! EC2 sends them (captured on real instances, `tests/fixtures/captures/`). A response clones
//! one and sets its numbers and its `Date` in place, instead of building and hashing the same
//! map (or growing a clone) on every request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::imds::{self, Content, Shape};

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
/// The `Date` placeholder of a template.
const EPOCH: HeaderValue = HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT");

const CONTENTS: [Content; 3] = [Content::Text, Content::Binary, Content::Html];
const TEMPLATES: usize = Shape::ALL.len() * CONTENTS.len() * 2;

/// The header templates of one snapshot (see [`template_index`]).
#[derive(Debug)]
pub struct Headers(Box<[HeaderMap]>);

impl Headers {
    /// `now` stamps `Last-Modified`; without `keep_alive` every reply that EC2 closes says
    /// `Connection: close`.
    pub fn new(now: SystemTime, keep_alive: bool) -> Headers {
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(now))
            .expect("an HTTP date is a valid header value");
        let mut all = Vec::with_capacity(TEMPLATES);
        for shape in Shape::ALL {
            for content in CONTENTS {
                for ttl in [false, true] {
                    debug_assert_eq!(all.len(), template_index(shape, content, ttl));
                    all.push(header_template(
                        shape,
                        content,
                        ttl,
                        &last_modified,
                        keep_alive,
                    ));
                }
            }
        }
        Headers(all.into_boxed_slice())
    }

    /// Adds EC2's headers, `Date` for `now_ms`. hyper sends no body for HEAD and keeps
    /// `Content-Length`.
    pub fn response(&self, r: imds::Response, now_ms: u64) -> http::Response<Body> {
        let mut h = self.0[template_index(r.shape, r.content, r.token_ttl.is_some())].clone();
        // Replacing a value keeps the header's place.
        if let Some(v) = h.get_mut(header::CONTENT_LENGTH) {
            *v = number(r.body.len());
        }
        if let Some(v) = h.get_mut(header::DATE) {
            *v = http_date(now_ms);
        }
        if let Some(t) = r.token_ttl
            && let Some(v) = h.get_mut(TOKEN_TTL)
        {
            *v = number(t as usize);
        }
        if let Some(a) = r.allow {
            if r.shape == Shape::Legacy {
                // The Xen generation sends `Allow` first (2020 capture); a rare reply, so a
                // new map rather than another set of templates.
                let mut first = HeaderMap::with_capacity(h.len() + 1);
                first.insert(header::ALLOW, HeaderValue::from_static(a));
                first.extend(h);
                h = first;
            } else {
                h.insert(header::ALLOW, HeaderValue::from_static(a));
            }
        }
        let mut resp = http::Response::new(Body(Some(r.body)));
        *resp.status_mut() = r.status;
        if r.shape == Shape::Legacy {
            // The Xen generation's refusal line is `HTTP/1.0 401 Unauthorized` whatever the
            // request's version (2020 capture); hyper writes the version it is given.
            *resp.version_mut() = http::Version::HTTP_10;
        }
        *resp.headers_mut() = h;
        resp
    }
}

fn template_index(shape: Shape, c: Content, token_ttl: bool) -> usize {
    let content = match c {
        Content::Text => 0,
        Content::Binary => 1,
        Content::Html => 2,
    };
    let shape = match shape {
        Shape::Data => 0,
        Shape::Token => 1,
        Shape::Refusal => 2,
        Shape::Forbidden => 3,
        Shape::Page => 4,
        Shape::Legacy => 5,
    };
    (shape * CONTENTS.len() + content) * 2 + usize::from(token_ttl)
}

/// The headers one kind of response carries, in the order EC2 sends them (see [`Shape`]);
/// `Date` is a placeholder that [`Headers::response`] fills in place, so hyper adds none of
/// its own (it would write it last).
fn header_template(
    shape: Shape,
    content: Content,
    token_ttl: bool,
    last_modified: &HeaderValue,
    keep_alive: bool,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(10);
    let content_type = match content {
        Content::Text => TEXT,
        Content::Binary => BINARY,
        Content::Html => HTML,
    };
    let connection = |h: &mut HeaderMap| {
        if !keep_alive {
            h.insert(header::CONNECTION, CLOSE);
        }
    };
    if token_ttl {
        h.insert(TOKEN_TTL, ZERO);
    }
    match shape {
        Shape::Data => {
            h.insert(header::CONTENT_TYPE, content_type);
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
            h.insert(header::DATE, EPOCH);
            h.insert(header::SERVER, EC2WS);
            connection(&mut h);
        }
        Shape::Token | Shape::Refusal => {
            h.insert(header::CONTENT_LENGTH, ZERO);
            h.insert(header::DATE, EPOCH);
            h.insert(header::SERVER, EC2WS);
            connection(&mut h);
            h.insert(header::CONTENT_TYPE, content_type);
        }
        Shape::Forbidden => {
            h.insert(header::CONTENT_LENGTH, ZERO);
            h.insert(header::CONTENT_TYPE, content_type);
            h.insert(header::DATE, EPOCH);
            h.insert(header::SERVER, EC2WS);
        }
        Shape::Page => {
            h.insert(header::CONTENT_TYPE, content_type);
            h.insert(header::CONTENT_LENGTH, ZERO);
            h.insert(header::DATE, EPOCH);
            h.insert(header::SERVER, EC2WS);
            connection(&mut h);
        }
        Shape::Legacy => {
            h.insert(header::CONTENT_LENGTH, ZERO);
            h.insert(header::CONTENT_TYPE, content_type);
            h.insert(header::DATE, EPOCH);
            h.insert(header::CONNECTION, CLOSE);
            h.insert(header::SERVER, EC2WS);
        }
    }
    h
}

/// A reply's body, sent in one frame. Unlike `http_body_util::Full`, an empty body does not
/// report its end before it is polled: hyper then takes its length as known (0) and writes the
/// template's `Content-Length` where the template has it, instead of dropping it and appending
/// its own after the other headers (EC2 sends `Content-Length: 0` first: 2023–2025 captures).
#[derive(Debug)]
pub struct Body(Option<Bytes>);

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .0
                .take()
                .map(|b| Ok(hyper::body::Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

thread_local! {
    /// This thread's `Date` value and the second it is for: formatted at most once a second
    /// per thread, a reference-count increment otherwise (hyper's own cache works the same
    /// way, but writes `Date` last, where EC2 does not).
    static DATE: std::cell::RefCell<(u64, HeaderValue)> =
        const { std::cell::RefCell::new((u64::MAX, EPOCH)) };
}

/// A reply as Go's `net/http` server writes it (the ECS agent's and the Pod Identity agent's
/// server): the handler's headers in sorted order (`Content-Type`, `Location` for a
/// redirect, `X-Content-Type-Options` where `http.Error` sets it), then the server's own,
/// `Date` and `Content-Length` (`net/http/server.go`: `cw.header.WriteSubset`, then
/// `extraHeader.Write`).
pub struct GoReply {
    pub status: http::StatusCode,
    pub content_type: Option<&'static str>,
    pub location: Option<String>,
    pub nosniff: bool,
    pub body: Bytes,
}

/// `r` with its headers, `Date` for `now_ms`.
pub fn go_response(r: GoReply, now_ms: u64) -> http::Response<Body> {
    let mut h = HeaderMap::with_capacity(5);
    if let Some(t) = r.content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
    }
    if let Some(l) = r.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, l);
    }
    if r.nosniff {
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    h.insert(header::DATE, http_date(now_ms));
    h.insert(header::CONTENT_LENGTH, number(r.body.len()));
    let mut resp = http::Response::new(Body(Some(r.body)));
    *resp.status_mut() = r.status;
    *resp.headers_mut() = h;
    resp
}

/// The `Date` header for `now_ms` (milliseconds since the epoch).
fn http_date(now_ms: u64) -> HeaderValue {
    let secs = now_ms / 1000;
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            d.1 = HeaderValue::from_str(&httpdate::fmt_http_date(t))
                .expect("an HTTP date is a valid header value");
            d.0 = secs;
        }
        d.1.clone()
    })
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
        let ttl = "x-aws-ec2-metadata-token-ttl-seconds";
        // 2023 and 2025 captures (a data reply to a token-bearing request).
        assert_eq!(
            names(&header_template(
                Shape::Data,
                Content::Text,
                true,
                &lm,
                false
            )),
            [
                ttl,
                "content-type",
                "accept-ranges",
                "last-modified",
                "content-length",
                "date",
                "server",
                "connection"
            ]
        );
        // 2025 capture (a token).
        assert_eq!(
            names(&header_template(
                Shape::Token,
                Content::Text,
                true,
                &lm,
                false
            )),
            [
                ttl,
                "content-length",
                "date",
                "server",
                "connection",
                "content-type"
            ]
        );
        // 2024 and 2025 captures (a Nitro 401).
        assert_eq!(
            names(&header_template(
                Shape::Refusal,
                Content::Text,
                false,
                &lm,
                false
            )),
            [
                "content-length",
                "date",
                "server",
                "connection",
                "content-type"
            ]
        );
        // 2023 capture (a 403).
        assert_eq!(
            names(&header_template(
                Shape::Forbidden,
                Content::Text,
                false,
                &lm,
                false
            )),
            ["content-length", "content-type", "date", "server"]
        );
        // 2020 capture (a Xen 401).
        assert_eq!(
            names(&header_template(
                Shape::Legacy,
                Content::Html,
                false,
                &lm,
                true
            )),
            [
                "content-length",
                "content-type",
                "date",
                "connection",
                "server"
            ]
        );
        let mut h = header_template(Shape::Data, Content::Binary, false, &lm, true);
        *h.get_mut(header::CONTENT_LENGTH).unwrap() = number(16_384);
        assert_eq!(names(&h)[3], "content-length");
        assert_eq!(h[header::CONTENT_LENGTH], "16384");
        assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert!(!h.contains_key(header::CONNECTION));
    }

    #[test]
    fn template_indexes_are_distinct_and_dense() {
        let mut seen = std::collections::BTreeSet::new();
        for shape in Shape::ALL {
            for content in CONTENTS {
                for ttl in [false, true] {
                    assert!(seen.insert(template_index(shape, content, ttl)));
                }
            }
        }
        assert_eq!(seen.len(), TEMPLATES);
        assert_eq!(seen.last(), Some(&(TEMPLATES - 1)));
    }

    #[test]
    fn the_date_is_cached_per_second() {
        let a = http_date(1_767_323_045_000);
        assert_eq!(a, "Fri, 02 Jan 2026 03:04:05 GMT");
        assert_eq!(http_date(1_767_323_045_999), a);
        assert_eq!(
            http_date(1_767_323_046_000),
            "Fri, 02 Jan 2026 03:04:06 GMT"
        );
    }
}
