//! The daemon-to-kernel configuration record (one entry of the `CONFIG` array map).

/// Struct member offsets the kernel programs need, read by the daemon from the running
/// kernel's BTF (so the programs need no compile-time kernel headers). Each is a byte
/// offset from the start of the named struct; a path such as `file.f_path.dentry` is the
/// sum along the way (anonymous unions included).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.real_parent`
    pub real_parent: u32,
    /// `task_struct.tgid`
    pub tgid: u32,
    /// `task_struct.pid`
    pub pid: u32,
    /// `task_struct.exit_code`
    pub exit_code: u32,
    /// `task_struct.cgroups` (a `struct css_set *`)
    pub cgroups: u32,
    /// `css_set.dfl_cgrp` (the task's cgroup v2 `struct cgroup *`)
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn` (its `struct kernfs_node *`)
    pub cgroup_kn: u32,
    /// `kernfs_node.id` (the cgroup id)
    pub kernfs_node_id: u32,
    /// `task_struct.thread_info.status` (x86: `TS_COMPAT` while a 32-bit syscall runs)
    pub thread_status: u32,
    /// `task_struct.signal`
    pub signal: u32,
    /// `signal_struct.live` (threads of the group still alive)
    pub signal_live: u32,
    /// `task_struct.files`
    pub files: u32,
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.max_fds`
    pub fdt_max_fds: u32,
    /// `fdtable.fd`
    pub fdt_fd: u32,
    /// `task_struct.fs`
    pub fs: u32,
    /// `fs_struct.root.mnt` and `fs_struct.root.dentry`
    pub fs_root_mnt: u32,
    pub fs_root_dentry: u32,
    /// `fs_struct.pwd.mnt` and `fs_struct.pwd.dentry`
    pub fs_pwd_mnt: u32,
    pub fs_pwd_dentry: u32,
    /// `file.f_path.mnt` and `file.f_path.dentry`
    pub file_mnt: u32,
    pub file_dentry: u32,
    /// `file.f_mode`
    pub file_mode: u32,
    /// `dentry.d_parent`
    pub dentry_parent: u32,
    /// `dentry.d_name.name`
    pub dentry_name: u32,
    /// `dentry.d_hash.pprev` (null once the dentry is unhashed: deleted)
    pub dentry_hash_pprev: u32,
    /// `vfsmount.mnt_root`
    pub vfsmount_root: u32,
    /// `mount.mnt` (the `vfsmount` inside a `struct mount`)
    pub mount_mnt: u32,
    /// `mount.mnt_parent`
    pub mount_parent: u32,
    /// `mount.mnt_mountpoint`
    pub mount_mountpoint: u32,
    /// `linux_binprm.file`
    pub bprm_file: u32,
    /// `linux_binprm.filename`
    pub bprm_filename: u32,
    /// `io_kiocb.opcode`
    pub req_opcode: u32,
    /// `io_open.dfd`, `io_open.filename`, `io_open.how.flags` (the open command at the start
    /// of an `io_kiocb`)
    pub uring_open_dfd: u32,
    pub uring_open_filename: u32,
    pub uring_open_flags: u32,
    /// `filename.name` (the kernel's copy of a path a syscall was given)
    pub filename_name: u32,
    /// `sock.sk_cgrp_data.cgroup` (the cgroup a socket was made in)
    pub sock_cgroup: u32,
    /// `cgroup.root` (its `struct cgroup_root *`) and `cgroup_root.hierarchy_id` (0 for the
    /// v2 hierarchy): a move within a v1 hierarchy is not a move out of the investigation.
    pub cgroup_root: u32,
    pub cgroup_root_hierarchy_id: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The daemon's own tgid: its processes never produce events.
    pub daemon_tgid: u32,
    /// Non-zero once the daemon's readers run; until then probes stay quiet.
    pub enabled: u32,
    /// Records one investigation may write per CPU and window; the rest are counted as
    /// throttled (records that decide nothing only; kills and denials are always written).
    pub records_per_window: u32,
    /// Processes the kernel tracks for one investigation (forks beyond are refused
    /// tracking, counted, and in an enforcing phase fail closed).
    pub task_quota: u32,
    /// The rate limit's window.
    pub window_ns: u64,
    /// Cgroups the kernel tracks for one investigation.
    pub cgroup_quota: u32,
    /// A DNS answer binds its addresses to the name asked for at least this many seconds
    /// and at most `dns_max_ttl_s`, whatever TTL it gives.
    pub dns_min_ttl_s: u32,
    pub offsets: KernelOffsets,
    pub dns_max_ttl_s: u32,
    pub _pad: u32,
}
