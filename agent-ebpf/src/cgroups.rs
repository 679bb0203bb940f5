//! `cgroup_mkdir`: a cgroup is tracked as it is made, before any process can run in it, when
//! `CGROUP_PATHS` holds the hash of its own path (the daemon registered the path before the
//! cgroup existed, as for a Kubernetes pod) or of its parent's path (a cgroup made inside a
//! tracked one, which then covers its own children in turn).
use agent_common::{
    event::{CgroupRecord, KIND_CGROUP, PATH_LEN},
    hash::{FNV_OFFSET, fnv1a_step},
};
use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_probe_read_kernel, generated::bpf_probe_read_kernel_str},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::{
    maps::{CGROUP_PATHS, SCRATCH},
    record::{config, current_ppid, fill_header, reserve},
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
    tracking::track(id, hash, tracked);
    let Some(mut entry) = reserve::<CgroupRecord>(KIND_CGROUP) else {
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

/// A task moved into a cgroup (`cgroup.procs` written): a process joining a tracked cgroup is
/// tracked as a process from now on.
#[raw_tracepoint(tracepoint = "cgroup_attach_task")]
pub fn paddock_cgroup_attach(ctx: RawTracePointContext) -> i32 {
    let Some(config) = config() else { return 0 };
    // args: (struct cgroup *dst_cgrp, const char *path, struct task_struct *task, bool)
    let (cgroup, task): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(2));
    let Some(tracked) = tracking::cgroup_id_of(cgroup).and_then(tracking::by_cgroup) else {
        return 0;
    };
    // SAFETY: kernel reads through the helper; offsets come from the kernel's BTF.
    let (pid, tgid) = unsafe {
        (
            bpf_probe_read_kernel(task.add(config.task.pid as usize) as *const u32).unwrap_or(0),
            bpf_probe_read_kernel(task.add(config.task.tgid as usize) as *const u32).unwrap_or(0),
        )
    };
    if pid == tgid && tgid != 0 {
        tracking::track_task(tgid, tracked);
    }
    0
}
