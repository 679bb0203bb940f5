//! Records the kernel programs write into the `EVENTS` ring buffer.
//!
//! Every record starts with a [`Header`]; `Header::kind` says which struct follows and the
//! daemon checks the record's length against that struct before reading it.

pub const KIND_SYSCALL: u32 = 1;
pub const KIND_FORK: u32 = 2;
pub const KIND_EXEC: u32 = 3;
pub const KIND_EXIT: u32 = 4;
pub const KIND_OPEN: u32 = 5;
pub const KIND_CONNECT: u32 = 6;
pub const KIND_CGROUP: u32 = 7;
/// One past the largest kind: sizes the per-kind lost counters.
pub const KIND_COUNT: u32 = 8;

pub const COMM_LEN: usize = 16;
pub const PATH_LEN: usize = 256;
pub const ARGS_LEN: usize = 256;
/// argv entries copied for an exec.
pub const MAX_ARGS: u32 = 8;

/// `action` values: what the kernel did about the event.
pub const ACTION_NONE: u32 = 0;
pub const ACTION_KILLED: u32 = 1;
pub const ACTION_DENIED: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `bpf_ktime_get_boot_ns()`: CLOCK_BOOTTIME.
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub kind: u32,
    pub slot: u16,
    pub phase: u8,
    pub _pad: u8,
    pub instance: u32,
    /// Thread id of the acting task.
    pub pid: u32,
    /// Process id (thread-group id) of the acting task.
    pub tgid: u32,
    /// Process id of the real parent; 0 where the program cannot read it.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
}

/// First use of a syscall by an investigation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallRecord {
    pub header: Header,
    pub nr: u32,
    pub action: u32,
}

/// A new process (not a thread) in a tracked investigation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkRecord {
    pub header: Header,
    pub child_tgid: u32,
    pub _pad: u32,
}

/// A successful exec. `path` is the file name as the kernel resolved it for the exec;
/// `args` holds the first `argc` argv entries, each NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: Header,
    pub action: u32,
    pub argc: u32,
    /// Non-zero when argv had more entries or bytes than were copied.
    pub args_truncated: u32,
    pub args_len: u32,
    pub path: [u8; PATH_LEN],
    pub args: [u8; ARGS_LEN],
}

/// A process (thread group) exiting. `code` is the wait status (`exit_code` of the task).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitRecord {
    pub header: Header,
    pub code: u32,
    pub _pad: u32,
}

/// An open (`open`, `creat`, `openat`, `openat2`) as called: `path` is as the caller
/// passed it (relative to `dirfd` when not absolute; empty when unreadable).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRecord {
    pub header: Header,
    pub flags: u32,
    pub dirfd: i32,
    pub path: [u8; PATH_LEN],
}

pub const OP_CONNECT4: u32 = 1;
pub const OP_CONNECT6: u32 = 2;
pub const OP_SENDMSG4: u32 = 3;
pub const OP_SENDMSG6: u32 = 4;

/// A connect or an addressed send. `addr` holds 4 bytes for IPv4 and 16 for IPv6, in
/// network order; `port` is in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRecord {
    pub header: Header,
    pub op: u32,
    pub action: u32,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    pub sock_type: u32,
    /// `IPPROTO_TCP`, `IPPROTO_UDP`, ...
    pub protocol: u32,
    pub port: u16,
    pub family: u16,
    pub _pad: u32,
    pub addr: [u8; 16],
}

/// A cgroup created under a tracked cgroup, tracked by the kernel as it was made.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupRecord {
    pub header: Header,
    pub new_cgroup_id: u64,
    pub level: u32,
    pub _pad: u32,
    pub path: [u8; PATH_LEN],
}
