//! Is the running task part of an investigation? See `agent_common::tracking`.
use agent_common::tracking::{FAST_COLLISION, FastEntry, Tracked, fast_index};
use aya_ebpf::helpers::generated::bpf_get_current_cgroup_id;

use crate::maps::{CGROUP_PATHS, FAST, TRACKED};

/// The investigation of the current task's cgroup, if any. One inlined array lookup for
/// almost every call; a hash lookup only when two tracked cgroups share a `FAST` entry.
#[inline(always)]
pub fn current() -> Option<(u64, Tracked)> {
    // SAFETY: a helper without arguments, allowed in every program type we use.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
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
        // Volatile writes keep their order: the id goes last, so a reader that sees it also
        // sees its value.
        // SAFETY: both pointers are fields of the entry above.
        unsafe {
            core::ptr::write_volatile(&raw mut entry.tracked, tracked);
            core::ptr::write_volatile(&raw mut entry.cgroup_id, cgroup_id);
        }
    } else {
        entry.tracked.flags |= FAST_COLLISION;
    }
}
