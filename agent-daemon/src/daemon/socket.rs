//! The control socket's files: the lock that allows one daemon per socket, and the socket
//! itself, owned by root and the admin group.
use std::{
    fs::File,
    io::{Read as _, Seek as _, Write as _},
    os::unix::{fs::OpenOptionsExt as _, io::AsRawFd as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use tokio::net::UnixListener;

/// Hold `<socket>.lock` for the daemon's lifetime: one daemon per socket.
pub(super) fn lock(socket: &Path) -> anyhow::Result<File> {
    let path = PathBuf::from(format!("{}.lock", socket.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    // SAFETY: a valid fd; LOCK_NB never blocks.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "another paddock daemon (pid {}) already serves {} (lock {} is held)",
            holder.trim(),
            socket.display(),
            path.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// The id of group `name`, if it exists.
pub(super) fn group_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a C struct of integers and pointers: all zeroes (null pointers) is valid.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r with a zeroed group, a buffer of the size given and an out-pointer;
    // the result borrows from `buf` and `group`, read before they go.
    let rc = unsafe {
        libc::getgrnam_r(name.as_ptr(), &mut group, buf.as_mut_ptr().cast(), buf.len(), &mut found)
    };
    (rc == 0 && !found.is_null()).then_some(group.gr_gid)
}

/// The control socket at `path`, mode 0660, owned by root and `gid` (root's group when there
/// is none). Bound under a temporary name and renamed into place once its mode and owner
/// are set, so nobody can connect in between.
pub(super) fn control_socket(path: &Path, gid: Option<u32>) -> anyhow::Result<UnixListener> {
    let tmp = PathBuf::from(format!("{}.new-{}", path.display(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).with_context(|| format!("cannot listen on {}", tmp.display()))?;
    std::os::unix::fs::chown(&tmp, Some(0), Some(gid.unwrap_or(0)))
        .with_context(|| format!("cannot give {} to root and its group", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot put the control socket at {}", path.display()))?;
    Ok(listener)
}
