//! Acting in the kernel for phases in `enforce` mode: the decision is made where the action
//! happens, before the daemon hears of it.
use agent_common::{
    hash::{FNV_OFFSET, fnv1a_step},
    policy::{EGRESS_FIXED_BITS, EgressKey, ExecKey, MODE_ENFORCE, PhasePolicy, ipv4_mapped},
    tracking::Tracked,
};
use aya_ebpf::{helpers::generated::bpf_send_signal, maps::lpm_trie::Key};

use crate::maps::{ALLOWED_EGRESS, ALLOWED_EXECS, PHASE_POLICY, SLOTS};

const SIGKILL: u32 = 9;

/// The policy of `tracked`'s phase, when that phase enforces.
#[inline(always)]
pub fn enforcing(tracked: &Tracked) -> Option<&'static PhasePolicy> {
    PHASE_POLICY.get(tracked.phase as u32).filter(|p| p.mode == MODE_ENFORCE)
}

/// SIGKILL the current process (its whole thread group).
#[inline(always)]
pub fn kill_current() {
    // SAFETY: a helper allowed in tracing programs; acts on the current task only.
    unsafe { bpf_send_signal(SIGKILL) };
}

/// Mark `tracked`'s investigation as doomed: each of its processes is killed at its next
/// syscall (see `syscalls`), before the daemon's `cgroup.kill` reaches them.
#[inline(always)]
pub fn doom(tracked: &Tracked) {
    if let Some(state) = SLOTS.get_ptr_mut(tracked.slot as u32) {
        // SAFETY: a pointer into an array map value; a plain store of a flag.
        unsafe { (*state).doomed = 1 };
    }
}

/// Whether syscall `nr` is allowed by `policy`.
#[inline(always)]
pub fn syscall_allowed(policy: &PhasePolicy, nr: u64) -> bool {
    policy.allowed_syscalls.get((nr / 64) as usize).is_some_and(|w| w & (1u64 << (nr % 64)) != 0)
}

/// Whether the executable at `path` (a NUL-terminated buffer) may run: allowed exactly, or
/// possibly by a pattern the daemon will check.
#[inline(always)]
pub fn exec_allowed(
    policy: &PhasePolicy,
    tracked: &Tracked,
    path: &[u8; agent_common::event::PATH_LEN],
) -> bool {
    let mut hash = FNV_OFFSET;
    for byte in path.iter() {
        if *byte == 0 {
            break;
        }
        hash = fnv1a_step(hash, *byte);
    }
    let key = ExecKey { phase: tracked.phase as u32, _pad: 0, path_hash: hash };
    // SAFETY: only checks presence.
    unsafe { ALLOWED_EXECS.get(&key) }.is_some() || policy.exec_patterns != 0
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
    let addr = if v6 { *addr } else { ipv4_mapped([addr[0], addr[1], addr[2], addr[3]]) };
    let full = EGRESS_FIXED_BITS + 128;
    let exact = Key::new(
        full,
        EgressKey { phase: tracked.phase, protocol, port: port.to_be_bytes(), addr },
    );
    let any_port = Key::new(full, EgressKey { phase: tracked.phase, protocol, port: [0, 0], addr });
    ALLOWED_EGRESS.get(&exact).is_some() || ALLOWED_EGRESS.get(&any_port).is_some()
}
