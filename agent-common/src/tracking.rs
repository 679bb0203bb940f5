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
//! cgroup), and by the daemon from `cgroup.procs` when it registers a cgroup; a process
//! leaves them when its last thread exits. A tracked process that moves itself to another
//! cgroup stays tracked (and attributed to the investigation it was in): the move is an
//! escape, counted in its slot.
//!
//! Each investigation has quotas (from `Config`) on the processes and cgroups the kernel
//! tracks for it, so one investigation cannot fill the node-wide maps and leave others'
//! new processes untracked; what is refused is counted in its slot.
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
/// Native syscall numbers: the per-slot counters cover these.
pub const MAX_SYSCALLS: u32 = 512;
/// Syscall identities the per-slot "seen" bitmaps and the phase policies cover: native
/// numbers, then 32-bit (`int 0x80`) numbers from [`IA32_BASE`], then two catch-alls.
pub const SYSCALL_IDS: u32 = 1024;
/// Identity of 32-bit syscall `n`: `IA32_BASE + n` (for `n` below [`IA32_COUNT`]).
pub const IA32_BASE: u32 = 512;
pub const IA32_COUNT: u32 = 510;
/// Identity of every x32 syscall (bit 30 of the number set).
pub const ID_X32: u32 = 1022;
/// Identity of every number outside the tables (negative, or past their end).
pub const ID_OUT_OF_TABLE: u32 = 1023;
/// Where the per-slot counters count the calls of identities past the native table: all
/// 32-bit calls, all x32 calls, all out-of-table numbers (native numbers never reach these
/// three: the native table ends below them).
pub const COUNT_IA32: u32 = 511;
pub const COUNT_X32: u32 = 510;
pub const COUNT_OUT_OF_TABLE: u32 = 509;
/// The x32 ABI's marker bit in a syscall number.
pub const X32_BIT: u64 = 0x4000_0000;

/// The identity of syscall `nr` as `sys_enter` saw it; `compat` when it came in through the
/// 32-bit entry (`int 0x80` from a 64-bit process, or a 32-bit process).
#[inline(always)]
pub const fn syscall_id(nr: u64, compat: bool) -> u32 {
    if compat {
        if nr < IA32_COUNT as u64 { IA32_BASE + nr as u32 } else { ID_OUT_OF_TABLE }
    } else if nr < COUNT_OUT_OF_TABLE as u64 {
        nr as u32
    } else if nr & X32_BIT != 0 && nr < X32_BIT + MAX_SYSCALLS as u64 {
        ID_X32
    } else {
        ID_OUT_OF_TABLE
    }
}

/// The per-slot counter a syscall identity is counted under.
#[inline(always)]
pub const fn count_index(id: u32) -> u32 {
    if id < COUNT_OUT_OF_TABLE {
        id
    } else if id == ID_X32 {
        COUNT_X32
    } else if id == ID_OUT_OF_TABLE {
        COUNT_OUT_OF_TABLE
    } else {
        COUNT_IA32
    }
}
/// Entries in the read-open de-duplication map.
pub const READS_ENTRIES: u32 = 1 << 16;

/// `Tracked::flags`: the `FAST` entry is shared; look the cgroup id up in `TRACKED`.
pub const FAST_COLLISION: u8 = 1;
/// `Tracked::flags` of a `TASKS` entry the daemon wrote (a process already running when its
/// cgroup was registered): not counted against the slot's process quota.
pub const BY_DAEMON: u8 = 2;

/// The four trust phases, as numbered across the boundary.
pub const PHASE_SHADOW: u8 = 0;
pub const PHASE_READ_ONLY: u8 = 1;
pub const PHASE_LIMITED_WRITE: u8 = 2;
pub const PHASE_AUTONOMOUS: u8 = 3;
/// A phase the daemon does not know (a Kubernetes label with another value).
pub const PHASE_UNKNOWN: u8 = 255;

/// Entries of `PADDOCK_DOOMED`: slot -> the instance the kernel doomed in it (0: none).
/// Its name, key (`u32`), value (`u64`) and size never change, whatever
/// `names::LAYOUT_VERSION` says: every generation of programs shares the one pinned map,
/// so a daemon of any version learns what an older one's programs doomed while no daemon
/// ran.
pub const DOOMED_SLOTS: u32 = 1024;

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

/// Kernel-side state of one investigation slot, shared by all CPUs. The kernel updates the
/// counters with atomic adds; the daemon writes the whole value only to reset a slot before
/// a new investigation uses it, and sets `doomed`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotState {
    /// Syscall identities seen so far (see [`syscall_id`]).
    pub seen: [u64; (SYSCALL_IDS / 64) as usize],
    /// io_uring opcodes seen so far.
    pub uring_seen: u64,
    /// Non-zero once the kernel refused or killed something of this investigation in
    /// enforce mode: every one of its processes is SIGKILLed at its next syscall.
    pub doomed: u64,
    /// Records that did not fit in the ring buffer.
    pub lost: u64,
    /// Records dropped by the per-investigation rate limit.
    pub throttled: u64,
    /// Processes the kernel added to `TASKS` for it and that still live (wrapping: the
    /// daemon's own entries are not counted, so read it as signed).
    pub tasks: u64,
    /// Cgroups the kernel added to `TRACKED` for it.
    pub cgroups: u64,
    /// Processes or cgroups left untracked: over the quota, or a map full.
    pub refused: u64,
    /// Processes that moved themselves (or were moved by it) out of its cgroups.
    pub escapes: u64,
}

impl SlotState {
    pub const fn empty() -> SlotState {
        SlotState {
            seen: [0; (SYSCALL_IDS / 64) as usize],
            uring_seen: 0,
            doomed: 0,
            lost: 0,
            throttled: 0,
            tasks: 0,
            cgroups: 0,
            refused: 0,
            escapes: 0,
        }
    }
}

/// One CPU's rate-limit window for one slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    pub window_start: u64,
    pub records: u64,
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

/// Key of the de-duplication map: what an instance has reported once already.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReadKey {
    pub instance: u32,
    /// One of the `SEEN_*` domains.
    pub domain: u32,
    pub path_hash: u64,
}

/// `ReadKey::domain`: opens for reading, opens that may write, addressed sends, unix sends.
pub const SEEN_READ: u32 = 0;
pub const SEEN_WRITE: u32 = 1;
pub const SEEN_SEND: u32 = 2;
pub const SEEN_UNIX_SEND: u32 = 3;
pub const SEEN_SOCKET: u32 = 4;
/// DNS queries (by name and type) and answers (by name, addresses and flags) reported.
pub const SEEN_DNS: u32 = 5;
