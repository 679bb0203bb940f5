//! One stored event as one flat JSON object, its fields named after the OpenTelemetry
//! semantic conventions where one fits (`process.pid`, `k8s.pod.name`, `file.path`,
//! `network.peer.address`, ...) and under `paddock.` where none does. The table of names is
//! `docs/log-export.md`; every event kind is mapped by one `match` without a catch-all, so a
//! new kind does not compile until it is mapped.
//!
//! The top-level log record fields use the names of the OTLP `LogRecord` (`time_unix_nano`,
//! `severity_text`, `severity_number`, `event_name`, `body`), plus `time` in RFC 3339 for
//! people and tools that want a date. No key is a dotted prefix of another (`a.b` and
//! `a.b.c` never both occur), so a pipeline that nests dotted keys never meets a clash.
use std::{collections::HashMap, fmt::Display};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{
    Serialize, Serializer,
    ser::{Error as _, SerializeMap},
};

use crate::{
    events::{Action, Event, EventKind, PathState, PodRef},
    sinks::audit::{query::InvestigationRow, read::StoredEvent},
};

/// The log severities paddock uses, with their OTLP `SeverityNumber`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub const fn text(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }

    pub const fn number(self) -> u8 {
        match self {
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
        }
    }
}

fn of_action(action: Action) -> Severity {
    match action {
        Action::None => Severity::Info,
        Action::Denied => Severity::Warn,
        Action::Killed => Severity::Error,
    }
}

fn of_outcome(outcome: &str) -> Severity {
    match outcome {
        "killed" => Severity::Error,
        "flagged" => Severity::Warn,
        _ => Severity::Info,
    }
}

/// How serious an event is: a kill is an error; a verdict that flags, a refusal, an escape
/// or a baseline at its cap a warning; everything else information.
pub fn severity(kind: &EventKind) -> Severity {
    match kind {
        EventKind::Started { .. }
        | EventKind::Fork { .. }
        | EventKind::Exit { .. }
        | EventKind::Open { .. }
        | EventKind::FileOp { .. }
        | EventKind::Cgroup { .. } => Severity::Info,
        EventKind::Resumed { doomed, .. } => {
            if *doomed {
                Severity::Warn
            } else {
                Severity::Info
            }
        }
        EventKind::Syscall { action, .. }
        | EventKind::Exec { action, .. }
        | EventKind::Connect { action, .. }
        | EventKind::Dns { action, .. }
        | EventKind::Unix { action, .. }
        | EventKind::Socket { action, .. }
        | EventKind::IoUring { action, .. } => of_action(*action),
        EventKind::Escape { action, .. } => of_action(*action).max_warn(),
        EventKind::BaselineCapped { .. } => Severity::Warn,
        EventKind::Verdict { outcome, .. } => of_outcome(outcome.as_str()).max_warn(),
        EventKind::Ended { outcome, .. } => of_outcome(outcome.as_str()),
    }
}

impl Severity {
    /// At least a warning.
    fn max_warn(self) -> Severity {
        if self == Severity::Info { Severity::Warn } else { self }
    }
}

/// One stored event, ready to serialise as its OpenTelemetry-named object.
pub struct OtelRecord<'a> {
    pub stored: &'a StoredEvent,
    /// The run the event belongs to, when known: its pod names a Kubernetes run.
    pub run: Option<&'a InvestigationRow>,
    /// This node's name (`k8s.node.name`).
    pub node: &'a str,
    /// The store's identity (`paddock.store_id`).
    pub store_id: &'a str,
}

impl<'a> OtelRecord<'a> {
    pub fn new(
        stored: &'a StoredEvent,
        runs: &'a HashMap<i64, InvestigationRow>,
        node: &'a str,
        store_id: &'a str,
    ) -> Self {
        OtelRecord { stored, run: runs.get(&stored.run), node, store_id }
    }

    /// The pod: the event's own (`started`, `resumed`), else its run's.
    fn pod(&self) -> Option<&'a PodRef> {
        match &self.stored.event.kind {
            EventKind::Started { pod: Some(pod), .. }
            | EventKind::Resumed { pod: Some(pod), .. } => Some(pod),
            _ => self.run.and_then(|r| r.pod.as_ref()),
        }
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Writes the entries of one object; skips the empty and the absent.
struct Fields<M> {
    map: M,
}

impl<M: SerializeMap> Fields<M> {
    fn put<V: Serialize + ?Sized>(&mut self, key: &str, value: &V) -> Result<(), M::Error> {
        self.map.serialize_entry(key, value)
    }

    fn put_some<V: Serialize>(&mut self, key: &str, value: Option<V>) -> Result<(), M::Error> {
        match value {
            Some(v) => self.map.serialize_entry(key, &v),
            None => Ok(()),
        }
    }

    fn flag(&mut self, key: &str, value: bool) -> Result<(), M::Error> {
        if value { self.map.serialize_entry(key, &true) } else { Ok(()) }
    }

    fn display(&mut self, key: &str, value: &dyn Display) -> Result<(), M::Error> {
        self.map.serialize_entry(key, &value.to_string())
    }

    fn action(&mut self, action: Action) -> Result<(), M::Error> {
        match action {
            Action::None => Ok(()),
            Action::Killed => self.put("paddock.action", "killed"),
            Action::Denied => self.put("paddock.action", "denied"),
        }
    }

    fn path_state(&mut self, state: &PathState) -> Result<(), M::Error> {
        self.flag("paddock.path.truncated", state.truncated)?;
        self.flag("paddock.path.unreadable", state.unreadable)?;
        self.flag("paddock.path.deleted", state.deleted)
    }

    fn cgroup_of(&mut self, source: &str, cgroup: &str) -> Result<(), M::Error> {
        self.put("paddock.source", source)?;
        self.put("paddock.cgroup.path", cgroup)
    }
}

/// `network.transport` for paddock's protocol names, where the convention has one.
fn transport(protocol: &str) -> Option<&'static str> {
    match protocol {
        "tcp" => Some("tcp"),
        "udp" => Some("udp"),
        _ => None,
    }
}

fn network_type(address: &std::net::IpAddr) -> &'static str {
    if address.is_ipv4() { "ipv4" } else { "ipv6" }
}

impl Serialize for OtelRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e: &Event = &self.stored.event;
        let mut f = Fields { map: serializer.serialize_map(None)? };
        let nanos = e
            .time
            .timestamp_nanos_opt()
            .ok_or_else(|| S::Error::custom("event time outside 1677 to 2262"))?;
        let severity = severity(&e.kind);
        f.put("time", &rfc3339(&e.time))?;
        f.put("time_unix_nano", &nanos)?;
        f.put("severity_text", severity.text())?;
        f.put("severity_number", &severity.number())?;
        f.display("event_name", &format_args!("paddock.{}", e.kind.name()))?;
        f.display("body", e)?;
        f.put("k8s.node.name", self.node)?;
        if let Some(pod) = self.pod() {
            f.put("k8s.namespace.name", &pod.namespace)?;
            f.put("k8s.pod.name", &pod.name)?;
            f.put_some("k8s.job.name", pod.job.as_deref())?;
        }
        if e.pid != 0 {
            f.put("process.pid", &e.pid)?;
            f.put_some("thread.id", e.tid)?;
            f.put("process.real_user.id", &e.uid)?;
            if !e.comm.is_empty() {
                f.put("process.executable.name", &e.comm)?;
            }
        }
        if e.ppid != 0 {
            f.put("process.parent_pid", &e.ppid)?;
        }
        f.put("paddock.investigation.id", e.investigation.as_str())?;
        f.put("paddock.trust_phase", e.phase.as_str())?;
        f.put("paddock.instance", &e.instance)?;
        f.put("paddock.run", &self.stored.run)?;
        f.put("paddock.seq", &self.stored.seq)?;
        f.put("paddock.store_id", self.store_id)?;
        kind_fields(&mut f, e)?;
        f.map.end()
    }
}

/// The fields of each kind. No `_` arm: a new kind must be mapped here (and in the table of
/// `docs/log-export.md`).
fn kind_fields<M: SerializeMap>(f: &mut Fields<M>, e: &Event) -> Result<(), M::Error> {
    match &e.kind {
        EventKind::Started { source, cgroup, pod: _ } => f.cgroup_of(source, cgroup),
        EventKind::Resumed { source, cgroup, pod: _, doomed } => {
            f.cgroup_of(source, cgroup)?;
            f.flag("paddock.doomed", *doomed)
        }
        EventKind::Syscall { nr, name, action } => {
            f.put("paddock.syscall.name", name)?;
            f.put("paddock.syscall.nr", nr)?;
            f.action(*action)
        }
        EventKind::Fork { child_pid } => f.put("paddock.child_pid", child_pid),
        EventKind::Exec { path, argv, argv_truncated, via_fd, resolved, state, action } => {
            f.put("process.executable.path", path)?;
            f.put("process.command_args", argv)?;
            f.put("process.args_count", &argv.len())?;
            f.flag("paddock.argv_truncated", *argv_truncated)?;
            f.flag("paddock.via_fd", *via_fd)?;
            f.flag("paddock.path.resolved", *resolved)?;
            f.path_state(state)?;
            f.action(*action)
        }
        EventKind::Exit { exit_code, signal } => {
            f.put_some("process.exit.code", *exit_code)?;
            f.put_some("paddock.signal", *signal)
        }
        EventKind::Open { path, write, flags, via, state } => {
            f.put("file.path", path)?;
            f.put("paddock.open.write", write)?;
            f.put("paddock.open.flags", flags)?;
            f.put_some("paddock.via", via.as_deref())?;
            f.path_state(state)
        }
        EventKind::FileOp { op, path, path2, state } => {
            f.put("paddock.file.op", op)?;
            f.put("file.path", path)?;
            match (op.as_str(), path2) {
                ("symlink", Some(target)) => f.put("file.symbolic_link.target_path", target)?,
                (_, other) => f.put_some("paddock.file.path2", other.as_deref())?,
            }
            f.path_state(state)
        }
        EventKind::Connect { op, protocol, address, port, name, action } => {
            f.put("paddock.network.op", op)?;
            f.put("paddock.network.protocol", protocol)?;
            f.put_some("network.transport", transport(&protocol.to_string()))?;
            f.put("network.type", network_type(address))?;
            f.display("network.peer.address", address)?;
            f.put("network.peer.port", port)?;
            match name {
                Some(name) => f.put("server.address", name)?,
                None => f.display("server.address", address)?,
            }
            f.put("server.port", port)?;
            f.action(*action)
        }
        EventKind::Dns { op, name, qtype, server, port, rcode, answers, notes, action } => {
            f.put("paddock.dns.op", op)?;
            f.put("dns.question.name", name)?;
            f.put("paddock.dns.qtype", qtype)?;
            f.put("network.type", network_type(server))?;
            f.display("network.peer.address", server)?;
            f.put("network.peer.port", port)?;
            f.put_some("paddock.dns.rcode", rcode.as_deref())?;
            if !answers.is_empty() {
                let addresses: Vec<String> =
                    answers.iter().map(|a| a.address.to_string()).collect();
                let ttls: Vec<u32> = answers.iter().map(|a| a.ttl).collect();
                f.put("dns.answers", &addresses)?;
                f.put("paddock.dns.ttls", &ttls)?;
            }
            if !notes.is_empty() {
                f.put("paddock.dns.notes", notes)?;
            }
            f.action(*action)
        }
        EventKind::Unix { op, path, relative, action } => {
            f.put("paddock.network.op", op)?;
            f.put("network.transport", "unix")?;
            f.put("network.peer.address", path)?;
            f.flag("paddock.unix.relative", *relative)?;
            f.action(*action)
        }
        EventKind::Socket { socket, action } => {
            f.put("paddock.socket", socket)?;
            f.action(*action)
        }
        EventKind::IoUring { opcode, name, action } => {
            f.put("paddock.io_uring.name", name)?;
            f.put("paddock.io_uring.opcode", opcode)?;
            f.action(*action)
        }
        EventKind::Escape { moved_pid, cgroup, action } => {
            f.put("paddock.escape.pid", moved_pid)?;
            f.put("paddock.escape.cgroup_id", cgroup)?;
            f.action(*action)
        }
        EventKind::Cgroup { cgroup_id, path } => {
            f.put("paddock.cgroup.id", cgroup_id)?;
            f.put("paddock.cgroup.path", path)
        }
        EventKind::Verdict {
            deviation,
            subject,
            reason,
            mode,
            outcome,
            baseline_revision,
            action_time,
        } => {
            f.put("paddock.deviation", deviation.as_str())?;
            f.put("paddock.subject", subject)?;
            f.put("paddock.reason", reason)?;
            f.put("paddock.mode", mode.as_str())?;
            f.put("paddock.outcome", outcome)?;
            f.put("paddock.baseline.revision", baseline_revision)?;
            f.put("paddock.action_time", &rfc3339(action_time))
        }
        EventKind::BaselineCapped { set, cap, subject } => {
            f.put("paddock.baseline.set", set)?;
            f.put("paddock.baseline.cap", cap)?;
            f.put("paddock.subject", subject)
        }
        EventKind::Ended {
            syscalls,
            egress_bytes,
            egress_packets,
            events,
            outcome,
            reason,
            emptied_at,
            lost_records,
            throttled_records,
            untracked,
            escapes,
        } => {
            f.put("paddock.outcome", outcome)?;
            f.put_some("paddock.reason", reason.as_deref())?;
            f.put("paddock.events", events)?;
            f.put("paddock.egress.bytes", egress_bytes)?;
            f.put("paddock.egress.packets", egress_packets)?;
            f.put("paddock.emptied_at", &rfc3339(emptied_at))?;
            f.put("paddock.lost_records", lost_records)?;
            f.put("paddock.throttled_records", throttled_records)?;
            f.put("paddock.untracked", untracked)?;
            f.put("paddock.escapes", escapes)?;
            for (name, calls) in syscalls {
                f.put(&format!("paddock.syscalls.{name}"), calls)?;
            }
            Ok(())
        }
    }
}

/// Append the event's object and a newline to `out`.
pub fn write_line(out: &mut Vec<u8>, record: &OtelRecord<'_>) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.push(b'\n');
    Ok(())
}
