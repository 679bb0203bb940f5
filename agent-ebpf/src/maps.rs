//! Every map the programs share with the daemon. Sizes the daemon may override at load
//! time (ring buffer, slots) are defaults here.
use agent_common::policy::{
    EgressKey, ExecKey, MAX_ALLOWED_EXECS, MAX_EGRESS_RULES, PHASES, PhasePolicy,
};
use agent_common::{
    config::Config,
    event::KIND_COUNT,
    tracking::{
        EgressCounts, FAST_ENTRIES, FastEntry, MAX_SLOTS, MAX_TRACKED_CGROUPS, MAX_TRACKED_TASKS,
        READS_ENTRIES, ReadKey, SlotState, SyscallCounts, TASK_FAST_ENTRIES, TaskEntry, Tracked,
    },
};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};

use crate::{files::OpenArgs, process::ExecArgs};

#[map(name = "PADDOCK_CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map(name = "PADDOCK_TRACKED")]
pub static TRACKED: HashMap<u64, Tracked> = HashMap::with_max_entries(MAX_TRACKED_CGROUPS, 0);

#[map(name = "PADDOCK_FAST")]
pub static FAST: Array<FastEntry> = Array::with_max_entries(FAST_ENTRIES, 0);

#[map(name = "PADDOCK_TASKS")]
pub static TASKS: HashMap<u32, Tracked> = HashMap::with_max_entries(MAX_TRACKED_TASKS, 0);

#[map(name = "PADDOCK_TASKS_FAST")]
pub static TASKS_FAST: Array<TaskEntry> = Array::with_max_entries(TASK_FAST_ENTRIES, 0);

#[map(name = "PADDOCK_CGROUP_PATHS")]
pub static CGROUP_PATHS: HashMap<u64, Tracked> = HashMap::with_max_entries(MAX_TRACKED_CGROUPS, 0);

#[map(name = "PADDOCK_SLOTS")]
pub static SLOTS: Array<SlotState> = Array::with_max_entries(MAX_SLOTS, 0);

#[map(name = "PADDOCK_SYSCALL_COUNTS")]
pub static SYSCALL_COUNTS: PerCpuArray<SyscallCounts> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);

#[map(name = "PADDOCK_EGRESS")]
pub static EGRESS: PerCpuArray<EgressCounts> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);

/// Read-only opens already reported, and addressed sends already reported, per instance.
#[map(name = "PADDOCK_READS")]
pub static READS: LruHashMap<ReadKey, u8> = LruHashMap::with_max_entries(READS_ENTRIES, 0);

/// argv captured at `execve` entry, keyed by thread id, until `sched_process_exec` fires.
#[map(name = "PADDOCK_EXEC_ARGS")]
pub static EXEC_ARGS: LruHashMap<u32, ExecArgs> = LruHashMap::with_max_entries(4096, 0);

/// Opens whose path was not readable at entry, keyed by thread id (see `files`).
#[map(name = "PADDOCK_OPEN_ARGS")]
pub static OPEN_ARGS: LruHashMap<u32, OpenArgs> = LruHashMap::with_max_entries(4096, 0);

/// Per-CPU scratch space for values too large for the 512-byte BPF stack.
#[map(name = "PADDOCK_SCRATCH")]
pub static SCRATCH: PerCpuArray<ExecArgs> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "PADDOCK_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Records that did not fit in `EVENTS`, per kind.
#[map(name = "PADDOCK_LOST")]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_COUNT, 0);

/// What each phase enforces (see `agent_common::policy`).
#[map(name = "PADDOCK_PHASE_POLICY")]
pub static PHASE_POLICY: Array<PhasePolicy> = Array::with_max_entries(PHASES, 0);

#[map(name = "PADDOCK_ALLOWED_EXECS")]
pub static ALLOWED_EXECS: HashMap<ExecKey, u8> = HashMap::with_max_entries(MAX_ALLOWED_EXECS, 0);

#[map(name = "PADDOCK_ALLOWED_EGRESS")]
pub static ALLOWED_EGRESS: LpmTrie<EgressKey, u8> = LpmTrie::with_max_entries(MAX_EGRESS_RULES, 0);
