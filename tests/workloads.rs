//! Tasks and pods: the real daemon with `[[task]]` and `[[pod]]`, changed with `ctl task` and
//! `ctl pod`, read by unmodified clients' container credential providers (botocore's, and
//! the Rust `aws-config` default chain's) with only the environment `ctl task env` and
//! `ctl pod env` print. Here the daemon is reached on its loopback ports, so the task's
//! relative URI is given as the full URI `http://127.0.0.1:PORT/…`, which every SDK accepts
//! for loopback; `tests/netns_daemon.rs` and the VM tier use the link-local addresses
//! themselves. Also: the agents' refusals, rotation, bad input (one line, exit 1, nothing
//! changed), and no id or token in the log.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use common::Daemon;

const TASK_ROLE: &str = "web-task-role";
const POD_ROLE: &str = "cart-pod-role";

/// A `serve` process with a task and a pod in its config and its own control socket.
fn start() -> Daemon {
    let dir = common::daemon::workdir("workloads");
    let socket = dir.path().join("control.sock");
    let cfg = dir.path().join("config.toml");
    let text = format!(
        "[control]\nsocket = \"{}\"\n[server]\nstate-directory = \"{}\"\n\
         [instance]\nfrom-host = false\n\
         [[task]]\nname = \"web\"\nrole = \"{TASK_ROLE}\"\n\
         [[pod]]\nservice-account = \"shop/cart\"\nrole = \"{POD_ROLE}\"\n",
        socket.display(),
        dir.path().join("state").display(),
    );
    common::daemon::write_config(&cfg, &text);
    let d = Daemon::serve(&cfg)
        .control_socket(socket)
        .in_dir(dir)
        .start();
    assert!(d.socket().exists(), "no control socket:\n{}", d.log());
    hosts(&d);
    d
}

/// `KEY=VALUE` lines as a map.
fn env_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The task's environment with its relative URI made the full URI of the daemon's
/// loopback port (what an SDK does with it, but to 169.254.170.2).
fn task_env(d: &Daemon, task: &str) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let env = env_map(&d.ctl_ok(&["task", "env", task]));
    let ecs = d.endpoint_addr("ecs");
    let relative = env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"].clone();
    let client = vec![(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
        format!("http://{ecs}{relative}"),
    )];
    (env, client)
}

/// The pod's environment, its token file written by `ctl pod env`, with the full URI
/// pointed at the daemon's loopback port.
fn pod_env(d: &Daemon, sa: &str, token_file: &Path) -> Vec<(String, String)> {
    let out = d.ctl_ok(&[
        "pod",
        "env",
        sa,
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    let env = env_map(&out);
    assert_eq!(
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        "http://169.254.170.23/v1/credentials"
    );
    assert_eq!(
        Path::new(&env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]),
        token_file
    );
    let pod = d.endpoint_addr("pod_identity");
    vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
            format!("http://{pod}/v1/credentials"),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".to_string(),
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"].clone(),
        ),
    ]
}

/// botocore's credential chain with `vars`: `(method, access key id)`; `None` without
/// botocore outside CI.
fn botocore(vars: &[(String, String)]) -> Option<(String, String)> {
    let available = common::has_program("python3", &["-c", "import botocore"]);
    if !common::require(available, "python3 with botocore (pip install botocore)") {
        return None;
    }
    let mut env = common::aws_env(None).set("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in vars {
        env = env.set(k, v);
    }
    let out = env
        .command("python3")
        .arg("-c")
        .arg(
            "import botocore.session\n\
             c = botocore.session.get_session().get_credentials()\n\
             f = c.get_frozen_credentials()\n\
             print(c.method, f.access_key)",
        )
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "botocore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (method, key) = text.trim().split_once(' ').expect("method and key");
    Some((method.to_string(), key.to_string()))
}

/// The Rust SDK's default credential chain (`aws-config`, unmodified) in a process of its
/// own with exactly `vars` as its environment (as a container has): the access key id it
/// resolves. The process is this test binary running [`aws_config_peer`].
async fn aws_config(vars: &[(String, String)]) -> String {
    let mut env = common::aws_env(None).set("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in vars {
        env = env.set(k, v);
    }
    let mut cmd = env.command(std::env::current_exe().unwrap().to_str().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "aws_config_peer",
        "--nocapture",
        "--test-threads=1",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the peer runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split("PEER-KEY ").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "aws-config found no credentials:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string()
}

/// The peer process of [`aws_config`]: the default chain with the process's environment.
#[test]
#[ignore = "the Rust SDK peer, run in a process of its own by the tests here"]
fn aws_config_peer() {
    use aws_credential_types::provider::ProvideCredentials;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
            .region(aws_config::Region::new("us-east-1"))
            .build()
            .await;
        let creds = chain.provide_credentials().await.expect("credentials");
        println!("PEER-KEY {}", creds.access_key_id());
    });
}

/// GET `path` at `addr` with `headers`, with the `Host` a client reaching the agent through
/// its address sends (`169.254.170.2` or `169.254.170.23`, told by the port);
/// `(status, content type, body)`.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let host = HOSTS
        .with(|h| h.borrow().get(&addr.port()).copied())
        .unwrap_or("169.254.170.2");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let r = common::http::exchange(addr, req.as_bytes(), std::time::Duration::from_secs(5))
        .expect("an HTTP response");
    let ctype = r
        .headers()
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v)
        .unwrap_or_default();
    (r.status, ctype, r.body)
}

std::thread_local! {
    /// The `Host` each port stands for (its endpoint's address).
    static HOSTS: std::cell::RefCell<BTreeMap<u16, &'static str>> = Default::default();
}

/// Records which port is which endpoint's, for [`get`]'s `Host`.
fn hosts(d: &Daemon) {
    let (ecs, pod) = (d.endpoint_addr("ecs"), d.endpoint_addr("pod_identity"));
    HOSTS.with(|h| {
        let mut h = h.borrow_mut();
        h.insert(ecs.port(), "169.254.170.2");
        h.insert(pod.port(), "169.254.170.23");
    });
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_and_a_pod_get_their_roles_through_unmodified_clients_and_again_after_a_rotation() {
    let d = start();
    let ecs = d.endpoint_addr("ecs");
    let (env, task_vars) = task_env(&d, "web");
    // What the agent sets for a container.
    for key in [
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "ECS_CONTAINER_METADATA_URI",
        "ECS_CONTAINER_METADATA_URI_V4",
    ] {
        assert!(env.contains_key(key), "{key} in {env:?}");
    }
    assert!(env["ECS_CONTAINER_METADATA_URI_V4"].starts_with("http://169.254.170.2/v4/"));
    let relative = env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"].clone();
    let (status, ctype, body) = get(ecs, &relative, &[]);
    assert_eq!(
        (status, ctype.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let doc = json(&body);
    assert!(
        doc["RoleArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":role/{TASK_ROLE}")),
        "{doc}"
    );
    let task_key = doc["AccessKeyId"].as_str().unwrap().to_string();

    // Task metadata v4 through the container's own URI.
    let v4 = env["ECS_CONTAINER_METADATA_URI_V4"].replace("169.254.170.2", &ecs.to_string());
    let path = v4.trim_start_matches(&format!("http://{ecs}"));
    let (status, _, body) = get(ecs, &format!("{path}/task"), &[]);
    assert_eq!(status, 200, "{body}");
    let task = json(&body);
    assert_eq!(task["Family"], "web");
    assert_eq!(task["LaunchType"], "EC2");
    assert!(
        task["TaskARN"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ecs:us-east-1:"),
        "{task}"
    );

    let dir = d.dir().to_path_buf();
    let token_file = dir.join("pod-token");
    let pod_vars = pod_env(&d, "shop/cart", &token_file);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    let pod = d.endpoint_addr("pod_identity");
    let (status, _, body) = get(pod, "/v1/credentials", &[("Authorization", token.trim())]);
    assert_eq!(status, 200, "{body}");
    let pod_key = json(&body)["AccessKeyId"].as_str().unwrap().to_string();
    assert_ne!(pod_key, task_key);

    // The unmodified clients.
    assert_eq!(aws_config(&task_vars).await, task_key);
    assert_eq!(aws_config(&pod_vars).await, pod_key);
    let (tv, pv) = (task_vars.clone(), pod_vars.clone());
    if let Some((method, key)) = tokio::task::spawn_blocking(move || botocore(&tv))
        .await
        .unwrap()
    {
        assert_eq!(
            (method.as_str(), key.as_str()),
            ("container-role", task_key.as_str())
        );
        let (method, key) = tokio::task::spawn_blocking(move || botocore(&pv).unwrap())
            .await
            .unwrap();
        assert_eq!(
            (method.as_str(), key.as_str()),
            ("container-role", pod_key.as_str())
        );
    }

    // A rotation gives both new keys, with the same ids and token.
    d.ctl_ok(&["credentials", "rotate"]);
    let rotated_task = aws_config(&task_vars).await;
    let rotated_pod = aws_config(&pod_vars).await;
    assert_ne!(rotated_task, task_key);
    assert_ne!(rotated_pod, pod_key);
    if let Some((_, key)) = tokio::task::spawn_blocking(move || botocore(&task_vars))
        .await
        .unwrap()
    {
        assert_eq!(key, rotated_task);
    }

    // Nothing secret in the log: no id, no token, no key.
    let log = d.log();
    let id = relative.rsplit('/').next().unwrap();
    for secret in [id, token.trim(), &task_key, &pod_key, &rotated_task] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
}

#[test]
fn wrong_ids_and_tokens_get_the_agents_refusals_and_nothing_else() {
    let d = start();
    let ecs = d.endpoint_addr("ecs");
    let pod = d.endpoint_addr("pod_identity");
    let (env, _) = task_env(&d, "web");
    let right = env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"].clone();
    let id = right.rsplit('/').next().unwrap().to_string();
    let (status, _, body) = get(
        ecs,
        "/v2/credentials/00000000-0000-4000-8000-000000000000",
        &[],
    );
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        !body.contains(&id) && !body.contains("AccessKeyId"),
        "{body}"
    );
    let (status, _, body) = get(ecs, "/v4/00000000-0000-4000-8000-000000000000/task", &[]);
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(!body.contains("web"), "{body}");

    d.ctl_ok(&[
        "pod",
        "env",
        "shop/cart",
        "--token-file",
        d.dir().join("t").to_str().unwrap(),
    ]);
    let token = std::fs::read_to_string(d.dir().join("t")).unwrap();
    let (missing, _, b1) = get(pod, "/v1/credentials", &[]);
    let (wrong, _, b2) = get(
        pod,
        "/v1/credentials",
        &[("Authorization", "not-the-token")],
    );
    assert!((400..500).contains(&missing), "{missing} {b1}");
    assert!((400..500).contains(&wrong), "{wrong} {b2}");
    for b in [&b1, &b2] {
        assert!(
            !b.contains(token.trim()) && !b.contains("AccessKeyId"),
            "{b}"
        );
    }
    let log = d.log();
    assert!(!log.contains(&id) && !log.contains(token.trim()), "{log}");
}

#[test]
fn ctl_adds_lists_and_removes_tasks_and_pods_and_refuses_bad_input_with_one_line() {
    let d = start();
    let out = d.ctl_ok(&[
        "task",
        "add",
        "api",
        "--role",
        "api-role",
        "--container",
        "app=nginx:1",
    ]);
    assert!(out.contains("api"), "{out}");
    let list = d.ctl_ok(&["task", "list"]);
    assert!(list.contains("web") && list.contains("api"), "{list}");
    let env = env_map(&d.ctl_ok(&["task", "env", "api", "--container", "app"]));
    let ecs = d.endpoint_addr("ecs");
    let (status, _, body) = get(ecs, &env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(":role/api-role"), "{body}");
    let v4 = env["ECS_CONTAINER_METADATA_URI_V4"].replace("http://169.254.170.2", "");
    let (status, _, body) = get(ecs, &v4, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["Image"], "nginx:1");

    d.ctl_ok(&["pod", "add", "shop/checkout", "--role", "checkout-role"]);
    let pods = d.ctl_ok(&["pod", "list"]);
    assert!(
        pods.contains("shop/cart") && pods.contains("shop/checkout"),
        "{pods}"
    );

    // Bad input: one line, exit 1, nothing changed.
    fails_with(
        &d.ctl(&["task", "add", "api", "--role", "x"]),
        "already exists",
    );
    fails_with(
        &d.ctl(&["task", "add", "bad name", "--role", "x"]),
        "bad name",
    );
    fails_with(
        &d.ctl(&["task", "add", "ok", "--role", "not a role"]),
        "role",
    );
    fails_with(&d.ctl(&["task", "remove", "nope"]), "no task `nope`");
    fails_with(&d.ctl(&["task", "remove", "web"]), "config file");
    fails_with(&d.ctl(&["task", "env", "nope"]), "no task `nope`");
    fails_with(
        &d.ctl(&["pod", "add", "no-slash", "--role", "x"]),
        "NAMESPACE/NAME",
    );
    fails_with(
        &d.ctl(&["pod", "add", "shop/cart", "--role", "x"]),
        "already exists",
    );
    fails_with(
        &d.ctl(&["pod", "remove", "shop/none"]),
        "no pod `shop/none`",
    );
    assert_eq!(d.ctl_ok(&["task", "list"]), list);
    assert_eq!(d.ctl_ok(&["pod", "list"]), pods);

    d.ctl_ok(&["task", "remove", "api"]);
    d.ctl_ok(&["pod", "remove", "shop/checkout"]);
    let (status, _, _) = get(ecs, &env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], &[]);
    assert!((400..500).contains(&status), "removed: {status}");
    assert!(!d.ctl_ok(&["task", "list"]).contains("api"));
}
