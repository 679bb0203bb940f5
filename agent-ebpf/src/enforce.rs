//! Acting in the kernel for phases in `enforce` mode: the decision is made where the action
//! happens, before the daemon hears of it.
use agent_common::{
    event::PATH_LEN,
    hash::FNV_OFFSET,
    hash::fnv1a_step,
    policy::{
        EGRESS_FIXED_BITS, EgressKey, INCOMPLETE_EGRESS, INCOMPLETE_EXECS, INCOMPLETE_SOCKETS,
        INCOMPLETE_UNIX, MODE_ENFORCE, PATH_EXEC, PATH_UNIX, PathKey, PhasePolicy, SocketKey,
        ipv4_mapped,
    },
    shape::{HashState, Rules, under_temp},
    tracking::Tracked,
};
use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_loop, bpf_send_signal},
    maps::lpm_trie::Key,
};

use crate::{
    maps::{
        ALLOWED_EGRESS, ALLOWED_PATHS, ALLOWED_SOCKETS, DOOMED, PATH_SCRATCH, PHASE_POLICY, SLOTS,
    },
    scratch::PathScratch,
};

const SIGKILL: u32 = 9;

/// The policy of `tracked`'s phase, when that phase enforces.
#[inline(always)]
pub fn enforcing(tracked: &Tracked) -> Option<&'static PhasePolicy> {
    PHASE_POLICY.get(tracked.phase as u32).filter(|p| p.mode == MODE_ENFORCE)
}

/// SIGKILL the current process (its whole thread group). Tracing programs only.
#[inline(always)]
pub fn kill_current() {
    // SAFETY: a helper allowed in tracing programs; acts on the current task only.
    unsafe { bpf_send_signal(SIGKILL) };
}

/// Mark `tracked`'s investigation as doomed: each of its processes is killed at its next
/// syscall (see `syscalls`), before the daemon's kill reaches them.
#[inline(always)]
pub fn doom(tracked: &Tracked) {
    if let Some(state) = SLOTS.get_ptr_mut(tracked.slot as u32) {
        // SAFETY: a pointer into an array map value; a plain store of a flag.
        unsafe { (*state).doomed = 1 };
    }
    // For a daemon of another layout version, which cannot read `SLOTS`.
    if let Some(doomed) = DOOMED.get_ptr_mut(tracked.slot as u32) {
        // SAFETY: as above.
        unsafe { *doomed = tracked.instance as u64 };
    }
}

/// Whether syscall identity `id` is allowed by `policy`.
#[inline(always)]
pub fn syscall_allowed(policy: &PhasePolicy, id: u32) -> bool {
    policy.allowed_syscalls.get((id / 64) as usize).is_some_and(|w| w & (1u64 << (id % 64)) != 0)
}

/// Whether io_uring opcode `opcode` (below 64) is allowed by `policy`.
#[inline(always)]
pub fn uring_allowed(policy: &PhasePolicy, opcode: u32) -> bool {
    policy.allowed_uring & (1u64 << (opcode & 63)) != 0
}

/// FNV-1a of the bytes of `path` up to its NUL, as they are (no generalisation).
#[inline(always)]
pub fn literal_hash<const N: usize>(path: &[u8; N]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < N {
        let b = path[i];
        if b == 0 {
            break;
        }
        hash = fnv1a_step(hash, b);
        i += 1;
    }
    hash
}

/// One byte of [`generalised`]: a `bpf_loop` callback, so the verifier checks this body
/// once rather than once per byte and branch (a 256-byte loop of it does not verify).
/// Returns 1 (stop) at the path's NUL.
#[inline(never)]
unsafe extern "C" fn generalise_step(index: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = PATH_SCRATCH.get_ptr_mut(0) else { return 1 };
    // SAFETY: the per-CPU scratch, ours for this program run (the caller does not hold a
    // reference across the loop).
    let s = unsafe { &mut *s };
    let b = s.buf[index as usize & (2 * PATH_LEN - 1)];
    if b == 0 || index as usize >= PATH_LEN {
        return 1;
    }
    s.hash.step(b, s.temp != 0);
    0
}

/// FNV-1a of the generalised form of the NUL-terminated path in the scratch buffer
/// `s.buf` (the daemon's `generalise`, through the shared `HashState`).
#[inline(always)]
pub fn generalised(s: &mut PathScratch, rules: Rules) -> u64 {
    s.temp = under_temp(&s.buf) as u32;
    s.hash = HashState::new();
    // SAFETY: a helper call with a static callback and no context; the callback reaches
    // the scratch map itself.
    unsafe { bpf_loop(PATH_LEN as u32, generalise_step as *mut c_void, core::ptr::null_mut(), 0) };
    s.hash.finish(s.temp != 0, rules)
}

/// Whether `tracked`'s phase has its allow-list for `set` (an `INCOMPLETE_*` bit) only in
/// part in the kernel: then the kernel does not decide on that set (the daemon judges it
/// from the record, after the fact).
#[inline(always)]
fn incomplete(tracked: &Tracked, set: u32) -> bool {
    PHASE_POLICY.get(tracked.phase as u32).is_some_and(|p| p.flags & set != 0)
}

#[inline(always)]
fn path_allowed(phase: u8, kind: u32, hash: u64) -> bool {
    let key = PathKey { phase: phase as u16, _pad: 0, kind, path_hash: hash };
    // SAFETY: only checks presence.
    unsafe { ALLOWED_PATHS.get(&key) }.is_some()
}

/// Whether the executable identified by `path` may run for `tracked`'s phase. `literal`
/// identities (through a descriptor, or a file with no name) are matched as they are; the
/// others by their generalised form, exactly as the daemon generalises baseline entries.
/// The path is the one in the scratch buffer `s.buf`.
#[inline(always)]
pub fn exec_allowed(tracked: &Tracked, s: &mut PathScratch, literal: bool) -> bool {
    if incomplete(tracked, INCOMPLETE_EXECS) {
        return true;
    }
    let hash = if literal { literal_hash(&s.buf) } else { generalised(s, Rules::Execs) };
    path_allowed(tracked.phase, PATH_EXEC, hash)
}

/// Whether a unix socket at the path in `s.buf` (generalised like file paths) may be
/// reached.
#[inline(always)]
pub fn unix_allowed(tracked: &Tracked, s: &mut PathScratch, literal: bool) -> bool {
    if incomplete(tracked, INCOMPLETE_UNIX) {
        return true;
    }
    let hash = if literal { literal_hash(&s.buf) } else { generalised(s, Rules::Files) };
    path_allowed(tracked.phase, PATH_UNIX, hash)
}

/// Whether a socket of this kind may be made.
#[inline(always)]
pub fn socket_allowed(tracked: &Tracked, family: u32, sock_type: u32, protocol: u32) -> bool {
    if incomplete(tracked, INCOMPLETE_SOCKETS) {
        return true;
    }
    let key = SocketKey {
        phase: tracked.phase as u16,
        family: family as u16,
        sock_type: sock_type as u16,
        protocol: protocol as u16,
    };
    // SAFETY: only checks presence.
    unsafe { ALLOWED_SOCKETS.get(&key) }.is_some()
}

/// Whether a connect or send to `addr` (16 bytes; IPv4 in its first 4 when `v6` is false)
/// port `port`, protocol `protocol`, is allowed for `tracked`'s phase.
#[inline(always)]
pub fn egress_allowed(
    tracked: &Tracked,
    v6: bool,
    addr: &[u8; 16],
    port: u16,
    protocol: u8,
) -> bool {
    if incomplete(tracked, INCOMPLETE_EGRESS) {
        return true;
    }
    let addr = if v6 { *addr } else { ipv4_mapped([addr[0], addr[1], addr[2], addr[3]]) };
    let full = EGRESS_FIXED_BITS + 128;
    let exact = Key::new(
        full,
        EgressKey { phase: tracked.phase, protocol, port: port.to_be_bytes(), addr },
    );
    let any_port = Key::new(full, EgressKey { phase: tracked.phase, protocol, port: [0, 0], addr });
    ALLOWED_EGRESS.get(&exact).is_some() || ALLOWED_EGRESS.get(&any_port).is_some()
}
