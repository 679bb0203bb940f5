//! Network egress, from the cgroup hooks: connects and addressed sends (IPv4, IPv6, unix),
//! and per-investigation byte counts. In a phase that enforces, a destination outside the
//! baseline is refused here (EPERM): no packet leaves, no unix peer is reached.
//!
//! The connect and send programs are attached at the root of the cgroup hierarchy, and find
//! the investigation by the acting process first (a tracked process that moved itself out
//! of its cgroup is still judged as its investigation's), then by the cgroup the socket
//! was made in (sockets the kernel opens for a process, as MPTCP subflows), then by the
//! current cgroup.
use agent_common::{
    event::{
        ACTION_DENIED, ACTION_NONE, ConnectRecord, KIND_CONNECT, KIND_UNIX, OP_CONNECT4,
        OP_CONNECT6, OP_SENDMSG4, OP_SENDMSG6, OP_UNIX_CONNECT, OP_UNIX_SENDMSG, PATH_RELATIVE,
        UNIX_PATH_LEN, UnixRecord,
    },
    hash::{FNV_OFFSET, fnv1a_step},
    policy::{egress_protocol, ipv4_mapped},
    tracking::{ReadKey, SEEN_SEND, SEEN_UNIX_SEND, Tracked},
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel, generated::bpf_skb_cgroup_id},
    macros::{cgroup_skb, cgroup_sock_addr},
    programs::{SkBuffContext, SockAddrContext},
};

use crate::{
    dns, enforce,
    enforce::literal_hash,
    maps::{EGRESS, READS},
    record::{config, fill_header, is_daemon, read_ptr, reserve, reserve_decision},
    tracking, walk,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// Returned by sock_addr programs to let the call proceed, or refuse it (EPERM).
const ALLOW: i32 = 1;
const DENY: i32 = 0;

/// `struct bpf_sock_addr_kern`: what the context really points at. Its address is the
/// kernel's copy of the caller's sockaddr (taken before the hook runs).
#[repr(C)]
#[derive(Clone, Copy)]
struct KernCtx {
    sk: u64,
    uaddr: u64,
    tmp_reg: u64,
    t_ctx: u64,
    uaddrlen: u32,
}

/// Whose connect or send this is: (cgroup id for the record, investigation). `None` for
/// untracked callers and the daemon.
#[inline(always)]
fn owner(ctx: &SockAddrContext) -> Option<(u64, Tracked)> {
    if let Some((pid_tgid, tracked)) = tracking::by_task() {
        if is_daemon((pid_tgid >> 32) as u32) {
            return None;
        }
        return Some((tracking::current_cgroup_id(), tracked));
    }
    if let Some(config) = config() {
        // SAFETY: the context is a `bpf_sock_addr_kern` in kernel memory.
        if let Ok(kern) = unsafe { bpf_probe_read_kernel(ctx.sock_addr as *const KernCtx) } {
            let cgroup = read_ptr(kern.sk as *const u8, config.offsets.sock_cgroup);
            if let Some(id) = tracking::cgroup_id_of(cgroup)
                && let Some(tracked) = tracking::by_cgroup(id)
            {
                return Some((id, tracked));
            }
        }
    }
    if is_daemon((bpf_get_current_pid_tgid() >> 32) as u32) {
        return None;
    }
    tracking::current()
}

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
    let Some((cgroup_id, tracked)) = owner(ctx) else {
        return ALLOW;
    };
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
    // Judged as the daemon judges it: protocol 0 is the type's default, MPTCP is TCP, and
    // an IPv4-mapped IPv6 address is the IPv4 address (the rules store IPv4 mapped).
    let judged = egress_protocol(protocol, sock_type);
    let mapped = if v6 { addr } else { ipv4_mapped([addr[0], addr[1], addr[2], addr[3]]) };
    // The name a DNS answer of this investigation bound the address to, while it holds.
    let binding = dns::bound(&tracked, &mapped);
    let denied = enforce::enforcing(&tracked).is_some()
        && !enforce::egress_allowed(&tracked, v6, &addr, port, judged)
        && !binding.is_some_and(|b| dns::name_egress_allowed(&tracked, &b, judged, port));
    let is_send = op == OP_SENDMSG4 || op == OP_SENDMSG6;
    if is_send
        && !denied
        && already_sent(&tracked, &addr, port, protocol, binding.map_or(0, |b| b.name_hash))
    {
        return ALLOW;
    }
    let verdict = if denied {
        enforce::doom(&tracked);
        DENY
    } else {
        ALLOW
    };
    let entry = if denied {
        reserve_decision::<ConnectRecord>(KIND_CONNECT, &tracked)
    } else {
        reserve::<ConnectRecord>(KIND_CONNECT, &tracked)
    };
    let Some(mut entry) = entry else {
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
        (*record).name_hash = binding.map_or(0, |b| b.name_hash);
    }
    entry.submit(0);
    verdict
}

/// Addressed sends (UDP, mostly) are reported once per (instance, destination), as
/// read-only opens are: a chatty UDP client would otherwise flood the buffer.
#[inline(always)]
fn already_sent(tracked: &Tracked, addr: &[u8; 16], port: u16, protocol: u32, name: u64) -> bool {
    // The name too: a send to the same address reached through another name is new.
    let mut hash = FNV_OFFSET ^ name;
    for byte in addr.iter() {
        hash = fnv1a_step(hash, *byte);
    }
    for byte in port.to_be_bytes() {
        hash = fnv1a_step(hash, byte);
    }
    hash = fnv1a_step(hash, protocol as u8);
    seen_before(tracked, SEEN_SEND, hash)
}

/// Whether `tracked`'s instance reported `hash` of `domain` already (and mark it so).
#[inline(always)]
pub fn seen_before(tracked: &Tracked, domain: u32, hash: u64) -> bool {
    let key = ReadKey { instance: tracked.instance, domain, path_hash: hash };
    // SAFETY: only checks presence.
    if unsafe { READS.get(&key) }.is_some() {
        return true;
    }
    READS.insert(&key, &1, 1).is_err()
}

/// `cgroup/connect_unix` (Linux 6.7+), loaded and attached by the daemon itself: the
/// section name here is only what aya 0.14 can parse.
#[cgroup_sock_addr(connect6)]
pub fn paddock_connect_unix(ctx: SockAddrContext) -> i32 {
    on_unix(&ctx, OP_UNIX_CONNECT)
}

/// `cgroup/sendmsg_unix` (Linux 6.7+), as above.
#[cgroup_sock_addr(sendmsg6)]
pub fn paddock_sendmsg_unix(ctx: SockAddrContext) -> i32 {
    on_unix(&ctx, OP_UNIX_SENDMSG)
}

/// Bytes of `sun_path`.
const SUN_PATH: usize = 108;

#[inline(always)]
fn on_unix(ctx: &SockAddrContext, op: u32) -> i32 {
    let Some((cgroup_id, tracked)) = owner(ctx) else {
        return ALLOW;
    };
    // SAFETY: the context is a `bpf_sock_addr_kern` in kernel memory.
    let Ok(kern) = (unsafe { bpf_probe_read_kernel(ctx.sock_addr as *const KernCtx) }) else {
        return ALLOW;
    };
    let Some(s) = walk::scratch() else { return ALLOW };
    // The name's length: the address length less `sun_family`.
    let len = (kern.uaddrlen as usize).saturating_sub(2).min(SUN_PATH);
    let sun_path = (kern.uaddr + 2) as *const u8;
    // SAFETY: kernel reads through the helper, of fixed sizes into a buffer of 512 bytes;
    // the kernel's sockaddr copy is a `sockaddr_storage` (128 bytes), so 108 bytes from
    // offset 2 stay inside it.
    let first = unsafe { bpf_probe_read_kernel(sun_path) }.unwrap_or(0);
    let (status, end) = if first == 0 && len > 0 {
        // Abstract: `@` and the name (which is not NUL-terminated).
        s.buf[0] = b'@';
        // SAFETY: as above.
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                s.buf.as_mut_ptr().add(1).cast(),
                (SUN_PATH - 1) as u32,
                sun_path.add(1).cast(),
            )
        };
        (0, if r < 0 { 1 } else { len })
    } else {
        // SAFETY: as above.
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                s.buf.as_mut_ptr().cast(),
                SUN_PATH as u32,
                sun_path.cast(),
            )
        };
        (if first == b'/' { 0 } else { PATH_RELATIVE }, if r < 0 { 0 } else { len })
    };
    s.buf[end & (UNIX_PATH_LEN - 1)] = 0;
    s.buf[UNIX_PATH_LEN - 1] = 0;
    let denied = enforce::enforcing(&tracked).is_some()
        && !enforce::unix_allowed(&tracked, s, status & PATH_RELATIVE != 0);
    if op == OP_UNIX_SENDMSG
        && !denied
        && seen_before(&tracked, SEEN_UNIX_SEND, literal_hash(&s.buf))
    {
        return ALLOW;
    }
    let verdict = if denied {
        enforce::doom(&tracked);
        DENY
    } else {
        ALLOW
    };
    let entry = if denied {
        reserve_decision::<UnixRecord>(KIND_UNIX, &tracked)
    } else {
        reserve::<UnixRecord>(KIND_UNIX, &tracked)
    };
    let Some(mut entry) = entry else { return verdict };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        fill_header(&mut (*record).header, KIND_UNIX, cgroup_id, &tracked, 0);
        (*record).op = op;
        (*record).action = if denied { ACTION_DENIED } else { ACTION_NONE };
        (*record).status = status;
        (*record)._pad = 0;
        walk::copy(&mut (*record).path, s);
    }
    entry.submit(0);
    verdict
}

#[cgroup_skb]
pub fn paddock_skb_egress(ctx: SkBuffContext) -> i32 {
    // SAFETY: the context's skb pointer, as the helper expects.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb) };
    let Some(tracked) = tracking::by_cgroup(cgroup_id) else {
        return dns::on_untracked_egress(cgroup_id);
    };
    if let Some(counts) = EGRESS.get_ptr_mut(tracked.slot as u32) {
        // SAFETY: a per-CPU value: no other writer.
        unsafe {
            (*counts).bytes += ctx.len() as u64;
            (*counts).packets += 1;
        }
    }
    dns::on_egress(&ctx, cgroup_id, &tracked)
}
