//! `sys_enter`: the hot path, and the only syscall-entry hook (enabling any `syscalls:*`
//! entry tracepoint would add a probe to every syscall on the node). An untracked process
//! leaves after reading its tgid and one inlined array lookup (`tracking::by_task`). A
//! tracked one has its syscall named by identity (native, 32-bit through `int 0x80`, x32,
//! or out of the tables: `tracking::syscall_id`), counted; in a phase that enforces, an
//! identity outside the baseline gets the process SIGKILLed; then the first use of each
//! identity by its investigation is reported, and the syscalls that need their arguments
//! (opens, execs, sockets, path operations) go to their probe area.
use agent_common::{
    event::{ACTION_KILLED, ACTION_NONE, KIND_SYSCALL, SyscallRecord},
    names::tails::TAIL_PATH_OP,
    tracking::{SYSCALL_IDS, SlotState, Tracked, count_index, syscall_id},
};
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    args::{self, nr},
    enforce, files,
    maps::{SLOTS, SYSCALL_COUNTS, TAILS},
    paths, process,
    record::{config, current_ppid, fill_header, is_daemon, reserve_decision},
    sockets, tracking,
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn paddock_sys_enter(ctx: RawTracePointContext) -> i32 {
    let Some((pid_tgid, tracked)) = tracking::by_task() else {
        return 0;
    };
    if is_daemon((pid_tgid >> 32) as u32) {
        return 0;
    }
    let Some(config) = config() else { return 0 };
    // args: (struct pt_regs *regs, long id)
    let raw: u64 = ctx.arg(1);
    let compat = args::compat(&config.offsets);
    let id = syscall_id(raw, compat);
    let slot = tracked.slot as u32;
    if let Some(counts) = SYSCALL_COUNTS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU value; `count_index` is below the array length.
        unsafe { (*counts).counts[count_index(id) as usize & 511] += 1 };
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
        && !enforce::syscall_allowed(policy, id)
    {
        // The syscall itself still runs: the signal is taken on the way back to user space.
        enforce::kill_current();
        enforce::doom(&tracked);
        report(id, &tracked, ACTION_KILLED);
        return 0;
    }
    report_first_use(id, &tracked, state);
    if compat {
        return 0; // 32-bit arguments: judged by identity only (docs/threat-model.md)
    }
    let regs: *const u8 = ctx.arg(0);
    let tid = pid_tgid as u32;
    match raw {
        nr::OPENAT | nr::OPENAT2 | nr::OPEN | nr::CREAT => files::stash(regs, raw, tid),
        nr::EXECVE | nr::EXECVEAT => process::stash_args(regs, raw, tid),
        nr::SOCKET | nr::SOCKETPAIR => sockets::on_socket_call(regs, &tracked),
        // SAFETY: a tail call with this program's own context; when the slot is empty (the
        // daemon did not load it) nothing happens and the syscall goes unreported.
        other if paths::is_path_op(other) => unsafe { TAILS.tail_call(&ctx, TAIL_PATH_OP) },
        _ => {}
    }
    0
}

/// Report `id` if this is the investigation's first use of it.
///
/// Plain read-modify-write of the shared bitmap: BPF ISA v1 has no fetch-or. Two CPUs
/// racing on first uses in the same word can each report (or one re-report later); the
/// daemon drops such duplicates.
#[inline(always)]
fn report_first_use(id: u32, tracked: &Tracked, state: *mut SlotState) {
    let bit = 1u64 << (id % 64);
    let word = ((id / 64) as usize) & ((SYSCALL_IDS / 64) as usize - 1);
    // SAFETY: `state` points into an array map value; `word` is below its length.
    let word = unsafe { &mut (*state).seen[word] };
    if *word & bit != 0 {
        return;
    }
    *word |= bit;
    report(id, tracked, ACTION_NONE);
}

#[inline(always)]
fn report(id: u32, tracked: &Tracked, action: u32) {
    // First uses are bounded (one per identity), so never rate-limited.
    let Some(mut entry) = reserve_decision::<SyscallRecord>(KIND_SYSCALL, tracked) else {
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at reserved ring-buffer memory of the right size.
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_SYSCALL, cgroup_id, tracked, current_ppid());
        (*record).id = id;
        (*record).action = action;
    }
    entry.submit(0);
}
