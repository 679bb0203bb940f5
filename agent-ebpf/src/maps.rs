//! Every map the programs share with the daemon. Sizes the daemon may override at load
//! time (ring buffer, process capacity) are defaults here.
use agent_common::{
    config::Config,
    dns::{Binding, BindingKey, NameKey, Pending, PendingKey},
    event::KIND_COUNT,
    policy::{
        EgressKey, MAX_ALLOWED_NAMES, MAX_ALLOWED_PATHS, MAX_ALLOWED_SOCKETS, MAX_DNS_BINDINGS,
        MAX_DNS_DENIED_CGROUPS, MAX_DNS_PENDING, MAX_EGRESS_RULES, PHASES, PathKey, PhasePolicy,
        SocketKey,
    },
    tracking::{
        DOOMED_SLOTS, EgressCounts, FAST_ENTRIES, FastEntry, MAX_SLOTS, MAX_TRACKED_CGROUPS,
        MAX_TRACKED_TASKS, READS_ENTRIES, RateState, ReadKey, SlotState, SyscallCounts,
        TASK_FAST_ENTRIES, TaskEntry, Tracked,
    },
};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};

use crate::scratch::{DnsScratch, ExecArgs, OpenArgs, PathScratch};

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

/// Each slot's rate-limit window, per CPU.
#[map(name = "PADDOCK_RATE")]
pub static RATE: PerCpuArray<RateState> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);

/// What each instance has reported once already (reads, writes, sends, socket kinds).
#[map(name = "PADDOCK_READS")]
pub static READS: LruHashMap<ReadKey, u8> = LruHashMap::with_max_entries(READS_ENTRIES, 0);

/// argv captured at `execve` entry, keyed by thread id, until `sched_process_exec` fires.
#[map(name = "PADDOCK_EXEC_ARGS")]
pub static EXEC_ARGS: LruHashMap<u32, ExecArgs> = LruHashMap::with_max_entries(4096, 0);

/// An open's flags from its entry to its return, keyed by thread id.
#[map(name = "PADDOCK_OPEN_ARGS")]
pub static OPEN_ARGS: LruHashMap<u32, OpenArgs> = LruHashMap::with_max_entries(4096, 0);

/// Per-CPU scratch space for values too large for the 512-byte BPF stack.
#[map(name = "PADDOCK_SCRATCH")]
pub static SCRATCH: PerCpuArray<ExecArgs> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU room for building paths.
#[map(name = "PADDOCK_PATH_SCRATCH")]
pub static PATH_SCRATCH: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// Programs `sys_enter` hands a syscall to when naming its paths needs more than the hot
/// program should hold (`agent_common::names::tails`).
#[map(name = "PADDOCK_TAILS")]
pub static TAILS: ProgramArray = ProgramArray::with_max_entries(4, 0);

#[map(name = "PADDOCK_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Records that did not fit in `EVENTS`, per kind.
#[map(name = "PADDOCK_LOST")]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_COUNT, 0);

/// What each phase enforces (see `agent_common::policy`).
#[map(name = "PADDOCK_PHASE_POLICY")]
pub static PHASE_POLICY: Array<PhasePolicy> = Array::with_max_entries(PHASES, 0);

#[map(name = "PADDOCK_ALLOWED_PATHS")]
pub static ALLOWED_PATHS: HashMap<PathKey, u8> = HashMap::with_max_entries(MAX_ALLOWED_PATHS, 0);

/// Slot -> the instance doomed in it, shared by every generation of programs (see
/// `agent_common::tracking::DOOMED_SLOTS`).
#[map(name = "PADDOCK_DOOMED")]
pub static DOOMED: Array<u64> = Array::with_max_entries(DOOMED_SLOTS, 0);

#[map(name = "PADDOCK_ALLOWED_EGRESS")]
pub static ALLOWED_EGRESS: LpmTrie<EgressKey, u8> = LpmTrie::with_max_entries(MAX_EGRESS_RULES, 0);

#[map(name = "PADDOCK_ALLOWED_SOCKETS")]
pub static ALLOWED_SOCKETS: HashMap<SocketKey, u8> =
    HashMap::with_max_entries(MAX_ALLOWED_SOCKETS, 0);

#[map(name = "PADDOCK_ALLOWED_NAMES")]
pub static ALLOWED_NAMES: HashMap<NameKey, u8> = HashMap::with_max_entries(MAX_ALLOWED_NAMES, 0);

/// Answered addresses, per investigation instance, and the name each was answered for.
#[map(name = "PADDOCK_DNS_BINDINGS")]
pub static DNS_BINDINGS: LruHashMap<BindingKey, Binding> =
    LruHashMap::with_max_entries(MAX_DNS_BINDINGS, 0);

/// Queries in flight, by socket and id: only their answers bind names.
#[map(name = "PADDOCK_DNS_PENDING")]
pub static DNS_PENDING: LruHashMap<PendingKey, Pending> =
    LruHashMap::with_max_entries(MAX_DNS_PENDING, 0);

/// Cgroups (by id) a DNS query was denied from. Once their investigation has ended and they
/// are no longer tracked, nothing more leaves them: their processes are dead, but an
/// orphaned TCP socket would retransmit the query segment that was dropped. Entry 0 of
/// `DNS_DENIED_ANY` says whether there is any, so untracked traffic pays one array read
/// until the first denial.
#[map(name = "PADDOCK_DNS_DENIED_CGROUPS")]
pub static DNS_DENIED_CGROUPS: LruHashMap<u64, u8> =
    LruHashMap::with_max_entries(MAX_DNS_DENIED_CGROUPS, 0);

#[map(name = "PADDOCK_DNS_DENIED_ANY")]
pub static DNS_DENIED_ANY: Array<u32> = Array::with_max_entries(1, 0);

/// Per-CPU room for parsing a DNS message.
#[map(name = "PADDOCK_DNS_SCRATCH")]
pub static DNS_SCRATCH: PerCpuArray<DnsScratch> = PerCpuArray::with_max_entries(1, 0);
