//! io_uring: every operation submitted (`io_uring:io_uring_submit_req`, in the submitting
//! task, or the SQPOLL thread, which belongs to the same process). Opcodes are learned per
//! phase like syscalls: the first use of each by an investigation is reported, and in an
//! enforcing phase an opcode outside the baseline kills the process (the operation itself
//! has already been prepared and still runs, as a forbidden syscall still completes).
//! Opens are reported with the kernel's copy of their path.
use agent_common::event::{ACTION_KILLED, ACTION_NONE, KIND_URING, OPEN_VIA_URING, UringRecord};
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    enforce, files,
    record::{
        add, config, current_ppid, fill_header, is_daemon, read_ptr, read_u32, reserve_decision,
        slot_state,
    },
    tracking, walk,
};

const IORING_OP_OPENAT: u32 = 18;
const IORING_OP_OPENAT2: u32 = 28;
/// Opcodes from this one up are counted together (the bitmap has 64 bits).
const OTHER: u32 = 63;

#[raw_tracepoint(tracepoint = "io_uring_submit_req")]
pub fn paddock_uring_submit(ctx: RawTracePointContext) -> i32 {
    let Some((pid_tgid, tracked)) = tracking::by_task() else { return 0 };
    if is_daemon((pid_tgid >> 32) as u32) {
        return 0;
    }
    let Some(config) = config() else { return 0 };
    let o = &config.offsets;
    // args: (struct io_kiocb *req)
    let req: *const u8 = ctx.arg(0);
    let opcode = read_u32(req, o.req_opcode) & 0xff;
    let bit = if opcode < OTHER { opcode } else { OTHER };
    if let Some(policy) = enforce::enforcing(&tracked)
        && !enforce::uring_allowed(policy, bit)
    {
        enforce::kill_current();
        enforce::doom(&tracked);
        report(&tracked, opcode, ACTION_KILLED);
        return 0;
    }
    if let Some(state) = slot_state(&tracked) {
        let mask = 1u64 << bit;
        // SAFETY: a field of a map value; a racing first use may be reported twice (the
        // daemon drops duplicates).
        let seen = unsafe { (*state).uring_seen };
        if seen & mask == 0 {
            add(unsafe { &raw mut (*state).uring_seen }, mask);
            report(&tracked, opcode, ACTION_NONE);
        }
    }
    if opcode == IORING_OP_OPENAT || opcode == IORING_OP_OPENAT2 {
        // The open command sits at the start of the request; its file name is the kernel's
        // copy, taken when the request was prepared (before this tracepoint).
        let filename = read_ptr(req, o.uring_open_filename);
        let name = read_ptr(filename, o.filename_name);
        let dfd = read_u32(req, o.uring_open_dfd) as i32;
        let flags = read_u32(req, o.uring_open_flags);
        let Some(s) = walk::scratch() else { return 0 };
        let built = walk::kernel_path(dfd, name, s);
        files::report(&tracked, s, &built, flags, 0, OPEN_VIA_URING);
    }
    0
}

#[inline(always)]
fn report(tracked: &agent_common::tracking::Tracked, opcode: u32, action: u32) {
    // First uses are bounded (64 per instance): never rate-limited.
    let Some(mut entry) = reserve_decision::<UringRecord>(KIND_URING, tracked) else { return };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_URING, cgroup_id, tracked, current_ppid());
        (*record).opcode = opcode;
        (*record).action = action;
    }
    entry.submit(0);
}
