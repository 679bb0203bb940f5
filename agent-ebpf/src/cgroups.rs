//! `cgroup_mkdir`: a cgroup is tracked as it is made, before any process can run in it, when
//! `CGROUP_PATHS` holds the hash of its own path (the daemon registered the path before the
//! cgroup existed, as for a Kubernetes pod) or of its parent's path (a cgroup made inside a
//! tracked one, which then covers its own children in turn).
use agent_common::{
    event::{
        ACTION_KILLED, ACTION_NONE, CgroupRecord, KIND_CGROUP, KIND_MIGRATE, MigrateRecord,
        PATH_LEN,
    },
    hash::{FNV_OFFSET, fnv1a_step},
    tracking::Tracked,
};
use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::bpf_probe_read_kernel_str,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::{
    enforce,
    maps::{CGROUP_PATHS, SCRATCH},
    record::{
        add, config, current_ppid, fill_header, is_daemon, read_ptr, read_u32, reserve,
        reserve_decision, slot_state,
    },
    tracking,
};

/// The cgroup v2 hierarchy's id in this tracepoint's `root` field.
const CGROUP2_HIERARCHY: i32 = 0;

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn paddock_cgroup_mkdir(ctx: TracePointContext) -> i32 {
    // SAFETY: offsets 8 (root), 12 (level), 16 (id), 24 (`__data_loc char[] path`).
    let (root, level, id, path_loc) = unsafe {
        (
            ctx.read_at::<i32>(8).unwrap_or(-1),
            ctx.read_at::<i32>(12).unwrap_or(0),
            ctx.read_at::<u64>(16).unwrap_or(0),
            ctx.read_at::<u32>(24).unwrap_or(0),
        )
    };
    if root != CGROUP2_HIERARCHY || id == 0 {
        return 0;
    }
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else { return 0 };
    // SAFETY: per-CPU scratch, ours for this run; the kernel string is read through the
    // helper into a buffer of twice the size asked for.
    let buf = unsafe { &mut (*scratch).buf };
    let src = unsafe { (ctx.as_ptr() as *const u8).add((path_loc & 0xffff) as usize) };
    let n =
        unsafe { bpf_probe_read_kernel_str(buf.as_mut_ptr().cast(), buf.len() as u32, src.cast()) };
    if n <= 0 || n as usize >= buf.len() {
        return 0; // unreadable, or too long to hash whole
    }
    let mut hash = FNV_OFFSET;
    let mut parent_hash = FNV_OFFSET;
    for byte in buf.iter() {
        if *byte == 0 {
            break;
        }
        if *byte == b'/' {
            parent_hash = hash;
        }
        hash = fnv1a_step(hash, *byte);
    }
    // SAFETY: copied out at once.
    let registered = unsafe { CGROUP_PATHS.get(hash).copied() };
    // SAFETY: as above.
    let Some(tracked) = registered.or_else(|| unsafe { CGROUP_PATHS.get(parent_hash).copied() })
    else {
        return 0;
    };
    if !tracking::track(id, hash, tracked) {
        return 0; // over its quota: a process moved there will have escaped
    }
    let Some(mut entry) = reserve::<CgroupRecord>(KIND_CGROUP, &tracked) else {
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size; `buf` holds at least PATH_LEN.
    unsafe {
        // The header names the investigation; the acting task is whoever made the cgroup.
        fill_header(&mut (*record).header, KIND_CGROUP, 0, &tracked, current_ppid());
        (*record).new_cgroup_id = id;
        (*record).level = level as u32;
        (*record)._pad = 0;
        (*record).path = *(buf.as_ptr() as *const [u8; PATH_LEN]);
        (*record).path[PATH_LEN - 1] = 0;
    }
    entry.submit(0);
    0
}

/// A task moved into a cgroup (`cgroup.procs` or `cgroup.threads` written). A process
/// joining a tracked cgroup is tracked as a process from then on; a tracked process moved
/// anywhere its own investigation does not own has escaped: it stays tracked and
/// attributed to its investigation (by process), and the move is reported. Moves within a
/// cgroup v1 hierarchy (a v1 `pids` cgroup, say) leave the process's v2 cgroup as it was,
/// and their ids are of another numbering: they are not looked at.
#[raw_tracepoint(tracepoint = "cgroup_attach_task")]
pub fn paddock_cgroup_attach(ctx: RawTracePointContext) -> i32 {
    let Some(config) = config() else { return 0 };
    // args: (struct cgroup *dst_cgrp, const char *path, struct task_struct *task, bool)
    let (cgroup, task): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(2));
    let root = read_ptr(cgroup, config.offsets.cgroup_root);
    if root.is_null()
        || read_u32(root, config.offsets.cgroup_root_hierarchy_id) as i32 != CGROUP2_HIERARCHY
    {
        return 0;
    }
    let dst = tracking::cgroup_id_of(cgroup);
    let into = dst.and_then(tracking::by_cgroup);
    // Every task of a process fires this (a leader that already exited does not), so each
    // is looked at.
    let tgid = read_u32(task, config.offsets.tgid);
    if tgid == 0 || is_daemon(tgid) {
        return 0;
    }
    match (tracking::of_process(tgid), into) {
        (None, Some(tracked)) => {
            tracking::track_task(tgid, tracked);
        }
        (Some(own), Some(other)) if own.instance == other.instance => {}
        (Some(own), _) => escaped(&own, tgid, dst.unwrap_or(0)),
        (None, None) => {}
    }
    0
}

/// Process `moved_tgid` of `tracked`'s investigation is now in cgroup `dst`, which the
/// investigation does not own. Counted, reported, and in an enforcing phase the move is a
/// deviation: the investigation is doomed, and the task that made the move, if it is the
/// investigation's, is killed at once.
#[inline(always)]
pub fn escaped(tracked: &Tracked, moved_tgid: u32, dst: u64) {
    if let Some(state) = slot_state(tracked) {
        // SAFETY: a field of a map value.
        add(unsafe { &raw mut (*state).escapes }, 1);
    }
    let mut action = ACTION_NONE;
    if enforce::enforcing(tracked).is_some() {
        enforce::doom(tracked);
        if tracking::by_task().is_some_and(|(_, t)| t.instance == tracked.instance) {
            enforce::kill_current();
        }
        action = ACTION_KILLED;
    }
    let Some(mut entry) = reserve_decision::<MigrateRecord>(KIND_MIGRATE, tracked) else {
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        fill_header(
            &mut (*record).header,
            KIND_MIGRATE,
            tracking::current_cgroup_id(),
            tracked,
            current_ppid(),
        );
        (*record).moved_tgid = moved_tgid;
        (*record).action = action;
        (*record).dst_cgroup_id = dst;
    }
    entry.submit(0);
}
