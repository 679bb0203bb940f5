//! Syscall numbers and arguments at `sys_enter`, per architecture. The raw tracepoint gives
//! the caller's `pt_regs`; arguments are read from it through the helper (registers are
//! kernel memory the caller cannot change under us; what they point to is not).
use aya_ebpf::helpers::bpf_probe_read_kernel;

#[cfg(bpf_target_arch = "x86_64")]
pub mod nr {
    pub const OPEN: u64 = 2;
    pub const CREAT: u64 = 85;
    pub const OPENAT: u64 = 257;
    pub const OPENAT2: u64 = 437;
    pub const EXECVE: u64 = 59;
    pub const EXECVEAT: u64 = 322;
    pub const SOCKET: u64 = 41;
    pub const SOCKETPAIR: u64 = 53;
    pub const TRUNCATE: u64 = 76;
    pub const RENAME: u64 = 82;
    pub const MKDIR: u64 = 83;
    pub const RMDIR: u64 = 84;
    pub const LINK: u64 = 86;
    pub const UNLINK: u64 = 87;
    pub const SYMLINK: u64 = 88;
    pub const MKNOD: u64 = 133;
    pub const MKDIRAT: u64 = 258;
    pub const MKNODAT: u64 = 259;
    pub const UNLINKAT: u64 = 263;
    pub const RENAMEAT: u64 = 264;
    pub const LINKAT: u64 = 265;
    pub const SYMLINKAT: u64 = 266;
    pub const RENAMEAT2: u64 = 316;
}

#[cfg(bpf_target_arch = "aarch64")]
pub mod nr {
    // No open(2), creat(2) or the non-*at path calls on this architecture: numbers no
    // syscall uses.
    pub const OPEN: u64 = u64::MAX;
    pub const CREAT: u64 = u64::MAX - 1;
    pub const RENAME: u64 = u64::MAX - 2;
    pub const MKDIR: u64 = u64::MAX - 3;
    pub const RMDIR: u64 = u64::MAX - 4;
    pub const LINK: u64 = u64::MAX - 5;
    pub const UNLINK: u64 = u64::MAX - 6;
    pub const SYMLINK: u64 = u64::MAX - 7;
    pub const MKNOD: u64 = u64::MAX - 8;
    pub const OPENAT: u64 = 56;
    pub const OPENAT2: u64 = 437;
    pub const EXECVE: u64 = 221;
    pub const EXECVEAT: u64 = 281;
    pub const SOCKET: u64 = 198;
    pub const SOCKETPAIR: u64 = 199;
    pub const TRUNCATE: u64 = 45;
    pub const MKNODAT: u64 = 33;
    pub const MKDIRAT: u64 = 34;
    pub const UNLINKAT: u64 = 35;
    pub const SYMLINKAT: u64 = 36;
    pub const LINKAT: u64 = 37;
    pub const RENAMEAT: u64 = 38;
    pub const RENAMEAT2: u64 = 276;
}

/// Byte offsets in `struct pt_regs` of the first five syscall arguments.
#[cfg(bpf_target_arch = "x86_64")]
const ARG_OFFSETS: [usize; 5] = [112, 104, 96, 56, 72]; // di, si, dx, r10, r8
#[cfg(bpf_target_arch = "aarch64")]
const ARG_OFFSETS: [usize; 5] = [0, 8, 16, 24, 32]; // regs[0..5]

/// Argument `n` (0-based, below 5) of the syscall whose registers are at `regs`.
#[inline(always)]
pub fn arg(regs: *const u8, n: usize) -> u64 {
    let Some(offset) = ARG_OFFSETS.get(n) else { return 0 };
    // SAFETY: a kernel read through the helper, which tolerates bad addresses.
    unsafe { bpf_probe_read_kernel(regs.add(*offset) as *const u64).unwrap_or(0) }
}

/// x86: `thread_info.status` bit set while a 32-bit syscall runs (`int 0x80`, or a 32-bit
/// process).
#[cfg(bpf_target_arch = "x86_64")]
const TS_COMPAT: u32 = 0x0002;

/// Whether the current syscall came in through the 32-bit entry.
#[inline(always)]
pub fn compat(offsets: &agent_common::config::KernelOffsets) -> bool {
    #[cfg(bpf_target_arch = "x86_64")]
    {
        crate::record::read_u32(crate::record::current_task(), offsets.thread_status) & TS_COMPAT
            != 0
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        // Not read on this architecture yet (docs/threat-model.md).
        let _ = offsets;
        false
    }
}
