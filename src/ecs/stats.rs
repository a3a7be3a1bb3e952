//! Container stats. The agent serves what Docker's stats stream last told it (`docker stats`'
//! JSON, cgroup v2 on a current ECS-optimized AMI). There is no Docker socket here (by
//! design: the daemon never gets one), so these are plausible made-up figures of the same
//! shape: a small, mostly idle process whose counters grow with its uptime (CPU about 0.5 %
//! of one core, a little network traffic), computed once per snapshot, so `read` is the
//! snapshot's time and two reads between snapshots are the same.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::docs::{
    BlkioStatEntry, BlkioStats, CpuStats, CpuUsage, MemoryStats, NetworkRateStats, NetworkStats,
    PidsStats, Stats, StorageStats, ThrottlingData,
};

/// The CPUs the stats say the host has.
const ONLINE_CPUS: u32 = 2;
/// What a container without a memory limit is limited by: the host's memory.
const HOST_MEMORY: u64 = 4 << 30;

/// What the stats of one container are made from.
pub struct Input<'a> {
    /// Docker's `name`: the container's name with Docker's leading `/`.
    pub name: &'a str,
    pub id: &'a str,
    pub started_at: SystemTime,
    /// The memory limit in MiB (0: none, the host's memory then).
    pub memory_mib: u32,
    /// Whether it has an `eth0` (a bridge or awsvpc network, not `host` or `none`).
    pub has_eth0: bool,
    /// Which container of the task it is, so two containers differ.
    pub index: usize,
    pub now: SystemTime,
}

/// Docker's stats document for `c`; `rate` adds v4's `network_rate_stats`.
pub fn stats<'a>(c: &Input<'a>, rate: bool) -> Stats<'a> {
    let up = c
        .now
        .duration_since(c.started_at)
        .unwrap_or_default()
        .max(Duration::from_secs(1));
    let cpu = |up: Duration| {
        let ns = up.as_nanos() as u64;
        let total = ns / 200 + 40_000_000 * (c.index as u64 + 1);
        CpuStats {
            cpu_usage: CpuUsage {
                total_usage: total,
                percpu_usage: Vec::new(),
                usage_in_kernelmode: total / 10 * 3,
                usage_in_usermode: total / 10 * 7,
            },
            system_usage: ns.saturating_mul(ONLINE_CPUS as u64) + 9_000_000_000_000,
            online_cpus: ONLINE_CPUS,
            throttling_data: ThrottlingData::default(),
        }
    };
    let secs = up.as_secs();
    let anon = (18 << 20) + (c.index as u64) * (3 << 20);
    let file = (6 << 20) + (secs % 4096) * 1024;
    let memory_stats = MemoryStats {
        usage: anon + file + (1 << 20),
        stats: BTreeMap::from([
            ("active_anon", 4096),
            ("active_file", file / 2),
            ("anon", anon),
            ("anon_thp", 0),
            ("file", file),
            ("file_dirty", 0),
            ("file_mapped", file / 3),
            ("file_writeback", 0),
            ("inactive_anon", anon),
            ("inactive_file", file - file / 2),
            ("kernel_stack", 49_152),
            ("pgfault", 2_000 + secs * 3),
            ("pgmajfault", 7),
            ("shmem", 0),
            ("slab", 412_000),
            ("sock", 0),
            ("unevictable", 0),
        ]),
        limit: if c.memory_mib == 0 {
            HOST_MEMORY
        } else {
            u64::from(c.memory_mib) << 20
        },
    };
    let (rx_rate, tx_rate) = (180.0 + c.index as f64 * 20.0, 95.0 + c.index as f64 * 10.0);
    let networks = if c.has_eth0 {
        BTreeMap::from([(
            "eth0",
            NetworkStats {
                rx_bytes: 1_226 + secs * rx_rate as u64,
                rx_packets: 14 + secs * 2,
                rx_errors: 0,
                rx_dropped: 0,
                tx_bytes: 878 + secs * tx_rate as u64,
                tx_packets: 11 + secs,
                tx_errors: 0,
                tx_dropped: 0,
            },
        )])
    } else {
        BTreeMap::new()
    };
    Stats {
        read: c.now,
        preread: c.now - Duration::from_secs(1),
        pids_stats: PidsStats {
            current: 2 + c.index as u64,
            limit: 0,
        },
        blkio_stats: BlkioStats {
            io_service_bytes_recursive: Some(vec![
                BlkioStatEntry {
                    major: 259,
                    minor: 0,
                    op: "read",
                    value: 4_718_592,
                },
                BlkioStatEntry {
                    major: 259,
                    minor: 0,
                    op: "write",
                    value: 12_288 + secs * 64,
                },
            ]),
            io_serviced_recursive: None,
            io_queue_recursive: None,
            io_service_time_recursive: None,
            io_wait_time_recursive: None,
            io_merged_recursive: None,
            io_time_recursive: None,
            sectors_recursive: None,
        },
        num_procs: 0,
        storage_stats: StorageStats {},
        cpu_stats: cpu(up),
        precpu_stats: cpu(up - Duration::from_secs(1).min(up)),
        memory_stats,
        name: c.name,
        id: c.id,
        networks,
        network_rate_stats: rate.then_some(NetworkRateStats {
            rx: if c.has_eth0 { rx_rate } else { 0.0 },
            tx: if c.has_eth0 { tx_rate } else { 0.0 },
        }),
    }
}
