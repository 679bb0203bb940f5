//! What the kernel enforces for a trust phase in `enforce` mode: the daemon pushes the
//! phase's baseline here before it switches the phase's mode to enforce.
//!
//! - `PHASE_POLICY[phase]`: the mode, the allowed syscalls, and whether some allowed
//!   executables are generalised patterns the kernel cannot match (then an exec it does not
//!   find is left to the daemon rather than killed);
//! - `ALLOWED_EXECS`: FNV-1a hashes of the exact executable paths allowed, per phase;
//! - `ALLOWED_EGRESS`: an LPM trie of (phase, protocol, port, address prefix); a rule for
//!   any port is stored with port 0. IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`).
use crate::tracking::MAX_SYSCALLS;

pub const MODE_LEARN: u32 = 0;
pub const MODE_FLAG: u32 = 1;
pub const MODE_ENFORCE: u32 = 2;

/// Entries in `PHASE_POLICY`: the four phases.
pub const PHASES: u32 = 4;
pub const MAX_ALLOWED_EXECS: u32 = 16384;
pub const MAX_EGRESS_RULES: u32 = 8192;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhasePolicy {
    pub mode: u32,
    /// Non-zero: an exec missing from `ALLOWED_EXECS` may still match a pattern.
    pub exec_patterns: u32,
    pub allowed_syscalls: [u64; (MAX_SYSCALLS / 64) as usize],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExecKey {
    pub phase: u32,
    pub _pad: u32,
    pub path_hash: u64,
}

/// The data of an `ALLOWED_EGRESS` key (the trie key adds a prefix length in bits).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EgressKey {
    pub phase: u8,
    pub protocol: u8,
    /// Network byte order; 0 for any port.
    pub port: [u8; 2],
    pub addr: [u8; 16],
}

/// Bits of an `EgressKey` before the address: always part of the prefix.
pub const EGRESS_FIXED_BITS: u32 = 32;
/// Prefix bits an IPv4-mapped address adds before the IPv4 prefix.
pub const IPV4_MAPPED_BITS: u32 = 96;

/// `::ffff:a.b.c.d`
#[inline(always)]
pub const fn ipv4_mapped(v4: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3]]
}
