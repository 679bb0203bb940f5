//! The `[kernel]` section: the ring buffer, where BTF, tracefs and bpffs are, pins, and the
//! sizes of the kernel's tracking and policy maps.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelConfig {
    /// Size of the kernel-to-user ring buffer: a power of two, at least one page.
    pub ring_buffer_bytes: u32,
    pub btf_path: PathBuf,
    pub mountinfo_path: PathBuf,
    pub tracefs: PathBuf,
    pub bpffs: PathBuf,
    /// Processes the kernel can track, all investigations together.
    pub max_tracked_processes: u32,
    /// Where the programs, their links and maps are pinned (below `bpffs`), so that the
    /// kernel keeps tracking and enforcing while no daemon runs. One daemon per directory.
    pub pin_dir: PathBuf,
    /// Entries of the kernel's policy maps, shared by the phases in `enforce`: executables
    /// and unix sockets, egress rules, socket kinds, names (egress by name and queries). A phase whose policy does not fit is
    /// judged by the daemon alone for that set (see `docs/threat-model.md`).
    pub policy_paths: u32,
    pub policy_egress: u32,
    pub policy_sockets: u32,
    pub policy_names: u32,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_buffer_bytes: 4 << 20,
            btf_path: "/sys/kernel/btf/vmlinux".into(),
            mountinfo_path: "/proc/self/mountinfo".into(),
            tracefs: "/sys/kernel/tracing".into(),
            bpffs: "/sys/fs/bpf".into(),
            max_tracked_processes: 65536,
            pin_dir: "/sys/fs/bpf/paddock".into(),
            policy_paths: agent_common::policy::MAX_ALLOWED_PATHS,
            policy_egress: agent_common::policy::MAX_EGRESS_RULES,
            policy_sockets: agent_common::policy::MAX_ALLOWED_SOCKETS,
            policy_names: agent_common::policy::MAX_ALLOWED_NAMES,
        }
    }
}

/// `[dns]`: how long a DNS answer of an investigation binds its addresses to the name asked
/// (what egress rules by name are judged by). The answer's TTL, held between these bounds:
/// at least `min_ttl_s`, so that a TTL of 0 or 1 does not refuse the connect that follows
/// the lookup (or a client that caches a little longer than told), at most `max_ttl_s`, so
/// that an address once answered does not stay allowed for days.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    pub min_ttl_s: u32,
    pub max_ttl_s: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self { min_ttl_s: 60, max_ttl_s: 3600 }
    }
}

/// The longest `dns.max_ttl_s` allowed: a week.
pub const MAX_DNS_TTL_S: u32 = 7 * 24 * 3600;
