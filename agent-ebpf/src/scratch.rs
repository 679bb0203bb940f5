//! Values the programs keep between hooks or need more room for than the 512-byte stack:
//! plain types, so `maps` depends on nothing but these and `agent_common`.
use agent_common::{
    dns::{DNS_BUF, DNS_NAME_LEN, DnsParser},
    event::{ARGS_LEN, PATH_LEN},
    shape::HashState,
};

/// argv head captured at execve entry. The buffer is twice `ARGS_LEN` so that a copy of up
/// to `ARGS_LEN` bytes at any offset below `ARGS_LEN` stays inside it (what the verifier
/// needs to see); only the first `ARGS_LEN` bytes are reported.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecArgs {
    pub argc: u32,
    pub truncated: u32,
    pub len: u32,
    pub _pad: u32,
    pub buf: [u8; 2 * ARGS_LEN],
}

/// An open's flags as the caller passed them, kept from its entry to its return.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenArgs {
    pub flags: u32,
    pub _pad: u32,
}

/// Steps a path walk takes (components and mount crossings); deeper paths are reported
/// truncated.
pub const MAX_DEPTH: usize = 40;

/// Room for building a path: the dentry names of a walk (bottom up), and a buffer twice
/// `PATH_LEN` for the same reason as `ExecArgs::buf`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PathScratch {
    pub names: [u64; MAX_DEPTH],
    /// A walk's position between steps (`walk::walk`, in `bpf_loop` callbacks): the
    /// dentry, its vfsmount, that mount's `struct mount` and root dentry, and the process's
    /// root; `done` once the top is reached. Pointers as integers.
    pub dentry: u64,
    pub mnt: u64,
    pub mount: u64,
    pub mnt_root: u64,
    pub root_mnt: u64,
    pub root_dentry: u64,
    pub done: u32,
    /// `PATH_*` bits of the path being built.
    pub status: u32,
    /// The length built so far, kept here rather than in a register: a value read back from
    /// a map is unknown to the verifier, so every step of the build starts from the same
    /// state instead of one per length seen (which it could not prune).
    pub len: u64,
    /// Hashing a generalised path byte by byte, in a `bpf_loop` callback (see
    /// `enforce::generalised`): the state, and whether the path is below a temp root.
    pub hash: HashState,
    pub temp: u32,
    pub _pad: u32,
    pub buf: [u8; 2 * PATH_LEN],
}

/// Room for parsing one DNS message: the message as copied from the packet, the parser's
/// state between `bpf_loop` steps, and the question's name as text.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsScratch {
    pub parser: DnsParser,
    pub buf: [u8; DNS_BUF],
    pub name: [u8; DNS_NAME_LEN],
}
