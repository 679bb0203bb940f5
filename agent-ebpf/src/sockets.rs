//! Socket kinds beyond TCP and UDP over IP (raw and ICMP sockets, other IP protocols,
//! packet, netlink and every other family): judged by their kind. IP sockets are judged in
//! `cgroup/sock_create` before they exist (refused with EPERM in an enforcing phase); other
//! families have no such hook, so their `socket(2)` is judged at `sys_enter` and a refused
//! one kills the process (the socket is made, and never used: the process dies on its way
//! back to user space). Unix sockets are judged where they connect (`unix`).
use agent_common::{
    event::{ACTION_DENIED, ACTION_KILLED, ACTION_NONE, KIND_SOCKET, SocketRecord},
    hash::{FNV_OFFSET, fnv1a_step},
    policy::{AF_INET, AF_INET6, socket_kind_judged},
    tracking::{ReadKey, SEEN_SOCKET, Tracked},
};
use aya_ebpf::{macros::cgroup_sock, programs::SockContext};

use crate::{
    args::arg,
    enforce,
    maps::READS,
    record::{current_ppid, fill_header, is_daemon, reserve, reserve_decision},
    tracking,
};

/// The bits of a socket type that are not flags (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
const SOCK_TYPE_MASK: u32 = 0xf;

/// `socket(2)` or `socketpair(2)` at `sys_enter`: families without a creation hook.
#[inline(always)]
pub fn on_socket_call(regs: *const u8, tracked: &Tracked) {
    let (family, sock_type, protocol) =
        (arg(regs, 0) as u32, arg(regs, 1) as u32 & SOCK_TYPE_MASK, arg(regs, 2) as u32);
    if family == AF_INET || family == AF_INET6 || !socket_kind_judged(family, sock_type, protocol) {
        return; // IP sockets are judged in `cgroup/sock_create`; unix ones where they connect
    }
    if enforce::enforcing(tracked).is_some()
        && !enforce::socket_allowed(tracked, family, sock_type, protocol)
    {
        enforce::kill_current();
        enforce::doom(tracked);
        report(tracked, family, sock_type, protocol, ACTION_KILLED, true);
        return;
    }
    report(tracked, family, sock_type, protocol, ACTION_NONE, true);
}

/// A new IP socket, in the context of the process making it: refused (EPERM) in an
/// enforcing phase when its kind is judged and not allowed.
#[cgroup_sock(sock_create)]
pub fn paddock_sock_create(ctx: SockContext) -> i32 {
    let tracked = match tracking::by_task() {
        Some((pid_tgid, tracked)) if !is_daemon((pid_tgid >> 32) as u32) => tracked,
        Some(_) => return 1,
        None => match tracking::current() {
            Some((_, tracked)) => tracked,
            None => return 1,
        },
    };
    // SAFETY: the context's socket, whose kind fields are readable in this hook.
    let (family, sock_type, protocol) =
        unsafe { ((*ctx.sock).family, (*ctx.sock).type_, (*ctx.sock).protocol) };
    if !socket_kind_judged(family, sock_type, protocol) {
        return 1;
    }
    if enforce::enforcing(&tracked).is_some()
        && !enforce::socket_allowed(&tracked, family, sock_type, protocol)
    {
        enforce::doom(&tracked);
        report(&tracked, family, sock_type, protocol, ACTION_DENIED, false);
        return 0;
    }
    report(&tracked, family, sock_type, protocol, ACTION_NONE, false);
    1
}

/// Report a socket kind: every refusal, and the first of each kind per instance.
#[inline(always)]
fn report(tracked: &Tracked, family: u32, sock_type: u32, protocol: u32, action: u32, task: bool) {
    if action == ACTION_NONE {
        let mut hash = fnv1a_step(FNV_OFFSET, family as u8);
        hash = fnv1a_step(hash, sock_type as u8);
        hash = fnv1a_step(hash, protocol as u8);
        hash = fnv1a_step(hash, (protocol >> 8) as u8);
        let key = ReadKey { instance: tracked.instance, domain: SEEN_SOCKET, path_hash: hash };
        // SAFETY: only checks presence.
        if unsafe { READS.get(&key) }.is_some() || READS.insert(&key, &1, 1).is_err() {
            return;
        }
    }
    let entry = if action == ACTION_NONE {
        reserve::<SocketRecord>(KIND_SOCKET, tracked)
    } else {
        reserve_decision::<SocketRecord>(KIND_SOCKET, tracked)
    };
    let Some(mut entry) = entry else { return };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        // The parent is read from the task, where this program type allows it.
        let ppid = if task { current_ppid() } else { 0 };
        fill_header(
            &mut (*record).header,
            KIND_SOCKET,
            tracking::current_cgroup_id(),
            tracked,
            ppid,
        );
        (*record).family = family;
        (*record).sock_type = sock_type;
        (*record).protocol = protocol;
        (*record).action = action;
    }
    entry.submit(0);
}
