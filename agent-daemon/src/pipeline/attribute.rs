//! Kernel records to attributed events: wall-clock time, parent pids the kernel could not
//! read, resolved relative paths, duplicates of "first seen" records dropped.
use std::collections::HashMap;

use agent_common::{
    event::{ACTION_DENIED, ACTION_KILLED, OP_CONNECT4, OP_CONNECT6},
    tracking::MAX_SYSCALLS,
};
use chrono::{DateTime, Utc};

use super::Investigation;
use crate::{
    events::{Action, Event, EventKind, exit_from_status},
    kernel::decode::{Record, RecordBody},
    syscalls,
};

/// What the pipeline keeps per running investigation to attribute its records.
pub struct Attribution {
    pub info: Investigation,
    seen: [u64; (MAX_SYSCALLS / 64) as usize],
    parents: HashMap<u32, u32>,
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

fn protocol_name(protocol: u32, sock_type: u32) -> String {
    match (protocol, sock_type) {
        (6, _) | (0, 1) => "tcp".into(),
        (17, _) | (0, 2) => "udp".into(),
        (1, _) | (58, _) => "icmp".into(),
        (p, _) => format!("ip-proto-{p}"),
    }
}

/// Resolve a relative open against the process's working directory or the directory fd,
/// as /proc still shows them. `None` when the path is absolute or cannot be resolved.
fn resolve(pid: u32, dirfd: i32, path: &str) -> Option<String> {
    if path.starts_with('/') || path.is_empty() {
        return None;
    }
    let base = if dirfd == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?
    } else {
        std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()?
    };
    Some(base.join(path).to_string_lossy().into_owned())
}

impl Attribution {
    pub fn new(info: Investigation) -> Attribution {
        Attribution {
            info,
            seen: [0; (MAX_SYSCALLS / 64) as usize],
            parents: HashMap::new(),
            events: 1,
        }
    }

    /// The event for `record`; `None` for a duplicate first use.
    pub fn event(&mut self, record: Record, clock: &mut Clock) -> Option<Event> {
        let Record { header: h, body } = record;
        if h.ppid != 0 {
            self.parents.insert(h.pid, h.ppid);
        }
        let ppid =
            if h.ppid != 0 { h.ppid } else { self.parents.get(&h.pid).copied().unwrap_or(0) };
        let kind = match body {
            RecordBody::Syscall { nr, action: a } => {
                let (word, bit) = ((nr / 64) as usize, 1u64 << (nr % 64));
                if self.seen.get(word).is_some_and(|w| w & bit != 0) && a == 0 {
                    return None;
                }
                if let Some(w) = self.seen.get_mut(word) {
                    *w |= bit;
                }
                EventKind::Syscall { nr, name: syscalls::name(nr).into_owned(), action: action(a) }
            }
            RecordBody::Fork { child_pid } => {
                self.parents.insert(child_pid, h.pid);
                EventKind::Fork { child_pid }
            }
            RecordBody::Exec { path, argv, argv_truncated, action: a } => {
                EventKind::Exec { path, argv, argv_truncated, action: action(a) }
            }
            RecordBody::Exit { status } => {
                self.parents.remove(&h.pid);
                let (exit_code, signal) = exit_from_status(status);
                EventKind::Exit { exit_code, signal }
            }
            RecordBody::Open { path, dirfd, flags } => {
                let write = flags & (libc::O_ACCMODE as u32) != 0
                    || flags & ((libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u32) != 0;
                match resolve(h.pid, dirfd, &path) {
                    Some(resolved) => {
                        EventKind::Open { path: resolved, requested: Some(path), write, flags }
                    }
                    None => EventKind::Open { path, requested: None, write, flags },
                }
            }
            RecordBody::Connect { op, action: a, sock_type, protocol, addr, port } => {
                EventKind::Connect {
                    op: if op == OP_CONNECT4 || op == OP_CONNECT6 { "connect" } else { "sendmsg" }
                        .into(),
                    protocol: protocol_name(protocol, sock_type),
                    address: addr,
                    port,
                    action: action(a),
                }
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
