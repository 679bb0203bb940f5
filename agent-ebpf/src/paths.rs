//! Path operations that change the file system (rename, link, symlink, unlink, rmdir,
//! mkdir, mknod, truncate and their `*at` forms), from `sys_enter`. Their paths come from
//! the caller's memory (there is no file to name yet, or no more); each relative one is
//! anchored at its directory by the kernel, and an unreadable one is reported as such and
//! judged a deviation, never passed.
use agent_common::event::{
    KIND_PATH_OP, OP_LINK, OP_MKDIR, OP_MKNOD, OP_RENAME, OP_RMDIR, OP_SYMLINK, OP_TRUNCATE,
    OP_UNLINK, PathOpRecord,
};
use agent_common::tracking::Tracked;
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    args::{arg, nr},
    record::{current_ppid, fill_header, is_daemon, reserve},
    tracking,
    walk::{self, AT_FDCWD},
};

const AT_REMOVEDIR: u64 = 0x200;

/// (dirfd, path) pairs of a call: the first is the path the operation acts on (for
/// symlink, the link made); the second, where there is one, the other path (a rename's or
/// link's new name, or the text a symlink points to).
struct Call {
    op: u32,
    first: (i32, u64),
    second: Option<(i32, u64)>,
}

#[inline(always)]
fn call(regs: *const u8, nr: u64) -> Option<Call> {
    let a = |n| arg(regs, n);
    let cwd = AT_FDCWD;
    Some(match nr {
        nr::RENAME => Call { op: OP_RENAME, first: (cwd, a(0)), second: Some((cwd, a(1))) },
        nr::RENAMEAT | nr::RENAMEAT2 => {
            Call { op: OP_RENAME, first: (a(0) as i32, a(1)), second: Some((a(2) as i32, a(3))) }
        }
        nr::LINK => Call { op: OP_LINK, first: (cwd, a(0)), second: Some((cwd, a(1))) },
        nr::LINKAT => {
            Call { op: OP_LINK, first: (a(0) as i32, a(1)), second: Some((a(2) as i32, a(3))) }
        }
        // The link is what is written; its target is only text, kept as it is.
        nr::SYMLINK => Call { op: OP_SYMLINK, first: (cwd, a(1)), second: Some((cwd, a(0))) },
        nr::SYMLINKAT => {
            Call { op: OP_SYMLINK, first: (a(1) as i32, a(2)), second: Some((cwd, a(0))) }
        }
        nr::UNLINK => Call { op: OP_UNLINK, first: (cwd, a(0)), second: None },
        nr::UNLINKAT => Call {
            op: if a(2) & AT_REMOVEDIR != 0 { OP_RMDIR } else { OP_UNLINK },
            first: (a(0) as i32, a(1)),
            second: None,
        },
        nr::RMDIR => Call { op: OP_RMDIR, first: (cwd, a(0)), second: None },
        nr::MKDIR => Call { op: OP_MKDIR, first: (cwd, a(0)), second: None },
        nr::MKDIRAT => Call { op: OP_MKDIR, first: (a(0) as i32, a(1)), second: None },
        nr::MKNOD => Call { op: OP_MKNOD, first: (cwd, a(0)), second: None },
        nr::MKNODAT => Call { op: OP_MKNOD, first: (a(0) as i32, a(1)), second: None },
        nr::TRUNCATE => Call { op: OP_TRUNCATE, first: (cwd, a(0)), second: None },
        _ => return None,
    })
}

/// Whether `nr` is a path operation this module reports.
#[inline(always)]
pub fn is_path_op(nr: u64) -> bool {
    matches!(
        nr,
        nr::RENAME
            | nr::RENAMEAT
            | nr::RENAMEAT2
            | nr::LINK
            | nr::LINKAT
            | nr::SYMLINK
            | nr::SYMLINKAT
            | nr::UNLINK
            | nr::UNLINKAT
            | nr::RMDIR
            | nr::MKDIR
            | nr::MKDIRAT
            | nr::MKNOD
            | nr::MKNODAT
            | nr::TRUNCATE
    )
}

/// Tail-called by `sys_enter` (same context) for the calls [`is_path_op`] names: naming
/// up to two paths, each perhaps anchored at a directory, is too much for the hot program.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn paddock_path_op(ctx: RawTracePointContext) -> i32 {
    let Some((pid_tgid, tracked)) = tracking::by_task() else { return 0 };
    if is_daemon((pid_tgid >> 32) as u32) {
        return 0;
    }
    // args: (struct pt_regs *regs, long id)
    let regs: *const u8 = ctx.arg(0);
    let nr: u64 = ctx.arg(1);
    on_path_op(regs, nr, &tracked);
    0
}

#[inline(always)]
fn on_path_op(regs: *const u8, nr: u64, tracked: &Tracked) {
    let Some(call) = call(regs, nr) else { return };
    let Some(s) = walk::scratch() else { return };
    let Some(mut entry) = reserve::<PathOpRecord>(KIND_PATH_OP, tracked) else { return };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size; paths are built in the per-CPU
    // scratch and copied in.
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_PATH_OP, cgroup_id, tracked, current_ppid());
        (*record).op = call.op;
        (*record)._pad = 0;
        let built = walk::user_path(call.first.0, call.first.1 as *const u8, s);
        (*record).status = built.status;
        walk::copy(&mut (*record).path, s);
        match call.second {
            // A symlink's target is text: kept as written, never anchored.
            Some((_, target)) if call.op == OP_SYMLINK => {
                let built = walk::user_text(target as *const u8, s);
                (*record).status2 = built.status;
                walk::copy(&mut (*record).path2, s);
            }
            Some((dirfd, path)) => {
                let built = walk::user_path(dirfd, path as *const u8, s);
                (*record).status2 = built.status;
                walk::copy(&mut (*record).path2, s);
            }
            None => {
                (*record).status2 = 0;
                (*record).path2[0] = 0;
            }
        }
    }
    entry.submit(0);
}
