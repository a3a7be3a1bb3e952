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
    let hit = super::check_faults(&snap.faults, Endpoint::Ecs, conn, req, now_ms);
    let reply = match hit {
        Some(Hit {
            effect: Effect::Status(code),
            ..
        }) => super::go_error(code),
        _ => {
            let r = ecs::respond(&snap.ecs, path, req.uri().query());
            GoReply {
                status: r.status,
                content_type: Some(r.content_type),
                location: None,
                nosniff: r.nosniff,
                body: r.body,
            }
        }
    };
    if snap.log_requests {
        super::log_request(conn, req, &redacted(path), reply.status.as_u16(), hit);
    }
    let resp = go_response(reply, now_ms);
    match hit {
        None => Answer::Now(resp),
        Some(h) => conn.act_out(h.effect, resp),
    }
}

/// The path with its id left out: `/v2/credentials/…`, `/v4/…/task`.
fn redacted(path: &str) -> String {
    if path.starts_with("/v2/credentials/") {
        return "/v2/credentials/…".into();
    }
    for prefix in ["/v3/", "/v4/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return match rest.split_once('/') {
                Some((_, tail)) => format!("{prefix}…/{tail}"),
                None => format!("{prefix}…"),
            };
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_left_out_of_logged_paths() {
        for (path, shown) in [
            ("/v2/credentials/0b1c-secret", "/v2/credentials/…"),
            ("/v4/abc-secret", "/v4/…"),
            ("/v4/abc-secret/task/stats", "/v4/…/task/stats"),
            ("/v3/abc-secret/task", "/v3/…/task"),
            ("/v1/credentials", "/v1/credentials"),
        ] {
            assert_eq!(super::redacted(path), shown);
        }
    }
}
