//! Records of every kind as the probes write them, with generated contents, for the
//! property tests of `decode` (`decode_props`): the `#[repr(C)]` structs of
//! `agent_common::event` made into bytes by `record_bytes`.
use std::mem::size_of;

use agent_common::dns::{DNS_MAX_ADDRS, DNS_NAME_LEN, DnsRecord};
use agent_common::event::{
    ARGS_LEN, COMM_LEN, CgroupRecord, ConnectRecord, ExecRecord, ExitRecord, ForkRecord, Header,
    KIND_CGROUP, KIND_CONNECT, KIND_DNS, KIND_EXEC, KIND_EXIT, KIND_FORK, KIND_MIGRATE, KIND_OPEN,
    KIND_PATH_OP, KIND_SOCKET, KIND_SYSCALL, KIND_UNIX, KIND_URING, MigrateRecord, OpenRecord,
    PATH_LEN, PathOpRecord, SocketRecord, SyscallRecord, UNIX_PATH_LEN, UnixRecord, UringRecord,
};
use proptest::prelude::*;

use super::decode::record_bytes;

/// Every kind, and the size of the struct it names.
pub const KINDS: [(u32, usize); 13] = [
    (KIND_SYSCALL, size_of::<SyscallRecord>()),
    (KIND_FORK, size_of::<ForkRecord>()),
    (KIND_EXEC, size_of::<ExecRecord>()),
    (KIND_EXIT, size_of::<ExitRecord>()),
    (KIND_OPEN, size_of::<OpenRecord>()),
    (KIND_CONNECT, size_of::<ConnectRecord>()),
    (KIND_CGROUP, size_of::<CgroupRecord>()),
    (KIND_PATH_OP, size_of::<PathOpRecord>()),
    (KIND_UNIX, size_of::<UnixRecord>()),
    (KIND_SOCKET, size_of::<SocketRecord>()),
    (KIND_MIGRATE, size_of::<MigrateRecord>()),
    (KIND_URING, size_of::<UringRecord>()),
    (KIND_DNS, size_of::<DnsRecord>()),
];

/// The generated contents of one record: its header, its integers, its texts.
#[derive(Debug, Clone)]
pub struct Contents {
    pub kind: u32,
    pub header: Header,
    pub ints: [u32; 6],
    pub wide: u64,
    /// The text fields, in order (path, path2 or args), as raw bytes.
    pub texts: [Vec<u8>; 2],
}

/// Text as the kernel may copy it: a path, any UTF-8, bytes that are not UTF-8, NULs inside,
/// or a field filled to its last byte with no NUL at all.
pub fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "(/[a-z0-9._-]{1,12}){1,8}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(prop_oneof![Just(0u8), 1u8..0x80], 0..300),
        (1u8..=0xff, 250usize..300).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (any::<[u64; 2]>(), any::<(u16, u8, u8)>(), any::<[u32; 6]>(), text_bytes()).prop_map(
        |(
            [ktime_ns, cgroup_id],
            (slot, phase, pad),
            [instance, pid, tgid, ppid, uid, gid],
            comm,
        )| {
            Header {
                ktime_ns,
                cgroup_id,
                kind: 0,
                slot,
                phase,
                _pad: pad,
                instance,
                pid,
                tgid,
                ppid,
                uid,
                gid,
                comm: fill::<COMM_LEN>(&comm),
            }
        },
    )
}

pub fn contents() -> impl Strategy<Value = Contents> {
    (
        prop::sample::select(KINDS.to_vec()),
        header(),
        any::<[u32; 6]>(),
        any::<u64>(),
        [text_bytes(), text_bytes()],
    )
        .prop_map(|((kind, _), header, ints, wide, texts)| Contents {
            kind,
            header,
            ints,
            wide,
            texts,
        })
}

/// `bytes` in a field of `N` bytes: cut to fit, the rest NUL.
pub fn fill<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut field = [0u8; N];
    let n = bytes.len().min(N);
    field[..n].copy_from_slice(&bytes[..n]);
    field
}

/// The record `c` describes, as the probes write it.
pub fn record(c: &Contents) -> Vec<u8> {
    let header = Header { kind: c.kind, ..c.header };
    let [a, b, d, e, f, g] = c.ints;
    let (path, second) = (&c.texts[0], &c.texts[1]);
    match c.kind {
        KIND_SYSCALL => record_bytes(&SyscallRecord { header, id: a, action: b }),
        KIND_FORK => record_bytes(&ForkRecord { header, child_tgid: a, _pad: b }),
        KIND_EXEC => record_bytes(&ExecRecord {
            header,
            action: a,
            argc: b % 12,
            args_truncated: d % 2,
            // Mostly within the buffer, sometimes past it (a corrupt record).
            args_len: if e % 4 == 0 { e } else { e % (ARGS_LEN as u32 + 1) },
            status: f,
            _pad: g,
            path: fill::<PATH_LEN>(path),
            args: fill::<ARGS_LEN>(second),
        }),
        KIND_EXIT => record_bytes(&ExitRecord { header, code: a, _pad: b }),
        KIND_OPEN => record_bytes(&OpenRecord {
            header,
            flags: a,
            fmode: b,
            via: d,
            status: e,
            path: fill::<PATH_LEN>(path),
        }),
        KIND_PATH_OP => record_bytes(&PathOpRecord {
            header,
            op: a,
            status: b,
            status2: d,
            _pad: e,
            path: fill::<PATH_LEN>(path),
            path2: fill::<PATH_LEN>(second),
        }),
        KIND_UNIX => record_bytes(&UnixRecord {
            header,
            op: a,
            action: b,
            status: d,
            _pad: e,
            path: fill::<UNIX_PATH_LEN>(path),
        }),
        KIND_SOCKET => {
            record_bytes(&SocketRecord { header, family: a, sock_type: b, protocol: d, action: e })
        }
        KIND_MIGRATE => {
            record_bytes(&MigrateRecord { header, moved_tgid: a, action: b, dst_cgroup_id: c.wide })
        }
        KIND_URING => record_bytes(&UringRecord { header, opcode: a, action: b }),
        KIND_CONNECT => record_bytes(&ConnectRecord {
            header,
            // The four ops, and others.
            op: a % 6,
            action: b,
            sock_type: d,
            protocol: e,
            port: f as u16,
            family: (f >> 16) as u16,
            _pad: g,
            addr: fill::<16>(path),
            name_hash: c.wide,
        }),
        KIND_DNS => {
            let addrs = fill::<{ 16 * DNS_MAX_ADDRS }>(&c.texts[1]);
            record_bytes(&DnsRecord {
                header,
                op: a,
                action: b,
                flags: d,
                qtype: e as u16,
                rcode: (e >> 16) as u8,
                // Any count, more than the record holds too.
                count: (e >> 24) as u8,
                server_port: f as u16,
                id: (f >> 16) as u16,
                _pad: g,
                server: fill::<16>(&c.wide.to_ne_bytes()),
                name: fill::<DNS_NAME_LEN>(path),
                addrs: std::array::from_fn(|i| fill::<16>(&addrs[i * 16..])),
                ttls: std::array::from_fn(|i| a.rotate_left(i as u32 * 4)),
            })
        }
        KIND_CGROUP => record_bytes(&CgroupRecord {
            header,
            new_cgroup_id: c.wide,
            level: a,
            _pad: b,
            path: fill::<PATH_LEN>(path),
        }),
        _ => record_bytes(&header),
    }
}
