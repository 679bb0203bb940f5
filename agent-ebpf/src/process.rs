//! Processes: fork (new processes, not threads), exec (path and argv head), exit (status).
//!
//! argv lives in the caller's memory only until the exec replaces it, so `sys_enter` copies
//! its head into `EXEC_ARGS` (keyed by thread id) for `execve` and `execveat`, and
//! `sched_process_exec` takes it from there once the exec has succeeded.
use agent_common::event::{
    ACTION_KILLED, ACTION_NONE, ARGS_LEN, ExecRecord, ExitRecord, ForkRecord, KIND_EXEC, KIND_EXIT,
    KIND_FORK, MAX_ARGS, PATH_LEN,
};
use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::{bpf_get_current_task, bpf_probe_read_kernel_str, bpf_probe_read_user_str},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::{
    args::{arg, nr},
    enforce,
    maps::{EXEC_ARGS, SCRATCH},
    record::{config, current_ppid, fill_header, is_daemon, reserve},
    tracking,
};

/// argv head captured at execve entry. The buffer is twice `ARGS_LEN` so that a copy of up
/// to `ARGS_LEN` bytes at any offset below `ARGS_LEN` stays inside it (what the verifier
/// needs to see); only the first `ARGS_LEN` bytes are reported.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecArgs {
    pub argc: u32,
    pub truncated: u32,
    pub len: u32,
    pub _pad: u32,
    pub buf: [u8; 2 * ARGS_LEN],
}

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn paddock_process_fork(ctx: RawTracePointContext) -> i32 {
    let Some(config) = config() else { return 0 };
    // args: (struct task_struct *parent, struct task_struct *child)
    let child: *const u8 = ctx.arg(1);
    // SAFETY: kernel reads through the helper; offsets come from the kernel's BTF.
    let (child_pid, child_tgid) = unsafe {
        (
            bpf_probe_read_kernel(child.add(config.task.pid as usize) as *const u32).unwrap_or(0),
            bpf_probe_read_kernel(child.add(config.task.tgid as usize) as *const u32).unwrap_or(0),
        )
    };
    if child_pid != child_tgid {
        return 0; // a new thread: its process is already known, or not tracked
    }
    let parent = tracking::by_task();
    // The child's own cgroup decides (clone3 may have put it into a tracked cgroup); a
    // tracked parent's children stay tracked even outside its cgroup.
    let child_tracked =
        tracking::cgroup_of_task(child).and_then(tracking::by_cgroup).or(parent.map(|(_, t)| t));
    let Some(tracked) = child_tracked else { return 0 };
    tracking::track_task(child_tgid, tracked);
    let Some((pid_tgid, parent_tracked)) = parent else {
        return 0; // started from outside: its exec is its first event
    };
    if is_daemon((pid_tgid >> 32) as u32) {
        return 0;
    }
    let Some(mut entry) = reserve::<ForkRecord>(KIND_FORK) else {
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_FORK, cgroup_id, &parent_tracked, current_ppid());
        (*record).child_tgid = child_tgid;
        (*record)._pad = 0;
    }
    entry.submit(0);
    0
}

/// At `execve`/`execveat` entry of a tracked task: keep the head of argv until the exec
/// succeeds (or the entry ages out of the LRU map).
#[inline(always)]
pub fn stash_args(regs: *const u8, nr: u64, tid: u32) {
    let argv = arg(regs, if nr == nr::EXECVEAT { 2 } else { 1 }) as *const *const u8;
    let Some(args) = SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: a per-CPU scratch value, ours for this program run.
    let args = unsafe { &mut *args };
    args.argc = 0;
    args.truncated = 0;
    let mut len: usize = 0;
    for i in 0..MAX_ARGS as usize {
        // SAFETY: user memory read through the helper.
        let Ok(arg) = (unsafe { bpf_probe_read_user(argv.add(i)) }) else { break };
        if arg.is_null() {
            break;
        }
        if len >= ARGS_LEN {
            args.truncated = 1;
            break;
        }
        let offset = len & (ARGS_LEN - 1);
        // SAFETY: `offset < ARGS_LEN` and the copy is at most `ARGS_LEN` bytes into a
        // buffer of `2 * ARGS_LEN`.
        let n = unsafe {
            bpf_probe_read_user_str(
                args.buf.as_mut_ptr().add(offset).cast(),
                ARGS_LEN as u32,
                arg.cast(),
            )
        };
        if n <= 0 {
            break;
        }
        len = offset + n as usize;
        args.argc += 1;
        if i + 1 == MAX_ARGS as usize {
            // SAFETY: as above, one more pointer read.
            if let Ok(next) = unsafe { bpf_probe_read_user(argv.add(i + 1)) } {
                if !next.is_null() {
                    args.truncated = 1;
                }
            }
        }
    }
    if len > ARGS_LEN {
        len = ARGS_LEN;
        args.truncated = 1;
    }
    args.len = len as u32;
    let _ = EXEC_ARGS.insert(tid, &*args, 0);
}

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn paddock_process_exec(ctx: TracePointContext) -> i32 {
    // Tracked as a process, or by its cgroup (a process that joined a tracked cgroup before
    // this exec, as a container runtime does): then tracked as a process from here on.
    let tracked = match tracking::by_task() {
        Some((_, tracked)) => tracked,
        None => {
            let Some((_, tracked)) = tracking::current() else { return 0 };
            tracking::track_task((bpf_get_current_pid_tgid() >> 32) as u32, tracked);
            tracked
        }
    };
    if is_daemon((bpf_get_current_pid_tgid() >> 32) as u32) {
        return 0;
    }
    let cgroup_id = tracking::current_cgroup_id();
    // SAFETY: offsets 8 (`__data_loc char[] filename`) and 16 (`old_pid`) of this format.
    let (filename_loc, old_pid) =
        unsafe { (ctx.read_at::<u32>(8).unwrap_or(0), ctx.read_at::<u32>(16).unwrap_or(0)) };
    let Some(mut entry) = reserve::<ExecRecord>(KIND_EXEC) else {
        let _ = EXEC_ARGS.remove(old_pid);
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size; kernel and map reads through
    // helpers with constant sizes.
    unsafe {
        fill_header(&mut (*record).header, KIND_EXEC, cgroup_id, &tracked, current_ppid());
        (*record).action = ACTION_NONE;
        let filename = (ctx.as_ptr() as *const u8).add((filename_loc & 0xffff) as usize);
        let path = &mut (*record).path;
        if bpf_probe_read_kernel_str(path.as_mut_ptr().cast(), PATH_LEN as u32, filename.cast()) < 0
        {
            path[0] = 0;
        }
        if let Some(policy) = enforce::enforcing(&tracked)
            && !enforce::exec_allowed(policy, &tracked, path)
        {
            // The new image never runs a user-space instruction.
            enforce::kill_current();
            enforce::doom(&tracked);
            (*record).action = ACTION_KILLED;
        }
        match EXEC_ARGS.get(old_pid) {
            Some(args) => {
                (*record).argc = args.argc;
                (*record).args_truncated = args.truncated;
                (*record).args_len = args.len;
                (*record).args = *(args.buf.as_ptr() as *const [u8; ARGS_LEN]);
            }
            None => {
                (*record).argc = 0;
                (*record).args_truncated = 0;
                (*record).args_len = 0;
                (*record).args[0] = 0;
            }
        }
    }
    let _ = EXEC_ARGS.remove(old_pid);
    entry.submit(0);
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn paddock_process_exit(_ctx: RawTracePointContext) -> i32 {
    let Some((pid_tgid, tracked)) = tracking::by_task() else {
        return 0;
    };
    let (pid, tgid) = (pid_tgid as u32, (pid_tgid >> 32) as u32);
    if pid != tgid {
        return 0; // a thread
    }
    tracking::untrack_task(tgid);
    if is_daemon(tgid) {
        return 0;
    }
    let cgroup_id = tracking::current_cgroup_id();
    let Some(config) = config() else { return 0 };
    // SAFETY: kernel read through the helper; offset from the kernel's BTF.
    let code = unsafe {
        let task = bpf_get_current_task() as *const u8;
        bpf_probe_read_kernel(task.add(config.task.exit_code as usize) as *const u32).unwrap_or(0)
    };
    let Some(mut entry) = reserve::<ExitRecord>(KIND_EXIT) else {
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        fill_header(&mut (*record).header, KIND_EXIT, cgroup_id, &tracked, current_ppid());
        (*record).code = code;
        (*record)._pad = 0;
    }
    entry.submit(0);
    0
}
