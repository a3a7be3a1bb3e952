//! Every reply against what the agent's source (aws/eks-pod-identity-agent @ d4dc0f3) makes:
//! exact bytes where its Go code or tests define them.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::credentials::{InstanceProfileId, Keys, RoleName, Secret, Unavailable};

const ACCOUNT: &str = "123456789012";
/// 1996-03-27T07:45:23Z, `pkg/credentials/model_test.go`'s time (whole seconds).
const EXPIRES: u64 = 827_912_723;
const WEB_TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const BATCH_TOKEN: &str = "aaaabbbbccccddddeeeeffff00001111aaaabbbbccccddddeeeeffff00001111";
const DOWN_TOKEN: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn role(name: &str, set: Result<Issued, Unavailable>) -> RoleCredentials {
    RoleCredentials {
        name: RoleName::try_from(name.to_string()).unwrap(),
        instance_profile_arn: format!("arn:aws:iam::{ACCOUNT}:instance-profile/{name}"),
        instance_profile_id: InstanceProfileId::try_from("AIPAXFAKEMETADATA0001".to_string())
            .unwrap(),
        set,
    }
}

fn issued(id: &str, secret: &str, token: Option<&str>) -> Issued {
    Issued {
        keys: Keys {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
        },
        issued: UNIX_EPOCH + Duration::from_secs(EXPIRES - 6 * 3600),
        // Sub-second parts are dropped, as in the other endpoints' documents.
        expires: UNIX_EPOCH + Duration::new(EXPIRES, 987_654_321),
    }
}

struct Fixture {
    web: RoleCredentials,
    batch: RoleCredentials,
    down: RoleCredentials,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            web: role(
                "web-role",
                Ok(issued(
                    "some-access-key",
                    "some-secret-key",
                    Some("some-token"),
                )),
            ),
            // Long-term keys: no session token.
            batch: role("batch", Ok(issued("AKIAEXAMPLE", "s<&>\"e\\c", None))),
            down: role(
                "down",
                Err(Unavailable {
                    code: crate::credentials::FAILURE_CODE,
                    message: "the credential_process command exited with status 1".into(),
                    since: UNIX_EPOCH,
                }),
            ),
        }
    }

    fn part(&self, options: &Options) -> Part {
        let pods = [
            ("team-a/web", WEB_TOKEN, Some(&self.web)),
            ("team-b/batch", BATCH_TOKEN, Some(&self.batch)),
            ("team-c/down", DOWN_TOKEN, Some(&self.down)),
            ("team-d/new", "2222", None),
        ]
        .map(|(sa, token, credentials)| PodInput {
            service_account: sa.into(),
            token: token.into(),
            credentials,
        });
        Part::build(&pods, ACCOUNT, options)
    }
}

fn options() -> Options {
    Options {
        loopback_hosts: false,
        request_id: "18b9740f-d967-4c97-86da-2f50f794b032".into(),
    }
}

fn get<'p>(part: &'p Part, host: &str, token: Option<&str>) -> Response<'p> {
    ask(part, &Method::GET, PATH, host, token)
}

fn ask<'p>(
    part: &'p Part,
    method: &Method,
    path: &str,
    host: &str,
    token: Option<&str>,
) -> Response<'p> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    respond(
        part,
        &Request {
            method,
            path,
            query,
            host: Some(host.as_bytes()),
            authorization: token.map(str::as_bytes),
        },
    )
}

fn body<'r>(r: &'r Response<'_>) -> &'r str {
    std::str::from_utf8(&r.body).unwrap()
}

/// `http.Error`'s shape: status, `text/plain; charset=utf-8`, nosniff, message + `\n`.
fn assert_error(r: &Response<'_>, status: u16, text: &str) {
    assert_eq!(
        (
            r.status.as_u16(),
            r.content_type,
            r.nosniff,
            r.location.as_deref(),
            body(r)
        ),
        (status, Some(TEXT), true, None, text),
    );
}

/// `pkg/credentials/model_test.go`: the same keys, order and compact form, with
/// `Content-Type: application/json` and no newline (`eks_credential_handler.go`).
#[test]
fn credentials_are_the_agents_json() {
    let f = Fixture::new();
    let part = f.part(&options());
    let r = get(&part, "169.254.170.23", Some(WEB_TOKEN));
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.content_type, r.nosniff, r.location.as_deref()),
        (Some(JSON), false, None)
    );
    assert_eq!(
        body(&r),
        "{\"AccessKeyId\":\"some-access-key\",\"SecretAccessKey\":\"some-secret-key\",\
         \"Token\":\"some-token\",\"AccountId\":\"123456789012\",\
         \"Expiration\":\"1996-03-27T07:45:23Z\"}"
    );
    assert_eq!(r.outcome, Outcome::Credentials("team-a/web"));
    // What an SDK reads from it.
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["Expiration"], "1996-03-27T07:45:23Z");
}

/// `omitempty`: long-term keys carry no `Token`; strings are escaped as `encoding/json` does.
#[test]
fn empty_fields_are_omitted_and_strings_escaped_as_go_does() {
    let f = Fixture::new();
    let part = f.part(&options());
    let r = get(&part, "169.254.170.23", Some(BATCH_TOKEN));
    assert_eq!(
        body(&r),
        "{\"AccessKeyId\":\"AKIAEXAMPLE\",\"SecretAccessKey\":\"s\\u003c\\u0026\\u003e\\\"e\\\\c\",\
         \"AccountId\":\"123456789012\",\"Expiration\":\"1996-03-27T07:45:23Z\"}"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["SecretAccessKey"], "s<&>\"e\\c");
    assert_eq!(r.outcome, Outcome::Credentials("team-b/batch"));
}

/// Each token gets its own pod's credentials and nothing else; the agent ignores the method.
#[test]
fn each_token_gets_its_own_pods_role_by_any_method() {
    let f = Fixture::new();
    let part = f.part(&options());
    let web = get(&part, "169.254.170.23", Some(WEB_TOKEN));
    let batch = get(&part, "169.254.170.23", Some(BATCH_TOKEN));
    assert!(body(&web).contains("some-access-key") && !body(&web).contains("AKIAEXAMPLE"));
    assert!(body(&batch).contains("AKIAEXAMPLE") && !body(&batch).contains("some-access-key"));
    for m in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
        let r = ask(&part, &m, PATH, "169.254.170.23", Some(WEB_TOKEN));
        assert_eq!((r.status, &r.body), (StatusCode::OK, &web.body), "{m}");
    }
    // The query is not part of the path.
    let r = ask(
        &part,
        &Method::GET,
        "/v1/credentials?x=1",
        "169.254.170.23",
        Some(WEB_TOKEN),
    );
    assert_eq!(r.body, web.body);
    // An escaped letter is the letter (ServeMux unescapes segments to match).
    let r = ask(
        &part,
        &Method::GET,
        "/v1/%63redentials",
        "169.254.170.23",
        Some(WEB_TOKEN),
    );
    assert_eq!(r.body, web.body);
    // The body is shared, not copied, per request.
    let again = get(&part, "169.254.170.23", Some(WEB_TOKEN));
    assert_eq!(again.body.as_ptr(), web.body.as_ptr());
}

/// `internal/validation/request_test.go` ("no src add passed") and
/// `eks_credential_handler_test.go` ("No IP is provided", "Invalid calling IP"): 403, checked
/// before the token (a right token through a wrong address is refused).
#[test]
fn a_host_other_than_the_agents_is_refused_first() {
    let f = Fixture::new();
    let part = f.part(&options());
    for (host, shown) in [
        ("124.3.1.2", "124.3.1.2"),
        ("127.0.0.1:24432", "127.0.0.1"),
        ("", ""),
        ("localhost", "localhost"),
        ("169.254.169.254", "169.254.169.254"),
        ("[fd00:ec2::24]:80", "fd00:ec2::24"),
    ] {
        let r = get(&part, host, Some(WEB_TOKEN));
        assert_error(
            &r,
            403,
            &format!(
                "Access Denied. Called agent through invalid address, please use either [169.254.170.23 fd00:ec2::23] address not {shown}\n"
            ),
        );
        assert_eq!(r.outcome, Outcome::WrongHost);
    }
    // No Host at all (HTTP/1.0): Go's `req.Host` is empty.
    let r = respond(
        &part,
        &Request {
            method: &Method::GET,
            path: PATH,
            query: None,
            host: None,
            authorization: Some(WEB_TOKEN.as_bytes()),
        },
    );
    assert!(body(&r).ends_with("address not \n"), "{}", body(&r));
    // The agent's own addresses, with or without port and brackets.
    for host in [
        "169.254.170.23",
        "169.254.170.23:80",
        "fd00:ec2::23",
        "[fd00:ec2::23]",
        "[fd00:ec2::23]:4213",
    ] {
        assert_eq!(
            get(&part, host, Some(WEB_TOKEN)).status,
            StatusCode::OK,
            "{host}"
        );
    }
}

/// With `loopback_hosts` the daemon also answers at its own loopback port; nothing else
/// changes.
#[test]
fn loopback_hosts_are_accepted_only_when_asked() {
    let f = Fixture::new();
    let part = f.part(&Options {
        loopback_hosts: true,
        ..options()
    });
    for host in [
        "127.0.0.1:1340",
        "[::1]:1340",
        "localhost:1340",
        "127.0.0.2",
    ] {
        assert_eq!(
            get(&part, host, Some(WEB_TOKEN)).status,
            StatusCode::OK,
            "{host}"
        );
    }
    assert_eq!(
        get(&part, "10.0.2.15", Some(WEB_TOKEN)).status,
        StatusCode::FORBIDDEN
    );
}

/// `request_test.go` ("no SA token passed"), `eks_credential_handler_test.go` ("service
/// account token is not passed as header"): exactly `Service account token cannot be empty\n`.
#[test]
fn a_missing_or_empty_token_is_refused() {
    let f = Fixture::new();
    let part = f.part(&options());
    for token in [None, Some("")] {
        let r = get(&part, "169.254.170.23", token);
        assert_error(&r, 400, "Service account token cannot be empty\n");
        assert_eq!(r.outcome, Outcome::NoToken);
    }
}

/// A wrong token that is not three dot-separated segments: golang-jwt v5's
/// `ParseUnverified` error in `validateToken`'s words. This includes a right token with a
/// `Bearer ` prefix, or cut short, or another box's.
#[test]
fn a_wrong_token_gets_the_agents_parse_refusal() {
    let f = Fixture::new();
    let part = f.part(&options());
    let bearer = format!("Bearer {WEB_TOKEN}");
    for token in [
        bearer.as_str(),
        &WEB_TOKEN[..63],
        &WEB_TOKEN[1..],
        "0000000000000000000000000000000000000000000000000000000000000000",
        "a.b",
        "a.b.c.d",
    ] {
        let r = get(&part, "169.254.170.23", Some(token));
        assert_error(
            &r,
            400,
            "Service account token cannot be parsed: token is malformed: token contains an invalid number of segments\n",
        );
        assert_eq!(r.outcome, Outcome::MalformedToken);
        assert!(!body(&r).contains(WEB_TOKEN) && !body(&r).contains("some-"));
    }
}

/// A JWT-shaped token that is not ours goes, at the agent, to EKS Auth, whose
/// `InvalidTokenException` it relays as `pkg/errors/errors.go` formats API errors (the shape
/// of botocore issue #3117's `[id]: (ExpiredTokenException): …, fault: client`).
#[test]
fn an_unknown_jwt_gets_eks_auths_refusal() {
    let f = Fixture::new();
    let part = f.part(&options());
    let r = get(
        &part,
        "169.254.170.23",
        Some("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
    );
    assert_error(
        &r,
        400,
        "[18b9740f-d967-4c97-86da-2f50f794b032]: (InvalidTokenException): The specified Kubernetes service account token is invalid., fault: client\n",
    );
    assert_eq!(r.outcome, Outcome::UnknownToken);
}

/// When the role has no valid set the agent answers 500 with its error chain.
#[test]
fn a_role_without_credentials_gets_the_agents_failure() {
    let f = Fixture::new();
    let part = f.part(&options());
    let r = get(&part, "169.254.170.23", Some(DOWN_TOKEN));
    assert_error(
        &r,
        500,
        "error getting credentials to cache: unable to fetch credentials from EKS Auth: operation error EKS Auth: AssumeRoleForPodIdentity, the credential_process command exited with status 1\n",
    );
    assert_eq!(r.outcome, Outcome::Unavailable("team-c/down"));
    let r = get(&part, "169.254.170.23", Some("2222"));
    assert_error(
        &r,
        500,
        "error getting credentials to cache: unable to fetch credentials from EKS Auth: operation error EKS Auth: AssumeRoleForPodIdentity, no credentials for team-d/new yet\n",
    );
    assert_eq!(r.outcome, Outcome::Unavailable("team-d/new"));
}

/// `ServeMux`: any other path is `http.NotFound` (also `/`, which the agent's own probe
/// expects to be 404); paths are routed before the host or the token are looked at.
#[test]
fn other_paths_are_not_found() {
    let f = Fixture::new();
    let part = f.part(&options());
    for path in [
        "/",
        "/v1/credentials/",
        "/v1/credential",
        "/v2/credentials",
        "/V1/credentials",
        "/latest/meta-data/",
        "/v1%2fcredentials",
    ] {
        let r = ask(&part, &Method::GET, path, "124.3.1.2", None);
        assert_error(&r, 404, "404 page not found\n");
        assert_eq!(r.outcome, Outcome::NotFound, "{path}");
    }
}

/// `ServeMux` redirects a path it cleans (Go 1.26: 307), keeping the query; `http.Redirect`
/// writes the page for GET only and the HTML type for GET and HEAD.
#[test]
fn unclean_paths_are_redirected_to_the_clean_one() {
    let f = Fixture::new();
    let part = f.part(&options());
    let r = ask(
        &part,
        &Method::GET,
        "/v1//credentials?a=1&b=2",
        "169.254.170.23",
        Some(WEB_TOKEN),
    );
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.location.as_deref(), Some("/v1/credentials?a=1&b=2"));
    assert_eq!((r.content_type, r.nosniff), (Some(HTML), false));
    assert_eq!(
        body(&r),
        "<a href=\"/v1/credentials?a=1&amp;b=2\">Temporary Redirect</a>.\n\n"
    );
    assert_eq!(r.outcome, Outcome::Redirect);
    let r = ask(&part, &Method::HEAD, "/v1/./credentials", "x", None);
    assert_eq!(
        (
            r.status,
            r.content_type,
            r.location.as_deref(),
            r.body.len()
        ),
        (
            StatusCode::TEMPORARY_REDIRECT,
            Some(HTML),
            Some("/v1/credentials"),
            0
        )
    );
    let r = ask(&part, &Method::POST, "//v1/credentials", "x", None);
    assert_eq!(
        (
            r.status,
            r.content_type,
            r.location.as_deref(),
            r.body.len()
        ),
        (
            StatusCode::TEMPORARY_REDIRECT,
            None,
            Some("/v1/credentials"),
            0
        )
    );
    // Go's server answers `OPTIONS *` itself.
    let r = ask(&part, &Method::OPTIONS, "*", "x", None);
    assert_eq!(
        (r.status, r.content_type, r.body.len(), r.outcome),
        (StatusCode::OK, None, 0, Outcome::Options)
    );
}

#[test]
fn nothing_shows_a_key_or_token() {
    let f = Fixture::new();
    let part = f.part(&options());
    let shown = format!("{part:?}");
    assert!(shown.contains("team-a/web"), "{shown}");
    for secret in [WEB_TOKEN, "some-secret-key", "some-token", "AKIAEXAMPLE"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let r = get(&part, "169.254.170.23", Some(WEB_TOKEN));
    assert_eq!(r.outcome.to_string(), "credentials for team-a/web");
    assert_eq!(part.len(), 4);
    assert!(Part::build(&[], ACCOUNT, &options()).is_empty());
}

/// As EKS's webhook sets them (the SDKs' container provider reads these two).
#[test]
fn env_is_what_eks_injects() {
    assert_eq!(
        env(FULL_URI, TOKEN_FILE),
        [
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
                "http://169.254.170.23/v1/credentials".to_string()
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".to_string(),
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
                    .to_string()
            ),
        ]
    );
    assert_eq!(FULL_URI_IPV6, "http://[fd00:ec2::23]/v1/credentials");
}
