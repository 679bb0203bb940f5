//! Is the running task part of an investigation? See `agent_common::tracking`.
//!
//! Two views: by process (`by_task`, what `sys_enter` asks, cheap) and by cgroup
//! (`by_cgroup`/`current`, the authority, what fork, exec, migration and the cgroup hooks
//! ask). The cgroup view seeds the process view.
use agent_common::tracking::{
    BY_DAEMON, FAST_COLLISION, FastEntry, TaskEntry, Tracked, fast_index, task_index,
};
use aya_ebpf::{
    bindings::{BPF_EXIST, BPF_NOEXIST},
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_cgroup_id},
};

use crate::{
    maps::{CGROUP_PATHS, FAST, TASKS, TASKS_FAST, TRACKED},
    record::{add, config, read_ptr, slot_state},
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
        tracked.flags &= !(FAST_COLLISION | BY_DAEMON);
        return Some((pid_tgid, tracked));
    }
    if entry.tracked.flags & FAST_COLLISION == 0 {
        return None;
    }
    of_process(tgid).map(|t| (pid_tgid, t))
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

/// The investigation of process `tgid` (any task, not only the current one).
#[inline(always)]
pub fn of_process(tgid: u32) -> Option<Tracked> {
    // SAFETY: the value is copied out at once.
    unsafe { TASKS.get(tgid).copied() }.map(|mut t| {
        t.flags &= !BY_DAEMON;
        t
    })
}

/// The cgroup v2 id of `task` (a `struct task_struct *`), through offsets from the
/// kernel's BTF: task->cgroups->dfl_cgrp->kn->id.
#[inline(always)]
pub fn cgroup_of_task(task: *const u8) -> Option<u64> {
    let offsets = &config()?.offsets;
    let css_set = read_ptr(task, offsets.cgroups);
    if css_set.is_null() {
        return None;
    }
    cgroup_id_of(read_ptr(css_set, offsets.css_set_dfl_cgrp))
}

/// The id of a `struct cgroup *`: cgroup->kn->id.
#[inline(always)]
pub fn cgroup_id_of(cgroup: *const u8) -> Option<u64> {
    let offsets = &config()?.offsets;
    if cgroup.is_null() {
        return None;
    }
    let kn = read_ptr(cgroup, offsets.cgroup_kn);
    if kn.is_null() {
        return None;
    }
    // SAFETY: a read through the helper.
    unsafe {
        aya_ebpf::helpers::bpf_probe_read_kernel(
            kn.add(offsets.kernfs_node_id as usize) as *const u64
        )
        .ok()
    }
}

/// Track process `tgid` (new to `TASKS`) as `tracked`, within its investigation's quota.
/// False when it could not be: over the quota or the map full (counted as refused, and in
/// a phase that fails closed the investigation is doomed: an untracked process of it would
/// act unseen).
#[inline(always)]
pub fn track_task(tgid: u32, tracked: Tracked) -> bool {
    let Some(state) = slot_state(&tracked) else { return false };
    let quota = config().map_or(0, |c| c.task_quota) as i64;
    // SAFETY: a field of a map value, read once.
    let tasks = unsafe { (*state).tasks } as i64;
    let inserted =
        quota > 0 && tasks < quota && TASKS.insert(tgid, tracked, BPF_NOEXIST as u64).is_ok();
    if inserted {
        // SAFETY: a field of the map value above.
        add(unsafe { &raw mut (*state).tasks }, 1);
    } else if TASKS.insert(tgid, tracked, BPF_EXIST as u64).is_err() {
        // Neither new (over quota, or no room) nor already there.
        // SAFETY: as above.
        add(unsafe { &raw mut (*state).refused }, 1);
        crate::record::fail_closed(&tracked);
        return false;
    }
    let Some(entry) = TASKS_FAST.get_ptr_mut(task_index(tgid)) else {
        return true;
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
    true
}

/// Stop tracking process `tgid` (its last thread is exiting). A `TASKS_FAST` entry it
/// shared keeps its collision mark: the other process is still found through `TASKS`.
#[inline(always)]
pub fn untrack_task(tgid: u32) {
    // SAFETY: copied out at once.
    let Some(tracked) = (unsafe { TASKS.get(tgid).copied() }) else { return };
    if TASKS.remove(tgid).is_ok()
        && tracked.flags & BY_DAEMON == 0
        && let Some(state) = slot_state(&tracked)
    {
        // SAFETY: a field of a map value; adding u64::MAX subtracts one.
        add(unsafe { &raw mut (*state).tasks }, u64::MAX);
    }
    if let Some(entry) = TASKS_FAST.get_ptr_mut(task_index(tgid)) {
        // SAFETY: as in `track_task`.
        let entry: &mut TaskEntry = unsafe { &mut *entry };
        if entry.tgid == tgid {
            // SAFETY: a field of the entry above.
            unsafe { core::ptr::write_volatile(&raw mut entry.tgid, 0) };
        }
    }
}

/// Track `cgroup_id` (a cgroup just made under a tracked one) as `tracked`, within its
/// investigation's quota of cgroups, and remember its path hash so that its own children
/// are tracked in turn. False when refused (counted).
#[inline(always)]
pub fn track(cgroup_id: u64, path_hash: u64, tracked: Tracked) -> bool {
    let Some(state) = slot_state(&tracked) else { return false };
    let quota = config().map_or(0, |c| c.cgroup_quota) as u64;
    // SAFETY: a field of a map value, read once.
    let made = unsafe { (*state).cgroups };
    if made >= quota || TRACKED.insert(cgroup_id, tracked, 0).is_err() {
        // SAFETY: a field of the map value above.
        add(unsafe { &raw mut (*state).refused }, 1);
        return false;
    }
    // SAFETY: as above.
    add(unsafe { &raw mut (*state).cgroups }, 1);
    let _ = CGROUP_PATHS.insert(path_hash, tracked, 0);
    let Some(entry) = FAST.get_ptr_mut(fast_index(cgroup_id)) else {
        return true;
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
    true
}
