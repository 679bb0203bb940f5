//! Kernel records to attributed events: which investigation, which phase, wall-clock time,
//! parent pids the kernel could not read, resolved relative paths; duplicates of "first
//! seen" records dropped. Lifecycle messages (begin, end) arrive on their own channel and
//! are always taken before records, so a record never outruns its investigation's begin.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use agent_common::{
    event::{ACTION_DENIED, ACTION_KILLED, OP_CONNECT4, OP_CONNECT6},
    tracking::MAX_SYSCALLS,
};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::{
    events::{Action, Event, EventKind, exit_from_status},
    hub::Hub,
    identity::{InvestigationId, Phase},
    kernel::{
        SlotCounters,
        decode::{Record, RecordBody},
        reader::FromKernel,
    },
    syscalls,
};

/// An investigation as the pipeline needs to know it.
#[derive(Debug, Clone)]
pub struct Investigation {
    pub slot: u16,
    pub instance: u32,
    pub id: InvestigationId,
    pub phase: Phase,
    pub source: &'static str,
    pub cgroup: String,
    pub started: DateTime<Utc>,
}

pub enum Lifecycle {
    Begin(Investigation),
    /// All records of the instance have been handled (the caller flushed first).
    End {
        slot: u16,
        instance: u32,
        counters: SlotCounters,
        done: oneshot::Sender<()>,
    },
}

#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Records whose slot held no investigation (or another instance of it).
    pub unattributed: AtomicU64,
    /// "First seen" records already seen (two CPUs raced in the kernel).
    pub duplicates: AtomicU64,
}

struct Active {
    info: Investigation,
    seen: [u64; (MAX_SYSCALLS / 64) as usize],
    parents: HashMap<u32, u32>,
    events: u64,
}

/// CLOCK_BOOTTIME nanoseconds (the kernel's timestamps) to UTC.
struct Clock {
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
    fn new() -> Clock {
        Clock {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME),
            uses: 0,
        }
    }

    fn wall(&mut self, boot_ns: u64) -> DateTime<Utc> {
        self.uses += 1;
        if self.uses.is_multiple_of(1024) {
            *self = Clock { uses: self.uses, ..Clock::new() };
        }
        let ns = self.offset_ns + boot_ns as i128;
        DateTime::from_timestamp_nanos(ns.clamp(0, i64::MAX as i128) as i64)
    }
}

pub struct Pipeline {
    records: mpsc::Receiver<FromKernel>,
    lifecycle: mpsc::Receiver<Lifecycle>,
    hub: Arc<Hub>,
    stats: Arc<PipelineStats>,
    active: HashMap<u16, Active>,
    clock: Clock,
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

impl Pipeline {
    pub fn new(
        records: mpsc::Receiver<FromKernel>,
        lifecycle: mpsc::Receiver<Lifecycle>,
        hub: Arc<Hub>,
        stats: Arc<PipelineStats>,
    ) -> Pipeline {
        Pipeline { records, lifecycle, hub, stats, active: HashMap::new(), clock: Clock::new() }
    }

    /// Run until both inputs are closed.
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                biased;
                Some(message) = self.lifecycle.recv() => self.on_lifecycle(message),
                Some(message) = self.records.recv() => match message {
                    FromKernel::Record(record) => self.on_record(record),
                    FromKernel::Barrier(ack) => { let _ = ack.send(()); }
                },
                else => return,
            }
        }
    }

    fn on_lifecycle(&mut self, message: Lifecycle) {
        match message {
            Lifecycle::Begin(info) => {
                let event = Event {
                    time: info.started,
                    investigation: info.id.clone(),
                    phase: info.phase,
                    pid: 0,
                    tid: None,
                    ppid: 0,
                    uid: 0,
                    comm: String::new(),
                    kind: EventKind::Started {
                        source: info.source.into(),
                        cgroup: info.cgroup.clone(),
                    },
                };
                self.active.insert(
                    info.slot,
                    Active { info, seen: [0; 8], parents: HashMap::new(), events: 1 },
                );
                self.hub.publish(event);
            }
            Lifecycle::End { slot, instance, counters, done } => {
                if let Some(active) =
                    self.active.remove(&slot).filter(|a| a.info.instance == instance)
                {
                    let syscalls: BTreeMap<String, u64> = counters
                        .syscalls
                        .iter()
                        .map(|(nr, count)| (syscalls::name(*nr).into_owned(), *count))
                        .collect();
                    self.hub.publish(Event {
                        time: Utc::now(),
                        investigation: active.info.id,
                        phase: active.info.phase,
                        pid: 0,
                        tid: None,
                        ppid: 0,
                        uid: 0,
                        comm: String::new(),
                        kind: EventKind::Ended {
                            syscalls,
                            egress_bytes: counters.egress_bytes,
                            egress_packets: counters.egress_packets,
                            events: active.events + 1,
                        },
                    });
                }
                let _ = done.send(());
            }
        }
    }

    fn on_record(&mut self, record: Record) {
        let Record { header: h, body } = record;
        let Some(active) = self.active.get_mut(&h.slot).filter(|a| a.info.instance == h.instance)
        else {
            self.stats.unattributed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if h.ppid != 0 {
            active.parents.insert(h.pid, h.ppid);
        }
        let ppid =
            if h.ppid != 0 { h.ppid } else { active.parents.get(&h.pid).copied().unwrap_or(0) };
        let kind = match body {
            RecordBody::Syscall { nr, action: a } => {
                let (word, bit) = ((nr / 64) as usize, 1u64 << (nr % 64));
                if active.seen.get(word).is_some_and(|w| w & bit != 0) && a == 0 {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if let Some(w) = active.seen.get_mut(word) {
                    *w |= bit;
                }
                EventKind::Syscall { nr, name: syscalls::name(nr).into_owned(), action: action(a) }
            }
            RecordBody::Fork { child_pid } => {
                active.parents.insert(child_pid, h.pid);
                EventKind::Fork { child_pid }
            }
            RecordBody::Exec { path, argv, argv_truncated, action: a } => {
                EventKind::Exec { path, argv, argv_truncated, action: action(a) }
            }
            RecordBody::Exit { status } => {
                active.parents.remove(&h.pid);
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
        active.events += 1;
        let event = Event {
            time: self.clock.wall(h.ktime_ns),
            investigation: active.info.id.clone(),
            phase: active.info.phase,
            pid: h.pid,
            tid: (h.tid != h.pid).then_some(h.tid),
            ppid,
            uid: h.uid,
            comm: h.comm,
            kind,
        };
        self.hub.publish(event);
    }
}
