//! Ring-buffer bytes to owned records. Every length is checked against the struct its kind
//! names before anything is read; a record that does not fit is an error, never a panic.
use std::{
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use agent_common::dns::{DNS_MAX_ADDRS, DnsRecord};
use agent_common::event::{
    CgroupRecord, ConnectRecord, ExecRecord, ExitRecord, ForkRecord, Header, KIND_CGROUP,
    KIND_CONNECT, KIND_DNS, KIND_EXEC, KIND_EXIT, KIND_FORK, KIND_MIGRATE, KIND_OPEN, KIND_PATH_OP,
    KIND_SOCKET, KIND_SYSCALL, KIND_UNIX, KIND_URING, MigrateRecord, OP_CONNECT6, OP_SENDMSG6,
    OpenRecord, PathOpRecord, SocketRecord, SyscallRecord, UnixRecord, UringRecord,
};

use crate::egress::EgressProtocol;

/// The part of every record that says who acted and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub slot: u16,
    pub phase: u8,
    pub instance: u32,
    pub tid: u32,
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBody {
    /// `id`: a syscall identity (`tracking::syscall_id`).
    Syscall {
        id: u32,
        action: u32,
    },
    Fork {
        child_pid: u32,
    },
    /// `status`: `PATH_*` bits.
    Exec {
        path: String,
        argv: Vec<String>,
        argv_truncated: bool,
        action: u32,
        status: u32,
    },
    Exit {
        status: u32,
    },
    Open {
        path: String,
        flags: u32,
        fmode: u32,
        via: u32,
        status: u32,
    },
    FileOp {
        op: u32,
        path: String,
        status: u32,
        path2: String,
        status2: u32,
    },
    Connect {
        op: u32,
        action: u32,
        /// As the kernel judged it, from the socket's protocol and type.
        protocol: EgressProtocol,
        addr: IpAddr,
        port: u16,
        /// The hash of the name a DNS answer bound `addr` to (`dns::name_hash`), 0 for none.
        name_hash: u64,
    },
    /// A DNS query (`op` `DNS_QUERY`) or answer (`DNS_ANSWER`) read from a packet.
    Dns {
        op: u32,
        action: u32,
        /// `DNS_*` bits.
        flags: u32,
        qtype: u16,
        rcode: u8,
        id: u16,
        name: String,
        server: IpAddr,
        server_port: u16,
        /// The A and AAAA answers, with their TTLs as answered.
        answers: Vec<(IpAddr, u32)>,
    },
    Unix {
        op: u32,
        action: u32,
        path: String,
        status: u32,
    },
    Socket {
        family: u32,
        sock_type: u32,
        protocol: u32,
        action: u32,
    },
    Migrate {
        moved_pid: u32,
        action: u32,
        cgroup_id: u64,
    },
    Uring {
        opcode: u32,
        action: u32,
    },
    Cgroup {
        cgroup_id: u64,
        level: u32,
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub header: RecordHeader,
    pub body: RecordBody,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than a header ({need} bytes)")]
    NoHeader { len: usize, need: usize },
    #[error("record kind {kind} is unknown ({len} bytes)")]
    UnknownKind { kind: u32, len: usize },
    #[error("record of kind {kind} has {len} bytes, expected {need}")]
    Short { kind: u32, len: usize, need: usize },
}

/// Read a `T` from the start of `bytes` after checking the length.
fn read<T: Copy>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short { kind, len: bytes.len(), need });
    }
    // SAFETY: the length is checked above; `T` is a plain `#[repr(C)]` integer struct
    // (agent_common), for which any bit pattern is valid; the read is unaligned-safe.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Text up to the first NUL, invalid UTF-8 replaced.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn header(h: &Header) -> RecordHeader {
    RecordHeader {
        ktime_ns: h.ktime_ns,
        cgroup_id: h.cgroup_id,
        slot: h.slot,
        phase: h.phase,
        instance: h.instance,
        tid: h.pid,
        pid: h.tgid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        comm: c_string(&h.comm),
    }
}

fn argv(args: &[u8], len: u32, argc: u32) -> Vec<String> {
    let args = &args[..(len as usize).min(args.len())];
    args.split(|&b| b == 0)
        .take(argc as usize)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let need = size_of::<Header>();
    if bytes.len() < need {
        return Err(DecodeError::NoHeader { len: bytes.len(), need });
    }
    let h: Header = read(bytes, 0)?;
    let kind = h.kind;
    let body = match kind {
        KIND_SYSCALL => {
            let r: SyscallRecord = read(bytes, kind)?;
            RecordBody::Syscall { id: r.id, action: r.action }
        }
        KIND_FORK => {
            let r: ForkRecord = read(bytes, kind)?;
            RecordBody::Fork { child_pid: r.child_tgid }
        }
        KIND_EXEC => {
            let r: ExecRecord = read(bytes, kind)?;
            RecordBody::Exec {
                path: c_string(&r.path),
                argv: argv(&r.args, r.args_len, r.argc),
                argv_truncated: r.args_truncated != 0,
                action: r.action,
                status: r.status,
            }
        }
        KIND_EXIT => {
            let r: ExitRecord = read(bytes, kind)?;
            RecordBody::Exit { status: r.code }
        }
        KIND_OPEN => {
            let r: OpenRecord = read(bytes, kind)?;
            RecordBody::Open {
                path: c_string(&r.path),
                flags: r.flags,
                fmode: r.fmode,
                via: r.via,
                status: r.status,
            }
        }
        KIND_PATH_OP => {
            let r: PathOpRecord = read(bytes, kind)?;
            RecordBody::FileOp {
                op: r.op,
                path: c_string(&r.path),
                status: r.status,
                path2: c_string(&r.path2),
                status2: r.status2,
            }
        }
        KIND_UNIX => {
            let r: UnixRecord = read(bytes, kind)?;
            RecordBody::Unix {
                op: r.op,
                action: r.action,
                path: c_string(&r.path),
                status: r.status,
            }
        }
        KIND_SOCKET => {
            let r: SocketRecord = read(bytes, kind)?;
            RecordBody::Socket {
                family: r.family,
                sock_type: r.sock_type,
                protocol: r.protocol,
                action: r.action,
            }
        }
        KIND_MIGRATE => {
            let r: MigrateRecord = read(bytes, kind)?;
            RecordBody::Migrate {
                moved_pid: r.moved_tgid,
                action: r.action,
                cgroup_id: r.dst_cgroup_id,
            }
        }
        KIND_URING => {
            let r: UringRecord = read(bytes, kind)?;
            RecordBody::Uring { opcode: r.opcode, action: r.action }
        }
        KIND_CONNECT => {
            let r: ConnectRecord = read(bytes, kind)?;
            let addr = if r.op == OP_CONNECT6 || r.op == OP_SENDMSG6 {
                IpAddr::V6(Ipv6Addr::from(r.addr))
            } else {
                IpAddr::V4(Ipv4Addr::new(r.addr[0], r.addr[1], r.addr[2], r.addr[3]))
            };
            RecordBody::Connect {
                op: r.op,
                action: r.action,
                protocol: EgressProtocol::of_socket(r.protocol, r.sock_type),
                addr,
                port: r.port,
                name_hash: r.name_hash,
            }
        }
        KIND_DNS => {
            let r: DnsRecord = read(bytes, kind)?;
            let count = (r.count as usize).min(DNS_MAX_ADDRS);
            RecordBody::Dns {
                op: r.op,
                action: r.action,
                flags: r.flags,
                qtype: r.qtype,
                rcode: r.rcode,
                id: r.id,
                name: c_string(&r.name),
                server: mapped(r.server),
                server_port: r.server_port,
                answers: (0..count).map(|i| (mapped(r.addrs[i]), r.ttls[i])).collect(),
            }
        }
        KIND_CGROUP => {
            let r: CgroupRecord = read(bytes, kind)?;
            RecordBody::Cgroup {
                cgroup_id: r.new_cgroup_id,
                level: r.level,
                path: c_string(&r.path),
            }
        }
        _ => return Err(DecodeError::UnknownKind { kind, len: bytes.len() }),
    };
    Ok(Record { header: header(&h), body })
}

/// An address as the kernel keeps it (IPv4 mapped into IPv6) as the address it is.
fn mapped(addr: [u8; 16]) -> IpAddr {
    Ipv6Addr::from(addr).to_canonical()
}

/// The bytes of a record as the probes write it (a plain `#[repr(C)]` value): for tests,
/// and for the synthetic records of `paddock-bench pipeline`.
pub fn record_bytes<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: reading the bytes of a plain `#[repr(C)]` value.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
}

/// Byte views of records, for tests here and in the pipeline.
/// The name of a kernel record kind, as the lost-record counts and metrics label it.
pub fn record_kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_SYSCALL => "syscall",
        KIND_FORK => "fork",
        KIND_EXEC => "exec",
        KIND_EXIT => "exit",
        KIND_OPEN => "open",
        KIND_CONNECT => "connect",
        KIND_CGROUP => "cgroup",
        KIND_PATH_OP => "file_op",
        KIND_UNIX => "unix",
        KIND_SOCKET => "socket",
        KIND_MIGRATE => "escape",
        KIND_URING => "io_uring",
        KIND_DNS => "dns",
        _ => "other",
    }
}

#[cfg(test)]
pub mod fixtures {
    use agent_common::event::{COMM_LEN, Header};

    pub fn header(kind: u32, slot: u16, instance: u32, pid: u32) -> Header {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"test");
        Header {
            ktime_ns: 1_000,
            cgroup_id: 77,
            kind,
            slot,
            phase: 1,
            _pad: 0,
            instance,
            pid,
            tgid: pid,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            comm,
        }
    }

    pub use super::record_bytes as bytes;
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
