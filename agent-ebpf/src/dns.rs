//! DNS of tracked investigations, read from their packets on the cgroup hooks.
//!
//! - A query (UDP, or TCP whose segment starts with the message, to port 53) leaving a
//!   tracked socket is reported (once per name and type), remembered by socket and id, and in a phase that enforces
//!   refused (the packet is dropped, the sender gets EPERM, the investigation is doomed)
//!   when the phase may not ask for that name, or when it cannot be read: fail closed.
//! - An answer arriving for a tracked socket is bound only when it answers a query that
//!   socket sent, to that server, for that name, and not answered yet. Each A and AAAA
//!   address in it is then bound to the name asked, for that investigation, until the
//!   record's TTL (clamped) runs out. This runs before the packet is queued to the socket,
//!   so the process's first connect after the answer is already judged by name (`egress`).
use agent_common::{
    dns::{
        Binding, BindingKey, DNS_ANSWER, DNS_BUF, DNS_MALFORMED, DNS_MAX_ADDRS, DNS_MAX_STEPS,
        DNS_QUERY, DNS_TCP, DNS_UNSOLICITED, DnsParser, DnsRecord, NAME_EGRESS, NAME_QUERY,
        NameKey, Pending, PendingKey,
    },
    event::{ACTION_DENIED, ACTION_NONE, Header, KIND_DNS},
    hash::fnv1a_step,
    policy::{INCOMPLETE_NAMES, QUERIES_UNJUDGED},
    tracking::{SEEN_DNS, Tracked},
};
use aya_ebpf::{
    cty::c_void,
    helpers::generated::{
        bpf_get_socket_cookie, bpf_ktime_get_boot_ns, bpf_loop, bpf_skb_cgroup_id,
        bpf_skb_load_bytes,
    },
    programs::SkBuffContext,
};

use crate::{
    egress::seen_before,
    enforce,
    maps::{
        ALLOWED_NAMES, DNS_BINDINGS, DNS_DENIED_ANY, DNS_DENIED_CGROUPS, DNS_PENDING, DNS_SCRATCH,
        PHASE_POLICY,
    },
    record::{config, reserve, reserve_decision},
    scratch::DnsScratch,
    tracking,
};

const DNS_PORT: u16 = 53;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// cgroup_skb verdicts.
pub const PASS: i32 = 1;
pub const DROP: i32 = 0;

/// A DNS message in a packet: where it starts, how long it is, and the server's side.
struct Message {
    offset: u32,
    len: u32,
    server: [u8; 16],
    server_port: u16,
    tcp: bool,
    /// A packet paddock could not read far enough to tell (IPv6 behind more extension
    /// headers than it walks): judged as a query it cannot read.
    unreadable: bool,
}

impl Message {
    const UNREADABLE: Message = Message {
        offset: 0,
        len: 0,
        server: [0; 16],
        server_port: 0,
        tcp: false,
        unreadable: true,
    };
}

/// IPv6 extension headers walked, and how many at most.
const EXT_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_DEST: u8 = 60;
const MAX_EXTENSIONS: usize = 4;

#[inline(always)]
fn be16(ctx: &SkBuffContext, at: u32) -> Option<u16> {
    ctx.load::<u16>(at as usize).ok().map(u16::from_be)
}

/// The DNS message in this packet: to port 53 when `ingress` is false (a query), from it
/// when true (an answer). `None` for anything else, and for IP fragments after the first
/// (they carry no transport header).
#[inline(always)]
fn message(ctx: &SkBuffContext, ingress: bool) -> Option<Message> {
    let first: u8 = ctx.load(0).ok()?;
    let mut server = [0u8; 16];
    let (l4, proto) = match first >> 4 {
        4 => {
            if be16(ctx, 6)? & 0x1fff != 0 {
                return None;
            }
            let at = if ingress { 12 } else { 16 };
            let v4: [u8; 4] = ctx.load(at).ok()?;
            server[10] = 0xff;
            server[11] = 0xff;
            server[12..].copy_from_slice(&v4);
            ((first & 0xf) as u32 * 4, ctx.load::<u8>(9).ok()?)
        }
        6 => {
            let at = if ingress { 8 } else { 24 };
            server = ctx.load(at).ok()?;
            // Past the extension headers a sender may add (hop-by-hop, routing, destination
            // options, fragment): a query must not slip by behind them.
            let mut next = ctx.load::<u8>(6).ok()?;
            let mut at = 40u32;
            for _ in 0..MAX_EXTENSIONS {
                match next {
                    EXT_HOP | EXT_ROUTING | EXT_DEST => {
                        let len = (ctx.load::<u8>(at as usize + 1).ok()? as u32 + 1) * 8;
                        next = ctx.load::<u8>(at as usize).ok()?;
                        at += len;
                    }
                    EXT_FRAGMENT => {
                        if be16(ctx, at + 2)? & 0xfff8 != 0 {
                            return None;
                        }
                        next = ctx.load::<u8>(at as usize).ok()?;
                        at += 8;
                    }
                    _ => break,
                }
            }
            if matches!(next, EXT_HOP | EXT_ROUTING | EXT_DEST | EXT_FRAGMENT) {
                // More extension headers than are walked: what follows is not read.
                return Some(Message::UNREADABLE);
            }
            (at, next)
        }
        _ => return None,
    };
    let (src, dst) = (be16(ctx, l4)?, be16(ctx, l4 + 2)?);
    let server_port = if ingress { src } else { dst };
    if server_port != DNS_PORT {
        return None;
    }
    let (offset, tcp) = match proto {
        PROTO_UDP => (l4 + 8, false),
        PROTO_TCP => {
            let doff = (ctx.load::<u8>(l4 as usize + 12).ok()? >> 4) as u32 * 4;
            // The two-byte length prefix of a message over TCP.
            (l4 + doff + 2, true)
        }
        _ => return None,
    };
    let total = ctx.len();
    if total <= offset {
        // A TCP segment with no data (handshake, acknowledgements).
        return None;
    }
    Some(Message { offset, len: total - offset, server, server_port, tcp, unreadable: false })
}

/// One step of the parser over the per-CPU scratch: a `bpf_loop` callback.
#[inline(never)]
unsafe extern "C" fn parse_step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = DNS_SCRATCH.get_ptr_mut(0) else { return 1 };
    // SAFETY: the per-CPU scratch, ours for this program run.
    let s = unsafe { &mut *s };
    let DnsScratch { parser, buf, name } = s;
    if parser.step(buf, name) { 0 } else { 1 }
}

/// The scratch with nothing parsed (for a packet that could not be read).
#[inline(always)]
fn blank() -> Option<&'static mut DnsScratch> {
    // SAFETY: the per-CPU scratch, ours for this program run.
    let s = unsafe { &mut *DNS_SCRATCH.get_ptr_mut(0)? };
    s.name[0] = 0;
    s.parser = DnsParser::new(0);
    Some(s)
}

/// Copy the message into the scratch and parse it.
#[inline(always)]
fn parse(ctx: &SkBuffContext, m: &Message) -> Option<&'static mut DnsScratch> {
    let s = DNS_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: the per-CPU scratch, ours for this program run.
    let s = unsafe { &mut *s };
    s.name[0] = 0;
    // 1 to DNS_BUF bytes. The compiler knows `len` is not 0 and would drop the check, but
    // the verifier, which loses that bound on the way, needs it: hence `black_box`.
    let n = core::hint::black_box(m.len.min(DNS_BUF as u32));
    if n == 0 || n > DNS_BUF as u32 {
        return None;
    }
    // SAFETY: the skb context and a buffer of DNS_BUF bytes; `n` is within both.
    let copied = unsafe {
        bpf_skb_load_bytes(ctx.skb.skb as *const c_void, m.offset, s.buf.as_mut_ptr().cast(), n)
    };
    s.parser = DnsParser::new(if copied < 0 { 0 } else { m.len });
    // SAFETY: a helper call with a static callback and no context.
    unsafe { bpf_loop(DNS_MAX_STEPS, parse_step as *mut c_void, core::ptr::null_mut(), 0) };
    // SAFETY: as above; the loop is over.
    Some(unsafe { &mut *DNS_SCRATCH.get_ptr_mut(0)? })
}

#[inline(always)]
fn name_known(phase: u8, kind: u8, protocol: u8, port: [u8; 2], hash: u64) -> bool {
    let key = NameKey { phase, kind, protocol, _pad: 0, port, _pad2: [0; 2], hash };
    // SAFETY: only checks presence.
    unsafe { ALLOWED_NAMES.get(&key) }.is_some()
}

#[inline(always)]
fn flags_of(tracked: &Tracked) -> u32 {
    PHASE_POLICY.get(tracked.phase as u32).map_or(0, |p| p.flags)
}

/// Whether `tracked`'s phase may ask for a name of these hashes.
#[inline(always)]
fn query_allowed(tracked: &Tracked, hash: u64, wild: u64) -> bool {
    if flags_of(tracked) & (INCOMPLETE_NAMES | QUERIES_UNJUDGED) != 0 {
        return true;
    }
    name_known(tracked.phase, NAME_QUERY, 0, [0; 2], hash)
        || name_known(tracked.phase, NAME_QUERY, 0, [0; 2], wild)
}

/// The name `addr` (IPv4 mapped) is bound to for `tracked`'s instance, if the binding
/// still holds.
#[inline(always)]
pub fn bound(tracked: &Tracked, addr: &[u8; 16]) -> Option<Binding> {
    let key = BindingKey { instance: tracked.instance, _pad: 0, addr: *addr };
    // SAFETY: a copy of the value is taken at once.
    let binding = unsafe { DNS_BINDINGS.get(&key) }.copied()?;
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    (binding.expires_ns > now).then_some(binding)
}

/// Whether an egress rule of `tracked`'s phase allows the name of `binding` for this
/// protocol and port.
#[inline(always)]
pub fn name_egress_allowed(tracked: &Tracked, binding: &Binding, protocol: u8, port: u16) -> bool {
    if flags_of(tracked) & INCOMPLETE_NAMES != 0 {
        return true;
    }
    let (phase, port) = (tracked.phase, port.to_be_bytes());
    name_known(phase, NAME_EGRESS, protocol, port, binding.name_hash)
        || name_known(phase, NAME_EGRESS, protocol, [0; 2], binding.name_hash)
        || name_known(phase, NAME_EGRESS, protocol, port, binding.wild_hash)
        || name_known(phase, NAME_EGRESS, protocol, [0; 2], binding.wild_hash)
}

/// A header for a record made on a packet hook: no task is at hand (an answer arrives in
/// softirq context), so no process fields.
#[inline(always)]
fn packet_header(header: &mut Header, cgroup_id: u64, tracked: &Tracked) {
    // SAFETY: a helper without arguments.
    header.ktime_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.cgroup_id = cgroup_id;
    header.kind = KIND_DNS;
    header.slot = tracked.slot;
    header.phase = tracked.phase;
    header._pad = 0;
    header.instance = tracked.instance;
    header.pid = 0;
    header.tgid = 0;
    header.ppid = 0;
    header.uid = 0;
    header.gid = 0;
    header.comm = [0; 16];
}

/// What makes a report of this message new: its op, name, type, doubts and addresses.
#[inline(always)]
fn digest(p: &DnsParser, op: u32, flags: u32) -> u64 {
    let mut hash =
        p.hash ^ ((op as u64) << 56) ^ ((p.qtype as u64) << 40) ^ ((flags | p.flags) as u64);
    for i in 0..DNS_MAX_ADDRS {
        if i >= p.count as usize {
            break;
        }
        for b in p.addrs[i] {
            hash = fnv1a_step(hash, b);
        }
    }
    hash
}

#[inline(always)]
fn report(
    cgroup_id: u64,
    tracked: &Tracked,
    s: &DnsScratch,
    m: &Message,
    op: u32,
    flags: u32,
    denied: bool,
) {
    let p = &s.parser;
    // Each query (name and type) and each answer (name, addresses, doubts) is reported
    // once per investigation, as addressed sends are: a client resolving in a loop would
    // otherwise flood the buffer (and, in a phase that fails closed, die of it). Refusals
    // are always reported.
    if !denied && seen_before(tracked, SEEN_DNS, digest(p, op, flags)) {
        return;
    }
    let entry = if denied {
        reserve_decision::<DnsRecord>(KIND_DNS, tracked)
    } else {
        reserve::<DnsRecord>(KIND_DNS, tracked)
    };
    let Some(mut entry) = entry else { return };
    let record = entry.as_mut_ptr();
    // SAFETY: reserved ring-buffer memory of the right size.
    unsafe {
        packet_header(&mut (*record).header, cgroup_id, tracked);
        (*record).op = op;
        (*record).action = if denied { ACTION_DENIED } else { ACTION_NONE };
        (*record).flags = p.flags | flags | if m.tcp { DNS_TCP } else { 0 };
        (*record).qtype = p.qtype;
        (*record).rcode = p.rcode;
        (*record).count = p.count;
        (*record).server_port = m.server_port;
        (*record).id = p.id;
        (*record)._pad = 0;
        (*record).server = m.server;
        (*record).name = s.name;
        (*record).addrs = p.addrs;
        (*record).ttls = p.ttls;
    }
    entry.submit(0);
}

/// A query leaving a tracked socket (from `egress::paddock_skb_egress`): the verdict for the
/// packet.
#[inline(always)]
pub fn on_egress(ctx: &SkBuffContext, cgroup_id: u64, tracked: &Tracked) -> i32 {
    let Some(m) = message(ctx, false) else { return PASS };
    let scratch = if m.unreadable { blank() } else { parse(ctx, &m) };
    let Some(s) = scratch else { return PASS };
    let read = !m.unreadable && s.parser.question_read() && s.parser.response == 0;
    let denied = enforce::enforcing(tracked).is_some()
        && !(read && query_allowed(tracked, s.parser.hash, s.parser.wild));
    if read && !denied {
        // SAFETY: the skb context, as the helper expects.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb as *mut c_void) };
        let key = PendingKey { cookie, id: s.parser.id, _pad: [0; 6] };
        let pending = Pending {
            name_hash: s.parser.hash,
            instance: tracked.instance,
            port: m.server_port,
            _pad: 0,
            server: m.server,
        };
        let _ = DNS_PENDING.insert(&key, &pending, 0);
    }
    if denied {
        enforce::doom(tracked);
        remember_denied(cgroup_id);
    }
    let flags = if read { 0 } else { DNS_MALFORMED };
    report(cgroup_id, tracked, s, &m, DNS_QUERY, flags, denied);
    if denied { DROP } else { PASS }
}

/// Keep `cgroup_id` as one a query was denied from (see `maps::DNS_DENIED_CGROUPS`).
#[inline(always)]
fn remember_denied(cgroup_id: u64) {
    let _ = DNS_DENIED_CGROUPS.insert(&cgroup_id, &1, 0);
    if let Some(any) = DNS_DENIED_ANY.get_ptr_mut(0) {
        // SAFETY: a pointer into an array map value; a plain store of a flag.
        unsafe { *any = 1 };
    }
}

/// A packet leaving a cgroup no investigation tracks (from `egress::paddock_skb_egress`):
/// dropped when a query was denied from that cgroup, whose investigation has since ended
/// (an orphaned socket's retransmission), passed otherwise.
#[inline(always)]
pub fn on_untracked_egress(cgroup_id: u64) -> i32 {
    let any = DNS_DENIED_ANY.get(0).is_some_and(|any| *any != 0);
    // SAFETY: the value is read at once.
    if any && unsafe { DNS_DENIED_CGROUPS.get(&cgroup_id) }.is_some() { DROP } else { PASS }
}

/// An answer arriving for a tracked socket: bound when it answers a query of that socket.
#[inline(always)]
fn on_ingress(ctx: &SkBuffContext, cgroup_id: u64, tracked: &Tracked) {
    let Some(m) = message(ctx, true) else { return };
    if m.unreadable {
        return;
    }
    let Some(s) = parse(ctx, &m) else { return };
    if !s.parser.question_read() || s.parser.response == 0 {
        report(cgroup_id, tracked, s, &m, DNS_ANSWER, DNS_MALFORMED, false);
        return;
    }
    // SAFETY: the skb context, as the helper expects.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb as *mut c_void) };
    let key = PendingKey { cookie, id: s.parser.id, _pad: [0; 6] };
    // SAFETY: a copy of the value is taken at once.
    let pending = unsafe { DNS_PENDING.get(&key) }.copied();
    let solicited = pending.is_some_and(|p| {
        p.instance == tracked.instance
            && p.name_hash == s.parser.hash
            && p.port == m.server_port
            && p.server == m.server
    });
    if !solicited {
        report(cgroup_id, tracked, s, &m, DNS_ANSWER, DNS_UNSOLICITED, false);
        return;
    }
    // One answer per query: a second (a replay, or a forgery racing the server) binds
    // nothing.
    let _ = DNS_PENDING.remove(&key);
    let (min, max) = config().map_or((60, 3600), |c| (c.dns_min_ttl_s, c.dns_max_ttl_s));
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let p = &s.parser;
    for i in 0..DNS_MAX_ADDRS {
        if i >= p.count as usize {
            break;
        }
        let ttl = p.ttls[i].max(min).min(max) as u64;
        let key = BindingKey { instance: tracked.instance, _pad: 0, addr: p.addrs[i] };
        let binding =
            Binding { expires_ns: now + ttl * 1_000_000_000, name_hash: p.hash, wild_hash: p.wild };
        let _ = DNS_BINDINGS.insert(&key, &binding, 0);
    }
    report(cgroup_id, tracked, s, &m, DNS_ANSWER, 0, false);
}

#[aya_ebpf::macros::cgroup_skb]
pub fn paddock_skb_ingress(ctx: SkBuffContext) -> i32 {
    // SAFETY: the context's skb pointer, as the helper expects.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb) };
    if let Some(tracked) = tracking::by_cgroup(cgroup_id) {
        on_ingress(&ctx, cgroup_id, &tracked);
    }
    PASS
}
