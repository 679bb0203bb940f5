//! `sys_enter`: the hot path, and the only syscall hook (enabling any `syscalls:*`
//! tracepoint would switch on the kernel's generic syscall tracing for every syscall on the
//! node). An untracked process leaves after reading its tgid and one inlined array lookup
//! (`tracking::by_task`). A tracked one bumps a per-CPU counter; in a phase that enforces,
//! a syscall outside the baseline gets the process SIGKILLed; then the first use of each
//! syscall by its investigation is reported, and the syscalls that need their arguments
//! (opens, execs) go to their probe area.
use agent_common::{
    event::{ACTION_KILLED, ACTION_NONE, KIND_SYSCALL, SyscallRecord},
    tracking::{MAX_SYSCALLS, Tracked},
};
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    args::nr,
    enforce, files,
    maps::{SLOTS, SYSCALL_COUNTS},
    process,
    record::{current_ppid, fill_header, is_daemon, reserve},
    tracking,
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn paddock_sys_enter(ctx: RawTracePointContext) -> i32 {
    let Some((pid_tgid, tracked)) = tracking::by_task() else {
        return 0;
    };
    // args: (struct pt_regs *regs, long id)
    let nr: u64 = ctx.arg(1);
    if nr >= MAX_SYSCALLS as u64 {
        return 0;
    }
    if is_daemon((pid_tgid >> 32) as u32) {
        return 0;
    }
    let slot = tracked.slot as u32;
    if let Some(counts) = SYSCALL_COUNTS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU value; `nr` is below the array length.
        unsafe { (*counts).counts[nr as usize] += 1 };
    }
    let Some(state) = SLOTS.get_ptr_mut(slot) else {
        return 0;
    };
    // SAFETY: a pointer into an array map value, read once.
    if unsafe { (*state).doomed } != 0 {
        // The investigation is being killed: nothing more of it runs.
        enforce::kill_current();
        return 0;
    }
    if let Some(policy) = enforce::enforcing(&tracked)
        && !enforce::syscall_allowed(policy, nr)
    {
        // The syscall itself still runs: the signal is taken on the way back to user space.
        enforce::kill_current();
        enforce::doom(&tracked);
        report(nr, &tracked, ACTION_KILLED);
        return 0;
    }
    // SAFETY: a pointer into an array map value shared by all CPUs.
    if unsafe { (*state).pending_opens } != 0 {
        files::retry_pending(pid_tgid as u32, &tracked, state);
    }
    report_first_use(nr, &tracked, state);
    let regs: *const u8 = ctx.arg(0);
    match nr {
        nr::OPENAT | nr::OPENAT2 | nr::OPEN | nr::CREAT => {
            files::on_open(regs, nr, pid_tgid as u32, &tracked, state)
        }
        nr::EXECVE | nr::EXECVEAT => process::stash_args(regs, nr, pid_tgid as u32),
        _ => {}
    }
    0
}

/// Report `nr` if this is the investigation's first use of it.
///
/// Plain read-modify-write of the shared bitmap: BPF ISA v1 has no fetch-or. Two CPUs
/// racing on first uses in the same word can each report (or one re-report later); the
/// daemon drops such duplicates.
#[inline(always)]
fn report_first_use(nr: u64, tracked: &Tracked, state: *mut agent_common::tracking::SlotState) {
    let bit = 1u64 << (nr % 64);
    // SAFETY: `state` points into an array map value; `nr / 64` is below its length.
    let word = unsafe { &mut (*state).seen[(nr / 64) as usize] };
    if *word & bit != 0 {
        return;
    }
    *word |= bit;
    report(nr, tracked, ACTION_NONE);
}

#[inline(always)]
fn report(nr: u64, tracked: &Tracked, action: u32) {
    let Some(mut entry) = reserve::<SyscallRecord>(KIND_SYSCALL) else {
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at reserved ring-buffer memory of the right size.
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_SYSCALL, cgroup_id, tracked, current_ppid());
        (*record).nr = nr as u32;
        (*record).action = action;
    }
    entry.submit(0);
}
