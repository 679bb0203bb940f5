//! File opens (`open`, `creat`, `openat`, `openat2`), from `sys_enter`. Opens that may write
//! are always reported; read-only opens once per (investigation instance, path).
//!
//! The path is read from the caller's memory at entry. When it is not paged in yet (a
//! string in a part of the binary nothing has touched), the read fails; the arguments are
//! then kept in `OPEN_ARGS` and the path read at the thread's next syscall, once the kernel
//! has paged it in. Reported opens carry no result: the call has not run yet.
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use agent_common::{
    event::{KIND_OPEN, OpenRecord, PATH_LEN},
    hash::{FNV_OFFSET, fnv1a_step},
    tracking::{ReadKey, SlotState, Tracked},
};
use aya_ebpf::helpers::{bpf_probe_read_user, generated::bpf_probe_read_user_str};

use crate::{
    args::{arg, nr},
    maps::{OPEN_ARGS, READS},
    record::{current_ppid, fill_header, reserve},
    tracking,
};

const O_WRONLY: u32 = 0o1;
const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
const AT_FDCWD: i32 = -100;

/// An open whose path is still to be read.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenArgs {
    pub filename: u64,
    pub flags: u32,
    pub dirfd: i32,
}

/// Whether an open with these flags may write.
#[inline(always)]
pub const fn may_write(flags: u32) -> bool {
    flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC | O_APPEND) != 0
}

#[inline(always)]
pub fn on_open(regs: *const u8, nr: u64, tid: u32, tracked: &Tracked, state: *mut SlotState) {
    let args = match nr {
        nr::OPEN => {
            OpenArgs { filename: arg(regs, 0), flags: arg(regs, 1) as u32, dirfd: AT_FDCWD }
        }
        nr::CREAT => OpenArgs {
            filename: arg(regs, 0),
            flags: O_CREAT | O_WRONLY | O_TRUNC,
            dirfd: AT_FDCWD,
        },
        nr::OPENAT2 => {
            // SAFETY: `how.flags` is the first u64 of `struct open_how`, in user memory.
            let flags = unsafe { bpf_probe_read_user(arg(regs, 2) as *const u64).unwrap_or(0) };
            OpenArgs { filename: arg(regs, 1), flags: flags as u32, dirfd: arg(regs, 0) as i32 }
        }
        _ => OpenArgs {
            filename: arg(regs, 1),
            flags: arg(regs, 2) as u32,
            dirfd: arg(regs, 0) as i32,
        },
    };
    if !report(&args, tracked) {
        let _ = OPEN_ARGS.insert(tid, args, 0);
        // SAFETY: an atomic add whose result is unused (BPF_XADD, ISA v1).
        unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*state).pending_opens, 1)
        };
    }
}

/// At the next syscall of a thread with an open left unread: read it now.
#[inline(always)]
pub fn retry_pending(tid: u32, tracked: &Tracked, state: *mut SlotState) {
    // SAFETY: copied out at once.
    let Some(args) = (unsafe { OPEN_ARGS.get(tid).copied() }) else {
        return;
    };
    let _ = OPEN_ARGS.remove(tid);
    // SAFETY: as in `on_open`; adding u64::MAX subtracts one.
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
            &raw mut (*state).pending_opens,
            u64::MAX,
        )
    };
    if !report(&args, tracked) {
        // Still unreadable: report the open without its path rather than lose it.
        let unreadable = OpenArgs { filename: 0, ..args };
        report(&unreadable, tracked);
    }
}

/// Write the open's record. False (and nothing written) when the path cannot be read yet;
/// a null `filename` is reported with an empty path.
#[inline(always)]
fn report(args: &OpenArgs, tracked: &Tracked) -> bool {
    let Some(mut entry) = reserve::<OpenRecord>(KIND_OPEN) else {
        return true; // counted as lost
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    let path = unsafe { &mut (*record).path };
    if args.filename == 0 {
        path[0] = 0;
    } else {
        // SAFETY: user memory read through the helper into the reserved record.
        let read = unsafe {
            bpf_probe_read_user_str(
                path.as_mut_ptr().cast(),
                PATH_LEN as u32,
                args.filename as *const _,
            )
        };
        if read < 0 {
            entry.discard(0);
            return false;
        }
    }
    if !may_write(args.flags) && already_read(tracked, path) {
        entry.discard(0);
        return true;
    }
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_OPEN, cgroup_id, tracked, current_ppid());
        (*record).flags = args.flags;
        (*record).dirfd = args.dirfd;
    }
    entry.submit(0);
    true
}

/// Mark `path` as read by this instance; true when it was already.
#[inline(always)]
fn already_read(tracked: &Tracked, path: &[u8; PATH_LEN]) -> bool {
    let mut hash = FNV_OFFSET;
    for byte in path.iter() {
        if *byte == 0 {
            break;
        }
        hash = fnv1a_step(hash, *byte);
    }
    let key = ReadKey { instance: tracked.instance, _pad: 0, path_hash: hash };
    // SAFETY: only checks presence.
    if unsafe { READS.get(&key) }.is_some() {
        return true;
    }
    // BPF_NOEXIST: of two CPUs racing on the same path, one reports.
    READS.insert(&key, &1, 1).is_err()
}
