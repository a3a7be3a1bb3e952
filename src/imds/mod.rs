//! The IMDS HTTP contract as one pure function: [`respond`] takes the [`Service`] of a snapshot,
//! the token authority, the time and a borrowed view of a request, and returns what EC2 would
//! answer. No socket, no clock of its own, no allocation on the GET path.

pub mod pages;
pub mod token;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::metadata::{self, Node, Tree, VERSIONS};
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
}

impl<'a> Request<'a> {
    /// A bare request; for tests and tools.
    pub fn new(method: &'a Method, path: &'a str) -> Self {
        Request {
            method,
            path,
            token: None,
            ttl: None,
            forwarded: false,
            expect_continue: false,
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

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    pub content: Content,
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
            allow: None,
            token_ttl: None,
            hop_limit: None,
        }
    }

    fn error(status: StatusCode) -> Self {
        let page = match status {
            StatusCode::BAD_REQUEST => pages::BAD_REQUEST,
            StatusCode::UNAUTHORIZED => pages::UNAUTHORIZED,
            StatusCode::FORBIDDEN => pages::FORBIDDEN,
            StatusCode::NOT_FOUND => pages::NOT_FOUND,
            _ => "",
        };
        Response {
            body: Bytes::from_static(page.as_bytes()),
            content: if page.is_empty() {
                Content::Text
            } else {
                Content::Html
            },
            ..Response::ok(Bytes::new(), Content::Text)
        }
        .with_status(status)
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        Response {
            allow: Some(allow),
            ..Response::error(StatusCode::METHOD_NOT_ALLOWED)
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
}

impl Default for Options {
    /// EC2's defaults for a new instance: enabled, v1 allowed, hop limit 1.
    fn default() -> Self {
        Options {
            endpoint_enabled: true,
            tokens_required: false,
            hop_limit: 1,
        }
    }
}

/// The metadata service of one snapshot: the options and the tree, immutable.
#[derive(Debug, Clone)]
pub struct Service {
    pub options: Options,
    pub tree: Tree,
    versions: Bytes,
}

impl Service {
    pub fn new(options: Options, tree: Tree) -> Service {
        Service {
            options,
            tree,
            versions: Bytes::from(metadata::versions_listing()),
        }
    }
}

const TOKEN_PATH: &str = "api/token";

/// Answers one request as EC2 would.
pub fn respond(
    service: &Service,
    tokens: &TokenAuthority,
    now_ms: u64,
    req: &Request<'_>,
) -> Response {
    if !service.options.endpoint_enabled {
        return Response::error(StatusCode::FORBIDDEN);
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

    if rest == TOKEN_PATH && VERSIONS.binary_search(&version).is_ok() {
        if version != "latest" {
            return Response::error(StatusCode::FORBIDDEN);
        }
        return put_token(service, tokens, now_ms, req);
    }

    if req.method != Method::GET && req.method != Method::HEAD {
        return Response::method_not_allowed("GET, HEAD");
    }
    let token_ttl = match req.token {
        Some(t) => match tokens.verify(t, now_ms) {
            // Reported of EC2 (a belief in imds-spec.md): a forwarded request with a token.
            Some(_) if req.forwarded => return Response::error(StatusCode::FORBIDDEN),
            Some(left) => Some(left),
            None => return Response::error(StatusCode::UNAUTHORIZED),
        },
        None if service.options.tokens_required => {
            return Response::error(StatusCode::UNAUTHORIZED);
        }
        None => None,
    };

    let mut resp = if version.is_empty() {
        Response::ok(service.versions.clone(), Content::Text)
    } else if VERSIONS.binary_search(&version).is_err() {
        Response::error(StatusCode::NOT_FOUND)
    } else {
        match service.tree.get(rest) {
            Some(Node::Leaf { body, binary }) => Response::ok(
                body.clone(),
                if *binary {
                    Content::Binary
                } else {
                    Content::Text
                },
            ),
            Some(Node::Dir { listing }) => Response::ok(listing.clone(), Content::Text),
            None => Response::error(StatusCode::NOT_FOUND),
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
            Response {
                allow: Some("OPTIONS, PUT"),
                ..Response::ok(Bytes::new(), Content::Text)
            }
        } else {
            Response::method_not_allowed("OPTIONS, PUT")
        };
    }
    if req.forwarded {
        return Response::error(StatusCode::FORBIDDEN);
    }
    if req.expect_continue {
        return Response::error(StatusCode::EXPECTATION_FAILED);
    }
    let Some(ttl) = req.ttl.and_then(token::parse_ttl) else {
        return Response::error(StatusCode::BAD_REQUEST);
    };
    Response {
        token_ttl: Some(ttl),
        hop_limit: Some(service.options.hop_limit),
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
