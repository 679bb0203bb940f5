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
pub const KIND_PATH_OP: u32 = 8;
pub const KIND_UNIX: u32 = 9;
pub const KIND_SOCKET: u32 = 10;
pub const KIND_MIGRATE: u32 = 11;
pub const KIND_URING: u32 = 12;
/// A DNS query or answer (`dns::DnsRecord`).
pub const KIND_DNS: u32 = 13;
/// One past the largest kind: sizes the per-kind lost counters.
pub const KIND_COUNT: u32 = 14;

pub const COMM_LEN: usize = 16;
pub const PATH_LEN: usize = 256;
pub const ARGS_LEN: usize = 256;
/// argv entries copied for an exec.
pub const MAX_ARGS: u32 = 8;

/// `action` values: what the kernel did about the event.
pub const ACTION_NONE: u32 = 0;
pub const ACTION_KILLED: u32 = 1;
pub const ACTION_DENIED: u32 = 2;

/// `status` bits of a path the kernel read or built.
/// The path did not fit in `PATH_LEN` bytes, or had more components than the walk takes.
pub const PATH_TRUNCATED: u32 = 1;
/// Nothing could be read (an unreadable argument, or no file behind the descriptor).
pub const PATH_UNREADABLE: u32 = 2;
/// The file has no name any more (unlinked, `O_TMPFILE`, memfd).
pub const PATH_DELETED: u32 = 4;
/// An exec through a file descriptor (`/dev/fd/N`, `/proc/*/fd/N`, `execveat` with
/// `AT_EMPTY_PATH`): the path is that of the file behind it, never generalised.
pub const PATH_FD: u32 = 8;
/// A relative exec path, resolved against the working directory by the kernel.
pub const PATH_RESOLVED: u32 = 16;
/// A relative path the kernel could not anchor (unix sockets): judged as it is.
pub const PATH_RELATIVE: u32 = 32;

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

/// First use of a syscall identity by an investigation (see `tracking::syscall_id`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallRecord {
    pub header: Header,
    pub id: u32,
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

/// A successful exec. `path` identifies the executable: the absolute path it was executed
/// by (as `execvp` resolved it), or for a relative path or a file descriptor the path of
/// the file as the kernel names it (`status` says which); `args` holds the first `argc`
/// argv entries, each NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: Header,
    pub action: u32,
    pub argc: u32,
    /// Non-zero when argv had more entries or bytes than were copied.
    pub args_truncated: u32,
    pub args_len: u32,
    /// `PATH_*` bits.
    pub status: u32,
    pub _pad: u32,
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

/// A successful open (`open`, `creat`, `openat`, `openat2`, `open_by_handle_at`, or an
/// io_uring open): `path` is the file the kernel opened, named from its dentries up to the
/// process's root, read when the call returned (never the caller's memory).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRecord {
    pub header: Header,
    /// The open flags as passed (`O_TRUNC`, `O_CREAT`...).
    pub flags: u32,
    /// `file.f_mode` of the opened file (`FMODE_WRITE` = 2).
    pub fmode: u32,
    /// `OPEN_VIA_*`
    pub via: u32,
    /// `PATH_*` bits.
    pub status: u32,
    pub path: [u8; PATH_LEN],
}

pub const OPEN_VIA_SYSCALL: u32 = 0;
pub const OPEN_VIA_URING: u32 = 1;
/// `file.f_mode` bit of a file open for writing.
pub const FMODE_WRITE: u32 = 2;

/// Path operations that change the file system, judged as writes to their paths.
pub const OP_RENAME: u32 = 1;
pub const OP_LINK: u32 = 2;
pub const OP_SYMLINK: u32 = 3;
pub const OP_UNLINK: u32 = 4;
pub const OP_MKDIR: u32 = 5;
pub const OP_TRUNCATE: u32 = 6;
pub const OP_RMDIR: u32 = 7;
pub const OP_MKNOD: u32 = 8;

/// A path operation as called, at syscall entry. Each path is absolute: a relative one is
/// anchored by the kernel at the working directory or the directory descriptor. The names
/// come from the caller's memory (they are not opened files); `status`/`status2` say when
/// one could not be read. `path2` is the second path (rename, link, symlink's link).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathOpRecord {
    pub header: Header,
    pub op: u32,
    pub status: u32,
    pub status2: u32,
    pub _pad: u32,
    pub path: [u8; PATH_LEN],
    pub path2: [u8; PATH_LEN],
}

pub const OP_CONNECT4: u32 = 1;
pub const OP_CONNECT6: u32 = 2;
pub const OP_SENDMSG4: u32 = 3;
pub const OP_SENDMSG6: u32 = 4;

/// A connect or an addressed send. `addr` holds 4 bytes for IPv4 and 16 for IPv6, in
/// network order; `port` is in host order. `name_hash` is the name the address was bound
/// to by a DNS answer of this investigation when the call was judged (`dns::name_hash`),
/// 0 for none.
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
    pub name_hash: u64,
}

/// A connect or send on a unix socket, as the kernel copied the address: `path` is the
/// socket's path, or `@` and the name of an abstract socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixRecord {
    pub header: Header,
    pub op: u32,
    pub action: u32,
    pub status: u32,
    pub _pad: u32,
    pub path: [u8; UNIX_PATH_LEN],
}

/// Bytes of a unix socket path kept (`sun_path` holds 108).
pub const UNIX_PATH_LEN: usize = 128;
pub const OP_UNIX_CONNECT: u32 = 5;
pub const OP_UNIX_SENDMSG: u32 = 6;

/// A socket of a kind judged by its kind (see `policy::socket_kind_judged`), once per
/// kind and investigation, and every time one is refused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketRecord {
    pub header: Header,
    pub family: u32,
    pub sock_type: u32,
    pub protocol: u32,
    pub action: u32,
}

/// A tracked process moved out of its investigation's cgroups (`moved_tgid`, by the acting
/// task of the header), into `dst_cgroup_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrateRecord {
    pub header: Header,
    pub moved_tgid: u32,
    pub action: u32,
    pub dst_cgroup_id: u64,
}

/// First use of an io_uring opcode by an investigation, and every refused one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UringRecord {
    pub header: Header,
    pub opcode: u32,
    pub action: u32,
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
