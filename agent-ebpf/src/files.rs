//! File opens, named by the kernel: `sys_enter` keeps an open's flags (from its registers)
//! by thread; when the call returns with a descriptor, `paddock_open_exit` (on the
//! `syscalls:sys_exit_*` tracepoints of the open calls) names the file behind it from its
//! dentries. So the path judged is the file the kernel opened, not the caller's memory read
//! again; a process cannot change it after the fact, and failed opens report nothing.
//!
//! Opens are reported once per (investigation instance, path, read or write).
use agent_common::{
    event::{FMODE_WRITE, KIND_OPEN, OPEN_VIA_SYSCALL, OpenRecord, PATH_LEN, PATH_UNREADABLE},
    tracking::{ReadKey, SEEN_READ, SEEN_WRITE, Tracked},
};
use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};

use crate::{
    args::{arg, nr},
    enforce::literal_hash,
    maps::{OPEN_ARGS, READS},
    record::{config, current_ppid, fill_header, is_daemon, read_u32, reserve},
    scratch::{OpenArgs, PathScratch},
    tracking,
    walk::{self, Built},
};

const O_WRONLY: u32 = 0o1;
const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

/// Whether an open with these flags, of a file with this `f_mode`, may write.
#[inline(always)]
pub const fn may_write(flags: u32, fmode: u32) -> bool {
    fmode & FMODE_WRITE != 0
        || flags & O_ACCMODE != 0
        || flags & (O_CREAT | O_TRUNC | O_APPEND) != 0
}

/// At an open's entry: keep its flags until it returns.
#[inline(always)]
pub fn stash(regs: *const u8, nr: u64, tid: u32) {
    let flags = match nr {
        nr::OPEN => arg(regs, 1) as u32,
        nr::CREAT => O_CREAT | O_WRONLY | O_TRUNC,
        nr::OPENAT2 => {
            // SAFETY: `how.flags` is the first u64 of `struct open_how`, in user memory
            // (only the flags come from there; the file is named from the kernel).
            unsafe { bpf_probe_read_user(arg(regs, 2) as *const u64).unwrap_or(0) as u32 }
        }
        _ => arg(regs, 2) as u32,
    };
    let _ = OPEN_ARGS.insert(tid, OpenArgs { flags, _pad: 0 }, 0);
}

#[tracepoint(category = "syscalls", name = "sys_exit_openat")]
pub fn paddock_open_exit(ctx: TracePointContext) -> i32 {
    let Some((pid_tgid, tracked)) = tracking::by_task() else { return 0 };
    if is_daemon((pid_tgid >> 32) as u32) {
        return 0;
    }
    let tid = pid_tgid as u32;
    // SAFETY: copied out at once.
    let flags = unsafe { OPEN_ARGS.get(tid).copied() }.map_or(0, |a| a.flags);
    let _ = OPEN_ARGS.remove(tid);
    // SAFETY: offset 16 is `long ret` of the syscalls' exit format.
    let ret: i64 = unsafe { ctx.read_at(16).unwrap_or(-1) };
    if ret < 0 {
        return 0; // nothing was opened
    }
    let Some(s) = walk::scratch() else { return 0 };
    let file = walk::fd_file(ret as u32);
    let built = walk::file_path(file, s);
    let fmode = match config() {
        Some(c) if !file.is_null() => read_u32(file, c.offsets.file_mode),
        _ => 0,
    };
    report(&tracked, s, &built, flags, fmode, OPEN_VIA_SYSCALL);
    0
}

/// Report the open of the file named in `s.buf` (once per instance, path and direction).
#[inline(always)]
pub fn report(tracked: &Tracked, s: &PathScratch, built: &Built, flags: u32, fmode: u32, via: u32) {
    let write = may_write(flags, fmode);
    if built.status & PATH_UNREADABLE == 0 && already(tracked, s, write) {
        return;
    }
    let Some(mut entry) = reserve::<OpenRecord>(KIND_OPEN, tracked) else { return };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size; the path is copied from the
    // per-CPU scratch buffer (at least `PATH_LEN` bytes).
    unsafe {
        let cgroup_id = tracking::current_cgroup_id();
        fill_header(&mut (*record).header, KIND_OPEN, cgroup_id, tracked, current_ppid());
        (*record).flags = flags;
        (*record).fmode = fmode;
        (*record).via = via;
        (*record).status = built.status;
        walk::copy(&mut (*record).path, s);
    }
    entry.submit(0);
}

/// Mark the path in `s.buf` as opened (for `write` or not) by this instance; true when it
/// was already.
#[inline(always)]
fn already(tracked: &Tracked, s: &PathScratch, write: bool) -> bool {
    let path: &[u8; PATH_LEN] = match s.buf.first_chunk() {
        Some(path) => path,
        None => return false,
    };
    let key = ReadKey {
        instance: tracked.instance,
        domain: if write { SEEN_WRITE } else { SEEN_READ },
        path_hash: literal_hash(path),
    };
    // SAFETY: only checks presence.
    if unsafe { READS.get(&key) }.is_some() {
        return true;
    }
    // BPF_NOEXIST: of two CPUs racing on the same path, one reports.
    READS.insert(&key, &1, 1).is_err()
}
