//! The typed, attributed events every consumer sees: the event stream, and later the audit
//! store, metrics and alerts. JSON is one object per event with a `kind` tag; `text` writes
//! them for people.
mod text;

use std::{collections::BTreeMap, net::IpAddr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    baseline::{DeviationKind, Mode},
    egress::EgressProtocol,
    identity::{InvestigationId, Phase},
    outcome::Outcome,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: DateTime<Utc>,
    pub investigation: InvestigationId,
    pub phase: Phase,
    /// The daemon's number for this run of the investigation: an id may run more than once
    /// (a retried Job, a re-run), each run has its own instance.
    #[serde(default)]
    pub instance: u32,
    /// Process id (thread-group id) of the acting process; 0 for lifecycle events.
    pub pid: u32,
    /// Thread id, when it differs from `pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    /// Parent process id; 0 where unknown.
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The pod an investigation runs in: what a cluster-wide audit query names it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// The Job that owns it, when a Job does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// What the kernel did about an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    None,
    Killed,
    Denied,
}

impl Action {
    pub fn is_none(&self) -> bool {
        *self == Action::None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The investigation is tracked from here on.
    Started {
        source: String,
        cgroup: String,
        /// The pod it runs in, for a Kubernetes investigation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodRef>,
    },
    /// A daemon adopted the investigation, running since an earlier daemon stopped: the
    /// kernel went on tracking and enforcing meanwhile. `doomed` when the kernel had
    /// refused or killed something of it in the meantime.
    Resumed {
        source: String,
        cgroup: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodRef>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        doomed: bool,
    },
    /// First use of a syscall by the investigation.
    Syscall {
        nr: u32,
        name: String,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    /// A new process.
    Fork { child_pid: u32 },
    Exec {
        /// What was executed: the absolute path it was run by, or (with `via_fd` or
        /// `resolved`) the file as the kernel names it.
        path: String,
        argv: Vec<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        argv_truncated: bool,
        /// Run through a file descriptor (`/dev/fd/N`, `/proc/self/fd/N`, `fexecve`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        via_fd: bool,
        /// A relative path, anchored at the working directory by the kernel.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resolved: bool,
        #[serde(default, flatten)]
        state: PathState,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    Exit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// A file opened: `path` is the file the kernel opened.
    Open {
        path: String,
        write: bool,
        flags: u32,
        /// `io_uring` when opened through io_uring (the path is then the one the kernel
        /// was asked to open).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<String>,
        #[serde(default, flatten)]
        state: PathState,
    },
    /// A change to the file system by path: `rename`, `link`, `symlink`, `unlink`, `rmdir`,
    /// `mkdir`, `mknod`, `truncate`. `path` is what is written (for a symlink, the link);
    /// `path2` the other name (a rename's or link's new name, a symlink's target text).
    FileOp {
        op: String,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path2: Option<String>,
        #[serde(default, flatten)]
        state: PathState,
    },
    Connect {
        /// `connect` or `sendmsg`.
        op: String,
        /// As judged: `tcp` (MPTCP too), `udp`, `icmp`, `ip-proto-N`.
        protocol: EgressProtocol,
        address: IpAddr,
        port: u16,
        /// The name a DNS answer of this investigation bound the address to, when the call
        /// was judged (the kernel judged it by that name too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    /// A DNS query of the investigation, or an answer to it, as the kernel read it from the
    /// packet (before the answer reached the process).
    Dns {
        /// `query` or `answer`.
        op: String,
        /// The name asked for, lowercase.
        name: String,
        /// `A`, `AAAA`, `CNAME`... or the type's number.
        qtype: String,
        /// The resolver: where a query went, where an answer came from.
        server: IpAddr,
        port: u16,
        /// An answer's response code (`NOERROR`, `NXDOMAIN`...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rcode: Option<String>,
        /// An answer's A and AAAA addresses, bound to `name`, with the TTLs answered.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        answers: Vec<DnsAnswer>,
        /// What paddock could not vouch for: `malformed` (not readable as one question),
        /// `unsolicited` (no query of that socket asked it: nothing bound), `cut` (longer
        /// than paddock reads), `more` (more addresses than reported).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    /// A connect or send to a unix socket (`@name` for an abstract one).
    Unix {
        op: String,
        path: String,
        /// A relative path, judged as written.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        relative: bool,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    /// A socket of a kind judged by its kind (raw, ICMP, packet, netlink...).
    Socket {
        socket: String,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    /// First use of an io_uring operation.
    IoUring {
        opcode: u32,
        name: String,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    /// A process of the investigation moved out of its cgroups (`cgroup` is where to). It
    /// stays tracked and attributed.
    Escape {
        moved_pid: u32,
        cgroup: u64,
        #[serde(default, skip_serializing_if = "Action::is_none")]
        action: Action,
    },
    /// A cgroup made inside the investigation, tracked as it was made.
    Cgroup { cgroup_id: u64, path: String },
    /// A deviation from the phase's baseline, and what was done about it.
    Verdict {
        deviation: DeviationKind,
        /// What was done (`/usr/bin/curl`, `tcp 10.0.0.9 port 22`, `ptrace`).
        subject: String,
        /// Why it is outside the baseline.
        reason: String,
        /// The phase's mode when judged.
        mode: Mode,
        /// `flagged`, or `killed` (enforce mode).
        outcome: Outcome,
        baseline_revision: u64,
        /// When the deviating action happened; the event's `time` is when it was judged.
        action_time: DateTime<Utc>,
    },
    /// The investigation's phase learns, and one of its baseline's sets is at its cap
    /// (`[baseline]`): `subject`, and anything else new in that set, is not learned. Said
    /// once per investigation and set.
    BaselineCapped {
        /// The set (`execs`, `egress`, ...).
        set: String,
        cap: u64,
        /// The first entry not learned.
        subject: String,
    },
    /// The last process is gone and every event has been read.
    Ended {
        /// Calls per syscall name, as the kernel counted them.
        syscalls: BTreeMap<String, u64>,
        egress_bytes: u64,
        egress_packets: u64,
        events: u64,
        /// `ok`, `flagged` or `killed`.
        outcome: Outcome,
        /// Why it was killed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When its last process was gone.
        emptied_at: DateTime<Utc>,
        /// Records of it the kernel could not deliver: the ring buffer was full (`lost`),
        /// or it was over its rate (`throttled`).
        #[serde(default, skip_serializing_if = "is_zero")]
        lost_records: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        throttled_records: u64,
        /// Processes or cgroups the kernel left untracked (quota or map full).
        #[serde(default, skip_serializing_if = "is_zero")]
        untracked: u64,
        /// Moves of its processes out of its cgroups.
        #[serde(default, skip_serializing_if = "is_zero")]
        escapes: u64,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the kernel could not do with a path: read it whole, or at all; and whether the
/// file had no name any more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathState {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// One address of a DNS answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    pub address: IpAddr,
    pub ttl: u32,
}

impl PathState {
    /// Whether the path can be judged.
    pub fn judgeable(&self) -> bool {
        !self.truncated && !self.unreadable
    }
}

/// The `kind` tag of every event, as serde writes it and the audit store keeps it.
pub const EVENT_KINDS: [&str; 18] = [
    "started",
    "resumed",
    "syscall",
    "fork",
    "exec",
    "exit",
    "open",
    "file_op",
    "connect",
    "dns",
    "unix",
    "socket",
    "io_uring",
    "escape",
    "cgroup",
    "verdict",
    "baseline_capped",
    "ended",
];

impl EventKind {
    /// The `kind` tag of this event (a test checks it is the serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => "started",
            EventKind::Resumed { .. } => "resumed",
            EventKind::Syscall { .. } => "syscall",
            EventKind::Fork { .. } => "fork",
            EventKind::Exec { .. } => "exec",
            EventKind::Exit { .. } => "exit",
            EventKind::Open { .. } => "open",
            EventKind::FileOp { .. } => "file_op",
            EventKind::Connect { .. } => "connect",
            EventKind::Dns { .. } => "dns",
            EventKind::Unix { .. } => "unix",
            EventKind::Socket { .. } => "socket",
            EventKind::IoUring { .. } => "io_uring",
            EventKind::Escape { .. } => "escape",
            EventKind::Cgroup { .. } => "cgroup",
            EventKind::Verdict { .. } => "verdict",
            EventKind::BaselineCapped { .. } => "baseline_capped",
            EventKind::Ended { .. } => "ended",
        }
    }
}

/// Exit code or signal from a wait status (`task_struct.exit_code`).
pub fn exit_from_status(status: u32) -> (Option<i32>, Option<i32>) {
    let signal = (status & 0x7f) as i32;
    if signal == 0 { (Some(((status >> 8) & 0xff) as i32), None) } else { (None, Some(signal)) }
}

#[cfg(test)]
mod tests;
