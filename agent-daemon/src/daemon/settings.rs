//! Settings the daemon derives from its configuration for the kernel and the cgroups.
use std::{path::Path, sync::Arc};

use crate::config::Config;

/// The kernel's share of `[limits]`: the rate as records per CPU and 100 ms window.
pub(super) fn limits(config: &Config) -> crate::kernel::Limits {
    const WINDOW_NS: u64 = 100_000_000;
    let cpus = aya::util::nr_cpus().map(|n| n.max(1) as u64).unwrap_or(1);
    let per_window = config.limits.records_per_second as u64 * WINDOW_NS / 1_000_000_000;
    crate::kernel::Limits {
        records_per_window: if per_window == 0 {
            0
        } else {
            per_window.div_ceil(cpus).max(1) as u32
        },
        window_ns: WINDOW_NS,
        task_quota: config.limits.processes,
        cgroup_quota: config.limits.cgroups,
        max_tracked_processes: config.kernel.max_tracked_processes,
        policy_maps: crate::kernel::PolicyMaps::of(&config.kernel),
        dns_ttl_s: (config.dns.min_ttl_s, config.dns.max_ttl_s),
    }
}

/// Where pids.max is set for the local investigations of `config` (said in the log).
pub(super) fn pids_for(config: &Config, v2_mount: &Path) -> Arc<crate::workloads::pids::Pids> {
    let pids = crate::workloads::pids::Pids::detect(
        config.phases.clone(),
        v2_mount,
        &v2_mount.join(&config.local.cgroup_parent),
        &config.local.cgroup_parent,
        &config.kernel.mountinfo_path,
    );
    pids.log(config.limits.processes);
    Arc::new(pids)
}
