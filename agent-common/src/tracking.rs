//! How the kernel knows which cgroups belong to which investigation.
//!
//! The daemon gives each running investigation a *slot* (a small index into per-slot maps)
//! and an *instance* (a number never reused while the daemon runs). Every cgroup of the
//! investigation maps to the same `Tracked` value, in two places:
//! - `TRACKED`, a hash map keyed by cgroup id: the authority;
//! - `FAST`, a direct-mapped array indexed by [`fast_index`]: what every probe reads first.
//!   An entry holds the cgroup id it describes; a probe whose cgroup id differs is untracked
//!   unless the entry carries [`FAST_COLLISION`], in which case it asks `TRACKED`.
//!
//! Processes of an investigation are also tracked by process id, which is what `sys_enter`
//! reads: `bpf_get_current_pid_tgid` is far cheaper than the cgroup id on every syscall of
//! the node. `TASKS` (hash, by tgid) and `TASKS_FAST` (direct-mapped, like `FAST`) are filled
//! from the cgroups: at fork (the child's cgroup), at exec and cgroup migration (the task's
//! cgroup), and by the daemon from `cgroup.procs` when it registers a cgroup; an exiting
//! process leaves them. A tracked process that moves itself to another cgroup stays tracked.
//!
//! `CGROUP_PATHS` maps the hash (FNV-1a, `crate::hash`) of a cgroup path, as the cgroup v2
//! hierarchy names it, to a `Tracked`: the `cgroup_mkdir` probe tracks a new cgroup whose
//! own path or parent's path is there, before any process runs in it.

/// Number of investigation slots; sizes the per-slot maps.
pub const MAX_SLOTS: u32 = 128;
/// log2 of the entries in the `FAST` array.
pub const FAST_BITS: u32 = 14;
/// Entries in the `FAST` array.
pub const FAST_ENTRIES: u32 = 1 << FAST_BITS;
/// Cgroups the `TRACKED` and `CGROUP_PATHS` maps can hold (all investigations together).
pub const MAX_TRACKED_CGROUPS: u32 = 8192;
/// log2 of the entries in the `TASKS_FAST` array.
pub const TASK_FAST_BITS: u32 = 14;
pub const TASK_FAST_ENTRIES: u32 = 1 << TASK_FAST_BITS;
/// Processes the `TASKS` map can hold (all investigations together).
pub const MAX_TRACKED_TASKS: u32 = 32768;
/// Syscall numbers the per-slot counters and bitmaps cover.
pub const MAX_SYSCALLS: u32 = 512;
/// Entries in the read-open de-duplication map.
pub const READS_ENTRIES: u32 = 1 << 16;

/// `Tracked::flags`: the `FAST` entry is shared; look the cgroup id up in `TRACKED`.
pub const FAST_COLLISION: u8 = 1;

/// The four trust phases, as numbered across the boundary.
pub const PHASE_SHADOW: u8 = 0;
pub const PHASE_READ_ONLY: u8 = 1;
pub const PHASE_LIMITED_WRITE: u8 = 2;
pub const PHASE_AUTONOMOUS: u8 = 3;
/// A phase the daemon does not know (a Kubernetes label with another value).
pub const PHASE_UNKNOWN: u8 = 255;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    pub slot: u16,
    pub phase: u8,
    pub flags: u8,
    pub instance: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastEntry {
    /// The cgroup this entry describes; 0 when empty (no cgroup has id 0).
    pub cgroup_id: u64,
    pub tracked: Tracked,
}

/// Where a cgroup id lives in `FAST`: its low bits. The kernel allocates cgroup ids
/// sequentially (kernfs inode numbers), so consecutive cgroups land in consecutive entries
/// and two collide only 2^FAST_BITS ids apart; no hashing on the hot path.
#[inline(always)]
pub const fn fast_index(cgroup_id: u64) -> u32 {
    (cgroup_id & (FAST_ENTRIES as u64 - 1)) as u32
}

/// A `TASKS_FAST` entry: `tgid` 0 when empty; `tracked.flags` may carry `FAST_COLLISION`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskEntry {
    pub tgid: u32,
    pub _pad: u32,
    pub tracked: Tracked,
}

/// Where a process lives in `TASKS_FAST`: the low bits of its tgid.
#[inline(always)]
pub const fn task_index(tgid: u32) -> u32 {
    tgid & (TASK_FAST_ENTRIES - 1)
}

/// Kernel-side state of one investigation slot, shared by all CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotState {
    /// Syscalls seen so far: one bit per syscall number.
    pub seen: [u64; (MAX_SYSCALLS / 64) as usize],
    /// Opens whose path could not be read at syscall entry (not yet paged in), waiting to
    /// be read at their thread's next syscall. A hint: non-zero makes `sys_enter` look.
    pub pending_opens: u64,
    /// Non-zero once the kernel refused or killed something of this investigation in
    /// enforce mode: every one of its processes is SIGKILLed at its next syscall.
    pub doomed: u64,
}

/// Per-syscall counters of one investigation (a per-CPU map value).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallCounts {
    pub counts: [u64; MAX_SYSCALLS as usize],
}

/// Egress counters of one investigation (a per-CPU map value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressCounts {
    pub bytes: u64,
    pub packets: u64,
}

/// Key of the read-open de-duplication map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReadKey {
    pub instance: u32,
    pub _pad: u32,
    pub path_hash: u64,
}
