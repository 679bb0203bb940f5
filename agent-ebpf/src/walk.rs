//! Naming a file the way the kernel knows it: from its dentry up through the mounts to the
//! current process's root (what `d_path` does), into a per-CPU buffer. What is named is
//! kernel state (the file opened, the executable run, a working directory), never the
//! caller's memory, so a process cannot change it after the fact.
use agent_common::event::{PATH_DELETED, PATH_LEN, PATH_TRUNCATED, PATH_UNREADABLE};
use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_loop, bpf_probe_read_kernel_str},
};

use crate::{
    maps::PATH_SCRATCH,
    record::{config, current_task, read_ptr},
    scratch::{MAX_DEPTH, PathScratch},
};

/// Steps a walk takes at most: components plus mount crossings (`PathScratch::names`).
const MAX_STEPS: usize = MAX_DEPTH;

/// The per-CPU path scratch, ours for this program run.
#[inline(always)]
pub fn scratch() -> Option<&'static mut PathScratch> {
    // SAFETY: a per-CPU value; nothing else on this CPU uses it while the program runs.
    PATH_SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// A built path: its length in `PathScratch::buf` (without the NUL) and `PATH_*` bits.
pub struct Built {
    pub len: usize,
    pub status: u32,
}

/// Write the path of `(mnt, dentry)` (a `struct vfsmount *` and a `struct dentry *`) into
/// `s.buf`, NUL-terminated within `PATH_LEN` bytes.
///
/// Both the walk up the dentries and the join of the names run as `bpf_loop` callbacks,
/// their state in the scratch map: the verifier checks each step once (unrolled, a
/// 40-step walk with its branches is more than it will explore).
#[inline(always)]
pub fn walk(mnt: *const u8, dentry: *const u8, s: &mut PathScratch) -> Built {
    let Some(config) = config() else {
        s.buf[0] = 0;
        return Built { len: 0, status: PATH_UNREADABLE };
    };
    let o = &config.offsets;
    if mnt.is_null() || dentry.is_null() {
        s.buf[0] = 0;
        return Built { len: 0, status: PATH_UNREADABLE };
    }
    s.status = 0;
    if read_ptr(dentry, o.dentry_hash_pprev).is_null() {
        s.status |= PATH_DELETED;
    }
    let fs = read_ptr(current_task(), o.fs);
    s.root_mnt = read_ptr(fs, o.fs_root_mnt) as u64;
    s.root_dentry = read_ptr(fs, o.fs_root_dentry) as u64;
    s.dentry = dentry as u64;
    s.mnt = mnt as u64;
    // `mount.mnt` is inside `struct mount`.
    s.mount = (mnt as u64).wrapping_sub(o.mount_mnt as u64);
    s.mnt_root = read_ptr(mnt, o.vfsmount_root) as u64;
    s.done = 0;
    // SAFETY: helper calls with static callbacks and no context: the callbacks reach the
    // per-CPU scratch map themselves, and this function holds no reference across them.
    unsafe {
        bpf_loop(MAX_STEPS as u32, walk_step as *mut c_void, core::ptr::null_mut(), 0);
    }
    let Some(s) = scratch() else {
        return Built { len: 0, status: PATH_UNREADABLE };
    };
    if s.done == 0 {
        s.status |= PATH_TRUNCATED;
    }
    s.len = 0;
    // SAFETY: as above.
    unsafe {
        bpf_loop(MAX_STEPS as u32, join_step as *mut c_void, core::ptr::null_mut(), 0);
    }
    let Some(s) = scratch() else {
        return Built { len: 0, status: PATH_UNREADABLE };
    };
    let mut len = s.len as usize;
    if len == 0 {
        s.buf[0] = b'/';
        len = 1;
    }
    if len >= PATH_LEN {
        s.status |= PATH_TRUNCATED;
        len = PATH_LEN - 1;
    }
    s.buf[len & (2 * PATH_LEN - 1)] = 0;
    Built { len, status: s.status }
}

/// Step `i` of a walk: writes `names[i]`, the name of this step's dentry, or 0 for a step
/// that names nothing (a mount crossing, or past the top).
#[inline(never)]
unsafe extern "C" fn walk_step(index: u64, _ctx: *mut c_void) -> i64 {
    let (Some(s), Some(config)) = (scratch(), config()) else { return 1 };
    let o = &config.offsets;
    let i = index as usize;
    if i >= MAX_STEPS {
        return 1;
    }
    let mut name = 0u64;
    if s.done == 0 {
        let (dentry, mnt, mount) =
            (s.dentry as *const u8, s.mnt as *const u8, s.mount as *const u8);
        if s.dentry == s.root_dentry && s.mnt == s.root_mnt {
            s.done = 1;
        } else if s.dentry == s.mnt_root {
            let parent = read_ptr(mount, o.mount_parent);
            if parent.is_null() || parent == mount {
                s.done = 1; // the top of the mount tree
            } else {
                s.dentry = read_ptr(mount, o.mount_mountpoint) as u64;
                s.mount = parent as u64;
                let mnt = (parent as u64).wrapping_add(o.mount_mnt as u64);
                s.mnt = mnt;
                s.mnt_root = read_ptr(mnt as *const u8, o.vfsmount_root) as u64;
            }
        } else {
            let parent = read_ptr(dentry, o.dentry_parent);
            if parent.is_null() || parent == dentry {
                // The root of a file system mounted nowhere. A file that is such a root
                // itself (a memfd, a pipe) is named by its own name: `/memfd:name`.
                if i == 0 {
                    name = read_ptr(dentry, o.dentry_name) as u64;
                }
                s.done = 1;
            } else {
                name = read_ptr(dentry, o.dentry_name) as u64;
                s.dentry = parent as u64;
            }
        }
        let _ = mnt;
    }
    s.names[i] = name;
    0
}

/// Step `k` of the join: append `/` and the `k`-th name from the top, if any.
#[inline(never)]
unsafe extern "C" fn join_step(index: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else { return 1 };
    let k = index as usize;
    if k >= MAX_STEPS {
        return 1;
    }
    let name = s.names[MAX_STEPS - 1 - k];
    if name == 0 {
        return 0;
    }
    let len = s.len as usize;
    if len >= PATH_LEN - 2 {
        s.status |= PATH_TRUNCATED;
        return 1;
    }
    s.buf[len] = b'/';
    let at = len + 1;
    // SAFETY: `at < PATH_LEN` and at most `PATH_LEN` bytes are written into a buffer of
    // twice that; the source is a kernel string read through the helper.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            s.buf.as_mut_ptr().add(at).cast(),
            PATH_LEN as u32,
            name as *const _,
        )
    };
    if n <= 0 {
        s.status |= PATH_UNREADABLE;
        s.len = at as u64;
        return 1;
    }
    s.len = (at + (n as usize).min(PATH_LEN) - 1) as u64;
    0
}

/// Copy the path built in `s.buf` into `dst` (a record's path field).
#[inline(always)]
pub fn copy<const N: usize>(dst: &mut [u8; N], s: &PathScratch) {
    // SAFETY: both buffers are at least `N` bytes (`N <= 2 * PATH_LEN`); a kernel-to-kernel
    // copy through the helper.
    let r = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            dst.as_mut_ptr().cast(),
            N as u32,
            s.buf.as_ptr().cast(),
        )
    };
    if r < 0 {
        dst[0] = 0;
    }
    dst[N - 1] = 0;
}

/// The working directory of the current process (`fs->pwd`).
#[inline(always)]
pub fn cwd(s: &mut PathScratch) -> Built {
    base_dir(AT_FDCWD, s)
}

/// The `struct file *` behind descriptor `fd` of the current process; null when none.
#[inline(always)]
pub fn fd_file(fd: u32) -> *const u8 {
    let Some(config) = config() else { return core::ptr::null() };
    let o = &config.offsets;
    let files = read_ptr(current_task(), o.files);
    let fdt = read_ptr(files, o.files_fdt);
    if fdt.is_null() || fd >= crate::record::read_u32(fdt, o.fdt_max_fds) {
        return core::ptr::null();
    }
    let fds = read_ptr(fdt, o.fdt_fd);
    if fds.is_null() {
        return core::ptr::null();
    }
    read_ptr(fds, fd.wrapping_mul(8))
}

/// The path of an open file (`struct file *`).
#[inline(always)]
pub fn file_path(file: *const u8, s: &mut PathScratch) -> Built {
    let (mnt, dentry) = file_location(file);
    walk(mnt, dentry, s)
}

/// `file->f_path` as (mnt, dentry); nulls when there is no file.
#[inline(always)]
fn file_location(file: *const u8) -> (*const u8, *const u8) {
    match config() {
        Some(config) if !file.is_null() => {
            let o = &config.offsets;
            (read_ptr(file, o.file_mnt), read_ptr(file, o.file_dentry))
        }
        _ => (core::ptr::null(), core::ptr::null()),
    }
}

/// The directory a `*at` call's relative path starts from: `dirfd`'s file, or the working
/// directory for `AT_FDCWD`. One walk either way (the choice is only of where to start).
#[inline(always)]
pub fn base_dir(dirfd: i32, s: &mut PathScratch) -> Built {
    let (mnt, dentry) = if dirfd == AT_FDCWD {
        match config() {
            Some(config) => {
                let o = &config.offsets;
                let fs = read_ptr(current_task(), o.fs);
                (read_ptr(fs, o.fs_pwd_mnt), read_ptr(fs, o.fs_pwd_dentry))
            }
            None => (core::ptr::null(), core::ptr::null()),
        }
    } else {
        file_location(fd_file(dirfd as u32))
    };
    walk(mnt, dentry, s)
}

pub const AT_FDCWD: i32 = -100;

/// As [`user_path`], for a path already copied into kernel memory (`name`).
#[inline(always)]
pub fn kernel_path(dirfd: i32, name: *const u8, s: &mut PathScratch) -> Built {
    // SAFETY: a kernel read through the helper.
    let first = unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(name) };
    let Ok(first) = first else {
        s.buf[0] = 0;
        return Built { len: 0, status: PATH_UNREADABLE };
    };
    let (start, mut status) = if first == b'/' {
        (0usize, 0u32)
    } else {
        let base = base_dir(dirfd, s);
        let len = base.len & (PATH_LEN - 1);
        s.buf[len] = b'/';
        (len + 1, base.status)
    };
    let at = start & (PATH_LEN - 1);
    // SAFETY: `at < PATH_LEN`, at most `PATH_LEN` bytes into a buffer of twice that.
    let n = unsafe {
        bpf_probe_read_kernel_str(s.buf.as_mut_ptr().add(at).cast(), PATH_LEN as u32, name.cast())
    };
    if n <= 0 {
        s.buf[0] = 0;
        return Built { len: 0, status: status | PATH_UNREADABLE };
    }
    let mut len = at + n as usize - 1;
    if len >= PATH_LEN {
        status |= PATH_TRUNCATED;
        len = PATH_LEN - 1;
    }
    s.buf[len & (2 * PATH_LEN - 1)] = 0;
    Built { len, status }
}

/// Put a string from the caller's memory into `s.buf` as it is.
#[inline(always)]
pub fn user_text(user: *const u8, s: &mut PathScratch) -> Built {
    // SAFETY: at most `PATH_LEN` bytes into a buffer of twice that, through the helper.
    let n = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user_str(
            s.buf.as_mut_ptr().cast(),
            PATH_LEN as u32,
            user.cast(),
        )
    };
    if n <= 0 {
        s.buf[0] = 0;
        return Built { len: 0, status: PATH_UNREADABLE };
    }
    Built { len: n as usize - 1, status: 0 }
}

/// Put the path a syscall was given (`user`, in the caller's memory) into `s.buf`: as it
/// is when absolute, else after the path of its base directory (`dirfd`), joined with `/`.
/// The daemon normalises `.` and `..` lexically. `PATH_UNREADABLE` when the argument could
/// not be read (it is then judged as unreadable, never passed).
#[inline(always)]
pub fn user_path(dirfd: i32, user: *const u8, s: &mut PathScratch) -> Built {
    // SAFETY: user memory read through the helper.
    let first = if user.is_null() {
        Err(0)
    } else {
        unsafe { aya_ebpf::helpers::bpf_probe_read_user(user) }
    };
    let Ok(first) = first else {
        s.buf[0] = 0;
        return Built { len: 0, status: PATH_UNREADABLE };
    };
    let (start, mut status) = if first == b'/' {
        (0usize, 0u32)
    } else {
        let base = base_dir(dirfd, s);
        let len = base.len & (PATH_LEN - 1);
        s.buf[len] = b'/';
        (len + 1, base.status)
    };
    let at = start & (PATH_LEN - 1);
    // SAFETY: `at < PATH_LEN`, at most `PATH_LEN` bytes into a buffer of twice that.
    let n = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user_str(
            s.buf.as_mut_ptr().add(at).cast(),
            PATH_LEN as u32,
            user.cast(),
        )
    };
    if n <= 0 {
        s.buf[0] = 0;
        return Built { len: 0, status: status | PATH_UNREADABLE };
    }
    let mut len = at + n as usize - 1;
    if len >= PATH_LEN {
        status |= PATH_TRUNCATED;
        len = PATH_LEN - 1;
    }
    s.buf[len & (2 * PATH_LEN - 1)] = 0;
    Built { len, status }
}
