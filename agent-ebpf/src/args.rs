//! Syscall numbers and arguments at `sys_enter`, per architecture. The raw tracepoint gives
//! the caller's `pt_regs`; arguments are read from it through the helper.
use aya_ebpf::helpers::bpf_probe_read_kernel;

#[cfg(bpf_target_arch = "x86_64")]
pub mod nr {
    pub const OPEN: u64 = 2;
    pub const CREAT: u64 = 85;
    pub const OPENAT: u64 = 257;
    pub const OPENAT2: u64 = 437;
    pub const EXECVE: u64 = 59;
    pub const EXECVEAT: u64 = 322;
}

#[cfg(bpf_target_arch = "aarch64")]
pub mod nr {
    // No open(2) or creat(2) on this architecture: numbers no syscall uses.
    pub const OPEN: u64 = u64::MAX;
    pub const CREAT: u64 = u64::MAX - 1;
    pub const OPENAT: u64 = 56;
    pub const OPENAT2: u64 = 437;
    pub const EXECVE: u64 = 221;
    pub const EXECVEAT: u64 = 281;
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
