//! What the kernel enforces for a trust phase in `enforce` mode: the daemon pushes the
//! phase's baseline here before it switches the phase's mode to enforce.
//!
//! - `PHASE_POLICY[phase]`: the mode, flags, the allowed syscall identities and io_uring
//!   opcodes;
//! - `ALLOWED_PATHS`: FNV-1a hashes of the generalised executables and unix-socket paths
//!   allowed, per phase (the kernel hashes what it sees the same way: `shape`);
//! - `ALLOWED_EGRESS`: an LPM trie of (phase, protocol, port, address prefix); a rule for
//!   any port is stored with port 0. IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`),
//!   so an IPv4-mapped IPv6 destination is judged as the IPv4 one;
//! - `ALLOWED_SOCKETS`: the socket kinds beyond TCP and UDP (raw, ICMP, packet, ...);
//! - `ALLOWED_NAMES`: hashes of the names egress rules allow (with protocol and port) and
//!   of the names the phase may ask its resolver for (see `dns`).
use crate::tracking::SYSCALL_IDS;

pub const MODE_LEARN: u32 = 0;
pub const MODE_FLAG: u32 = 1;
pub const MODE_ENFORCE: u32 = 2;

/// `PhasePolicy::flags`: records lost or throttled, processes left untracked, or an escape
/// from the investigation's cgroups doom the investigation in the kernel (fail closed).
pub const FAIL_CLOSED: u32 = 1;

/// `PhasePolicy::flags`: the phase's executables did not all fit in `ALLOWED_PATHS`. The
/// kernel does not decide on its execs (it still reports them); the daemon judges them and
/// kills after the fact. An incomplete allow-list would kill baseline behaviour; an absent
/// one would let strays through unseen: this is the safe middle.
pub const INCOMPLETE_EXECS: u32 = 1 << 1;
/// The same for unix sockets (`ALLOWED_PATHS`).
pub const INCOMPLETE_UNIX: u32 = 1 << 2;
/// The same for egress rules (`ALLOWED_EGRESS`).
pub const INCOMPLETE_EGRESS: u32 = 1 << 3;
/// The same for socket kinds (`ALLOWED_SOCKETS`).
pub const INCOMPLETE_SOCKETS: u32 = 1 << 4;
/// The same for names (`ALLOWED_NAMES`): neither queries nor connects by name are decided
/// in the kernel (connects are still judged by address rules).
pub const INCOMPLETE_NAMES: u32 = 1 << 5;
/// The phase's baseline predates DNS learning (it has no `dns` set): its queries are
/// reported but not judged.
pub const QUERIES_UNJUDGED: u32 = 1 << 6;

/// Entries in `PHASE_POLICY`: the four phases.
pub const PHASES: u32 = 4;
/// Default entries of the policy maps (the daemon sizes them from its configuration).
pub const MAX_ALLOWED_PATHS: u32 = 16384;
pub const MAX_EGRESS_RULES: u32 = 8192;
pub const MAX_ALLOWED_SOCKETS: u32 = 1024;
pub const MAX_ALLOWED_NAMES: u32 = 12288;
/// Addresses bound to names at once, for all investigations (least recently used go first).
pub const MAX_DNS_BINDINGS: u32 = 16384;
/// Queries awaiting their answers, for all investigations.
pub const MAX_DNS_PENDING: u32 = 4096;
/// Cgroups whose DNS query was denied, kept so that nothing leaves them after their
/// investigation ends (least recently used go first; one per investigation killed for DNS).
pub const MAX_DNS_DENIED_CGROUPS: u32 = 4096;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhasePolicy {
    pub mode: u32,
    pub flags: u32,
    pub allowed_syscalls: [u64; (SYSCALL_IDS / 64) as usize],
    /// One bit per io_uring opcode.
    pub allowed_uring: u64,
}

/// `PathKey::kind`
pub const PATH_EXEC: u32 = 0;
pub const PATH_UNIX: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathKey {
    pub phase: u16,
    pub _pad: u16,
    pub kind: u32,
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

/// A socket kind: family, type (without flags) and protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketKey {
    pub phase: u16,
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
}

/// Protocol numbers both sides name the same way.
pub const IPPROTO_ICMP: u32 = 1;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;
pub const IPPROTO_ICMPV6: u32 = 58;
/// Multipath TCP: judged as TCP (its subflows are TCP connections).
pub const IPPROTO_MPTCP: u32 = 262;
pub const AF_UNIX: u32 = 1;
pub const AF_INET: u32 = 2;
pub const AF_INET6: u32 = 10;
pub const AF_PACKET: u32 = 17;
pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
pub const SOCK_RAW: u32 = 3;

/// The protocol a connect or send is judged by: the socket's, or its type's default when
/// the socket says 0, with MPTCP as TCP.
#[inline(always)]
pub const fn egress_protocol(protocol: u32, sock_type: u32) -> u8 {
    match (protocol, sock_type) {
        (0, SOCK_STREAM) | (IPPROTO_MPTCP, _) => IPPROTO_TCP as u8,
        (0, SOCK_DGRAM) => IPPROTO_UDP as u8,
        (p, _) if p < 256 => p as u8,
        // No other protocol above 255 exists; judged as nothing a rule can name.
        _ => 255,
    }
}

/// Whether a socket of this kind is judged by the kind itself (`ALLOWED_SOCKETS`) rather
/// than only by where it connects: anything but plain TCP, MPTCP and UDP over IP, and any
/// family other than IP and unix.
#[inline(always)]
pub const fn socket_kind_judged(family: u32, sock_type: u32, protocol: u32) -> bool {
    match family {
        AF_INET | AF_INET6 => !matches!(
            (sock_type, protocol),
            (SOCK_STREAM, 0 | IPPROTO_TCP | IPPROTO_MPTCP) | (SOCK_DGRAM, 0 | IPPROTO_UDP)
        ),
        AF_UNIX => false,
        _ => true,
    }
}
