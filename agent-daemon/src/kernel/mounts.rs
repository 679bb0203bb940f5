//! Filesystems the daemon needs: cgroup v2 (found, never assumed), tracefs and bpffs
//! (mounted when missing).
use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The path, inside its filesystem, of the mount's root (`/` unless a sub-tree or a
    /// cgroup namespace is mounted).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
}

/// Where cgroup v2 is mounted, and which of its paths the mount shows as `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2 {
    pub mount_point: PathBuf,
    pub root: String,
}

impl Cgroup2 {
    /// The path of `dir` (below the mount) as the kernel names it in the hierarchy, which
    /// is what the `cgroup_mkdir` tracepoint reports.
    pub fn hierarchy_path(&self, dir: &Path) -> Option<String> {
        let rel = dir.strip_prefix(&self.mount_point).ok()?;
        let mut path = self.root.trim_end_matches('/').to_owned();
        for part in rel.components() {
            path.push('/');
            path.push_str(part.as_os_str().to_str()?);
        }
        Some(if path.is_empty() { "/".into() } else { path })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "no cgroup v2 filesystem is mounted (looked in {path}): paddock needs the unified \
         hierarchy (mount -t cgroup2 none /sys/fs/cgroup)"
    )]
    NoCgroup2 { path: PathBuf },
    #[error("cannot mount {fstype} at {target}: {source}")]
    Mount { fstype: &'static str, target: PathBuf, source: std::io::Error },
}

/// `\040`-style escapes in mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            Some(MountEntry {
                root: unescape(left.get(3)?),
                mount_point: unescape(left.get(4)?).into(),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

fn read_mountinfo(path: &Path) -> Result<Vec<MountEntry>, MountError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| MountError::Read { path: path.to_path_buf(), source })?;
    Ok(parse_mountinfo(&text))
}

/// The cgroup v2 mount, from mountinfo (never a hard-coded path: hybrid hosts mount it at
/// `/sys/fs/cgroup/unified`).
pub fn cgroup2(mountinfo: &Path) -> Result<Cgroup2, MountError> {
    read_mountinfo(mountinfo)?
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| Cgroup2 { mount_point: m.mount_point, root: m.root })
        .ok_or_else(|| MountError::NoCgroup2 { path: mountinfo.to_path_buf() })
}

/// Mount `fstype` at `target` unless a filesystem of that type is mounted there already.
/// Returns whether it mounted.
pub fn ensure_mounted(
    fstype: &'static str,
    target: &Path,
    mountinfo: &Path,
) -> Result<bool, MountError> {
    if read_mountinfo(mountinfo)?.iter().any(|m| m.fstype == fstype && m.mount_point == target) {
        return Ok(false);
    }
    let err = |source| MountError::Mount { fstype, target: target.to_path_buf(), source };
    std::fs::create_dir_all(target).map_err(err)?;
    let c_target =
        CString::new(target.as_os_str().as_bytes()).map_err(|e| err(std::io::Error::other(e)))?;
    let c_type = CString::new(fstype).map_err(|e| err(std::io::Error::other(e)))?;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(c_type.as_ptr(), c_target.as_ptr(), c_type.as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_cgroup2_on_a_hybrid_host() {
        let mounts = parse_mountinfo(HYBRID);
        assert_eq!(mounts.len(), 4);
        let cg = mounts.iter().find(|m| m.fstype == "cgroup2").unwrap();
        assert_eq!(cg.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(mounts[3].mount_point, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn no_cgroup2_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &HYBRID[..HYBRID.find("41 31").unwrap()]).unwrap();
        let err = cgroup2(file.path()).unwrap_err().to_string();
        assert!(err.contains("no cgroup v2"), "{err}");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
    }

    #[test]
    fn hierarchy_paths_follow_the_mount_root() {
        let host = Cgroup2 { mount_point: "/sys/fs/cgroup".into(), root: "/".into() };
        assert_eq!(
            host.hierarchy_path(Path::new("/sys/fs/cgroup/paddock/inv-1")).as_deref(),
            Some("/paddock/inv-1")
        );
        assert_eq!(host.hierarchy_path(Path::new("/sys/fs/cgroup")).as_deref(), Some("/"));
        let namespaced =
            Cgroup2 { mount_point: "/sys/fs/cgroup".into(), root: "/kubepods/x".into() };
        assert_eq!(
            namespaced.hierarchy_path(Path::new("/sys/fs/cgroup/a")).as_deref(),
            Some("/kubepods/x/a")
        );
        assert_eq!(host.hierarchy_path(Path::new("/elsewhere")), None);
    }
}
