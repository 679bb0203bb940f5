//! The daemon-to-kernel configuration record (one entry of the `CONFIG` array map).

/// Struct member offsets the kernel programs need, read by the daemon from the running
/// kernel's BTF (so the programs need no compile-time kernel headers).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
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
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The daemon's own tgid: its processes never produce events.
    pub daemon_tgid: u32,
    /// Non-zero once the daemon's readers run; until then probes stay quiet.
    pub enabled: u32,
    pub task: TaskOffsets,
}
