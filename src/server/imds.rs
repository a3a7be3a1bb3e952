//! The IMDS front: turns a hyper request into an [`imds::Request`] view, lets the faults in
//! force act, answers with [`imds::respond`] from the snapshot's IMDS part, applies the hop
//! limit of a token reply, writes the access-log line and adds EC2's headers.

use http::header::{self, HeaderName, HeaderValue};

use super::conn::{Answer, Connection};
use crate::capability::without_ids;
use crate::endpoint::Endpoint;
use crate::fault::{Effect, Hit};
use crate::imds;
use crate::snapshot::{Published, Snapshot};

const TOKEN: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token");
const TOKEN_TTL: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token-ttl-seconds");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The answer to one request on `conn`: now, later, or none.
pub(super) fn answer<B>(conn: &Connection, shared: &Published, req: &hyper::Request<B>) -> Answer {
    let snap = shared.snapshot.load();
    let client = &conn.client;
    // A client a `[[view]]` covers is served that view's instance, with its own tokens.
    let (part, tokens) = match snap.view_of(client) {
        None => (&snap.imds, &shared.tokens),
        Some(v) => (&v.imds, &v.tokens),
    };
    let mut view = imds::Request::new(req.method(), req.uri().path());
    view.client = Some(client);
    // One pass over the few headers a client sends, instead of hashing five names to look
    // each up; as `HeaderMap::get` does, the first value of a name counts.
    let (mut token, mut ttl, mut expect, mut hosts) = (None, None, None, 0u32);
    for (name, value) in req.headers() {
        if *name == header::HOST {
            hosts += 1;
        } else if *name == TOKEN {
            token = token.or(Some(value));
        } else if *name == TOKEN_TTL {
            ttl = ttl.or(Some(value));
        } else if *name == FORWARDED_FOR {
            view.forwarded = true;
        } else if *name == header::EXPECT {
            expect = expect.or(Some(value));
        }
    }
    view.token = token.map(HeaderValue::as_bytes);
    // RFC 9112 section 3.2: an HTTP/1.1 request without `Host`, or with more than one, is a
    // 400 (HTTP/1.0 had no `Host`).
    if hosts != 1 && (hosts > 1 || req.version() != http::Version::HTTP_10) {
        let r = imds::Response::bad_request(part.service.options.generation);
        let now_ms = shared.clock.now_millis();
        if snap.journal {
            let path = without_ids(req.uri().path());
            let v = Some(view.version());
            super::journal(
                shared,
                &snap,
                conn,
                req,
                &path,
                400,
                v,
                r.body.len(),
                None,
                now_ms,
            );
        }
        return Answer::Now(part.headers.response(r, now_ms));
    }
    view.ttl = ttl.map(HeaderValue::as_bytes);
    view.expect_continue =
        expect.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let now_ms = shared.clock.now_millis();
    let hit = super::check_faults(&snap, Endpoint::Imds, conn, req, now_ms);
    let mut r = match hit {
        Some(Hit {
            effect: Effect::Status(code),
            ..
        }) => status_reply(code, part.service.options.generation),
        _ => imds::respond(&part.service, tokens, now_ms, &view),
    };
    if let Some(limit) = r.hop_limit {
        // A peer on this host gets every reply: no router lies between, so the TTL would
        // change nothing and setting it costs system calls on the v2 hot path. A peer that
        // is not this host (a container behind a bridge) is one hop away, as it is on EC2
        // where IMDS lies beyond the instance; the kernel's TTL does the rest.
        if conn.peer_is_local() {
            r.hop_limit = None;
        } else if limit == 1 {
            tracing::debug!(peer = %client.peer, "token reply withheld: beyond the hop limit");
            if snap.journal {
                withheld_by_hop_limit(shared, &snap, conn, req, now_ms);
            }
            return Answer::Withhold;
        } else {
            r.hop_limit = Some(limit - 1);
        }
    }
    conn.set_hop_limit(r.hop_limit);
    if snap.log_requests || snap.journal {
        // The path as it may be shown, found once for the log line and the journal.
        let path = without_ids(req.uri().path());
        if snap.log_requests {
            tracing::info!(
                target: "fake_metadata::access",
                peer = %client.peer,
                method = %req.method(),
                path = %path,
                status = r.status.as_u16(),
                v2 = view.token.is_some(),
                // A fault that leaves no reply says so: the status above was never sent.
                fault = hit.map(|h| tracing::field::display(super::fault_shown(&h))),
                "request"
            );
        }
        if snap.journal {
            let (status, v) = (r.status.as_u16(), Some(view.version()));
            super::journal(
                shared,
                &snap,
                conn,
                req,
                &path,
                status,
                v,
                r.body.len(),
                hit,
                now_ms,
            );
        }
    }
    let resp = part.headers.response(r, now_ms);
    match hit {
        None => Answer::Now(resp),
        Some(h) => conn.act_out(h.effect, resp),
    }
}

/// A `status` fault's reply.
#[cold]
fn status_reply(code: u16, generation: imds::Generation) -> imds::Response {
    let status =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    imds::Response::for_status(status, generation)
}

/// The journal's entry of a token reply the hop limit kept from its client.
#[cold]
fn withheld_by_hop_limit<B>(
    shared: &Published,
    snap: &Snapshot,
    conn: &Connection,
    req: &hyper::Request<B>,
    now_ms: u64,
) {
    shared.journal.record(&crate::journal::Record {
        view: snap.view_of(&conn.client).map(|v| &v.name),
        time_ms: now_ms,
        endpoint: Endpoint::Imds,
        method: req.method(),
        path: &without_ids(req.uri().path()),
        status: None,
        imds_version: Some(2),
        bytes: 0,
        fault: None,
        note: Some("no reply: beyond the hop limit"),
        client: &conn.client,
    });
}
