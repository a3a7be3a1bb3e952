//! EKS Pod Identity: what the agent at `169.254.170.23` (`[fd00:ec2::23]`) answers a pod that
//! asks `GET /v1/credentials` with its service account token in `Authorization`, as the
//! container credential provider of every AWS SDK does when `AWS_CONTAINER_CREDENTIALS_FULL_URI`
//! and `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` are set ([`env`]).
//!
//! Pure: [`Part::build`] renders every reply a snapshot can give once, from plain values;
//! [`respond`] picks one per request (a SHA-256 of the presented token, a map lookup, a
//! reference-count increment: no allocation on the way to credentials). The one file with
//! side effects is [`token_file`].
//!
//! Followed: aws/eks-pod-identity-agent at d4dc0f3fedd795b26ac88755238867a2110c7460
//! (release 0.1.37, built with Go 1.26.1):
//! - `pkg/server/server.go`: a `net/http.ServeMux` with the one pattern `/v1/credentials`, for
//!   any method; the mux cleans paths (a redirect, [`go::clean_path`]) and answers anything
//!   else `404 page not found`. A rate limiter (1000/s, burst 500) answers 429 above that; not
//!   modelled (a fault can).
//! - `pkg/handlers/eks_credential_handler.go`: refusals through `http.Error` (`text/plain;
//!   charset=utf-8`, `X-Content-Type-Options: nosniff`, the message and `\n`); success as
//!   `application/json`, the `json.Marshal` of `EksCredentialsResponse`, no newline.
//! - `internal/validation/request.go`: first the `Host` must be one of the agent's addresses
//!   (403 `Access Denied. …`), then the token must not be empty (400) and must parse as a JWT
//!   (400 `Service account token cannot be parsed: …`, golang-jwt v5's messages).
//! - `pkg/errors/errors.go`: EKS Auth's refusal of a token (`[REQUEST-ID]: (CODE): MESSAGE,
//!   fault: client`, EKS Auth's status); any other failure 500 with the error chain.
//! - `pkg/credentials/model.go`: the JSON keys, in order, each omitted when empty
//!   (`omitempty`), `Expiration` as `time.RFC3339Nano`.
//! - `cmd/server.go`, `configuration/config.go`: the agent listens on `169.254.170.23:80` and
//!   `[fd00:ec2::23]:80` ([`PORT`]), its probes (`/healthz`, `/readyz`) on `localhost:2703`
//!   ([`PROBE_PORT`]), metrics on `0.0.0.0:2705` ([`METRICS_PORT`]).
//!
//! Tokens: a real pod presents its projected service account token (a JWT); here each
//! `[[pod]]` has a token derived from the box's secret (`crate::capability`), which only this
//! daemon accepts. A wrong token that is not JWT-shaped gets the agent's own parse refusal;
//! a JWT-shaped one gets EKS Auth's `InvalidTokenException` as the agent relays it.

mod go;
pub mod token_file;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::credentials::{Issued, RoleCredentials};

pub use token_file::write_token_file;

/// The one path the agent serves.
pub const PATH: &str = "/v1/credentials";
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` as EKS sets it in an IPv4 cluster.
pub const FULL_URI: &str = "http://169.254.170.23/v1/credentials";
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` as EKS sets it in an IPv6 cluster.
pub const FULL_URI_IPV6: &str = "http://[fd00:ec2::23]/v1/credentials";
/// Where EKS mounts the pod's token (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
pub const TOKEN_FILE: &str =
    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token";
/// The `Host`s the agent accepts (`configuration.DefaultIpv4TargetHost`,
/// `DefaultIpv6TargetHost`), in the order its refusal lists them.
pub const AGENT_HOSTS: [&str; 2] = ["169.254.170.23", "fd00:ec2::23"];
/// The agent's port (`--port`, default 80).
pub const PORT: u16 = 80;
/// The agent's health and readiness port on `localhost` (`--probe-port`, default 2703):
/// `GET /healthz` and `/readyz` answer 200 when `GET /` on each address answers 404.
pub const PROBE_PORT: u16 = 2703;
/// The agent's Prometheus port on every address (`--metrics-port`, default 2705).
pub const METRICS_PORT: u16 = 2705;

/// The success reply's `Content-Type`.
pub const JSON: &str = "application/json";
/// `http.Error`'s `Content-Type`.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `http.Redirect`'s `Content-Type` (for GET and HEAD).
pub const HTML: &str = "text/html; charset=utf-8";

/// The message EKS Auth gives with `InvalidTokenException`, as its API reference describes the
/// error (the agent relays it; its exact text is not in the agent's source).
const INVALID_TOKEN_MESSAGE: &str = "The specified Kubernetes service account token is invalid.";

/// The environment a container needs to ask for its pod's credentials, as EKS's webhook sets
/// it: `AWS_CONTAINER_CREDENTIALS_FULL_URI` ([`FULL_URI`] in EKS) and
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` ([`TOKEN_FILE`] in EKS).
pub fn env(full_uri: &str, token_file: &str) -> Vec<(String, String)> {
    vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
            full_uri.to_string(),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(),
            token_file.to_string(),
        ),
    ]
}

/// One pod as the part needs it.
#[derive(Debug, Clone)]
pub struct PodInput<'a> {
    /// `NAMESPACE/NAME`, for [`Outcome`] (what a log line may name; never the token).
    pub service_account: String,
    /// What the pod presents in `Authorization`.
    pub token: String,
    /// The role's credentials; `None` before its first set (answered as a failure).
    pub credentials: Option<&'a RoleCredentials>,
}

/// How a part is built, besides its pods.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also accept a `Host` that is a loopback address or `localhost`: the daemon reached at
    /// its own port rather than through `169.254.170.23`. The agent refuses them (403), and
    /// so does the part without this.
    pub loopback_hosts: bool,
    /// The request id in EKS Auth's refusal of an unknown token (a UUID; one per snapshot).
    pub request_id: String,
}

/// Every reply of one snapshot, rendered once.
pub struct Part {
    /// SHA-256 of each token → its pod. Looking up a digest can only reveal, by its timing,
    /// something about digests, which says nothing about any token.
    by_digest: HashMap<[u8; 32], usize>,
    pods: Vec<Entry>,
    loopback_hosts: bool,
    /// EKS Auth's refusal of an unknown JWT-shaped token.
    invalid_token: Bytes,
}

struct Entry {
    service_account: String,
    reply: Reply,
}

enum Reply {
    /// The credentials JSON.
    Credentials(Bytes),
    /// The 500 text of an agent that could not get them.
    Unavailable(Bytes),
}

/// Shows the pods' names only: the bodies hold keys.
impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field(
                "pods",
                &self
                    .pods
                    .iter()
                    .map(|p| p.service_account.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("loopback_hosts", &self.loopback_hosts)
            .finish_non_exhaustive()
    }
}

impl Part {
    /// The replies for `pods`, whose credentials belong to `account_id` (the JSON's
    /// `AccountId`, which the agent takes from the assumed role's ARN).
    pub fn build(pods: &[PodInput<'_>], account_id: &str, options: &Options) -> Part {
        let mut by_digest = HashMap::with_capacity(pods.len());
        let entries = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                by_digest.insert(digest(p.token.as_bytes()), i);
                let reply = match p.credentials.map(|c| &c.set) {
                    Some(Ok(set)) => Reply::Credentials(credentials_json(set, account_id).into()),
                    Some(Err(why)) => Reply::Unavailable(unavailable_text(&why.message).into()),
                    None => Reply::Unavailable(
                        unavailable_text(&format!("no credentials for {} yet", p.service_account))
                            .into(),
                    ),
                };
                Entry {
                    service_account: p.service_account.clone(),
                    reply,
                }
            })
            .collect();
        Part {
            by_digest,
            pods: entries,
            loopback_hosts: options.loopback_hosts,
            invalid_token: format!(
                "[{}]: (InvalidTokenException): {INVALID_TOKEN_MESSAGE}, fault: client\n",
                options.request_id
            )
            .into(),
        }
    }

    /// How many pods it answers for.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    fn lookup(&self, token: &[u8]) -> Option<&Entry> {
        self.by_digest.get(&digest(token)).map(|&i| &self.pods[i])
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// What a front needs of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a Method,
    /// The path as sent (still percent-encoded), without the query.
    pub path: &'a str,
    /// The query, without `?` (kept in a redirect's `Location`).
    pub query: Option<&'a str>,
    /// The `Host` header (the authority of an absolute-form request).
    pub host: Option<&'a [u8]>,
    /// The first `Authorization` header.
    pub authorization: Option<&'a [u8]>,
}

/// The reply: status, the headers that carry meaning, body. The front adds `Date` and
/// `Content-Length` as Go's server does (it sorts header names: `Content-Length`,
/// `Content-Type`, `Date`, `Location`, `X-Content-Type-Options`).
#[derive(Debug, Clone, PartialEq)]
pub struct Response<'p> {
    pub status: StatusCode,
    pub content_type: Option<&'static str>,
    /// `X-Content-Type-Options: nosniff` (every `http.Error`).
    pub nosniff: bool,
    /// A redirect's `Location`.
    pub location: Option<String>,
    pub body: Bytes,
    /// What happened, for the request log.
    pub outcome: Outcome<'p>,
}

/// What a request got, naming the pod (never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'p> {
    /// The pod of this service account got its credentials.
    Credentials(&'p str),
    /// The pod of this service account asked while its role had no valid set.
    Unavailable(&'p str),
    /// A `Host` that is not the agent's (403).
    WrongHost,
    /// No `Authorization`, or an empty one (400).
    NoToken,
    /// A token that is not JWT-shaped and not one of ours (400).
    MalformedToken,
    /// A JWT-shaped token that is not one of ours (400, EKS Auth's refusal).
    UnknownToken,
    /// Another path (404).
    NotFound,
    /// A path `ServeMux` cleans first (307 to the clean one).
    Redirect,
    /// `OPTIONS *`, which Go's server answers itself (200).
    Options,
}

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Credentials(sa) => write!(f, "credentials for {sa}"),
            Outcome::Unavailable(sa) => write!(f, "no credentials available for {sa}"),
            Outcome::WrongHost => f.write_str("refused: not the agent's address"),
            Outcome::NoToken => f.write_str("refused: no token"),
            Outcome::MalformedToken => f.write_str("refused: malformed token"),
            Outcome::UnknownToken => f.write_str("refused: unknown token"),
            Outcome::NotFound => f.write_str("not found"),
            Outcome::Redirect => f.write_str("redirect to the clean path"),
            Outcome::Options => f.write_str("OPTIONS *"),
        }
    }
}

/// The agent's reply to `req`, from `part`.
pub fn respond<'p>(part: &'p Part, req: &Request<'_>) -> Response<'p> {
    // Go's server answers `OPTIONS *` itself; the mux then cleans, redirects, routes.
    if req.method == Method::OPTIONS && req.path == "*" {
        return reply(StatusCode::OK, None, false, Bytes::new(), Outcome::Options);
    }
    let clean = go::clean_path(req.path);
    if clean != req.path {
        return redirect(req.method, &clean, req.query);
    }
    if !go::path_is(req.path, PATH) {
        return error(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"404 page not found\n"),
            Outcome::NotFound,
        );
    }

    // The handler: validation, then the credentials.
    let host = String::from_utf8_lossy(req.host.unwrap_or_default());
    let target = go::target_host(&host);
    let accepted = AGENT_HOSTS.contains(&target) || (part.loopback_hosts && is_loopback(target));
    if !accepted {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "Access Denied. Called agent through invalid address, please use either [{}] address not {target}\n",
                AGENT_HOSTS.join(" ")
            )
            .into(),
            Outcome::WrongHost,
        );
    }
    let token = req.authorization.unwrap_or_default();
    if token.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(b"Service account token cannot be empty\n"),
            Outcome::NoToken,
        );
    }
    if let Some(pod) = part.lookup(token) {
        return match &pod.reply {
            Reply::Credentials(body) => reply(
                StatusCode::OK,
                Some(JSON),
                false,
                body.clone(),
                Outcome::Credentials(&pod.service_account),
            ),
            Reply::Unavailable(body) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                body.clone(),
                Outcome::Unavailable(&pod.service_account),
            ),
        };
    }
    // golang-jwt v5 `ParseUnverified`: three dot-separated segments, or this.
    if token.iter().filter(|&&b| b == b'.').count() != 2 {
        return error(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(
                b"Service account token cannot be parsed: token is malformed: token contains an invalid number of segments\n",
            ),
            Outcome::MalformedToken,
        );
    }
    error(
        StatusCode::BAD_REQUEST,
        part.invalid_token.clone(),
        Outcome::UnknownToken,
    )
}

fn reply<'p>(
    status: StatusCode,
    content_type: Option<&'static str>,
    nosniff: bool,
    body: Bytes,
    outcome: Outcome<'p>,
) -> Response<'p> {
    Response {
        status,
        content_type,
        nosniff,
        location: None,
        body,
        outcome,
    }
}

/// `http.Error`.
fn error(status: StatusCode, body: Bytes, outcome: Outcome<'_>) -> Response<'_> {
    reply(status, Some(TEXT), true, body, outcome)
}

/// `http.Redirect` with 307 (Go 1.26's `ServeMux` redirects to the clean path with 307, not
/// 301 as before: Go CL 720820): a `Location`; for GET and HEAD an HTML `Content-Type`; for
/// GET a one-link page.
fn redirect<'p>(method: &Method, clean: &str, query: Option<&str>) -> Response<'p> {
    let url = match query {
        Some(q) => format!("{clean}?{q}"),
        None => clean.to_string(),
    };
    let status = StatusCode::TEMPORARY_REDIRECT;
    let html = *method == Method::GET || *method == Method::HEAD;
    let body = if *method == Method::GET {
        format!(
            "<a href=\"{}\">{}</a>.\n\n",
            go::html_escape(&url),
            status.canonical_reason().unwrap_or_default()
        )
        .into()
    } else {
        Bytes::new()
    };
    Response {
        status,
        content_type: html.then_some(HTML),
        nosniff: false,
        location: Some(go::hex_escape_non_ascii(&url).into_owned()),
        body,
        outcome: Outcome::Redirect,
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The agent's JSON for one set: `AccessKeyId`, `SecretAccessKey`, `Token`, `AccountId`,
/// `Expiration`, each string omitted when empty (a set of long-term keys has no `Token`).
/// `Expiration` is the set's, in whole seconds like the other endpoints' documents (EKS Auth
/// returns epoch seconds).
fn credentials_json(set: &Issued, account_id: &str) -> String {
    let mut s = String::with_capacity(1024);
    s.push('{');
    let token = set.keys.session_token.as_ref().map_or("", |t| t.expose());
    for (key, value) in [
        ("AccessKeyId", set.keys.access_key_id.expose()),
        ("SecretAccessKey", set.keys.secret_access_key.expose()),
        ("Token", token),
        ("AccountId", account_id),
    ] {
        if !value.is_empty() {
            go::json_string(&mut s, key);
            s.push(':');
            go::json_string(&mut s, value);
            s.push(',');
        }
    }
    s.push_str("\"Expiration\":");
    go::json_string(&mut s, &go::rfc3339_nano(whole_seconds(set.expires)));
    s.push('}');
    s
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    t.duration_since(UNIX_EPOCH)
        .map_or(t, |d| UNIX_EPOCH + Duration::from_secs(d.as_secs()))
}

/// What the agent answers (500) when it cannot get credentials and EKS Auth did not refuse
/// with an API error: the error chain (`callDelegateAndCache`, `GetIamCredentials`, the SDK's
/// `OperationError`), `why` in the place of the SDK's cause.
fn unavailable_text(why: &str) -> String {
    format!(
        "error getting credentials to cache: unable to fetch credentials from EKS Auth: operation error EKS Auth: AssumeRoleForPodIdentity, {why}\n"
    )
}
