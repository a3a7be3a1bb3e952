//! The ECS agent's task endpoint (169.254.170.2), pure: a task's IAM credentials
//! (`/v2/credentials/<id>`, `/v1/credentials?id=<id>`) and its task metadata (v3 and v4:
//! container, task, stats), answered from a [`Part`] rendered once per snapshot, and the
//! environment the agent gives a task's containers ([`env`]).
//!
//! Everything here follows aws/amazon-ecs-agent at 8dfceca6cf380a83c3007349317566f2862f0673:
//! - routes: `agent/handlers/task_server_setup.go` (gorilla/mux; no route names a method,
//!   so every method is answered alike, and a path no route matches gets `http.NotFound`'s
//!   `404 page not found`);
//! - credentials: `ecs-agent/tmds/handlers/v1/credentials_handler.go` (shared by v2's
//!   `ecs-agent/tmds/handlers/v2/credentials_handler.go`), its codes and statuses, the JSON
//!   of `ecs-agent/credentials/manager.go`'s `IAMRoleCredentials`, written by
//!   `ecs-agent/tmds/handlers/utils/helpers.go` (`Content-Type: application/json`);
//! - v3: `agent/handlers/v3/{container_metadata,task_metadata,container_stats,task_stats}_handler.go`;
//! - v4: `ecs-agent/tmds/handlers/v4/handlers.go`, `agent/handlers/v4/tmdsstate.go` (the
//!   lookup failures' texts), `agent/handlers/v4/response.go`;
//! - the documents' fields and order: see [`docs`].
//!
//! A credentials id or a container's endpoint id is the only key: an unknown one gets the
//! agent's refusal, which says nothing of the known ones (v3 and v4 repeat the id asked, as
//! the agent does). Ids are looked up by `&str` in maps built once, and every known reply is
//! a `Bytes` clone; only a refusal that repeats the asked id is formatted per request.

pub mod docs;
mod json;
pub mod stats;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::StatusCode;

use crate::credentials::{RoleCredentials, ec2_time};
pub use json::go_time;
use json::{to_go, to_go_vec};

/// The agent's address in the URIs it gives containers (`MetadataURIFormat`, …).
pub const AGENT_HOST: &str = "169.254.170.2";
/// `application/json`: every reply of a known route.
pub const JSON: &str = "application/json";
/// What `http.NotFound` sends (with `X-Content-Type-Options: nosniff`).
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The instance the tasks run on.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub region: String,
    pub account_id: String,
    /// `aws`, `aws-cn`, …: the ARNs' partition.
    pub partition: String,
    pub availability_zone: String,
    /// v4's `AvailabilityZoneID` (`use1-az1`).
    pub availability_zone_id: String,
    /// v4's `VPCID`.
    pub vpc_id: String,
}

/// One task, as plain values.
#[derive(Debug, Clone)]
pub struct TaskInput<'a> {
    pub family: String,
    pub revision: u32,
    pub cluster: String,
    /// The task id in its ARN: 32 hex digits.
    pub task_id: String,
    /// The task role's name (the credentials' `RoleArn`).
    pub role: String,
    /// The role's credentials now; `None` (none issued yet) answers as the agent does for a
    /// known id whose credentials have not arrived.
    pub credentials: Option<&'a RoleCredentials>,
    /// The id in `/v2/credentials/<id>`.
    pub credentials_id: String,
    pub pull_started_at: SystemTime,
    pub pull_stopped_at: SystemTime,
    pub containers: Vec<ContainerInput>,
}

/// One container of a task.
#[derive(Debug, Clone)]
pub struct ContainerInput {
    /// The id in `/v3/<id>`, `/v4/<id>` (the agent's `V3EndpointID`).
    pub endpoint_id: String,
    /// Its name in the task definition.
    pub name: String,
    /// 64 hex digits.
    pub docker_id: String,
    /// Docker's name, without the leading `/`.
    pub docker_name: String,
    pub image: String,
    /// `sha256:…`.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub networks: Vec<NetworkInput>,
    pub created_at: SystemTime,
    pub started_at: SystemTime,
    /// The UUID at the end of its ContainerARN.
    pub arn_id: String,
    /// CPU units as the task definition gives them (the agent shows at least 2).
    pub cpu: u32,
    /// The memory limit in MiB (0: none).
    pub memory: u32,
}

/// A network a container is on.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInput {
    /// The Docker network's name (`bridge`).
    pub mode: String,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
}

/// A reply: status, `Content-Type` and body. `nosniff`: also send
/// `X-Content-Type-Options: nosniff` (Go's `http.Error` does). Go's server adds `Date` and
/// `Content-Length`; for `HEAD` it sends the headers of the same reply without the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub nosniff: bool,
    pub body: Bytes,
}

impl Response {
    fn json(status: StatusCode, body: Bytes) -> Response {
        Response {
            status,
            content_type: JSON,
            nosniff: false,
            body,
        }
    }
}

/// A rendered reply.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    body: Bytes,
}

/// A task's credentials replies, one per API version (their error prefixes differ).
struct CredentialReplies {
    v1: Reply,
    v2: Reply,
}

/// Every reply of one container's endpoint id.
struct ContainerReplies {
    v3: Bytes,
    v3_task: Bytes,
    v3_stats: Bytes,
    v3_task_stats: Bytes,
    v4: Bytes,
    v4_task: Bytes,
    v4_stats: Bytes,
    v4_task_stats: Bytes,
}

/// The ECS endpoint's part of a snapshot: every reply of every task, rendered once.
/// `Debug` shows how many, never an id or a body (they hold the keys).
#[derive(Default)]
pub struct Part {
    credentials: HashMap<String, CredentialReplies>,
    containers: HashMap<String, ContainerReplies>,
    /// The credentials refusals, which name no id.
    no_id: [Bytes; 2],
    invalid_id: [Bytes; 2],
    not_found: Bytes,
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("credentials", &self.credentials.len())
            .field("containers", &self.containers.len())
            .finish_non_exhaustive()
    }
}

/// `arn:PARTITION:ecs:REGION:ACCOUNT:task/CLUSTER/TASK-ID`.
pub fn task_arn(host: &Host, cluster: &str, task_id: &str) -> String {
    format!(
        "arn:{}:ecs:{}:{}:task/{cluster}/{task_id}",
        host.partition, host.region, host.account_id
    )
}

/// `arn:PARTITION:iam::ACCOUNT:role/NAME`.
pub fn role_arn(host: &Host, role: &str) -> String {
    format!(
        "arn:{}:iam::{}:role/{role}",
        host.partition, host.account_id
    )
}

/// The agent's credentials refusals: `(status, code, message)` after the version prefix.
const NO_ID: (StatusCode, &str, &str) = (
    StatusCode::BAD_REQUEST,
    "NoIdInRequest",
    "No Credential ID in the request",
);
const INVALID_ID: (StatusCode, &str, &str) = (
    StatusCode::BAD_REQUEST,
    "InvalidIdInRequest",
    "Credentials not found",
);
const UNINITIALIZED: (StatusCode, &str, &str) = (
    StatusCode::SERVICE_UNAVAILABLE,
    "CredentialsUninitialized",
    "Credentials uninitialized for ID",
);

/// `{"code":…,"message":"CredentialsV<n>Request: …","HTTPErrorCode":…}`.
fn credentials_error(version: u8, (status, code, message): (StatusCode, &str, &str)) -> Bytes {
    to_go(&docs::ErrorMessage {
        code,
        message: &format!("CredentialsV{version}Request: {message}"),
        http_error_code: status.as_u16(),
    })
}

impl Part {
    /// Renders every reply of `tasks` on `host`, with stats as of `now`.
    pub fn build(tasks: &[TaskInput<'_>], host: &Host, now: SystemTime) -> Part {
        let mut part = Part {
            no_id: [credentials_error(1, NO_ID), credentials_error(2, NO_ID)],
            invalid_id: [
                credentials_error(1, INVALID_ID),
                credentials_error(2, INVALID_ID),
            ],
            not_found: Bytes::from_static(b"404 page not found\n"),
            ..Part::default()
        };
        for t in tasks {
            part.credentials
                .insert(t.credentials_id.clone(), credential_replies(t, host));
            let task_arn = task_arn(host, &t.cluster, &t.task_id);
            let revision = t.revision.to_string();
            // Docker's `name` is the container's with a leading `/`.
            let names: Vec<String> = t
                .containers
                .iter()
                .map(|c| format!("/{}", c.docker_name))
                .collect();
            let stats_in: Vec<stats::Input<'_>> = t
                .containers
                .iter()
                .zip(&names)
                .enumerate()
                .map(|(index, (c, name))| stats::Input {
                    name,
                    id: &c.docker_id,
                    started_at: c.started_at,
                    memory_mib: c.memory,
                    has_eth0: c
                        .networks
                        .iter()
                        .any(|n| n.mode != "host" && n.mode != "none"),
                    index,
                    now,
                })
                .collect();
            let task_doc = |v4: bool| {
                let containers: Vec<_> = t
                    .containers
                    .iter()
                    .map(|c| container_doc(c, host, t, v4))
                    .collect();
                to_go(&docs::Task {
                    cluster: &t.cluster,
                    task_arn: &task_arn,
                    family: &t.family,
                    revision: &revision,
                    desired_status: RUNNING,
                    known_status: RUNNING,
                    containers: (!v4).then_some(containers.clone()),
                    pull_started_at: Some(t.pull_started_at),
                    pull_stopped_at: Some(t.pull_stopped_at),
                    availability_zone: &host.availability_zone,
                    launch_type: if v4 { "EC2" } else { "" },
                    containers_v4: v4.then_some(containers),
                    vpc_id: if v4 { &host.vpc_id } else { "" },
                    fault_injection_enabled: v4.then_some(false),
                    availability_zone_id: if v4 { &host.availability_zone_id } else { "" },
                })
            };
            let (v3_task, v4_task) = (task_doc(false), task_doc(true));
            // Go writes a map's keys sorted: the task's stats by Docker id.
            let task_stats = |rate: bool| {
                let all: BTreeMap<&str, docs::Stats<'_>> = stats_in
                    .iter()
                    .map(|s| (s.id, stats::stats(s, rate)))
                    .collect();
                to_go(&all)
            };
            let (v3_task_stats, v4_task_stats) = (task_stats(false), task_stats(true));
            for (c, s) in t.containers.iter().zip(&stats_in) {
                part.containers.insert(
                    c.endpoint_id.clone(),
                    ContainerReplies {
                        v3: to_go(&container_doc(c, host, t, false)),
                        v3_task: v3_task.clone(),
                        v3_stats: to_go(&stats::stats(s, false)),
                        v3_task_stats: v3_task_stats.clone(),
                        v4: to_go(&container_doc(c, host, t, true)),
                        v4_task: v4_task.clone(),
                        v4_stats: to_go(&stats::stats(s, true)),
                        v4_task_stats: v4_task_stats.clone(),
                    },
                );
            }
        }
        part
    }
}

const RUNNING: &str = "RUNNING";

/// The credentials replies of a task: its set (or why none), for v1 and v2.
fn credential_replies(t: &TaskInput<'_>, host: &Host) -> CredentialReplies {
    let issued = t.credentials.and_then(|r| r.set.as_ref().ok());
    match issued {
        Some(set) => {
            let role_arn = role_arn(host, &t.role);
            let body = to_go(&docs::Credentials {
                role_arn: &role_arn,
                access_key_id: set.keys.access_key_id.expose(),
                secret_access_key: set.keys.secret_access_key.expose(),
                token: set.keys.session_token.as_ref().map_or("", |s| s.expose()),
                expiration: ec2_time(set.expires),
            });
            let ok = Reply {
                status: StatusCode::OK,
                body,
            };
            CredentialReplies {
                v1: ok.clone(),
                v2: ok,
            }
        }
        // No valid set (none issued yet, or the source failed and the last one expired):
        // the agent's answer for an id it knows whose credentials have not arrived.
        None => CredentialReplies {
            v1: Reply {
                status: UNINITIALIZED.0,
                body: credentials_error(1, UNINITIALIZED),
            },
            v2: Reply {
                status: UNINITIALIZED.0,
                body: credentials_error(2, UNINITIALIZED),
            },
        },
    }
}

/// A container's document; v4's has its ContainerARN
/// (`arn:PARTITION:ecs:REGION:ACCOUNT:container/CLUSTER/TASK-ID/UUID`) and IPv6 addresses.
fn container_doc<'a>(
    c: &'a ContainerInput,
    host: &Host,
    t: &TaskInput<'_>,
    v4: bool,
) -> docs::Container<'a> {
    // v3 takes one IPv4 address per network (`[""]` when Docker has none, as on `host`);
    // v4 adds the global IPv6 address when there is one
    // (`agent/handlers/v{3,4}/container_metadata_handler.go`, `GetContainerNetworkMetadata`).
    let networks: Vec<docs::Network<'a>> = c
        .networks
        .iter()
        .map(|n| docs::Network {
            network_mode: &n.mode,
            ipv4_addresses: if n.ipv4.is_empty() {
                vec![""]
            } else {
                n.ipv4.iter().map(String::as_str).collect()
            },
            ipv6_addresses: if v4 {
                n.ipv6.iter().map(String::as_str).collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    let networks = (!networks.is_empty()).then_some(networks);
    docs::Container {
        docker_id: &c.docker_id,
        name: &c.name,
        docker_name: &c.docker_name,
        image: &c.image,
        image_id: &c.image_id,
        labels: &c.labels,
        desired_status: RUNNING,
        known_status: RUNNING,
        limits: docs::Limits {
            // `minimumCPUUnit`: the agent shows fewer than 2 CPU units as 2.
            cpu: Some(f64::from(c.cpu.max(2))),
            memory: Some(i64::from(c.memory)),
        },
        created_at: Some(c.created_at),
        started_at: Some(c.started_at),
        kind: "NORMAL",
        networks: if v4 { None } else { networks.clone() },
        container_arn: if v4 {
            format!(
                "arn:{}:ecs:{}:{}:container/{}/{}/{}",
                host.partition, host.region, host.account_id, t.cluster, t.task_id, c.arn_id
            )
        } else {
            String::new()
        },
        networks_v4: if v4 { networks } else { None },
    }
}

/// Answers a request for `path` (and its `query`, for `/v1/credentials?id=`): every method
/// alike, as the agent's routes name none. `/v{3,4}/<id>/taskWithTags` is the task: the
/// agent adds the tags ECS's `ListTagsForResource` gives, and a fake task has none.
///
/// Routes match the decoded path, as gorilla/mux matches Go's `URL.Path`; a path with an
/// invalid `%` escape is refused as Go's server refuses it (`400 Bad Request`, and Go closes
/// the connection). Only a path or query with escapes is decoded into a new string.
pub fn respond(part: &Part, path: &str, query: Option<&str>) -> Response {
    if !path.contains('%') {
        return route(part, path, query);
    }
    match unescape(path, false) {
        Some(decoded) => route(part, &decoded, query),
        None => Response {
            status: StatusCode::BAD_REQUEST,
            content_type: TEXT,
            nosniff: false,
            body: Bytes::from_static(b"400 Bad Request"),
        },
    }
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

fn route(part: &Part, path: &str, query: Option<&str>) -> Response {
    let ok = |b: &Bytes| Response::json(StatusCode::OK, b.clone());
    if path == "/v1/credentials" {
        let id = query.and_then(query_id);
        return credentials(part, 1, id.as_deref());
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
        body: part.not_found.clone(),
    }
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

/// The environment the agent gives a container: its credentials URI when the task has a
/// role (`agent/api/task/task.go`, `initializeCredentialsEndpoint`), its v3 and v4 metadata
/// URIs and the agent API's (`agent/api/container/container.go`, `MetadataURIFormat`,
/// `MetadataURIFormatV4`, `AgentURIFormat`), the region (`ApplyRegionToContainer`), and
/// `AWS_EXECUTION_ENV=AWS_ECS_EC2`, which ECS itself puts in an EC2 task's environment (the
/// agent's state fixtures carry it, `agent/statemanager/testdata/…`). Sorted by name.
pub fn env(credentials_id: Option<&str>, endpoint_id: &str, region: &str) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(7);
    if let Some(id) = credentials_id {
        out.push((
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into(),
            format!("/v2/credentials/{id}"),
        ));
    }
    out.extend([
        ("AWS_DEFAULT_REGION".to_string(), region.to_string()),
        ("AWS_EXECUTION_ENV".into(), "AWS_ECS_EC2".into()),
        ("AWS_REGION".into(), region.into()),
        (
            "ECS_AGENT_URI".into(),
            format!("http://{AGENT_HOST}/api/{endpoint_id}"),
        ),
        (
            "ECS_CONTAINER_METADATA_URI".into(),
            format!("http://{AGENT_HOST}/v3/{endpoint_id}"),
        ),
        (
            "ECS_CONTAINER_METADATA_URI_V4".into(),
            format!("http://{AGENT_HOST}/v4/{endpoint_id}"),
        ),
    ]);
    out
}
