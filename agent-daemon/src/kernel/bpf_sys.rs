//! The few `bpf(2)` commands paddock issues itself, beside aya: loading and linking the
//! programs aya cannot (`sideload`), pinning their links, and copying map entries between
//! generations of pinned maps (`carry`).
use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    os::unix::ffi::OsStrExt as _,
    path::Path,
};

pub const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
pub const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
pub const BPF_PROG_LOAD: libc::c_long = 5;
pub const BPF_OBJ_PIN: libc::c_long = 6;
pub const BPF_OBJ_GET: libc::c_long = 7;
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
pub const BPF_BTF_LOAD: libc::c_long = 18;
pub const BPF_LINK_CREATE: libc::c_long = 28;

/// `attr` for `bpf(cmd, ...)`: the size passed is that of `T`.
pub fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<RawFd> {
    // SAFETY: `attr` is a valid, initialised attribute struct of the size passed; the
    // kernel reads (and for logs and info writes through pointers) only within what it
    // describes.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as u32)
    };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r as RawFd) }
}

#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// Pin the object `fd` (a link, a map, a program) at `path` in bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> std::io::Result<()> {
    let name = c_path(path)?;
    let mut attr =
        ObjAttr { pathname: name.as_ptr() as u64, bpf_fd: fd.as_raw_fd() as u32, file_flags: 0 };
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

/// Open the object pinned at `path`.
pub fn obj_get(path: &Path) -> std::io::Result<OwnedFd> {
    let name = c_path(path)?;
    let mut attr = ObjAttr { pathname: name.as_ptr() as u64, ..Default::default() };
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: a new fd the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
