//! The ECS agent's documents, field for field and in the order its Go structs give
//! (`encoding/json` writes the fields of an embedded struct where it is embedded, and a field
//! of the outer struct hides the embedded one of the same name, which then moves to the
//! outer field's place). Sources, at aws/amazon-ecs-agent
//! 8dfceca6cf380a83c3007349317566f2862f0673:
//! - credentials: `ecs-agent/credentials/manager.go` (`IAMRoleCredentials`), errors
//!   `ecs-agent/tmds/handlers/utils/helpers.go` (`ErrorMessage`);
//! - v3 task and container: `ecs-agent/tmds/handlers/v2/response.go` (`TaskResponse`,
//!   `ContainerResponse`, `LimitsResponse`), `ecs-agent/tmds/handlers/response/response.go`
//!   (`Network`), filled as `agent/handlers/v2/response.go` and
//!   `agent/handlers/v3/container_metadata_handler.go` fill them;
//! - v4: `ecs-agent/tmds/handlers/v4/state/response.go` (`TaskResponse`, `ContainerResponse`,
//!   `Network`, `StatsResponse`), filled as `agent/handlers/v4/response.go` and
//!   `agent/handlers/v4/container_metadata_handler.go` fill them;
//! - stats: Docker's `types.StatsJSON` (`ecs-agent/vendor/github.com/docker/docker/api/types/stats.go`),
//!   `ecs-agent/stats` (`NetworkStatsPerSec`).
//!
//! Fields the agent leaves empty for a bridge-mode EC2 task with no health check, ports,
//! volumes, log configuration, tags or restart policy are not modelled (they are
//! `omitempty`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::json::{go_float, go_float_opt, go_time_field, go_time_opt};

/// `IAMRoleCredentials` as `json.Marshal` writes it (`CredentialsID` and `RoleType` are `-`).
#[derive(Serialize)]
pub struct Credentials<'a> {
    #[serde(rename = "RoleArn")]
    pub role_arn: &'a str,
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: &'a str,
    #[serde(rename = "SecretAccessKey")]
    pub secret_access_key: &'a str,
    #[serde(rename = "Token")]
    pub token: &'a str,
    #[serde(rename = "Expiration")]
    pub expiration: String,
}

/// `utils.ErrorMessage`, marshalled whole: `HTTPErrorCode` has no json tag, so Go writes
/// it too, under its field name.
#[derive(Serialize)]
pub struct ErrorMessage<'a> {
    pub code: &'a str,
    pub message: &'a str,
    /// `HTTPErrorCode int` has no json tag, so Go writes it under its field name.
    #[serde(rename = "HTTPErrorCode")]
    pub http_error_code: u16,
}

/// `LimitsResponse`.
#[derive(Serialize, Clone)]
pub struct Limits {
    #[serde(
        rename = "CPU",
        serialize_with = "go_float_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu: Option<f64>,
    #[serde(rename = "Memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
}

/// `response.Network`, and v4's `state.Network` for a non-awsvpc task (whose
/// `NetworkInterfaceProperties` are all empty).
#[derive(Serialize, Clone)]
pub struct Network<'a> {
    #[serde(rename = "NetworkMode", skip_serializing_if = "str::is_empty")]
    pub network_mode: &'a str,
    #[serde(rename = "IPv4Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<&'a str>,
    #[serde(rename = "IPv6Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv6_addresses: Vec<&'a str>,
}

/// `v2.ContainerResponse` (v3), or v4's `state.ContainerResponse` embedding it: the v2
/// fields, then (v4) the outer `Networks`, which hides the embedded one. v3 fills `networks`
/// (the embedded place), v4 `networks_v4` (after `ContainerARN`).
#[derive(Serialize, Clone)]
pub struct Container<'a> {
    #[serde(rename = "DockerId")]
    pub docker_id: &'a str,
    #[serde(rename = "Name")]
    pub name: &'a str,
    #[serde(rename = "DockerName")]
    pub docker_name: &'a str,
    #[serde(rename = "Image")]
    pub image: &'a str,
    #[serde(rename = "ImageID")]
    pub image_id: &'a str,
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: &'a BTreeMap<String, String>,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: &'a str,
    #[serde(rename = "KnownStatus")]
    pub known_status: &'a str,
    #[serde(rename = "Limits")]
    pub limits: Limits,
    #[serde(
        rename = "CreatedAt",
        serialize_with = "go_time_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<SystemTime>,
    #[serde(
        rename = "StartedAt",
        serialize_with = "go_time_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<SystemTime>,
    #[serde(rename = "Type")]
    pub kind: &'a str,
    #[serde(rename = "Networks", skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Network<'a>>>,
    #[serde(rename = "ContainerARN", skip_serializing_if = "String::is_empty")]
    pub container_arn: String,
    #[serde(rename = "Networks", skip_serializing_if = "Option::is_none")]
    pub networks_v4: Option<Vec<Network<'a>>>,
}

/// `v2.TaskResponse` (v3), or v4's `state.TaskResponse` embedding it: the v2 fields (its
/// `Containers` hidden by the outer one, which follows `Errors`), then v4's own.
#[derive(Serialize)]
pub struct Task<'a> {
    #[serde(rename = "Cluster")]
    pub cluster: &'a str,
    #[serde(rename = "TaskARN")]
    pub task_arn: &'a str,
    #[serde(rename = "Family")]
    pub family: &'a str,
    #[serde(rename = "Revision")]
    pub revision: &'a str,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: &'a str,
    #[serde(rename = "KnownStatus")]
    pub known_status: &'a str,
    /// v3's place of `Containers`.
    #[serde(rename = "Containers", skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(
        rename = "PullStartedAt",
        serialize_with = "go_time_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pull_started_at: Option<SystemTime>,
    #[serde(
        rename = "PullStoppedAt",
        serialize_with = "go_time_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pull_stopped_at: Option<SystemTime>,
    #[serde(rename = "AvailabilityZone", skip_serializing_if = "str::is_empty")]
    pub availability_zone: &'a str,
    #[serde(rename = "LaunchType", skip_serializing_if = "str::is_empty")]
    pub launch_type: &'a str,
    /// v4's place of `Containers`.
    #[serde(rename = "Containers", skip_serializing_if = "Option::is_none")]
    pub containers_v4: Option<Vec<Container<'a>>>,
    #[serde(rename = "VPCID", skip_serializing_if = "str::is_empty")]
    pub vpc_id: &'a str,
    #[serde(
        rename = "FaultInjectionEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub fault_injection_enabled: Option<bool>,
    #[serde(rename = "AvailabilityZoneID", skip_serializing_if = "str::is_empty")]
    pub availability_zone_id: &'a str,
}

/// Docker's `ThrottlingData`.
#[derive(Serialize, Clone, Copy, Default)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// Docker's `CPUUsage`.
#[derive(Serialize, Clone, Default)]
pub struct CpuUsage {
    pub total_usage: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

/// Docker's `CPUStats`.
#[derive(Serialize, Clone, Default)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    #[serde(rename = "system_cpu_usage", skip_serializing_if = "is_zero")]
    pub system_usage: u64,
    #[serde(skip_serializing_if = "is_zero32")]
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

/// Docker's `MemoryStats` (the fields a Linux cgroup v2 host fills).
#[derive(Serialize, Default)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Docker's `BlkioStatEntry`.
#[derive(Serialize)]
pub struct BlkioStatEntry {
    pub major: u64,
    pub minor: u64,
    pub op: &'static str,
    pub value: u64,
}

/// Docker's `BlkioStats`: on cgroup v2 only `io_service_bytes_recursive` is filled, the rest
/// are `null` (nil slices).
#[derive(Serialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_queue_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_service_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_wait_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_merged_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub sectors_recursive: Option<Vec<BlkioStatEntry>>,
}

/// Docker's `PidsStats`.
#[derive(Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Docker's `StorageStats` (Windows only: empty on Linux).
#[derive(Serialize)]
pub struct StorageStats {}

/// Docker's `NetworkStats`.
#[derive(Serialize)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `stats.NetworkStatsPerSec`.
#[derive(Serialize)]
pub struct NetworkRateStats {
    #[serde(rename = "rx_bytes_per_sec", serialize_with = "go_float")]
    pub rx: f64,
    #[serde(rename = "tx_bytes_per_sec", serialize_with = "go_float")]
    pub tx: f64,
}

/// Docker's `StatsJSON` (its embedded `Stats` first), and v4's `StatsResponse` embedding it
/// with `network_rate_stats` after.
#[derive(Serialize)]
pub struct Stats<'a> {
    #[serde(serialize_with = "go_time_field")]
    pub read: SystemTime,
    #[serde(serialize_with = "go_time_field")]
    pub preread: SystemTime,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub storage_stats: StorageStats,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub id: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<&'a str, NetworkStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_rate_stats: Option<NetworkRateStats>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero32(v: &u32) -> bool {
    *v == 0
}
