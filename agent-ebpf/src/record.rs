//! Filling record headers, and the rules every record obeys: records that decide nothing
//! are rate-limited per investigation, and a record that cannot be written is counted
//! against its investigation (and, in a phase that fails closed, dooms it). Decisions never
//! wait on this: callers act first and report second.
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use agent_common::{
    config::Config,
    event::{COMM_LEN, Header},
    policy::FAIL_CLOSED,
    tracking::{SlotState, Tracked},
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel,
        generated::{bpf_get_current_task, bpf_ktime_get_boot_ns, bpf_ktime_get_ns},
    },
    maps::ring_buf::RingBufEntry,
};

use crate::{
    enforce,
    maps::{CONFIG, EVENTS, LOST, RATE, SLOTS},
};

/// The daemon's configuration; `None` only before the daemon wrote it.
#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

/// True for the daemon's own processes, which never produce events.
#[inline(always)]
pub fn is_daemon(tgid: u32) -> bool {
    match config() {
        Some(config) => config.daemon_tgid == tgid,
        None => true,
    }
}

/// Add `n` to a counter shared by all CPUs.
#[inline(always)]
pub fn add(counter: *mut u64, n: u64) {
    // SAFETY: `counter` points into a map value; an atomic add whose result is unused
    // (BPF_XADD, ISA v1).
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, n) };
}

/// The slot state of `tracked`'s investigation.
#[inline(always)]
pub fn slot_state(tracked: &Tracked) -> Option<*mut SlotState> {
    SLOTS.get_ptr_mut(tracked.slot as u32)
}

/// Whether a record that decides nothing may be written for `tracked` now: at most
/// `records_per_window` per CPU and window (0: no limit).
#[inline(always)]
fn within_rate(tracked: &Tracked) -> bool {
    let Some(config) = config() else { return true };
    if config.records_per_window == 0 {
        return true;
    }
    let Some(rate) = RATE.get_ptr_mut(tracked.slot as u32) else { return true };
    // SAFETY: a per-CPU value: no other writer while this program runs.
    let rate = unsafe { &mut *rate };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now.wrapping_sub(rate.window_start) >= config.window_ns {
        rate.window_start = now;
        rate.records = 0;
    }
    if rate.records >= config.records_per_window as u64 {
        return false;
    }
    rate.records += 1;
    true
}

/// Why a record was not written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The ring buffer was full.
    Full,
    /// The investigation is over its rate.
    Throttled,
}

/// Count a record of `kind` of `tracked` that was not written. In a phase that enforces
/// and fails closed, the investigation is doomed: paddock cannot vouch for what it did not
/// see.
#[inline(always)]
pub fn note_loss(kind: u32, tracked: &Tracked, loss: Loss) {
    if loss == Loss::Full
        && let Some(lost) = LOST.get_ptr_mut(kind)
    {
        // SAFETY: a per-CPU value: no other writer.
        unsafe { *lost += 1 };
    }
    if let Some(state) = slot_state(tracked) {
        // SAFETY: pointers to fields of a map value.
        let counter = unsafe {
            match loss {
                Loss::Full => &raw mut (*state).lost,
                Loss::Throttled => &raw mut (*state).throttled,
            }
        };
        add(counter, 1);
    }
    fail_closed(tracked);
}

/// Doom `tracked`'s investigation if its phase enforces and fails closed.
#[inline(always)]
pub fn fail_closed(tracked: &Tracked) {
    if let Some(policy) = enforce::enforcing(tracked)
        && policy.flags & FAIL_CLOSED != 0
    {
        enforce::doom(tracked);
    }
}

/// Reserve a record of type `T` that decides nothing (rate-limited).
#[inline(always)]
pub fn reserve<T: 'static>(kind: u32, tracked: &Tracked) -> Option<RingBufEntry<T>> {
    if !within_rate(tracked) {
        note_loss(kind, tracked, Loss::Throttled);
        return None;
    }
    reserve_decision(kind, tracked)
}

/// Reserve a record that tells of a decision already taken (never rate-limited).
#[inline(always)]
pub fn reserve_decision<T: 'static>(kind: u32, tracked: &Tracked) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        note_loss(kind, tracked, Loss::Full);
    }
    entry
}

/// The current task (tracing programs only).
#[inline(always)]
pub fn current_task() -> *const u8 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// Read a kernel pointer at `base + offset`; null when it cannot be read.
#[inline(always)]
pub fn read_ptr(base: *const u8, offset: u32) -> *const u8 {
    // SAFETY: the helper tolerates bad addresses.
    unsafe {
        bpf_probe_read_kernel(base.add(offset as usize) as *const *const u8)
            .unwrap_or(core::ptr::null())
    }
}

/// Read a kernel `u32` at `base + offset`; 0 when it cannot be read.
#[inline(always)]
pub fn read_u32(base: *const u8, offset: u32) -> u32 {
    // SAFETY: the helper tolerates bad addresses.
    unsafe { bpf_probe_read_kernel(base.add(offset as usize) as *const u32).unwrap_or(0) }
}

/// The tgid of the current task's real parent, read through offsets from the kernel's BTF.
/// Only for tracing programs (tracepoints), where `bpf_get_current_task` is allowed.
#[inline(always)]
pub fn current_ppid() -> u32 {
    let Some(config) = config() else { return 0 };
    let parent = read_ptr(current_task(), config.offsets.real_parent);
    if parent.is_null() {
        return 0;
    }
    read_u32(parent, config.offsets.tgid)
}

/// Fill the header common to every record.
#[inline(always)]
pub fn fill_header(header: &mut Header, kind: u32, cgroup_id: u64, tracked: &Tracked, ppid: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: a helper without arguments.
    header.ktime_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.cgroup_id = cgroup_id;
    header.kind = kind;
    header.slot = tracked.slot;
    header.phase = tracked.phase;
    header._pad = 0;
    header.instance = tracked.instance;
    header.pid = pid_tgid as u32;
    header.tgid = (pid_tgid >> 32) as u32;
    header.ppid = ppid;
    header.uid = uid_gid as u32;
    header.gid = (uid_gid >> 32) as u32;
    header.comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
}
