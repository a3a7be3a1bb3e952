//! Each reply against a golden body under `tests/fixtures/ecs/`, made by the agent's own Go
//! types and format strings (`tests/fixtures/ecs/gen/main.go`: the credentials and every
//! refusal built from scratch; the task, container and stats documents decoded into the
//! agent's structs and encoded again, which keeps only the agent's fields, in its order, in
//! its formats). To regenerate: `ECS_GOLDEN_DUMP=tests/fixtures/ecs/rust cargo test --lib
//! ecs::tests`, then `cd tests/fixtures/ecs/gen && go run . ..`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;

use super::*;
use crate::credentials::{InstanceProfileId, Issued, Keys, RoleName, Secret, Unavailable};

const CREDS_ID: &str = "8d1b4a2e-5c3f-4b7a-9e2d-1f0a6c8b3d57";
const OTHER_CREDS_ID: &str = "0f6e2c1a-7b8d-4e3f-a5c9-2d4b6a8c0e13";
const CURL: &str = "a1f6c9d2-3e4b-4c5d-8e7f-9a0b1c2d3e4f";
const SIDECAR: &str = "b2e7d0c3-4f5a-4d6e-9f80-0b1c2d3e4f5a";
const PENDING: &str = "c3f8e1d4-5a6b-4e7f-8091-1c2d3e4f5a6b";
/// Who asks: a container on Docker's bridge.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 2));

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn host() -> Host {
    Host {
        region: "us-west-2".into(),
        account_id: "111122223333".into(),
        partition: "aws".into(),
        availability_zone: "us-west-2d".into(),
        availability_zone_id: "usw2-az4".into(),
        vpc_id: "vpc-1234567890abcdef0".into(),
    }
}

fn role(set: Result<Issued, Unavailable>) -> RoleCredentials {
    RoleCredentials {
        name: RoleName::try_from("curltest-task-role".to_string()).unwrap(),
        instance_profile_arn: String::new(),
        instance_profile_id: InstanceProfileId::try_from("AIPAXFAKEMETADATA0001".to_string())
            .unwrap(),
        set,
    }
}

fn issued() -> RoleCredentials {
    role(Ok(Issued {
        keys: Keys {
            access_key_id: Secret::new("ASIAIOSFODNN7EXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("IQoJb3JpZ2luX2VjEXAMPLETOKEN+/=")),
        },
        issued: at(1_601_599_386, 0),
        expires: at(1_601_620_986, 0),
    }))
}

fn containers() -> Vec<ContainerInput> {
    let labels = BTreeMap::from([
        (
            "com.amazonaws.ecs.cluster".to_string(),
            "default".to_string(),
        ),
        ("com.amazonaws.ecs.container-name".into(), "curl".into()),
        (
            "com.amazonaws.ecs.task-arn".into(),
            "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c"
                .into(),
        ),
        (
            "com.amazonaws.ecs.task-definition-family".into(),
            "curltest".into(),
        ),
        (
            "com.amazonaws.ecs.task-definition-version".into(),
            "26".into(),
        ),
        ("maintainer".into(), "Ops <ops@example.com> & co".into()),
    ]);
    vec![
        ContainerInput {
            endpoint_id: CURL.into(),
            name: "curl".into(),
            docker_id: "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66".into(),
            docker_name: "ecs-curltest-26-curl-cca48e8dcadd97805600".into(),
            image: "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest".into(),
            image_id: "sha256:d691691e9652791a60114e67b365688d20d19940dde7c4736ea30e660d8d3553"
                .into(),
            labels,
            networks: vec![NetworkInput {
                mode: "bridge".into(),
                ipv4: vec!["172.17.0.2".into()],
                ipv6: vec![],
            }],
            created_at: at(1_601_599_387, 0),
            started_at: at(1_601_599_387, 912_000_000),
            arn_id: "0206b271-b33f-47ab-86c6-a0ba208a70a9".into(),
            cpu: 0,
            memory: 512,
        },
        ContainerInput {
            endpoint_id: SIDECAR.into(),
            name: "sidecar".into(),
            docker_id: "0d1f6f3a2c4e5b6a7980a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7".into(),
            docker_name: "ecs-curltest-26-sidecar-f2c4a6b8d0e1f3a5b7c9".into(),
            image: "public.ecr.aws/docker/library/busybox:latest".into(),
            image_id: "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"
                .into(),
            labels: BTreeMap::new(),
            networks: vec![
                NetworkInput {
                    mode: "host".into(),
                    ipv4: vec![],
                    ipv6: vec![],
                },
                NetworkInput {
                    mode: "proj_default".into(),
                    ipv4: vec!["172.18.0.3".into()],
                    ipv6: vec!["fd00:dead:beef::3".into()],
                },
            ],
            created_at: at(1_601_599_387, 123_456_789),
            started_at: at(1_601_599_388, 500_000_000),
            arn_id: "1317c382-c440-48bc-97d7-b1cb319b81ba".into(),
            cpu: 256,
            memory: 0,
        },
    ]
}

fn part_with(creds: &RoleCredentials) -> Part {
    let task = TaskInput {
        family: "curltest".into(),
        revision: 26,
        cluster: "default".into(),
        task_id: "158d1c8083dd49d6b527399fd6414f5c".into(),
        role: "curltest-task-role".into(),
        credentials: Some(creds),
        credentials_id: CREDS_ID.into(),
        pull_started_at: at(1_601_599_386, 202_617_438),
        pull_stopped_at: at(1_601_599_386, 312_884_650),
        containers: containers(),
    };
    let pending = TaskInput {
        family: "pending".into(),
        revision: 1,
        cluster: "default".into(),
        task_id: "0123456789abcdef0123456789abcdef".into(),
        role: "pending-role".into(),
        credentials: None,
        credentials_id: OTHER_CREDS_ID.into(),
        pull_started_at: at(1_601_599_386, 0),
        pull_stopped_at: at(1_601_599_386, 0),
        containers: vec![ContainerInput {
            endpoint_id: PENDING.into(),
            ..containers().remove(1)
        }],
    };
    Part::build(&[task, pending], &host(), at(1_601_603_000, 250_000_000))
}

/// Compares `got` with the golden `name`, after writing it to `$ECS_GOLDEN_DUMP` if set.
fn golden(name: &str, got: &Response, status: StatusCode) {
    // Dumping for the generator: only write.
    if let Ok(dir) = std::env::var("ECS_GOLDEN_DUMP") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(name), &got.body).unwrap();
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ecs")
        .join(name);
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        String::from_utf8_lossy(&got.body),
        String::from_utf8_lossy(&want),
        "{name}"
    );
    assert_eq!(got.status, status, "{name}");
    assert_eq!((got.content_type, got.nosniff), (JSON, false), "{name}");
}

#[test]
fn credentials_are_the_agents_json_for_v2_and_v1() {
    let creds = issued();
    let p = part_with(&creds);
    let got = respond(&p, &format!("/v2/credentials/{CREDS_ID}"), None, CLIENT);
    golden("credentials.json", &got, StatusCode::OK);
    // The same set at `/v1/credentials?id=`, whatever else the query holds.
    let v1 = respond(
        &p,
        "/v1/credentials",
        Some(&format!("x=1&id={CREDS_ID}&id=z")),
        CLIENT,
    );
    assert_eq!(v1, got);
}

#[test]
fn credentials_refusals_are_the_agents() {
    let creds = issued();
    let p = part_with(&creds);
    let r = |path: &str, q: Option<&str>| respond(&p, path, q, CLIENT);
    let bad = StatusCode::BAD_REQUEST;
    golden(
        "credentials-v2-no-id.json",
        &r("/v2/credentials/", None),
        bad,
    );
    golden(
        "credentials-v1-no-id.json",
        &r("/v1/credentials", None),
        bad,
    );
    golden(
        "credentials-v1-no-id.json",
        &r("/v1/credentials", Some("id=")),
        bad,
    );
    golden(
        "credentials-v1-no-id.json",
        &r("/v1/credentials", Some("ID=x")),
        bad,
    );
    let wrong = "8d1b4a2e-5c3f-4b7a-9e2d-1f0a6c8b3d58";
    golden(
        "credentials-v2-invalid-id.json",
        &r(&format!("/v2/credentials/{wrong}"), None),
        bad,
    );
    golden(
        "credentials-v2-invalid-id.json",
        &r(&format!("/v2/credentials/{CREDS_ID}/x"), None),
        bad,
    );
    golden(
        "credentials-v1-invalid-id.json",
        &r("/v1/credentials", Some(&format!("id={wrong}"))),
        bad,
    );
    // A refusal names no id, neither the asked nor a known one.
    let body = r(&format!("/v2/credentials/{wrong}"), None).body;
    let body = String::from_utf8_lossy(&body);
    for id in [wrong, CREDS_ID, OTHER_CREDS_ID] {
        assert!(!body.contains(id), "{body}");
    }
    // A task whose credentials have not been issued: the agent's answer for a known id whose
    // credentials have not arrived.
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    golden(
        "credentials-v2-uninitialized.json",
        &r(&format!("/v2/credentials/{OTHER_CREDS_ID}"), None),
        unavailable,
    );
    golden(
        "credentials-v1-uninitialized.json",
        &r("/v1/credentials", Some(&format!("id={OTHER_CREDS_ID}"))),
        unavailable,
    );
    // And one whose source failed, likewise.
    let failed = role(Err(Unavailable {
        code: "CredentialsUnavailable",
        message: "the source failed".into(),
        since: at(1_601_599_386, 0),
    }));
    let p = part_with(&failed);
    golden(
        "credentials-v2-uninitialized.json",
        &respond(&p, &format!("/v2/credentials/{CREDS_ID}"), None, CLIENT),
        unavailable,
    );
}

#[test]
fn task_metadata_v3_and_v4_are_the_agents_documents() {
    let creds = issued();
    let p = part_with(&creds);
    let ok = StatusCode::OK;
    for v in ["v3", "v4"] {
        let r = |suffix: &str| respond(&p, &format!("/{v}/{CURL}{suffix}"), None, CLIENT);
        golden(&format!("{v}-container.json"), &r(""), ok);
        golden(&format!("{v}-task.json"), &r("/task"), ok);
        golden(&format!("{v}-task.json"), &r("/taskWithTags"), ok);
        golden(&format!("{v}-stats.json"), &r("/stats"), ok);
        golden(&format!("{v}-task-stats.json"), &r("/task/stats"), ok);
        // The other container of the task: its own document, the same task.
        let other = |suffix: &str| respond(&p, &format!("/{v}/{SIDECAR}{suffix}"), None, CLIENT);
        golden(&format!("{v}-container-sidecar.json"), &other(""), ok);
        assert_eq!(other("/task"), r("/task"));
        assert_eq!(other("/task/stats"), r("/task/stats"));
    }
}

#[test]
fn an_unknown_endpoint_id_gets_the_agents_refusal() {
    let creds = issued();
    let p = part_with(&creds);
    let wrong = "a1f6c9d2-3e4b-4c5d-8e7f-9a0b1c2d3e40";
    for (v, status, stats_status) in [
        (
            "v3",
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_REQUEST,
        ),
        ("v4", StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
    ] {
        let r = |suffix: &str| respond(&p, &format!("/{v}/{wrong}{suffix}"), None, CLIENT);
        golden(&format!("{v}-unknown-container.json"), &r(""), status);
        golden(&format!("{v}-unknown-task.json"), &r("/task"), status);
        golden(
            &format!("{v}-unknown-stats.json"),
            &r("/stats"),
            stats_status,
        );
        golden(
            &format!("{v}-unknown-task-stats.json"),
            &r("/task/stats"),
            stats_status,
        );
        let body = r("/task").body;
        let body = String::from_utf8_lossy(&body);
        for known in [
            CURL,
            SIDECAR,
            PENDING,
            CREDS_ID,
            "158d1c8083dd49d6b527399fd6414f5c",
        ] {
            assert!(!body.contains(known), "{body}");
        }
        // An empty id (`{id:[^/]*}` matches it) is an unknown one.
        let empty = respond(&p, &format!("/{v}/"), None, CLIENT);
        assert_eq!(empty.status, status);
        assert!(empty.body.ends_with(b"v3 endpoint ID: \""), "{empty:?}");
    }
    // The asked id is repeated as a JSON string, escaped as Go escapes it.
    let odd = respond(&p, "/v4/<a&b>", None, CLIENT);
    assert!(
        odd.body.ends_with(b"ID: \\u003ca\\u0026b\\u003e\""),
        "{odd:?}"
    );
}

#[test]
fn escapes_are_decoded_as_go_decodes_them() {
    let creds = issued();
    let p = part_with(&creds);
    let plain = respond(&p, &format!("/v2/credentials/{CREDS_ID}"), None, CLIENT);
    assert_eq!(plain.status, StatusCode::OK);
    let escaped = CREDS_ID.replacen('8', "%38", 1).replacen('-', "%2D", 1);
    assert_eq!(
        respond(&p, &format!("/v2/credentials/{escaped}"), None, CLIENT),
        plain
    );
    assert_eq!(
        respond(
            &p,
            &format!("/v4/{}", CURL.replacen('a', "%61", 1)),
            None,
            CLIENT
        )
        .status,
        StatusCode::OK
    );
    assert_eq!(
        respond(
            &p,
            "/v1/credentials",
            Some(&format!("%69d={escaped}")),
            CLIENT
        ),
        plain
    );
    // A pair Go's ParseQuery drops, then the id.
    assert_eq!(
        respond(
            &p,
            "/v1/credentials",
            Some(&format!("id=%zz&id={CREDS_ID}")),
            CLIENT
        ),
        plain
    );
    assert_eq!(
        respond(
            &p,
            "/v1/credentials",
            Some(&format!("a=1;id={CREDS_ID}")),
            CLIENT
        )
        .status,
        StatusCode::BAD_REQUEST
    );
    let bad = respond(&p, "/v2/credentials/%zz", None, CLIENT);
    assert_eq!(
        (bad.status, bad.content_type, &bad.body[..]),
        (StatusCode::BAD_REQUEST, TEXT, &b"400 Bad Request"[..])
    );
}

#[test]
fn a_path_that_is_not_clean_is_redirected_as_gorilla_mux_does() {
    let creds = issued();
    let p = part_with(&creds);
    let r = |path: &str, q: Option<&str>| {
        let r = respond(&p, path, q, CLIENT);
        (r.status, r.location, r.body.len(), r.content_type)
    };
    let moved = |to: &str| (StatusCode::MOVED_PERMANENTLY, Some(to.to_string()), 0, "");
    assert_eq!(
        r(&format!("/v4/{CURL}//task"), None),
        moved(&format!("/v4/{CURL}/task"))
    );
    assert_eq!(
        r(&format!("//v3/./{CURL}/x/../task/stats"), None),
        moved(&format!("/v3/{CURL}/task/stats"))
    );
    assert_eq!(r("/v4/../..", None), moved("/"));
    assert_eq!(
        r("/v1//credentials", Some("id=x")),
        moved("/v1/credentials?id=x")
    );
    // The trailing slash is kept (and `/v4/ID/` is then no route).
    assert_eq!(
        r(&format!("/v4//{CURL}/"), None),
        moved(&format!("/v4/{CURL}/"))
    );
    assert_eq!(
        respond(&p, &format!("/v4/{CURL}/"), None, CLIENT).status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_loggable_path_names_no_id() {
    for (path, shown) in [
        (
            format!("/v2/credentials/{CREDS_ID}"),
            "/v2/credentials/<id>",
        ),
        ("/v2/credentials/a/b".into(), "/v2/credentials/<id>"),
        (format!("/v4/{CURL}/task/stats"), "/v4/<id>/task/stats"),
        (format!("/v3/{CURL}"), "/v3/<id>"),
        (
            format!("/api/{CURL}/task-protection/v1/state"),
            "/api/<id>/task-protection/v1/state",
        ),
        ("/v1/credentials".into(), "/v1/credentials"),
        ("/v2/metadata".into(), "/v2/metadata"),
    ] {
        assert_eq!(loggable(&path), shown);
    }
    // Not quite the agent's paths: the ids are still found.
    let id = "0b7e2d0a-3f7c-4b6e-9d2c-1a2b3c4d5e6f";
    for path in [
        format!("//v2/credentials/{id}"),
        format!("/v2//credentials/{id}"),
        format!("/v2/credentials/./{id}"),
        format!("/v4/x/../{id}/task"),
        format!("/v9/{id}"),
        format!("/x{id}y/{id}"),
    ] {
        let shown = loggable(&path);
        assert!(
            !shown.contains(id) && shown.contains("<id>"),
            "{path} -> {shown}"
        );
    }
    assert_eq!(loggable("//v2/credentials/x"), "/v2/credentials/<id>");
}

/// v2's metadata finds a task by the client's address, which only an awsvpc task's is.
#[test]
fn v2_metadata_refuses_a_bridge_task_as_the_agent_does() {
    let creds = issued();
    let p = part_with(&creds);
    for path in [
        "/v2/metadata",
        "/v2/metadata/",
        "/v2/metadata/abc/def",
        "/v2/metadataWithTags",
        "/v2/metadataWithTags/",
        "/v2/stats",
        "/v2/stats/x",
    ] {
        let r = respond(&p, path, None, CLIENT);
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            &r.body[..],
            br#""Unable to get task arn from request: unable to associate '172.17.0.2' with task""#,
            "{path}"
        );
    }
    let v6 = respond(&p, "/v2/metadata", None, "fd00::5".parse().unwrap());
    assert!(
        v6.body.ends_with(b"associate 'fd00::5' with task\""),
        "{v6:?}"
    );
    for path in ["/v2/metadataWithTags/x", "/v2/metadatax", "/v2/statsx"] {
        assert_eq!(
            respond(&p, path, None, CLIENT).status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[test]
fn other_paths_get_go_s_404() {
    let creds = issued();
    let p = part_with(&creds);
    for path in [
        "/",
        "/v2/credentials",
        "/v4/x/tasks",
        &format!("/v4/{CURL}/"),
        &format!("/v4/{CURL}/task/"),
        &format!("/v4/{CURL}/stats/x"),
        "/v5/x",
        "/latest/meta-data/",
    ] {
        let r = respond(&p, path, None, CLIENT);
        assert_eq!(
            (r.status, r.content_type, r.nosniff, &r.body[..]),
            (
                StatusCode::NOT_FOUND,
                TEXT,
                true,
                &b"404 page not found\n"[..]
            ),
            "{path}"
        );
    }
}

#[test]
fn the_environment_is_what_the_agent_sets() {
    let env = env(Some(CREDS_ID), CURL, "us-west-2");
    let want = [
        (
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            format!("/v2/credentials/{CREDS_ID}"),
        ),
        ("AWS_DEFAULT_REGION", "us-west-2".into()),
        ("AWS_EXECUTION_ENV", "AWS_ECS_EC2".into()),
        ("AWS_REGION", "us-west-2".into()),
        ("ECS_AGENT_URI", format!("http://169.254.170.2/api/{CURL}")),
        (
            "ECS_CONTAINER_METADATA_URI",
            format!("http://169.254.170.2/v3/{CURL}"),
        ),
        (
            "ECS_CONTAINER_METADATA_URI_V4",
            format!("http://169.254.170.2/v4/{CURL}"),
        ),
    ];
    let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let want: Vec<(&str, &str)> = want.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(got, want);
    // Without a role, no credentials URI.
    assert_eq!(env_without_role().len(), 6);
    // The URIs it gives lead to this container's replies.
    let creds = issued();
    let p = part_with(&creds);
    for (_, uri) in &env {
        if let Some(path) = uri.strip_prefix("http://169.254.170.2") {
            if path.starts_with("/api/") {
                continue;
            }
            assert_eq!(
                respond(&p, path, None, CLIENT).status,
                StatusCode::OK,
                "{path}"
            );
        }
    }
    assert_eq!(respond(&p, got[0].1, None, CLIENT).status, StatusCode::OK);
}

fn env_without_role() -> Vec<(String, String)> {
    env(None, CURL, "us-west-2")
}

/// A request is a lookup and a `Bytes` clone: the body served is the one rendered at build.
#[test]
fn replies_share_the_rendered_bytes() {
    let creds = issued();
    let p = part_with(&creds);
    let a = respond(&p, &format!("/v4/{CURL}/task"), None, CLIENT);
    let b = respond(&p, &format!("/v4/{SIDECAR}/task"), None, CLIENT);
    assert_eq!(a.body.as_ptr(), b.body.as_ptr());
    let c = respond(&p, &format!("/v2/credentials/{CREDS_ID}"), None, CLIENT);
    let d = respond(&p, &format!("/v2/credentials/{CREDS_ID}"), None, CLIENT);
    assert_eq!(c.body.as_ptr(), d.body.as_ptr());
    // `Debug` (a snapshot's, in a log line) shows no id and no key.
    let shown = format!("{p:?}");
    assert_eq!(shown, "Part { credentials: 2, containers: 3, .. }");
}
