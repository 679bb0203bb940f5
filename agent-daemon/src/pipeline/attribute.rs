//! Kernel records to attributed events: wall-clock time, parent pids the kernel could not
//! read, names for numbers, duplicates of "first seen" records dropped. Paths arrive as the
//! kernel named them; nothing is looked up again in /proc after the fact.
use std::collections::HashMap;

use agent_common::{
    event::{
        ACTION_DENIED, ACTION_KILLED, FMODE_WRITE, OP_CONNECT4, OP_CONNECT6, OP_LINK, OP_MKDIR,
        OP_MKNOD, OP_RENAME, OP_RMDIR, OP_SYMLINK, OP_TRUNCATE, OP_UNIX_CONNECT, OP_UNLINK,
        OPEN_VIA_URING, PATH_DELETED, PATH_FD, PATH_RELATIVE, PATH_RESOLVED, PATH_TRUNCATED,
        PATH_UNREADABLE,
    },
    tracking::SYSCALL_IDS,
};
use chrono::{DateTime, Utc};

use crate::lifecycle::Investigation;
use crate::{
    baseline::{SocketKind, uring},
    events::{Action, Event, EventKind, PathState, exit_from_status},
    kernel::decode::{Record, RecordBody},
    syscalls,
};

/// Parents remembered per investigation (pid to parent pid, for records whose parent the
/// kernel could not read). A process's entry goes with its exit; past this many (exits went
/// unseen: records throttled or lost), new processes are not remembered and their records
/// that lack a parent say 0 (unknown).
pub const MAX_PARENTS: usize = 32768;

/// What the pipeline keeps per running investigation to attribute its records.
pub struct Attribution {
    pub info: Investigation,
    seen: [u64; (SYSCALL_IDS / 64) as usize],
    uring_seen: u64,
    parents: HashMap<u32, u32>,
    /// Names its DNS queries and answers carried, for its connects.
    names: super::dns::Names,
    pub events: u64,
}

/// CLOCK_BOOTTIME nanoseconds (the kernel's timestamps) to UTC.
pub struct Clock {
    offset_ns: i128,
    uses: u32,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME),
            uses: 0,
        }
    }

    pub fn wall(&mut self, boot_ns: u64) -> DateTime<Utc> {
        self.uses += 1;
        if self.uses.is_multiple_of(1024) {
            *self = Clock { uses: self.uses, ..Clock::new() };
        }
        let ns = self.offset_ns + boot_ns as i128;
        DateTime::from_timestamp_nanos(ns.clamp(0, i64::MAX as i128) as i64)
    }
}

fn action(code: u32) -> Action {
    match code {
        ACTION_KILLED => Action::Killed,
        ACTION_DENIED => Action::Denied,
        _ => Action::None,
    }
}

fn path_state(status: u32) -> PathState {
    PathState {
        truncated: status & PATH_TRUNCATED != 0,
        unreadable: status & PATH_UNREADABLE != 0,
        deleted: status & PATH_DELETED != 0,
    }
}

fn file_op_name(op: u32) -> &'static str {
    match op {
        OP_RENAME => "rename",
        OP_LINK => "link",
        OP_SYMLINK => "symlink",
        OP_UNLINK => "unlink",
        OP_MKDIR => "mkdir",
        OP_TRUNCATE => "truncate",
        OP_RMDIR => "rmdir",
        OP_MKNOD => "mknod",
        _ => "file_op",
    }
}

impl Attribution {
    pub fn new(info: Investigation) -> Attribution {
        Attribution {
            info,
            seen: [0; (SYSCALL_IDS / 64) as usize],
            uring_seen: 0,
            parents: HashMap::new(),
            names: super::dns::Names::default(),
            events: 1,
        }
    }

    /// The event for `record`; `None` for a duplicate first use.
    pub fn event(&mut self, record: Record, clock: &mut Clock) -> Option<Event> {
        let Record { header: h, body } = record;
        if h.ppid != 0 {
            self.remember(h.pid, h.ppid);
        }
        let ppid =
            if h.ppid != 0 { h.ppid } else { self.parents.get(&h.pid).copied().unwrap_or(0) };
        let kind = match body {
            RecordBody::Syscall { id, action: a } => {
                let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
                if self.seen.get(word).is_some_and(|w| w & bit != 0) && a == 0 {
                    return None;
                }
                if let Some(w) = self.seen.get_mut(word) {
                    *w |= bit;
                }
                EventKind::Syscall {
                    nr: id,
                    name: syscalls::name(id).into_owned(),
                    action: action(a),
                }
            }
            RecordBody::Fork { child_pid } => {
                self.remember(child_pid, h.pid);
                EventKind::Fork { child_pid }
            }
            RecordBody::Exec { path, argv, argv_truncated, action: a, status } => EventKind::Exec {
                path,
                argv,
                argv_truncated,
                via_fd: status & PATH_FD != 0,
                resolved: status & PATH_RESOLVED != 0,
                state: path_state(status),
                action: action(a),
            },
            RecordBody::Exit { status } => {
                self.parents.remove(&h.pid);
                let (exit_code, signal) = exit_from_status(status);
                EventKind::Exit { exit_code, signal }
            }
            RecordBody::Open { path, flags, fmode, via, status } => {
                let write = fmode & FMODE_WRITE != 0
                    || flags & (libc::O_ACCMODE as u32) != 0
                    || flags & ((libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u32) != 0;
                EventKind::Open {
                    path,
                    write,
                    flags,
                    via: (via == OPEN_VIA_URING).then(|| "io_uring".to_owned()),
                    state: path_state(status),
                }
            }
            RecordBody::FileOp { op, path, status, path2, status2 } => EventKind::FileOp {
                op: file_op_name(op).into(),
                path,
                path2: (!path2.is_empty() || status2 != 0).then_some(path2),
                state: path_state(status | status2),
            },
            RecordBody::Connect { op, action: a, protocol, addr, port, name_hash } => {
                EventKind::Connect {
                    op: if op == OP_CONNECT4 || op == OP_CONNECT6 { "connect" } else { "sendmsg" }
                        .into(),
                    protocol,
                    address: addr,
                    port,
                    name: self.names.of(name_hash),
                    action: action(a),
                }
            }
            RecordBody::Dns {
                op,
                action: a,
                flags,
                qtype,
                rcode,
                name,
                server,
                server_port,
                answers,
                ..
            } => super::dns::event(
                &mut self.names,
                super::dns::DnsFields {
                    op,
                    flags,
                    qtype,
                    rcode,
                    name,
                    server,
                    server_port,
                    answers,
                    action: action(a),
                },
            ),
            RecordBody::Unix { op, action: a, path, status } => EventKind::Unix {
                op: if op == OP_UNIX_CONNECT { "connect" } else { "sendmsg" }.into(),
                path,
                relative: status & PATH_RELATIVE != 0,
                action: action(a),
            },
            RecordBody::Socket { family, sock_type, protocol, action: a } => EventKind::Socket {
                socket: SocketKind {
                    family: family as u16,
                    sock_type: sock_type as u16,
                    protocol: protocol as u16,
                }
                .to_string(),
                action: action(a),
            },
            RecordBody::Uring { opcode, action: a } => {
                let bit = 1u64 << opcode.min(uring::OTHER);
                if self.uring_seen & bit != 0 && a == 0 {
                    return None;
                }
                self.uring_seen |= bit;
                EventKind::IoUring { opcode, name: uring::name(opcode).into(), action: action(a) }
            }
            RecordBody::Migrate { moved_pid, action: a, cgroup_id } => {
                EventKind::Escape { moved_pid, cgroup: cgroup_id, action: action(a) }
            }
            RecordBody::Cgroup { cgroup_id, path, .. } => EventKind::Cgroup { cgroup_id, path },
        };
        self.events += 1;
        Some(Event {
            time: clock.wall(h.ktime_ns),
            investigation: self.info.id.clone(),
            phase: self.info.phase,
            instance: self.info.instance,
            pid: h.pid,
            tid: (h.tid != h.pid).then_some(h.tid),
            ppid,
            uid: h.uid,
            comm: h.comm,
            kind,
        })
    }

    fn remember(&mut self, pid: u32, ppid: u32) {
        if self.parents.len() < MAX_PARENTS || self.parents.contains_key(&pid) {
            self.parents.insert(pid, ppid);
        }
    }

    /// An event of the investigation itself (no process).
    pub fn lifecycle_event(&self, time: DateTime<Utc>, kind: EventKind) -> Event {
        Event {
            time,
            investigation: self.info.id.clone(),
            phase: self.info.phase,
            instance: self.info.instance,
            pid: 0,
            tid: None,
            ppid: 0,
            uid: 0,
            comm: String::new(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::decode::RecordHeader;

    fn info() -> Investigation {
        Investigation {
            slot: 1,
            instance: 1,
            id: "inv-1".parse().unwrap(),
            phase: crate::identity::Phase::Shadow,
            agent: "local".into(),
            source: "local",
            pod: None,
            cgroup: "/paddock/inv-1".into(),
            dir: "/sys/fs/cgroup/paddock/inv-1".into(),
            started: Utc::now(),
            resumed: false,
            doomed: false,
        }
    }

    fn fork(pid: u32, child_pid: u32) -> Record {
        let header = RecordHeader {
            ktime_ns: 1,
            cgroup_id: 7,
            slot: 1,
            phase: 0,
            instance: 1,
            tid: pid,
            pid,
            ppid: 0,
            uid: 0,
            gid: 0,
            comm: "bomb".into(),
        };
        Record { header, body: RecordBody::Fork { child_pid } }
    }

    #[test]
    fn parents_are_bounded_when_exits_go_unseen() {
        let mut a = Attribution::new(info());
        let mut clock = Clock::new();
        for child in 0..(MAX_PARENTS as u32 + 500) {
            a.event(fork(1, 10 + child), &mut clock);
        }
        assert_eq!(a.parents.len(), MAX_PARENTS);
        assert_eq!(a.parents.get(&10), Some(&1), "the first are remembered");
    }
}
