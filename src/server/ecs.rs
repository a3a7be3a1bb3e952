//! The ECS agent's front (169.254.170.2): the request's path to [`ecs::respond`] over the
//! snapshot's ECS part, the faults scoped to `ecs`, the access-log line (with the ids taken
//! out of the path: each one is the only key to a task's credentials) and Go's headers.

use super::conn::{Answer, Connection};
use crate::ecs;
use crate::endpoint::Endpoint;
use crate::fault::{Effect, Hit};
use crate::snapshot::{GoReply, Published, go_response};

/// The answer to one request on `conn`.
pub(super) fn answer<B>(conn: &Connection, shared: &Published, req: &hyper::Request<B>) -> Answer {
    let snap = shared.snapshot.load();
    let now_ms = shared.clock.now_millis();
    let path = req.uri().path();
    let hit = super::check_faults(&snap, Endpoint::Ecs, conn, req, now_ms);
    let reply = match hit {
        Some(Hit {
            effect: Effect::Status(code),
            ..
        }) => super::go_error(code),
        _ => {
            let client = conn.client.peer.ip().to_canonical();
            let r = ecs::respond(&snap.ecs, path, req.uri().query(), client);
            GoReply {
                status: r.status,
                content_type: (!r.content_type.is_empty()).then_some(r.content_type),
                location: r.location,
                nosniff: r.nosniff,
                body: r.body,
            }
        }
    };
    if snap.log_requests || snap.journal {
        let (shown, status) = (ecs::loggable(path), reply.status.as_u16());
        if snap.log_requests {
            super::log_request(conn, req, &shown, status, None, hit);
        }
        if snap.journal {
            let bytes = reply.body.len();
            super::journal(
                shared, &snap, conn, req, &shown, status, None, bytes, hit, now_ms,
            );
        }
    }
    let resp = go_response(reply, now_ms);
    match hit {
        None => Answer::Now(resp),
        Some(h) => conn.act_out(h.effect, resp),
    }
}
