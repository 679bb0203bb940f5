//! Filling record headers and accounting for records that do not fit in the ring buffer.
use agent_common::{
    config::Config,
    event::{COMM_LEN, Header},
    tracking::Tracked,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel,
        generated::{bpf_get_current_task, bpf_ktime_get_boot_ns},
    },
    maps::ring_buf::RingBufEntry,
};

use crate::maps::{CONFIG, EVENTS, LOST};

/// The daemon's configuration; `None` only before the daemon wrote it.
#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

/// True for the daemon's own processes, which never produce events.
#[inline(always)]
pub fn is_daemon(tgid: u32) -> bool {
    match config() {
        Some(config) => config.daemon_tgid == tgid,
        None => true,
    }
}

/// Reserve a record of type `T` in the ring buffer, counting it as lost under `kind` when
/// the buffer is full.
#[inline(always)]
pub fn reserve<T: 'static>(kind: u32) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count_lost(kind);
    }
    entry
}

#[inline(always)]
pub fn count_lost(kind: u32) {
    if let Some(lost) = LOST.get_ptr_mut(kind) {
        // SAFETY: a per-CPU value: no other writer.
        unsafe { *lost += 1 };
    }
}

/// The tgid of the current task's real parent, read through offsets from the kernel's BTF.
/// Only for tracing programs (tracepoints), where `bpf_get_current_task` is allowed.
#[inline(always)]
pub fn current_ppid() -> u32 {
    let Some(config) = config() else { return 0 };
    // SAFETY: reads go through `bpf_probe_read_kernel`, which tolerates bad addresses.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let parent_field = task.add(config.task.real_parent as usize) as *const *const u8;
        let Ok(parent) = bpf_probe_read_kernel(parent_field) else { return 0 };
        bpf_probe_read_kernel(parent.add(config.task.tgid as usize) as *const u32).unwrap_or(0)
    }
}

/// Fill the header common to every record.
#[inline(always)]
pub fn fill_header(header: &mut Header, kind: u32, cgroup_id: u64, tracked: &Tracked, ppid: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: a helper without arguments.
    header.ktime_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.cgroup_id = cgroup_id;
    header.kind = kind;
    header.slot = tracked.slot;
    header.phase = tracked.phase;
    header._pad = 0;
    header.instance = tracked.instance;
    header.pid = pid_tgid as u32;
    header.tgid = (pid_tgid >> 32) as u32;
    header.ppid = ppid;
    header.uid = uid_gid as u32;
    header.gid = (uid_gid >> 32) as u32;
    header.comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
}
