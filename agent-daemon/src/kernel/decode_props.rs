//! Property tests of ring-buffer record decoding (`decode`): whatever bytes arrive (garbage,
//! records cut short, of another kind, flipped) decoding never panics; a buffer shorter than
//! the struct its kind names is an error that says so, an unknown kind is one too; and what
//! decodes is what the bytes hold, its texts no longer than their fields.
//!
//! The expected values are read at the structs' field offsets, independently of `decode`.
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use std::{
    mem::{offset_of, size_of},
    net::IpAddr,
};

use agent_common::dns::{DNS_MAX_ADDRS, DNS_NAME_LEN, DnsRecord};
use agent_common::event::{
    ARGS_LEN, COMM_LEN, CgroupRecord, ConnectRecord, ExecRecord, ExitRecord, ForkRecord, Header,
    KIND_CGROUP, KIND_CONNECT, KIND_COUNT, KIND_DNS, KIND_EXEC, KIND_EXIT, KIND_FORK, KIND_MIGRATE,
    KIND_OPEN, KIND_PATH_OP, KIND_SOCKET, KIND_SYSCALL, KIND_UNIX, KIND_URING, MigrateRecord,
    OP_CONNECT6, OP_SENDMSG6, OpenRecord, PATH_LEN, PathOpRecord, SocketRecord, SyscallRecord,
    UNIX_PATH_LEN, UnixRecord, UringRecord,
};
use proptest::prelude::*;

use super::{
    decode::{DecodeError, RecordBody, decode},
    decode_records::{KINDS, contents, record},
};
use crate::egress::EgressProtocol;

const HEADER: usize = size_of::<Header>();

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(bytes)
}

/// The text of a field of `len` bytes at `at`: up to its first NUL, bad UTF-8 replaced. The
/// text is never longer, in characters, than the field, and holds no NUL.
fn text_at(b: &[u8], at: usize, len: usize) -> Result<String, TestCaseError> {
    let field = &b[at..at + len];
    let end = field.iter().position(|&c| c == 0).unwrap_or(len);
    let text = String::from_utf8_lossy(&field[..end]).into_owned();
    prop_assert!(text.chars().count() <= len && !text.contains('\0'));
    Ok(text)
}

/// What the body of a record of `kind` in `b` must decode to (`Exec`'s argv checked apart).
fn expected_body(kind: u32, b: &[u8]) -> Result<RecordBody, TestCaseError> {
    macro_rules! at {
        ($t:ty, $f:ident) => {
            u32_at(b, offset_of!($t, $f))
        };
    }
    Ok(match kind {
        KIND_SYSCALL => {
            RecordBody::Syscall { id: at!(SyscallRecord, id), action: at!(SyscallRecord, action) }
        }
        KIND_FORK => RecordBody::Fork { child_pid: at!(ForkRecord, child_tgid) },
        KIND_EXEC => RecordBody::Exec {
            path: text_at(b, offset_of!(ExecRecord, path), PATH_LEN)?,
            argv: Vec::new(),
            argv_truncated: at!(ExecRecord, args_truncated) != 0,
            action: at!(ExecRecord, action),
            status: at!(ExecRecord, status),
        },
        KIND_EXIT => RecordBody::Exit { status: at!(ExitRecord, code) },
        KIND_OPEN => RecordBody::Open {
            path: text_at(b, offset_of!(OpenRecord, path), PATH_LEN)?,
            flags: at!(OpenRecord, flags),
            fmode: at!(OpenRecord, fmode),
            via: at!(OpenRecord, via),
            status: at!(OpenRecord, status),
        },
        KIND_PATH_OP => RecordBody::FileOp {
            op: at!(PathOpRecord, op),
            path: text_at(b, offset_of!(PathOpRecord, path), PATH_LEN)?,
            status: at!(PathOpRecord, status),
            path2: text_at(b, offset_of!(PathOpRecord, path2), PATH_LEN)?,
            status2: at!(PathOpRecord, status2),
        },
        KIND_UNIX => RecordBody::Unix {
            op: at!(UnixRecord, op),
            action: at!(UnixRecord, action),
            path: text_at(b, offset_of!(UnixRecord, path), UNIX_PATH_LEN)?,
            status: at!(UnixRecord, status),
        },
        KIND_SOCKET => RecordBody::Socket {
            family: at!(SocketRecord, family),
            sock_type: at!(SocketRecord, sock_type),
            protocol: at!(SocketRecord, protocol),
            action: at!(SocketRecord, action),
        },
        KIND_MIGRATE => RecordBody::Migrate {
            moved_pid: at!(MigrateRecord, moved_tgid),
            action: at!(MigrateRecord, action),
            cgroup_id: u64_at(b, offset_of!(MigrateRecord, dst_cgroup_id)),
        },
        KIND_URING => {
            RecordBody::Uring { opcode: at!(UringRecord, opcode), action: at!(UringRecord, action) }
        }
        KIND_CONNECT => {
            let op = at!(ConnectRecord, op);
            let raw = &b[offset_of!(ConnectRecord, addr)..][..16];
            let addr = if op == OP_CONNECT6 || op == OP_SENDMSG6 {
                let mut v6 = [0u8; 16];
                v6.copy_from_slice(raw);
                IpAddr::from(v6)
            } else {
                IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
            };
            RecordBody::Connect {
                op,
                action: at!(ConnectRecord, action),
                protocol: EgressProtocol::of_socket(
                    at!(ConnectRecord, protocol),
                    at!(ConnectRecord, sock_type),
                ),
                addr,
                port: u16_at(b, offset_of!(ConnectRecord, port)),
                name_hash: u64_at(b, offset_of!(ConnectRecord, name_hash)),
            }
        }
        KIND_DNS => {
            let ip = |at: usize| {
                let mut v6 = [0u8; 16];
                v6.copy_from_slice(&b[at..at + 16]);
                std::net::Ipv6Addr::from(v6).to_canonical()
            };
            let count = (b[offset_of!(DnsRecord, count)] as usize).min(DNS_MAX_ADDRS);
            RecordBody::Dns {
                op: at!(DnsRecord, op),
                action: at!(DnsRecord, action),
                flags: at!(DnsRecord, flags),
                qtype: u16_at(b, offset_of!(DnsRecord, qtype)),
                rcode: b[offset_of!(DnsRecord, rcode)],
                id: u16_at(b, offset_of!(DnsRecord, id)),
                name: text_at(b, offset_of!(DnsRecord, name), DNS_NAME_LEN)?,
                server: ip(offset_of!(DnsRecord, server)),
                server_port: u16_at(b, offset_of!(DnsRecord, server_port)),
                answers: (0..count)
                    .map(|i| {
                        (
                            ip(offset_of!(DnsRecord, addrs) + 16 * i),
                            u32_at(b, offset_of!(DnsRecord, ttls) + 4 * i),
                        )
                    })
                    .collect(),
            }
        }
        KIND_CGROUP => RecordBody::Cgroup {
            cgroup_id: u64_at(b, offset_of!(CgroupRecord, new_cgroup_id)),
            level: at!(CgroupRecord, level),
            path: text_at(b, offset_of!(CgroupRecord, path), PATH_LEN)?,
        },
        other => return Err(fail(format!("kind {other} has no expected body"))),
    })
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// Decode `b` and check the outcome against what its length and kind say.
fn check(b: &[u8]) -> Result<(), TestCaseError> {
    let (result, len) = (decode(b), b.len());
    if len < HEADER {
        prop_assert_eq!(result, Err(DecodeError::NoHeader { len, need: HEADER }));
        return Ok(());
    }
    let kind = u32_at(b, offset_of!(Header, kind));
    let Some(&(_, need)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        prop_assert_eq!(result, Err(DecodeError::UnknownKind { kind, len }));
        return Ok(());
    };
    if len < need {
        prop_assert_eq!(result, Err(DecodeError::Short { kind, len, need }));
        return Ok(());
    }
    let record = result.map_err(|e| fail(format!("{e} for a whole record")))?;
    let h = &record.header;
    prop_assert_eq!(h.ktime_ns, u64_at(b, offset_of!(Header, ktime_ns)));
    prop_assert_eq!(h.cgroup_id, u64_at(b, offset_of!(Header, cgroup_id)));
    prop_assert_eq!(h.slot, u16_at(b, offset_of!(Header, slot)));
    prop_assert_eq!(h.phase, b[offset_of!(Header, phase)]);
    for (value, at) in [
        (h.instance, offset_of!(Header, instance)),
        (h.tid, offset_of!(Header, pid)),
        (h.pid, offset_of!(Header, tgid)),
        (h.ppid, offset_of!(Header, ppid)),
        (h.uid, offset_of!(Header, uid)),
        (h.gid, offset_of!(Header, gid)),
    ] {
        prop_assert_eq!(value, u32_at(b, at));
    }
    prop_assert_eq!(&h.comm, &text_at(b, offset_of!(Header, comm), COMM_LEN)?);
    let mut body = record.body;
    if let RecordBody::Exec { argv, .. } = &mut body {
        let (argc, args_len) =
            (u32_at(b, offset_of!(ExecRecord, argc)), u32_at(b, offset_of!(ExecRecord, args_len)));
        prop_assert!(argv.len() <= argc as usize);
        let chars: usize = argv.iter().map(|a| a.chars().count() + 1).sum();
        prop_assert!(chars <= (args_len as usize).min(ARGS_LEN) + 1, "{:?}", argv);
        prop_assert!(argv.iter().all(|a| !a.contains('\0')));
        argv.clear();
    }
    prop_assert_eq!(body, expected_body(kind, b)?);
    Ok(())
}

/// One change to a record's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Kind(u32),
    Flip(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        prop_oneof![
            prop::sample::select(KINDS.to_vec()).prop_map(|(k, _)| k),
            0..KIND_COUNT + 2,
            any::<u32>()
        ]
        .prop_map(Mutation::Kind),
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
    ]
}

fn mutate(mut b: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match *m {
            Mutation::Truncate(n) => b.truncate(n % (b.len() + 1)),
            Mutation::Kind(kind) if b.len() >= offset_of!(Header, kind) + 4 => {
                let at = offset_of!(Header, kind);
                b[at..at + 4].copy_from_slice(&kind.to_ne_bytes());
            }
            Mutation::Kind(_) => {}
            Mutation::Flip(at, mask) if !b.is_empty() => {
                let at = at % b.len();
                b[at] ^= mask;
            }
            Mutation::Flip(..) => {}
        }
    }
    b
}

/// Bytes sized around what `kind` needs, headed as `kind`.
fn sized_for_a_kind() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(KINDS.to_vec()).prop_flat_map(|(kind, need)| {
        let len = prop_oneof![0..need + 64, need.saturating_sub(4)..need + 4];
        len.prop_flat_map(move |len| {
            prop::collection::vec(any::<u8>(), len)
                .prop_map(move |b| mutate(b, &[Mutation::Kind(kind)]))
        })
    })
}

#[test]
fn every_kind_is_listed_with_its_size() {
    for kind in 1..KIND_COUNT {
        assert!(KINDS.iter().any(|(k, _)| *k == kind), "kind {kind}");
    }
    assert_eq!(KINDS.len(), KIND_COUNT as usize - 1);
}

proptest! {
    #[test]
    fn prop_any_bytes_decode_or_say_why_not(b in prop::collection::vec(any::<u8>(), 0..1200)) {
        check(&b)?;
    }

    #[test]
    fn prop_bytes_of_a_kind_decode_when_long_enough(b in sized_for_a_kind()) {
        check(&b)?;
    }

    #[test]
    fn prop_records_decode_to_what_they_hold(c in contents()) {
        let b = record(&c);
        prop_assert!(decode(&b).is_ok());
        check(&b)?;
    }

    /// A path the kernel copied whole (valid UTF-8, no NUL, shorter than its field) is
    /// decoded as it was.
    #[test]
    fn prop_whole_paths_decode_as_they_were(c in contents()) {
        let b = record(&c);
        let path = match decode(&b).map(|r| r.body) {
            Ok(RecordBody::Exec { path, .. } | RecordBody::Open { path, .. }
                | RecordBody::FileOp { path, .. } | RecordBody::Unix { path, .. }
                | RecordBody::Cgroup { path, .. }) => path,
            _ => return Ok(()),
        };
        let field = if c.kind == KIND_UNIX { UNIX_PATH_LEN } else { PATH_LEN };
        if let Ok(text) = std::str::from_utf8(&c.texts[0])
            && text.len() < field
            && !text.contains('\0')
        {
            prop_assert_eq!(path, text);
        }
    }

    #[test]
    fn prop_changed_records_decode_or_say_why_not(
        c in contents(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        check(&mutate(record(&c), &mutations))?;
    }
}
