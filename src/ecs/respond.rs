//! Routing a request to its reply, as the agent's gorilla/mux router does
//! (`agent/handlers/task_server_setup.go`, `ecs-agent/tmds/server.go`): the path cleaned
//! (a path that is not clean is redirected), unescaped, then matched; the refusals of an id
//! no task has.

use std::borrow::Cow;
use std::net::IpAddr;

use bytes::Bytes;
use http::StatusCode;

use super::json::to_go_vec;
use super::{Part, Response, TEXT};

/// Answers a request for `path` (and its `query`, for `/v1/credentials?id=`) from `client`
/// (the peer address as the agent sees it: v2's metadata names it): every method alike, as
/// the agent's routes name none. `/v{3,4}/<id>/taskWithTags` is the task: the
/// agent adds the tags ECS's `ListTagsForResource` gives, and a fake task has none.
///
/// Routes match the decoded path, as gorilla/mux matches Go's `URL.Path`; a path with an
/// invalid `%` escape is refused as Go's server refuses it (`400 Bad Request`, and Go closes
/// the connection). Only a path or query with escapes is decoded into a new string.
pub fn respond(part: &Part, path: &str, query: Option<&str>, client: IpAddr) -> Response {
    let decoded = if path.contains('%') {
        match unescape(path, false) {
            Some(d) => d,
            None => {
                return Response {
                    status: StatusCode::BAD_REQUEST,
                    content_type: TEXT,
                    nosniff: false,
                    location: None,
                    body: Bytes::from_static(b"400 Bad Request"),
                };
            }
        }
    } else {
        Cow::Borrowed(path)
    };
    if let Some(clean) = cleaned(&decoded) {
        // gorilla/mux (`SkipClean(false)`): a permanent redirect to the clean path, query
        // kept, no body.
        let location = match query {
            Some(q) => format!("{clean}?{q}"),
            None => clean,
        };
        return Response {
            status: StatusCode::MOVED_PERMANENTLY,
            content_type: "",
            nosniff: false,
            location: Some(location),
            body: Bytes::new(),
        };
    }
    route(part, &decoded, query, client)
}

/// gorilla/mux's `cleanPath`, when it differs from `path`: Go's `path.Clean` (one slash
/// between segments, no `.`, `..` taking the segment before it), rooted, the trailing slash
/// kept.
fn cleaned(path: &str) -> Option<String> {
    let dirty = !path.starts_with('/')
        || path.contains("//")
        || path.split('/').any(|seg| seg == "." || seg == "..");
    if !dirty {
        return None;
    }
    let mut segs: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut clean = format!("/{}", segs.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    (clean != path).then_some(clean)
}

/// `%XX` decoded (and `+` as a space in a query, `url.QueryUnescape`); `None` for an invalid
/// escape. Borrowed when there is nothing to decode.
fn unescape(s: &str, query: bool) -> Option<Cow<'_, str>> {
    let escaped = s.contains('%') || (query && s.contains('+'));
    if !escaped {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Go keeps invalid UTF-8 in a path; no known id has any, so it matches none either way.
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

fn route(part: &Part, path: &str, query: Option<&str>, client: IpAddr) -> Response {
    let ok = |b: &Bytes| Response::json(StatusCode::OK, b.clone());
    if path == "/v1/credentials" {
        let id = query.and_then(query_id);
        return credentials(part, 1, id.as_deref());
    }
    if is_v2_metadata(path) {
        return v2_metadata(client);
    }
    if let Some(id) = path.strip_prefix("/v2/credentials/") {
        // `{credentialsIDMuxName:.*}`: anything, slashes too; empty is "no id".
        return credentials(part, 2, Some(id));
    }
    for (version, rest) in [
        (3u8, path.strip_prefix("/v3/")),
        (4, path.strip_prefix("/v4/")),
    ] {
        let Some(rest) = rest else { continue };
        // `{id:[^/]*}` then one of the suffixes.
        let (id, route) = match rest.split_once('/') {
            None => (rest, Route::Container),
            Some((id, "task")) => (id, Route::Task),
            Some((id, "taskWithTags")) => (id, Route::Task),
            Some((id, "stats")) => (id, Route::ContainerStats),
            Some((id, "task/stats")) => (id, Route::TaskStats),
            Some(_) => break,
        };
        return match (part.containers.get(id), version) {
            (Some(r), 3) => ok(match route {
                Route::Container => &r.v3,
                Route::Task => &r.v3_task,
                Route::ContainerStats => &r.v3_stats,
                Route::TaskStats => &r.v3_task_stats,
            }),
            (Some(r), _) => ok(match route {
                Route::Container => &r.v4,
                Route::Task => &r.v4_task,
                Route::ContainerStats => &r.v4_stats,
                Route::TaskStats => &r.v4_task_stats,
            }),
            (None, _) => unknown_endpoint(version, route, id),
        };
    }
    Response {
        status: StatusCode::NOT_FOUND,
        content_type: TEXT,
        nosniff: true,
        location: None,
        body: part.not_found.clone(),
    }
}

/// v2's task metadata and stats routes (`agent/handlers/v2/task_container_metadata_handler.go`,
/// `task_container_stats_handler.go`): `/v2/metadata` and `/v2/stats`, each also with `/`
/// and `/ANYTHING`; `/v2/metadataWithTags` also with `/`.
fn is_v2_metadata(path: &str) -> bool {
    let any_tail = |route: &str| {
        path.strip_prefix(route)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
    };
    any_tail("/v2/metadata")
        || any_tail("/v2/stats")
        || path == "/v2/metadataWithTags"
        || path == "/v2/metadataWithTags/"
}

/// v2 finds a task by the client's address, which only an `awsvpc` task's is; every task
/// here is on a bridge, so v2 answers as the agent does then (400, naming the address).
fn v2_metadata(client: IpAddr) -> Response {
    Response::json(
        StatusCode::BAD_REQUEST,
        Bytes::from(to_go_vec(&format!(
            "Unable to get task arn from request: unable to associate '{client}' with task"
        ))),
    )
}

#[derive(Clone, Copy)]
enum Route {
    Container,
    Task,
    ContainerStats,
    TaskStats,
}

/// The `id` parameter of a query string, as `url.Values.Get("id")` finds it after
/// `url.ParseQuery`: the first one, keys and values unescaped, a pair with `;` or an invalid
/// escape skipped.
fn query_id(query: &str) -> Option<Cow<'_, str>> {
    query.split('&').find_map(|kv| {
        if kv.contains(';') {
            return None;
        }
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let (k, v) = (unescape(k, true)?, unescape(v, true)?);
        (k == "id").then_some(v)
    })
}

fn credentials(part: &Part, version: u8, id: Option<&str>) -> Response {
    let i = usize::from(version - 1);
    match id.filter(|id| !id.is_empty()) {
        None => Response::json(StatusCode::BAD_REQUEST, part.no_id[i].clone()),
        Some(id) => match part.credentials.get(id) {
            Some(r) => {
                let r = if version == 1 { &r.v1 } else { &r.v2 };
                Response::json(r.status, r.body.clone())
            }
            None => Response::json(StatusCode::BAD_REQUEST, part.invalid_id[i].clone()),
        },
    }
}

/// The agent's refusal of an endpoint id it does not know: a JSON string that repeats the id
/// asked. v3: 500 for metadata, 400 for stats; v4: 404.
fn unknown_endpoint(version: u8, route: Route, id: &str) -> Response {
    const TASK: &str =
        "unable to get task arn from request: unable to get task Arn from v3 endpoint ID: ";
    const DOCKER: &str =
        "unable to get container ID from request: unable to get docker ID from v3 endpoint ID: ";
    let (status, handler, why) = match (version, route) {
        (3, Route::Container) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "V3 container metadata handler",
            DOCKER,
        ),
        (3, Route::Task) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "V3 task metadata handler",
            TASK,
        ),
        (3, Route::ContainerStats) => (StatusCode::BAD_REQUEST, "V3 container stats handler", TASK),
        (3, Route::TaskStats) => (StatusCode::BAD_REQUEST, "V3 task stats handler", TASK),
        (_, Route::Container) => (
            StatusCode::NOT_FOUND,
            "V4 container metadata handler",
            DOCKER,
        ),
        (_, Route::Task) => (StatusCode::NOT_FOUND, "V4 task metadata handler", TASK),
        (_, Route::ContainerStats) => (StatusCode::NOT_FOUND, "V4 container stats handler", TASK),
        (_, Route::TaskStats) => (StatusCode::NOT_FOUND, "V4 task stats handler", TASK),
    };
    Response::json(
        status,
        Bytes::from(to_go_vec(&format!("{handler}: {why}{id}"))),
    )
}

/// `path` as a log line may show it: the id (a credentials id, a container's endpoint id:
/// the only key to a task's credentials) replaced by `<id>`, whether or not it is known.
/// The ids are found in the path as the agent's router sees it, cleaned (`//v2/credentials/
/// <id>`, `/v2/./credentials/<id>` are redirected to the clean path, which is then shown),
/// and anything shaped like one (a UUID) elsewhere is taken out too. A query
/// (`/v1/credentials?id=`) is not part of `path` and must not be logged either.
pub fn loggable(path: &str) -> Cow<'_, str> {
    let clean = crate::go::clean_path(path);
    if clean.starts_with("/v2/credentials/") {
        return Cow::Borrowed("/v2/credentials/<id>");
    }
    for prefix in ["/v3/", "/v4/", "/api/"] {
        if let Some(rest) = clean.strip_prefix(prefix) {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            return Cow::Owned(
                crate::capability::without_ids(&format!("{prefix}<id>{tail}")).into_owned(),
            );
        }
    }
    crate::capability::without_ids(path)
}
