//! Processes: fork (new processes, not threads), exec (what runs, and whether it may),
//! exit (the last thread of a process).
//!
//! argv lives in the caller's memory only until the exec replaces it, so `sys_enter` copies
//! its head into `EXEC_ARGS` (keyed by thread id) for `execve` and `execveat`, and
//! `sched_process_exec` takes it from there once the exec has succeeded.
use agent_common::event::{
    ACTION_KILLED, ACTION_NONE, ARGS_LEN, ExecRecord, ExitRecord, ForkRecord, KIND_EXEC, KIND_EXIT,
    KIND_FORK, MAX_ARGS, PATH_DELETED, PATH_FD, PATH_LEN, PATH_RESOLVED, PATH_TRUNCATED,
    PATH_UNREADABLE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user_str},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    args::{arg, nr},
    cgroups, enforce,
    maps::{EXEC_ARGS, SCRATCH},
    record::{
        config, current_ppid, fill_header, is_daemon, read_ptr, read_u32, reserve, reserve_decision,
    },
    scratch::PathScratch,
    tracking,
    walk::{self, Built},
};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn paddock_process_fork(ctx: RawTracePointContext) -> i32 {
    let Some(config) = config() else { return 0 };
    // args: (struct task_struct *parent, struct task_struct *child)
    let child: *const u8 = ctx.arg(1);
    let (child_pid, child_tgid) =
        (read_u32(child, config.offsets.pid), read_u32(child, config.offsets.tgid));
    if child_pid != child_tgid {
        return 0; // a new thread: its process is already known, or not tracked
    }
    let parent = tracking::by_task();
    let child_cgroup = tracking::cgroup_of_task(child);
    let in_cgroup = child_cgroup.and_then(tracking::by_cgroup);
    // A tracked parent's children are its investigation's, wherever they start: a clone
    // into another cgroup (`CLONE_INTO_CGROUP`) that is not the same investigation's is an
    // escape. An untracked parent's child belongs to the cgroup it starts in.
    let tracked = match (parent, in_cgroup) {
        (Some((_, p)), Some(c)) if p.instance == c.instance => p,
        (Some((_, p)), _) if child_cgroup != Some(tracking::current_cgroup_id()) => {
            cgroups::escaped(&p, child_tgid, child_cgroup.unwrap_or(0));
            p
        }
        (Some((_, p)), _) => p,
        (None, Some(c)) => c,
        (None, None) => return 0,
    };
    tracking::track_task(child_tgid, tracked);
    let Some((pid_tgid, parent_tracked)) = parent else {
        return 0; // started from outside: its exec is its first event
    };
    if is_daemon((pid_tgid >> 32) as u32) {
        return 0;
    }
    let Some(mut entry) = reserve::<ForkRecord>(KIND_FORK, &parent_tracked) else {
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
            if let Ok(next) = unsafe { bpf_probe_read_user(argv.add(i + 1)) }
                && !next.is_null()
            {
                args.truncated = 1;
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

/// Whether `buf` starts with `prefix`.
#[inline(always)]
fn starts_with(buf: &[u8; 2 * PATH_LEN], prefix: &[u8]) -> bool {
    let mut i = 0;
    while i < prefix.len() {
        if buf[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Name what is being executed: the absolute path it was executed by; for an exec through
/// a descriptor (`/dev/fd/N`, `/proc/.../fd/N`) the file behind it; for a relative path,
/// the working directory joined with it. Built in `s.buf`.
#[inline(always)]
fn identify(bprm: *const u8, s: &mut PathScratch) -> Built {
    let Some(config) = config() else {
        return Built { len: 0, status: PATH_UNREADABLE };
    };
    let o = &config.offsets;
    let filename = read_ptr(bprm, o.bprm_filename);
    // SAFETY: a kernel string read through the helper into a buffer of twice the size.
    let n = unsafe {
        bpf_probe_read_kernel_str(s.buf.as_mut_ptr().cast(), PATH_LEN as u32, filename.cast())
    };
    if n <= 0 {
        s.buf[0] = 0;
        return Built { len: 0, status: PATH_UNREADABLE };
    }
    let len = n as usize - 1;
    if s.buf[0] == b'/' && !starts_with(&s.buf, b"/dev/fd/") && !starts_with(&s.buf, b"/proc/") {
        let status = if len >= PATH_LEN - 1 { PATH_TRUNCATED } else { 0 };
        return Built { len, status };
    }
    if s.buf[0] == b'/' {
        let mut built = walk::file_path(read_ptr(bprm, o.bprm_file), s);
        built.status |= PATH_FD;
        return built;
    }
    // Relative: the kernel's own copy of the name, after the working directory. A leading
    // `./` is dropped; anything else is kept as written.
    let skip = if s.buf[0] == b'.' && s.buf[1] == b'/' { 2u64 } else { 0 };
    let mut built = walk::cwd(s);
    let at = (built.len & (PATH_LEN - 1)) + 1;
    s.buf[(at - 1) & (PATH_LEN - 1)] = b'/';
    // SAFETY: `at <= PATH_LEN`, at most `PATH_LEN - 1` bytes into a buffer of twice that.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            s.buf.as_mut_ptr().add(at & (PATH_LEN - 1)).cast(),
            (PATH_LEN - 1) as u32,
            filename.add(skip as usize).cast(),
        )
    };
    built.status |= PATH_RESOLVED;
    if n <= 0 {
        built.status |= PATH_UNREADABLE;
        return built;
    }
    built.len = (at & (PATH_LEN - 1)) + n as usize - 1;
    if built.len >= PATH_LEN - 1 {
        built.status |= PATH_TRUNCATED;
    }
    built
}

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn paddock_process_exec(ctx: RawTracePointContext) -> i32 {
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
    // args: (struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
    let old_pid: u64 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    let Some(s) = walk::scratch() else { return 0 };
    let built = identify(bprm, s);
    // Decide first: the new image never runs a user-space instruction when refused, and
    // nothing here depends on the record below being written.
    let mut action = ACTION_NONE;
    if enforce::enforcing(&tracked).is_some() {
        let judgeable = built.status & (PATH_UNREADABLE | PATH_TRUNCATED) == 0;
        let literal = built.status & (PATH_FD | PATH_DELETED) != 0;
        let allowed = judgeable && enforce::exec_allowed(&tracked, s, literal);
        if !allowed {
            enforce::kill_current();
            enforce::doom(&tracked);
            action = ACTION_KILLED;
        }
    }
    let old_pid = old_pid as u32;
    let entry = if action == ACTION_NONE {
        reserve::<ExecRecord>(KIND_EXEC, &tracked)
    } else {
        reserve_decision::<ExecRecord>(KIND_EXEC, &tracked)
    };
    let Some(mut entry) = entry else {
        let _ = EXEC_ARGS.remove(old_pid);
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size; map reads with constant sizes.
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_EXEC, cgroup_id, &tracked, current_ppid());
        (*record).action = action;
        (*record).status = built.status;
        (*record)._pad = 0;
        walk::copy(&mut (*record).path, s);
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

/// A task of a tracked process exits. The process stays tracked, enforced and killable
/// until its last thread is gone (`signal->live` reaches 0): a leader that calls
/// `pthread_exit` leaves its threads watched.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn paddock_process_exit(_ctx: RawTracePointContext) -> i32 {
    let Some((pid_tgid, tracked)) = tracking::by_task() else {
        return 0;
    };
    let Some(config) = config() else { return 0 };
    let task = crate::record::current_task();
    let signal = read_ptr(task, config.offsets.signal);
    // `live` was decremented before this tracepoint: 0 when this was the last thread. Two
    // threads exiting at once may both see 0; untracking twice is harmless.
    if signal.is_null() || read_u32(signal, config.offsets.signal_live) != 0 {
        return 0;
    }
    let tgid = (pid_tgid >> 32) as u32;
    tracking::untrack_task(tgid);
    if is_daemon(tgid) {
        return 0;
    }
    let cgroup_id = tracking::current_cgroup_id();
    let code = read_u32(task, config.offsets.exit_code);
    // Exits are not rate-limited: they close what forks opened, and are bounded by them.
    let Some(mut entry) = reserve_decision::<ExitRecord>(KIND_EXIT, &tracked) else {
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
