//! The ECS endpoint's part of a snapshot: the config's `[[task]]`s as the plain inputs of
//! [`ecs::Part::build`], with what a real container's facts did not give made up
//! plausibly and stably: the task id, Docker ids, names and image ids are derived from the
//! task's capability ids through SHA-256 (one-way, so they reveal nothing of the ids, and
//! stay the same across restarts and reloads), addresses count up on Docker's default
//! bridge, times start at `since` (when the daemon started serving the tasks).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::capability::BoxSecret;
use crate::config::{Config, ContainerSpec, DEFAULT_IMAGE, Task};
use crate::credentials::{CredentialSet, RoleCredentials, Workload};
use crate::ecs;

/// Docker's default bridge, where containers without given addresses are put.
const BRIDGE: &str = "bridge";
/// The memory limit (MiB) a container is shown with.
const MEMORY_MIB: u32 = 512;

/// The instance the tasks run on, from `[instance]`.
pub fn host(config: &Config) -> ecs::Host {
    let i = config.instance();
    ecs::Host {
        region: i.region().to_string(),
        account_id: i.account_id().as_str().to_string(),
        partition: i.partition().0.to_string(),
        availability_zone: i.availability_zone().to_string(),
        availability_zone_id: i.availability_zone_id().to_string(),
        vpc_id: i.vpc_id().to_string(),
    }
}

/// The ECS part for `tasks`, with each task's credentials from `creds` (by task name; a
/// task without any yet answers as the agent does before they arrive), ids from `secret`,
/// times from `since` and stats as of `now`.
pub fn part(
    tasks: &[Task],
    creds: &CredentialSet,
    secret: &BoxSecret,
    config: &Config,
    since: SystemTime,
    now: SystemTime,
) -> ecs::Part {
    let host = host(config);
    let mut address = 2u8;
    let inputs: Vec<ecs::TaskInput<'_>> = tasks
        .iter()
        .map(|t| {
            task_input(
                t,
                creds.workloads.get(&Workload::Task(t.name().to_string())),
                secret,
                &host,
                since,
                &mut address,
            )
        })
        .collect();
    ecs::Part::build(&inputs, &host, now)
}

/// The environment of `container` of `task` (its first when `None`), as `ctl task env`
/// prints it; `None` when the task has no such container.
pub fn env(
    task: &Task,
    container: Option<&str>,
    secret: &BoxSecret,
    config: &Config,
) -> Option<Vec<(String, String)>> {
    let c = match container {
        Some(name) => task.containers().iter().find(|c| c.name == name)?,
        None => task.containers().first()?,
    };
    Some(ecs::env(
        Some(&secret.task_credentials_id(task.name())),
        &secret.container_endpoint_id(task.name(), &c.name),
        config.instance().region(),
    ))
}

fn hex_of(purpose: &str, input: &str) -> String {
    let d = Sha256::new()
        .chain_update(purpose.as_bytes())
        .chain_update([0])
        .chain_update(input.as_bytes())
        .finalize();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn task_input<'a>(
    t: &Task,
    credentials: Option<&'a RoleCredentials>,
    secret: &BoxSecret,
    host: &ecs::Host,
    since: SystemTime,
    address: &mut u8,
) -> ecs::TaskInput<'a> {
    let credentials_id = secret.task_credentials_id(t.name());
    let task_id = hex_of("ecs-task-id", &credentials_id)[..32].to_string();
    let containers: Vec<ecs::ContainerInput> = t
        .containers()
        .iter()
        .map(|c| container_input(t, &task_id, c, secret, host, since, address))
        .collect();
    let first = containers
        .iter()
        .map(|c| c.created_at)
        .min()
        .unwrap_or(since);
    ecs::TaskInput {
        family: t.name().to_string(),
        revision: t.revision(),
        cluster: t.cluster().to_string(),
        task_id,
        role: t.role().to_string(),
        credentials,
        credentials_id,
        // The image pull before the first container was made.
        pull_started_at: first - Duration::from_millis(2_350),
        pull_stopped_at: first - Duration::from_millis(410),
        containers,
    }
}

fn container_input(
    t: &Task,
    task_id: &str,
    c: &ContainerSpec,
    secret: &BoxSecret,
    host: &ecs::Host,
    since: SystemTime,
    address: &mut u8,
) -> ecs::ContainerInput {
    let endpoint_id = secret.container_endpoint_id(t.name(), &c.name);
    let image = c.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into());
    // The agent's Docker name: `ecs-FAMILY-REVISION-NAME-` and 20 random hex digits, the
    // name without what Docker refuses (`agent/engine/docker_task_engine.go`).
    let docker_name = c.docker_name.clone().unwrap_or_else(|| {
        let name: String = c
            .name
            .chars()
            .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '-')
            .collect();
        let tail = &hex_of("ecs-docker-name", &endpoint_id)[..20];
        format!("ecs-{}-{}-{name}-{tail}", t.name(), t.revision())
    });
    let networks = if c.networks.is_empty() {
        let n = *address;
        *address = if n == 254 { 2 } else { n + 1 };
        vec![ecs::NetworkInput {
            mode: BRIDGE.into(),
            ipv4: vec![format!("172.17.0.{n}")],
            ipv6: Vec::new(),
        }]
    } else {
        c.networks
            .iter()
            .map(|n| ecs::NetworkInput {
                mode: n.network_mode.clone(),
                ipv4: n.ipv4_addresses.iter().map(ToString::to_string).collect(),
                ipv6: n.ipv6_addresses.iter().map(ToString::to_string).collect(),
            })
            .collect()
    };
    // The labels the agent puts on every container it makes, then the container's own.
    let mut labels = BTreeMap::from([
        (
            "com.amazonaws.ecs.cluster".to_string(),
            t.cluster().to_string(),
        ),
        ("com.amazonaws.ecs.container-name".into(), c.name.clone()),
        (
            "com.amazonaws.ecs.task-arn".into(),
            ecs::task_arn(host, t.cluster(), task_id),
        ),
        (
            "com.amazonaws.ecs.task-definition-family".into(),
            t.name().to_string(),
        ),
        (
            "com.amazonaws.ecs.task-definition-version".into(),
            t.revision().to_string(),
        ),
    ]);
    labels.extend(c.labels.clone());
    let created_at = c.created().unwrap_or(since);
    let uuid = hex_of("ecs-container-arn", &endpoint_id);
    ecs::ContainerInput {
        docker_id: c
            .docker_id
            .clone()
            .unwrap_or_else(|| hex_of("ecs-docker-id", &endpoint_id)),
        endpoint_id,
        name: c.name.clone(),
        docker_name,
        image_id: c
            .image_id
            .clone()
            .unwrap_or_else(|| format!("sha256:{}", hex_of("ecs-image-id", &image))),
        image,
        labels,
        networks,
        created_at,
        started_at: c
            .started()
            .unwrap_or(created_at + Duration::from_millis(480)),
        arn_id: format!(
            "{}-{}-{}-{}-{}",
            &uuid[..8],
            &uuid[8..12],
            &uuid[12..16],
            &uuid[16..20],
            &uuid[20..32]
        ),
        cpu: 0,
        memory: MEMORY_MIB,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::UNIX_EPOCH;

    use http::StatusCode;

    use super::*;
    use crate::credentials::{InstanceProfileId, Issued, Keys, Secret};

    fn config() -> Config {
        Config::from_toml(
            "[instance]\navailability-zone = \"eu-west-1b\"\naccount-id = \"210987654321\"\n\
             [[task]]\nname = \"web\"\nrole = \"web-role\"\n\
             [[task]]\nname = \"api\"\nrole = \"api-role\"\ncluster = \"prod\"\nrevision = 4\n\
             [[task.containers]]\nname = \"app\"\nimage = \"nginx:1.25\"\n\
             docker-id = \"4c4d4e0b2e8f6b0f5d1a9c3e7b2a6d8f0e1c3b5a7d9f1e3c5b7a9d1f3e5c7b9a\"\n\
             created-at = \"2024-05-01T10:00:00.123456789Z\"\n\
             networks = [{ network-mode = \"proj_default\", ipv4-addresses = [\"172.18.0.3\"] }]\n\
             labels = { tier = \"front\" }\n\
             [[task.containers]]\nname = \"log_router\"\n",
            Path::new("c.toml"),
        )
        .unwrap()
    }

    fn creds(role: &str) -> RoleCredentials {
        RoleCredentials {
            name: role.to_string().try_into().unwrap(),
            instance_profile_arn: String::new(),
            instance_profile_id: InstanceProfileId::try_from("AIPAXFAKEMETADATA0001".to_string())
                .unwrap(),
            set: Ok(Issued {
                keys: Keys {
                    access_key_id: Secret::new(format!("ASIA{}", role.to_uppercase())),
                    secret_access_key: Secret::new("secret"),
                    session_token: None,
                },
                issued: UNIX_EPOCH,
                expires: UNIX_EPOCH + Duration::from_secs(6 * 3600),
            }),
        }
    }

    fn json(r: &ecs::Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn config_tasks_are_served_under_their_capability_ids() {
        let config = config();
        let secret = BoxSecret::from_bytes([7; 32]);
        let all = CredentialSet {
            workloads: BTreeMap::from([
                (Workload::Task("web".into()), creds("web-role")),
                (Workload::Task("api".into()), creds("api-role")),
            ]),
            ..CredentialSet::default()
        };
        let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = since + Duration::from_secs(600);
        let part = part(config.tasks(), &all, &secret, &config, since, now);
        let [web, api] = config.tasks() else { panic!() };

        // Each task's credentials at its own id, with its own role.
        for (t, key) in [(web, "ASIAWEB-ROLE"), (api, "ASIAAPI-ROLE")] {
            let env = env(t, None, &secret, &config).unwrap();
            let uri = &env[0].1;
            assert_eq!(env[0].0, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
            let r = ecs::respond(&part, uri, None);
            assert_eq!(r.status, StatusCode::OK);
            let doc = json(&r);
            assert_eq!(doc["AccessKeyId"], key);
            assert_eq!(
                doc["RoleArn"],
                format!("arn:aws:iam::210987654321:role/{}", t.role())
            );
            assert!(env.contains(&("AWS_REGION".into(), "eu-west-1".into())));
        }

        // The default container: named as the task, on the default bridge, made at `since`.
        let env = env(web, None, &secret, &config).unwrap();
        let v4 = &env
            .iter()
            .find(|(k, _)| k == "ECS_CONTAINER_METADATA_URI_V4")
            .unwrap()
            .1;
        let path = v4.strip_prefix("http://169.254.170.2").unwrap();
        let c = json(&ecs::respond(&part, path, None));
        assert_eq!(c["Name"], "web");
        assert_eq!(c["Image"], DEFAULT_IMAGE);
        assert_eq!(c["Networks"][0]["IPv4Addresses"][0], "172.17.0.2");
        assert_eq!(c["CreatedAt"], "2023-11-14T22:13:20Z");
        assert!(
            c["DockerName"]
                .as_str()
                .unwrap()
                .starts_with("ecs-web-1-web-"),
            "{c}"
        );
        let task = json(&ecs::respond(&part, &format!("{path}/task"), None));
        assert_eq!(task["Family"], "web");
        assert_eq!(task["Cluster"], "default");
        assert_eq!(task["AvailabilityZone"], "eu-west-1b");
        assert_eq!(task["AvailabilityZoneID"], "euw1-az2");
        let arn = task["TaskARN"].as_str().unwrap();
        let id = arn
            .strip_prefix("arn:aws:ecs:eu-west-1:210987654321:task/default/")
            .unwrap();
        assert_eq!(id.len(), 32, "{arn}");
        assert_eq!(c["Labels"]["com.amazonaws.ecs.task-arn"], arn);
        // Nothing served names the capability ids.
        let cred_id = secret.task_credentials_id("web");
        assert!(!task.to_string().contains(&cred_id));

        // The second task's real facts, its second container's made-up ones.
        let app = env_of(api, "app", &secret, &config);
        let c = json(&ecs::respond(&part, &app, None));
        assert_eq!(
            c["DockerId"],
            "4c4d4e0b2e8f6b0f5d1a9c3e7b2a6d8f0e1c3b5a7d9f1e3c5b7a9d1f3e5c7b9a"
        );
        assert_eq!(c["Networks"][0]["NetworkMode"], "proj_default");
        assert_eq!(c["CreatedAt"], "2024-05-01T10:00:00.123456789Z");
        assert_eq!(c["StartedAt"], "2024-05-01T10:00:00.603456789Z");
        assert_eq!(c["Labels"]["tier"], "front");
        assert_eq!(c["Labels"]["com.amazonaws.ecs.cluster"], "prod");
        let router = env_of(api, "log_router", &secret, &config);
        let r = json(&ecs::respond(&part, &router, None));
        assert_eq!(r["Networks"][0]["IPv4Addresses"][0], "172.17.0.3");
        assert!(
            r["DockerName"]
                .as_str()
                .unwrap()
                .starts_with("ecs-api-4-logrouter-"),
            "{r}"
        );
        let task = json(&ecs::respond(&part, &format!("{app}/task"), None));
        assert_eq!(task["Revision"], "4");
        assert_eq!(task["PullStartedAt"], "2023-11-14T22:13:17.65Z");
        assert!(super::env(api, Some("nope"), &secret, &config).is_none());

        // Stable: the same inputs give the same part; another box's secret other ids.
        let again = super::part(config.tasks(), &all, &secret, &config, since, now);
        assert_eq!(
            ecs::respond(&again, &app, None),
            ecs::respond(&part, &app, None)
        );
        let other = BoxSecret::from_bytes([8; 32]);
        assert_eq!(
            ecs::respond(&part, &env_of(api, "app", &other, &config), None).status,
            StatusCode::NOT_FOUND
        );

        // A task whose credentials are not there yet: the agent's 503.
        let none = super::part(
            config.tasks(),
            &CredentialSet::default(),
            &secret,
            &config,
            since,
            now,
        );
        let uri = format!("/v2/credentials/{cred_id}");
        assert_eq!(
            ecs::respond(&none, &uri, None).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    fn env_of(t: &Task, container: &str, secret: &BoxSecret, config: &Config) -> String {
        let env = env(t, Some(container), secret, config).unwrap();
        let v4 = &env
            .iter()
            .find(|(k, _)| k == "ECS_CONTAINER_METADATA_URI_V4")
            .unwrap()
            .1;
        v4.strip_prefix("http://169.254.170.2").unwrap().to_string()
    }
}
