//! EKS Pod Identity's front (169.254.170.23, `[fd00:ec2::23]`): the request's method, path,
//! `Host` and `Authorization` to [`pod_identity::respond`] over the snapshot's part, the
//! faults scoped to `pod-identity`, the access-log line (the outcome names the service
//! account, never the token) and Go's headers.

use http::header;

use super::conn::{Answer, Connection};
use crate::endpoint::Endpoint;
use crate::fault::{Effect, Hit};
use crate::pod_identity;
use crate::snapshot::{GoReply, Published, go_response};

/// The answer to one request on `conn`.
pub(super) fn answer<B>(conn: &Connection, shared: &Published, req: &hyper::Request<B>) -> Answer {
    let snap = shared.snapshot.load();
    let now_ms = shared.clock.now_millis();
    let path = req.uri().path();
    // As it may be shown (a task's id sent here by mistake is not), when it is.
    let shown = if snap.log_requests || snap.journal {
        crate::capability::without_ids(path)
    } else {
        std::borrow::Cow::Borrowed(path)
    };
    let hit = super::check_faults(&snap, Endpoint::PodIdentity, conn, req, now_ms);
    let resp = match hit {
        Some(Hit {
            effect: Effect::Status(code),
            ..
        }) => {
            if snap.log_requests {
                super::log_request(conn, req, &shown, code, None, hit);
            }
            let reply = super::go_error(code);
            if snap.journal {
                let bytes = reply.body.len();
                super::journal(
                    shared, &snap, conn, req, &shown, code, None, bytes, hit, now_ms,
                );
            }
            go_response(reply, now_ms)
        }
        _ => {
            let first = |name| req.headers().get(name).map(http::HeaderValue::as_bytes);
            let host = first(header::HOST)
                .or_else(|| req.uri().authority().map(|a| a.as_str().as_bytes()));
            let view = pod_identity::Request {
                method: req.method(),
                path,
                query: req.uri().query(),
                host,
                authorization: first(header::AUTHORIZATION),
            };
            let r = pod_identity::respond(&snap.pod_identity, &view);
            let status = r.status.as_u16();
            if snap.log_requests {
                super::log_request(conn, req, &shown, status, Some(&r.outcome), hit);
            }
            if snap.journal {
                let bytes = r.body.len();
                super::journal(
                    shared, &snap, conn, req, &shown, status, None, bytes, hit, now_ms,
                );
            }
            go_response(
                GoReply {
                    status: r.status,
                    content_type: r.content_type,
                    location: r.location,
                    nosniff: r.nosniff,
                    body: r.body,
                },
                now_ms,
            )
        }
    };
    match hit {
        None => Answer::Now(resp),
        Some(h) => conn.act_out(h.effect, resp),
    }
}
