//! Is the running task part of an investigation? See `agent_common::tracking`.
//!
//! Two views: by process (`by_task`, what `sys_enter` asks, cheap) and by cgroup
//! (`by_cgroup`/`current`, the authority, what fork, exec, migration and the cgroup hooks
//! ask). The cgroup view seeds the process view.
use agent_common::tracking::{
    FAST_COLLISION, FastEntry, TaskEntry, Tracked, fast_index, task_index,
};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_probe_read_kernel, generated::bpf_get_current_cgroup_id,
};

use crate::{
    maps::{CGROUP_PATHS, FAST, TASKS, TASKS_FAST, TRACKED},
    record::config,
};

/// The investigation of the current process, by its tgid: one cheap helper and one inlined
/// array lookup for almost every call. Returns (tgid, pid_tgid, tracked).
#[inline(always)]
pub fn by_task() -> Option<(u64, Tracked)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let entry = TASKS_FAST.get(task_index(tgid))?;
    if entry.tgid == tgid {
        let mut tracked = entry.tracked;
        tracked.flags &= !FAST_COLLISION;
        return Some((pid_tgid, tracked));
    }
    if entry.tracked.flags & FAST_COLLISION == 0 {
        return None;
    }
    // SAFETY: the value is copied out at once.
    unsafe { TASKS.get(tgid).copied() }.map(|t| (pid_tgid, t))
}

/// The current task's cgroup id.
#[inline(always)]
pub fn current_cgroup_id() -> u64 {
    // SAFETY: a helper without arguments, allowed in every program type we use.
    unsafe { bpf_get_current_cgroup_id() }
}

/// The investigation of the current task's cgroup, if any.
#[inline(always)]
pub fn current() -> Option<(u64, Tracked)> {
    let cgroup_id = current_cgroup_id();
    by_cgroup(cgroup_id).map(|t| (cgroup_id, t))
}

#[inline(always)]
pub fn by_cgroup(cgroup_id: u64) -> Option<Tracked> {
    let entry = FAST.get(fast_index(cgroup_id))?;
    if entry.cgroup_id == cgroup_id {
        let mut tracked = entry.tracked;
        tracked.flags &= !FAST_COLLISION;
        return Some(tracked);
    }
    if entry.tracked.flags & FAST_COLLISION == 0 {
        return None;
    }
    // SAFETY: the value is copied out at once.
    unsafe { TRACKED.get(cgroup_id).copied() }
}

/// The cgroup v2 id of `task` (a `struct task_struct *`), through offsets from the
/// kernel's BTF: task->cgroups->dfl_cgrp->kn->id.
#[inline(always)]
pub fn cgroup_of_task(task: *const u8) -> Option<u64> {
    let offsets = &config()?.task;
    // SAFETY: every read goes through the helper, which tolerates bad addresses.
    unsafe {
        let css_set: *const u8 =
            bpf_probe_read_kernel(task.add(offsets.cgroups as usize) as *const *const u8).ok()?;
        let cgroup: *const u8 = bpf_probe_read_kernel(
            css_set.add(offsets.css_set_dfl_cgrp as usize) as *const *const u8,
        )
        .ok()?;
        cgroup_id_of(cgroup)
    }
}

/// The id of a `struct cgroup *`: cgroup->kn->id.
#[inline(always)]
pub fn cgroup_id_of(cgroup: *const u8) -> Option<u64> {
    let offsets = &config()?.task;
    // SAFETY: reads through the helper.
    unsafe {
        let kn: *const u8 =
            bpf_probe_read_kernel(cgroup.add(offsets.cgroup_kn as usize) as *const *const u8)
                .ok()?;
        bpf_probe_read_kernel(kn.add(offsets.kernfs_node_id as usize) as *const u64).ok()
    }
}

/// Track process `tgid` as `tracked`.
#[inline(always)]
pub fn track_task(tgid: u32, tracked: Tracked) {
    if TASKS.insert(tgid, tracked, 0).is_err() {
        return;
    }
    let Some(entry) = TASKS_FAST.get_ptr_mut(task_index(tgid)) else {
        return;
    };
    // SAFETY: a pointer into an array map value, valid for this program run.
    let entry: &mut TaskEntry = unsafe { &mut *entry };
    if entry.tgid == 0 || entry.tgid == tgid {
        let collision = entry.tracked.flags & FAST_COLLISION;
        // Volatile writes keep their order: the tgid goes last, so a reader that sees it
        // also sees its value.
        // SAFETY: both pointers are fields of the entry above.
        unsafe {
            core::ptr::write_volatile(
                &raw mut entry.tracked,
                Tracked { flags: collision, ..tracked },
            );
            core::ptr::write_volatile(&raw mut entry.tgid, tgid);
        }
    } else {
        entry.tracked.flags |= FAST_COLLISION;
    }
}

/// Stop tracking process `tgid` (it is exiting). A `TASKS_FAST` entry it shared keeps its
/// collision mark: the other process is still found through `TASKS`.
#[inline(always)]
pub fn untrack_task(tgid: u32) {
    let _ = TASKS.remove(tgid);
    if let Some(entry) = TASKS_FAST.get_ptr_mut(task_index(tgid)) {
        // SAFETY: as in `track_task`.
        let entry: &mut TaskEntry = unsafe { &mut *entry };
        if entry.tgid == tgid {
            // SAFETY: a field of the entry above.
            unsafe { core::ptr::write_volatile(&raw mut entry.tgid, 0) };
        }
    }
}

/// Track `cgroup_id` (a cgroup just made under a tracked one) as `tracked`, and remember its
/// path hash so that its own children are tracked in turn.
#[inline(always)]
pub fn track(cgroup_id: u64, path_hash: u64, tracked: Tracked) {
    if TRACKED.insert(cgroup_id, tracked, 0).is_err() {
        return;
    }
    let _ = CGROUP_PATHS.insert(path_hash, tracked, 0);
    let Some(entry) = FAST.get_ptr_mut(fast_index(cgroup_id)) else {
        return;
    };
    // SAFETY: a pointer into an array map value, valid for this program run.
    let entry: &mut FastEntry = unsafe { &mut *entry };
    if entry.cgroup_id == 0 {
        // SAFETY: both pointers are fields of the entry above.
        unsafe {
            core::ptr::write_volatile(&raw mut entry.tracked, tracked);
            core::ptr::write_volatile(&raw mut entry.cgroup_id, cgroup_id);
        }
    } else {
        entry.tracked.flags |= FAST_COLLISION;
    }
}
