//! A task's container as written (`[[task.containers]]`, `ctl task add`), and the same made
//! from a real container's `docker inspect` output ([`from_docker_inspect`], for `ctl task add
//! --from-docker`: whoever may ask Docker runs `docker inspect` and passes its facts on; the
//! daemon never gets the Docker socket).
//!
//! What the task metadata shows of a container: its name in the task, its image, and where
//! known the real container's id, name, image id, addresses, times and labels. Whatever is not
//! given is made up plausibly when the snapshot is built.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::task::DEFAULT_IMAGE;

/// One container of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContainerSpec {
    /// The container's name in the task definition.
    pub name: String,
    /// The image as the task definition names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The real container's id (64 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    /// The real container's name (without Docker's leading `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_name: Option<String>,
    /// The image's id, `sha256:` and 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The networks it is attached to, with its addresses on each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkSpec>,
    /// RFC 3339, as Docker prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A network a container is attached to (the agent's `Networks` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkSpec {
    /// The Docker network's name (`bridge`, `host`, a compose network).
    pub network_mode: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_addresses: Vec<Ipv6Addr>,
}

impl ContainerSpec {
    /// The container a task without `containers` gets: named as the task, a small image.
    pub fn named(name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: Some(DEFAULT_IMAGE.into()),
            docker_id: None,
            docker_name: None,
            image_id: None,
            networks: Vec::new(),
            created_at: None,
            started_at: None,
            labels: BTreeMap::new(),
        }
    }

    /// What is wrong with it, if anything (one line, naming the key).
    pub fn problem(&self) -> Result<(), String> {
        let n = &self.name;
        let ecs_name = |s: &str| {
            (1..=255).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !ecs_name(n) {
            return Err(format!(
                "container name `{n}` is not a container name: 1 to 255 of letters, digits, hyphens and underscores"
            ));
        }
        if let Some(i) = &self.image
            && (i.is_empty() || i.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(format!(
                "container `{n}`: `image` `{i}` is not an image name"
            ));
        }
        if let Some(id) = &self.docker_id
            && !is_hex(id, 64)
        {
            return Err(format!(
                "container `{n}`: `docker-id` `{id}` is not a container id (64 lower-case hex digits)"
            ));
        }
        if let Some(d) = &self.docker_name
            && !is_docker_name(d)
        {
            return Err(format!(
                "container `{n}`: `docker-name` `{d}` is not a Docker container name"
            ));
        }
        if let Some(id) = &self.image_id
            && !id.strip_prefix("sha256:").is_some_and(|h| is_hex(h, 64))
        {
            return Err(format!(
                "container `{n}`: `image-id` `{id}` is not an image id (`sha256:` and 64 hex digits)"
            ));
        }
        for net in &self.networks {
            if !is_docker_name(&net.network_mode) {
                return Err(format!(
                    "container `{n}`: `network-mode` `{}` is not a Docker network name",
                    net.network_mode
                ));
            }
        }
        for (key, t) in [
            ("created-at", &self.created_at),
            ("started-at", &self.started_at),
        ] {
            if let Some(t) = t
                && parse_time(t).is_none()
            {
                return Err(format!(
                    "container `{n}`: `{key}` `{t}` is not an RFC 3339 time (e.g. 2024-05-01T10:00:00.5Z)"
                ));
            }
        }
        Ok(())
    }

    /// `created-at`, if given (checked by [`ContainerSpec::problem`]).
    pub fn created(&self) -> Option<SystemTime> {
        self.created_at.as_deref().and_then(parse_time)
    }

    /// `started-at`, if given.
    pub fn started(&self) -> Option<SystemTime> {
        self.started_at.as_deref().and_then(parse_time)
    }
}

fn parse_time(s: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Docker's rule for container and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn is_docker_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        && s.len() <= 255
}

/// Why `docker inspect` output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerInspectError {
    #[error("docker inspect output is not JSON: {0}")]
    Json(String),
    #[error("docker inspect printed {0} objects: inspect exactly one container")]
    Count(usize),
    #[error("docker inspect output has no {0}: is it a container's (not an image's)?")]
    Missing(&'static str),
    #[error("docker inspect output: {0}")]
    Invalid(String),
}

/// The parts of `docker inspect CONTAINER` (Docker Engine API `ContainerJSON`) that the task
/// metadata shows.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    id: Option<String>,
    name: Option<String>,
    created: Option<String>,
    /// The image id (`sha256:…`).
    image: Option<String>,
    state: Option<InspectedState>,
    config: Option<InspectedConfig>,
    host_config: Option<InspectedHostConfig>,
    network_settings: Option<InspectedNetworkSettings>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedState {
    started_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedConfig {
    /// The image as named at `docker run`.
    image: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedHostConfig {
    network_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedNetworkSettings {
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
    #[serde(rename = "GlobalIPv6Address")]
    global_ipv6_address: Option<String>,
    networks: Option<BTreeMap<String, InspectedNetwork>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedNetwork {
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
    #[serde(rename = "GlobalIPv6Address")]
    global_ipv6_address: Option<String>,
}

/// Docker's zero time, `StartedAt` of a container never started.
const DOCKER_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The container `docker inspect CONTAINER` describes (its JSON array of one object), named
/// `name` in the task, or after the container (its name with anything ECS refuses in a
/// container name made `-`). Its addresses are taken per network, as the agent takes them
/// from Docker (`NetworkSettings.Networks`, else the top-level `IPAddress` under
/// `HostConfig.NetworkMode`); an empty address (a network without IPv4, `host`) is left out.
pub fn from_docker_inspect(
    json: &str,
    name: Option<&str>,
) -> Result<ContainerSpec, DockerInspectError> {
    let mut all: Vec<Inspected> =
        serde_json::from_str(json).map_err(|e| DockerInspectError::Json(e.to_string()))?;
    if all.len() != 1 {
        return Err(DockerInspectError::Count(all.len()));
    }
    let c = all.remove(0);
    let id = c.id.ok_or(DockerInspectError::Missing("Id"))?;
    let docker_name = c
        .name
        .ok_or(DockerInspectError::Missing("Name"))?
        .trim_start_matches('/')
        .to_string();
    let config = c.config.ok_or(DockerInspectError::Missing("Config"))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => docker_name
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                    ch
                } else {
                    '-'
                }
            })
            .collect(),
    };
    let settings = c.network_settings;
    let mut networks = Vec::new();
    let addrs = |v4: Option<String>, v6: Option<String>| -> Result<_, DockerInspectError> {
        let bad = |a: &str| DockerInspectError::Invalid(format!("`{a}` is not an IP address"));
        let v4: Vec<Ipv4Addr> = match v4.filter(|a| !a.is_empty()) {
            Some(a) => vec![a.parse().map_err(|_| bad(&a))?],
            None => Vec::new(),
        };
        let v6: Vec<Ipv6Addr> = match v6.filter(|a| !a.is_empty()) {
            Some(a) => vec![a.parse().map_err(|_| bad(&a))?],
            None => Vec::new(),
        };
        Ok((v4, v6))
    };
    if let Some(s) = settings {
        match s.networks.filter(|n| !n.is_empty()) {
            Some(nets) => {
                for (mode, n) in nets {
                    let (v4, v6) = addrs(n.ip_address, n.global_ipv6_address)?;
                    networks.push(NetworkSpec {
                        network_mode: mode,
                        ipv4_addresses: v4,
                        ipv6_addresses: v6,
                    });
                }
            }
            None => {
                if let Some(mode) = c.host_config.and_then(|h| h.network_mode) {
                    let (v4, v6) = addrs(s.ip_address, s.global_ipv6_address)?;
                    networks.push(NetworkSpec {
                        network_mode: mode,
                        ipv4_addresses: v4,
                        ipv6_addresses: v6,
                    });
                }
            }
        }
    }
    let spec = ContainerSpec {
        name,
        image: config.image,
        docker_id: Some(id),
        docker_name: Some(docker_name),
        image_id: c.image,
        networks,
        created_at: c.created,
        started_at: c
            .state
            .and_then(|s| s.started_at)
            .filter(|t| t != DOCKER_ZERO_TIME),
        labels: config.labels.unwrap_or_default(),
    };
    spec.problem().map_err(DockerInspectError::Invalid)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker inspect` of a container started with `docker run -d --name web-1 -l tier=front
    /// nginx:1.25` on Docker 20.10 (the shape of its output, trimmed of keys we do not read
    /// only where they are long lists).
    const INSPECT: &str = include_str!("../../tests/fixtures/ecs/docker-inspect-20.10.json");

    #[test]
    fn docker_inspect_gives_the_real_facts() {
        let c = from_docker_inspect(INSPECT, None).unwrap();
        assert_eq!(c.name, "web-1");
        assert_eq!(c.docker_name.as_deref(), Some("web-1"));
        assert_eq!(
            c.docker_id.as_deref(),
            Some("4c4d4e0b2e8f6b0f5d1a9c3e7b2a6d8f0e1c3b5a7d9f1e3c5b7a9d1f3e5c7b9a")
        );
        assert_eq!(c.image.as_deref(), Some("nginx:1.25"));
        assert_eq!(
            c.image_id.as_deref(),
            Some("sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6")
        );
        assert_eq!(
            c.networks,
            [NetworkSpec {
                network_mode: "bridge".into(),
                ipv4_addresses: vec!["172.17.0.3".parse().unwrap()],
                ipv6_addresses: vec![],
            }]
        );
        assert_eq!(
            c.created_at.as_deref(),
            Some("2024-05-01T10:00:00.123456789Z")
        );
        assert_eq!(c.started_at.as_deref(), Some("2024-05-01T10:00:01.5Z"));
        assert_eq!(c.labels["tier"], "front");
        assert_eq!(
            c.labels["maintainer"],
            "NGINX Docker Maintainers <docker-maint@nginx.com>"
        );
        assert!(c.created().unwrap() < c.started().unwrap());
        // Named in the task as asked; a Docker name ECS would refuse is made acceptable.
        assert_eq!(
            from_docker_inspect(INSPECT, Some("app")).unwrap().name,
            "app"
        );
        let dotted = INSPECT.replace("\"/web-1\"", "\"/proj.web.1\"");
        let c = from_docker_inspect(&dotted, None).unwrap();
        assert_eq!(
            (c.name.as_str(), c.docker_name.as_deref()),
            ("proj-web-1", Some("proj.web.1"))
        );
    }

    #[test]
    fn compose_networks_and_a_container_never_started() {
        let text = INSPECT
            .replace("\"StartedAt\": \"2024-05-01T10:00:01.5Z\"", "\"StartedAt\": \"0001-01-01T00:00:00Z\"")
            .replace("\"bridge\": {", "\"proj_default\": {")
            .replace("\"GlobalIPv6Address\": \"\",\n                    \"GlobalIPv6PrefixLen\"", "\"GlobalIPv6Address\": \"fd00:dead::3\",\n                    \"GlobalIPv6PrefixLen\"");
        let c = from_docker_inspect(&text, None).unwrap();
        assert_eq!(c.started_at, None);
        assert_eq!(c.networks[0].network_mode, "proj_default");
        assert_eq!(
            c.networks[0].ipv6_addresses,
            ["fd00:dead::3".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[test]
    fn what_is_not_one_containers_inspect_output_is_refused() {
        let e = |s: &str| from_docker_inspect(s, None).unwrap_err().to_string();
        assert_eq!(
            e("[]"),
            "docker inspect printed 0 objects: inspect exactly one container"
        );
        assert!(e("Error: No such object: web").starts_with("docker inspect output is not JSON"));
        assert_eq!(
            e(r#"[{"Id":"sha256:abc","RepoTags":["nginx"]}]"#),
            "docker inspect output has no Name: is it a container's (not an image's)?"
        );
        let two = format!(
            "[{0},{0}]",
            INSPECT.trim().trim_start_matches('[').trim_end_matches(']')
        );
        assert_eq!(
            e(&two),
            "docker inspect printed 2 objects: inspect exactly one container"
        );
        let bad_id = INSPECT.replace("4c4d4e0b2e8f", "XXXX4e0b2e8f");
        assert!(
            e(&bad_id).contains("is not a container id"),
            "{}",
            e(&bad_id)
        );
    }
}
