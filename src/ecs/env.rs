//! The environment the agent gives a task's containers.

use super::AGENT_HOST;

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
