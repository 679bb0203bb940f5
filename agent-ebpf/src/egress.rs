//! Network egress, from the cgroup hooks attached to the cgroup that holds the workloads:
//! connects and addressed sends (IPv4 and IPv6), and per-investigation byte counts. In a
//! phase that enforces, a destination outside the baseline is refused here (EPERM): no
//! packet leaves.
use agent_common::{
    event::{
        ACTION_DENIED, ACTION_NONE, ConnectRecord, KIND_CONNECT, OP_CONNECT4, OP_CONNECT6,
        OP_SENDMSG4, OP_SENDMSG6,
    },
    hash::{FNV_OFFSET, fnv1a_step},
    tracking::{ReadKey, Tracked},
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_skb_cgroup_id},
    macros::{cgroup_skb, cgroup_sock_addr},
    programs::{SkBuffContext, SockAddrContext},
};

use crate::{
    enforce,
    maps::{EGRESS, READS},
    record::{fill_header, is_daemon, reserve},
    tracking,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// Returned by sock_addr programs to let the call proceed, or refuse it (EPERM).
const ALLOW: i32 = 1;
const DENY: i32 = 0;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

#[cgroup_sock_addr(connect4)]
pub fn paddock_connect4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OP_CONNECT4)
}

#[cgroup_sock_addr(connect6)]
pub fn paddock_connect6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OP_CONNECT6)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn paddock_sendmsg4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OP_SENDMSG4)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn paddock_sendmsg6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OP_SENDMSG6)
}

#[inline(always)]
fn on_sock_addr(ctx: &SockAddrContext, op: u32) -> i32 {
    let Some((cgroup_id, tracked)) = tracking::current() else {
        return ALLOW;
    };
    if is_daemon((bpf_get_current_pid_tgid() >> 32) as u32) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    let v6 = op == OP_CONNECT6 || op == OP_SENDMSG6;
    let mut addr = [0u8; 16];
    // SAFETY: `sa` is the context the kernel passed; these fields are readable for
    // connect and sendmsg hooks.
    let (port, sock_type, protocol) = unsafe {
        if v6 {
            for i in 0..4 {
                addr[i * 4..i * 4 + 4].copy_from_slice(&(*sa).user_ip6[i].to_ne_bytes());
            }
        } else {
            addr[..4].copy_from_slice(&(*sa).user_ip4.to_ne_bytes());
        }
        (u16::from_be((*sa).user_port as u16), (*sa).type_, (*sa).protocol)
    };
    // Some sockets report protocol 0 (the default for their type).
    let protocol = match (protocol, sock_type) {
        (0, SOCK_STREAM) => IPPROTO_TCP,
        (0, SOCK_DGRAM) => IPPROTO_UDP,
        (p, _) => p,
    };
    let denied = enforce::enforcing(&tracked).is_some()
        && !enforce::egress_allowed(&tracked, v6, &addr, port, protocol as u8);
    let is_send = op == OP_SENDMSG4 || op == OP_SENDMSG6;
    if is_send && !denied && already_sent(&tracked, &addr, port, protocol) {
        return ALLOW;
    }
    let verdict = if denied {
        enforce::doom(&tracked);
        DENY
    } else {
        ALLOW
    };
    let Some(mut entry) = reserve::<ConnectRecord>(KIND_CONNECT) else {
        return verdict;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        // No task pointer in this program type: the daemon fills in the parent.
        fill_header(&mut (*record).header, KIND_CONNECT, cgroup_id, &tracked, 0);
        (*record).op = op;
        (*record).action = if denied { ACTION_DENIED } else { ACTION_NONE };
        (*record).sock_type = sock_type;
        (*record).protocol = protocol;
        (*record).port = port;
        (*record).family = if v6 { AF_INET6 } else { AF_INET };
        (*record)._pad = 0;
        (*record).addr = addr;
    }
    entry.submit(0);
    verdict
}

/// Addressed sends (UDP, mostly) are reported once per (instance, destination), as
/// read-only opens are: a DNS client would otherwise flood the buffer.
#[inline(always)]
fn already_sent(tracked: &Tracked, addr: &[u8; 16], port: u16, protocol: u32) -> bool {
    let mut hash = fnv1a_step(FNV_OFFSET, 0xfe); // a domain separate from paths
    for byte in addr.iter() {
        hash = fnv1a_step(hash, *byte);
    }
    for byte in port.to_be_bytes() {
        hash = fnv1a_step(hash, byte);
    }
    hash = fnv1a_step(hash, protocol as u8);
    let key = ReadKey { instance: tracked.instance, _pad: 1, path_hash: hash };
    // SAFETY: only checks presence.
    if unsafe { READS.get(&key) }.is_some() {
        return true;
    }
    READS.insert(&key, &1, 1).is_err()
}

#[cgroup_skb]
pub fn paddock_skb_egress(ctx: SkBuffContext) -> i32 {
    // SAFETY: the context's skb pointer, as the helper expects.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb) };
    if let Some(tracked) = tracking::by_cgroup(cgroup_id) {
        if let Some(counts) = EGRESS.get_ptr_mut(tracked.slot as u32) {
            // SAFETY: a per-CPU value: no other writer.
            unsafe {
                (*counts).bytes += ctx.len() as u64;
                (*counts).packets += 1;
            }
        }
    }
    1
}
