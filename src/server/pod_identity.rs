//! EKS Pod Identity's front (169.254.170.23, `[fd00:ec2::23]`): the request's method, path
//! and `Authorization` to [`pod_identity::respond`] over the snapshot's part, the faults
//! scoped to `pod-identity`, the access-log line (never the token) and Go's headers.

use http::header;

use super::conn::{Answer, Connection};
use crate::endpoint::Endpoint;
use crate::fault::{Effect, Hit};
use crate::pod_identity;
use crate::snapshot::{Published, go_response};

/// The answer to one request on `conn`.
pub(super) fn answer<B>(conn: &Connection, shared: &Published, req: &hyper::Request<B>) -> Answer {
    let snap = shared.snapshot.load();
    let now_ms = shared.clock.now_millis();
    let path = req.uri().path();
    let hit = super::check_faults(&snap.faults, Endpoint::PodIdentity, conn, req, now_ms);
    let r = match hit {
        Some(Hit {
            effect: Effect::Status(code),
            ..
        }) => pod_identity::Response::for_status(code),
        _ => {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(http::HeaderValue::as_bytes);
            pod_identity::respond(&snap.pod_identity, req.method(), path, token)
        }
    };
    if snap.log_requests {
        super::log_request(conn, req, path, r.status.as_u16(), hit);
    }
    let resp = go_response(r.status, r.content_type, r.nosniff, r.body, now_ms);
    match hit {
        None => Answer::Now(resp),
        Some(h) => conn.act_out(h.effect, resp),
    }
}
