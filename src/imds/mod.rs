//! The IMDS HTTP contract as one pure function: [`respond`] takes the [`Service`] of a snapshot,
//! the token authority, the time and a borrowed view of a request, and returns what EC2 would
//! answer. No socket, no clock of its own, no allocation on the GET path.

pub mod pages;
pub mod token;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::client::Client;
use crate::metadata::{self, Node, Tree, TreeBuilder, VERSIONS};
pub use token::TokenAuthority;

/// The headers EC2 reads on a request, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a Method,
    /// The URI path (no query).
    pub path: &'a str,
    /// `X-aws-ec2-metadata-token`.
    pub token: Option<&'a [u8]>,
    /// `X-aws-ec2-metadata-token-ttl-seconds`.
    pub ttl: Option<&'a [u8]>,
    /// Whether `X-Forwarded-For` is present.
    pub forwarded: bool,
    /// Whether `Expect: 100-continue` is present.
    pub expect_continue: bool,
    /// Who asks (`None` for a request made up by a test or a tool). Every client is served
    /// the same today; per-client views will choose by it.
    pub client: Option<&'a Client>,
}

impl<'a> Request<'a> {
    /// The IMDS version the request belongs to, as CloudWatch's `MetadataNoToken` counts:
    /// 2 for the token request itself and any request with a token, else 1.
    pub fn version(&self) -> u8 {
        if self.token.is_some() || self.path == TOKEN_PATH {
            2
        } else {
            1
        }
    }

    /// A bare request; for tests and tools.
    pub fn new(method: &'a Method, path: &'a str) -> Self {
        Request {
            method,
            path,
            token: None,
            ttl: None,
            forwarded: false,
            expect_continue: false,
            client: None,
        }
    }
}

/// How a body is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// `text/plain`: values, listings and JSON documents alike.
    Text,
    /// `application/octet-stream`: user-data.
    Binary,
    /// `text/html`: EC2's XHTML error pages.
    Html,
}

/// Which headers a reply carries, in which order: each is as captured on EC2 for that kind
/// of reply (`tests/fixtures/captures/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A value or listing: [TTL], `Content-Type`, `Accept-Ranges`, `Last-Modified`,
    /// `Content-Length`, `Date`, `Server`, `Connection` (2022, 2023, 2025 captures).
    Data,
    /// A granted token: TTL, `Content-Length`, `Date`, `Server`, `Connection`,
    /// `Content-Type` (2025 capture; no `Accept-Ranges`, no `Last-Modified`: 2021).
    Token,
    /// A Nitro refusal (401; also 400, 405, 417 by choice): `Content-Length`, `Date`,
    /// `Server`, `Connection`, `Content-Type`, empty (2024, 2025 captures).
    Refusal,
    /// A 403: `Content-Length`, `Content-Type`, `Date`, `Server`, no `Connection`, empty
    /// (2023 capture).
    Forbidden,
    /// The 404 page: [TTL], `Content-Type`, `Content-Length`, `Date`, `Server`,
    /// `Connection` (the 2021 capture gives the set, not the order).
    Page,
    /// The Xen generation's XHTML refusal under `HTTP/1.0`: `Content-Length`,
    /// `Content-Type`, `Date`, `Connection`, `Server` (2020 capture).
    Legacy,
}

impl Shape {
    pub const ALL: [Shape; 6] = [
        Shape::Data,
        Shape::Token,
        Shape::Refusal,
        Shape::Forbidden,
        Shape::Page,
        Shape::Legacy,
    ];
}

/// The generation of EC2's metadata front end to imitate: current (Nitro) instances refuse
/// with empty bodies; older (Xen) ones with an XHTML page under `HTTP/1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    Nitro,
    Xen,
}

/// Instance families that run on the Xen hypervisor; every other one is Nitro.
const XEN_FAMILIES: &[&str] = &[
    "c1", "c3", "c4", "cc1", "cc2", "cg1", "cr1", "d2", "f1", "g2", "g3", "g3s", "h1", "hi1",
    "hs1", "i2", "i3", "m1", "m2", "m3", "m4", "p2", "p3", "r3", "r4", "t1", "t2", "x1", "x1e",
];

impl Generation {
    /// The generation an instance type's family runs on.
    pub fn of_instance_type(instance_type: &str) -> Generation {
        let family = instance_type.split('.').next().unwrap_or(instance_type);
        if XEN_FAMILIES.contains(&family) {
            Generation::Xen
        } else {
            Generation::Nitro
        }
    }

    /// The `system` category's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Nitro => "nitro",
            Generation::Xen => "xen",
        }
    }
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    pub content: Content,
    /// Which headers, in which order.
    pub shape: Shape,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// `X-aws-ec2-metadata-token-ttl-seconds`: the TTL granted, or the seconds a presented
    /// token has left.
    pub token_ttl: Option<u32>,
    /// Send this reply with this IP TTL / IPv6 hop limit (the token PUT's hop limit).
    pub hop_limit: Option<u8>,
}

impl Response {
    fn ok(body: Bytes, content: Content) -> Self {
        Response {
            status: StatusCode::OK,
            body,
            content,
            shape: Shape::Data,
            allow: None,
            token_ttl: None,
            hop_limit: None,
        }
    }

    /// An empty refusal with the given status and layout.
    fn empty(status: StatusCode, shape: Shape) -> Self {
        Response {
            status,
            shape,
            ..Response::ok(Bytes::new(), Content::Text)
        }
    }

    fn page(status: StatusCode, page: &'static str, shape: Shape) -> Self {
        Response {
            status,
            shape,
            ..Response::ok(Bytes::from_static(page.as_bytes()), Content::Html)
        }
    }

    fn not_found() -> Self {
        Response::page(StatusCode::NOT_FOUND, pages::NOT_FOUND, Shape::Page)
    }

    fn forbidden() -> Self {
        Response::empty(StatusCode::FORBIDDEN, Shape::Forbidden)
    }

    fn unauthorized(generation: Generation) -> Self {
        match generation {
            Generation::Nitro => Response::empty(StatusCode::UNAUTHORIZED, Shape::Refusal),
            Generation::Xen => Response::page(
                StatusCode::UNAUTHORIZED,
                pages::XEN_UNAUTHORIZED,
                Shape::Legacy,
            ),
        }
    }

    /// EC2's 400, also for a request the server refuses before `respond` sees it.
    pub fn bad_request(generation: Generation) -> Self {
        match generation {
            Generation::Nitro => Response::empty(StatusCode::BAD_REQUEST, Shape::Refusal),
            Generation::Xen => Response::page(
                StatusCode::BAD_REQUEST,
                pages::XEN_BAD_REQUEST,
                Shape::Legacy,
            ),
        }
    }

    /// EC2's reply with a bare `status`, as a fault serves it: 400, 401, 403 and 404 as EC2
    /// answers them; any other status empty, in the layout of Nitro's refusals (no capture
    /// shows EC2's 5xx, and Nitro answers every refusal captured so far with an empty body).
    pub fn for_status(status: StatusCode, generation: Generation) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Response::bad_request(generation),
            StatusCode::UNAUTHORIZED => Response::unauthorized(generation),
            StatusCode::FORBIDDEN => Response::forbidden(),
            StatusCode::NOT_FOUND => Response::not_found(),
            s => Response::empty(s, Shape::Refusal),
        }
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        Response {
            allow: Some(allow),
            ..Response::empty(StatusCode::METHOD_NOT_ALLOWED, Shape::Refusal)
        }
    }
}

/// EC2's instance metadata options, as `respond` applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `http-endpoint = "enabled"`; when off every request gets 403.
    pub endpoint_enabled: bool,
    /// `http-tokens = "required"`: IMDSv2 only.
    pub tokens_required: bool,
    /// `http-put-response-hop-limit`: the IP TTL of a token reply, 1..=64.
    pub hop_limit: u8,
    /// Which generation's refusals to send.
    pub generation: Generation,
}

impl Default for Options {
    /// EC2's defaults for a new instance: enabled, v1 allowed, hop limit 1; a current
    /// (Nitro) instance.
    fn default() -> Self {
        Options {
            endpoint_enabled: true,
            tokens_required: false,
            hop_limit: 1,
            generation: Generation::Nitro,
        }
    }
}

/// The metadata service of one snapshot: the options and the trees, immutable.
#[derive(Debug, Clone)]
pub struct Service {
    pub options: Options,
    /// The `latest` tree.
    pub tree: Arc<Tree>,
    /// The tree of each of [`VERSIONS`], by index (`latest`'s is [`Service::tree`]).
    by_version: Box<[Arc<Tree>]>,
    versions: Bytes,
}

impl Service {
    /// The service of a finished tree: each dated version gets the part of it released by
    /// then ([`TreeBuilder::build_versions`]).
    pub fn new(options: Options, tree: &TreeBuilder) -> Service {
        let by_version = tree.build_versions().into_boxed_slice();
        Service {
            options,
            tree: by_version[VERSIONS.len() - 1].clone(),
            by_version,
            versions: Bytes::from(metadata::versions_listing()),
        }
    }

    /// The tree a version serves.
    pub fn tree_of(&self, version: &str) -> Option<&Tree> {
        let i = VERSIONS.binary_search(&version).ok()?;
        Some(&self.by_version[i])
    }
}

/// The one path that grants tokens; near misses (a trailing or doubled slash, another case, a
/// dated version) are refused with 403 (a trailing slash: captured 2023).
const TOKEN_PATH: &str = "/latest/api/token";

/// Answers one request as EC2 would.
pub fn respond(
    service: &Service,
    tokens: &TokenAuthority,
    now_ms: u64,
    req: &Request<'_>,
) -> Response {
    if !service.options.endpoint_enabled {
        return Response::forbidden();
    }
    if req.path == TOKEN_PATH {
        return put_token(service, tokens, now_ms, req);
    }
    let collapsed;
    let path = if req.path.contains("//") {
        collapsed = collapse_slashes(req.path);
        collapsed.as_str()
    } else {
        req.path
    };
    let path = path.trim_start_matches('/');
    let (version, rest) = path.split_once('/').unwrap_or((path, ""));
    let rest = rest.trim_end_matches('/');

    if rest.eq_ignore_ascii_case("api/token")
        && VERSIONS.iter().any(|v| v.eq_ignore_ascii_case(version))
    {
        return Response::forbidden();
    }

    if req.method != Method::GET && req.method != Method::HEAD {
        return Response::method_not_allowed("GET, HEAD");
    }
    let token_ttl = match req.token {
        Some(t) => match tokens.verify(t, now_ms) {
            // Reported of EC2 (a belief in imds-spec.md): a forwarded request with a token.
            Some(_) if req.forwarded => return Response::forbidden(),
            Some(left) => Some(left),
            None => return Response::unauthorized(service.options.generation),
        },
        None if service.options.tokens_required => {
            return Response::unauthorized(service.options.generation);
        }
        None => None,
    };

    let mut resp = if version.is_empty() {
        Response::ok(service.versions.clone(), Content::Text)
    } else {
        match service.tree_of(version).and_then(|t| t.get(rest)) {
            Some(Node::Leaf { body, binary }) => Response::ok(
                body.clone(),
                if *binary {
                    Content::Binary
                } else {
                    Content::Text
                },
            ),
            Some(Node::Dir { listing }) => Response::ok(listing.clone(), Content::Text),
            None => Response::not_found(),
        }
    };
    resp.token_ttl = token_ttl;
    resp
}

/// `PUT /latest/api/token`.
fn put_token(
    service: &Service,
    tokens: &TokenAuthority,
    now_ms: u64,
    req: &Request<'_>,
) -> Response {
    if req.method != Method::PUT {
        return if req.method == Method::OPTIONS {
            // The Xen generation's answer is captured (2020: HTTP/1.0, `Allow` first); the
            // Nitro one is not, and takes the Nitro refusal's layout.
            let shape = match service.options.generation {
                Generation::Nitro => Shape::Refusal,
                Generation::Xen => Shape::Legacy,
            };
            Response {
                allow: Some("OPTIONS, PUT"),
                ..Response::empty(StatusCode::OK, shape)
            }
        } else {
            Response::method_not_allowed("OPTIONS, PUT")
        };
    }
    if req.forwarded {
        return Response::forbidden();
    }
    if req.expect_continue {
        return Response::empty(StatusCode::EXPECTATION_FAILED, Shape::Refusal);
    }
    let Some(ttl) = req.ttl.and_then(token::parse_ttl) else {
        return Response::bad_request(service.options.generation);
    };
    Response {
        token_ttl: Some(ttl),
        hop_limit: Some(service.options.hop_limit),
        shape: Shape::Token,
        ..Response::ok(Bytes::from(tokens.issue(now_ms, ttl)), Content::Text)
    }
}

/// `/latest//meta-data///x` → `/latest/meta-data/x` (amazon-ec2-utils sends such paths).
fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
