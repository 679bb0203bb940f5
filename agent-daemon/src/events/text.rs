//! Events as one line for people (`paddock events`, the daemon's log).
use std::fmt;

use chrono::SecondsFormat;

use super::{Action, Event, EventKind};

impl fmt::Display for Event {
    /// One line for people: time, investigation, phase, process, then what happened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} [{}] ",
            self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.investigation,
            self.phase
        )?;
        if self.pid != 0 {
            write!(f, "{}({}) ", self.comm, self.pid)?;
        }
        let action = |a: &Action| match a {
            Action::None => "",
            Action::Killed => " [KILLED]",
            Action::Denied => " [DENIED]",
        };
        match &self.kind {
            EventKind::Started { source, cgroup, pod } => {
                write!(f, "started ({source}) cgroup {cgroup}")?;
                match pod {
                    Some(p) => write!(f, " pod {}/{}", p.namespace, p.name),
                    None => Ok(()),
                }
            }
            EventKind::Resumed { source, cgroup, doomed, .. } => {
                let doomed = if *doomed { "; the kernel doomed it meanwhile" } else { "" };
                write!(
                    f,
                    "resumed ({source}) cgroup {cgroup}: adopted after a daemon restart{doomed}"
                )
            }
            EventKind::Syscall { name, nr, action: a } => {
                write!(f, "syscall {name} ({nr}) first use{}", action(a))
            }
            EventKind::Fork { child_pid } => write!(f, "fork -> {child_pid}"),
            EventKind::Exec { path, argv, action: a, via_fd, .. } => {
                let fd = if *via_fd { " (through a descriptor)" } else { "" };
                write!(f, "exec {path}{fd} {:?}{}", argv, action(a))
            }
            EventKind::Exit { exit_code: Some(code), .. } => write!(f, "exit {code}"),
            EventKind::Exit { signal, .. } => write!(f, "killed by signal {}", signal.unwrap_or(0)),
            EventKind::Open { path, write: true, .. } => write!(f, "open for write {path}"),
            EventKind::Open { path, .. } => write!(f, "open {path}"),
            EventKind::FileOp { op, path, path2: Some(other), .. } => {
                write!(f, "{op} {path} {other}")
            }
            EventKind::FileOp { op, path, .. } => write!(f, "{op} {path}"),
            EventKind::Connect { op, protocol, address, port, name: Some(name), action: a } => {
                write!(f, "{op} {protocol} {name} ({address}) port {port}{}", action(a))
            }
            EventKind::Connect { op, protocol, address, port, action: a, .. } => {
                write!(f, "{op} {protocol} {address} port {port}{}", action(a))
            }
            EventKind::Dns { op, name, qtype, server, port, answers, notes, action: a, .. } => {
                write!(f, "dns {op} {qtype} {name} ({server} port {port})")?;
                for (i, answer) in answers.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { ", " };
                    write!(f, "{sep}{} ttl {}", answer.address, answer.ttl)?;
                }
                if !notes.is_empty() {
                    write!(f, " [{}]", notes.join(", "))?;
                }
                write!(f, "{}", action(a))
            }
            EventKind::Unix { op, path, action: a, .. } => {
                write!(f, "{op} unix {path}{}", action(a))
            }
            EventKind::Socket { socket, action: a } => write!(f, "socket {socket}{}", action(a)),
            EventKind::IoUring { name, action: a, .. } => {
                write!(f, "io_uring {name} first use{}", action(a))
            }
            EventKind::Escape { moved_pid, cgroup, action: a } => {
                write!(
                    f,
                    "process {moved_pid} left the investigation's cgroups (to cgroup {cgroup}){}",
                    action(a)
                )
            }
            EventKind::Cgroup { path, .. } => write!(f, "cgroup created {path}"),
            EventKind::Verdict { outcome, reason, mode, .. } => {
                write!(f, "VERDICT ({mode}): {} -- {reason}", outcome.as_str().to_uppercase())
            }
            EventKind::BaselineCapped { set, cap, subject } => write!(
                f,
                "baseline full: {set} is at its cap of {cap} in the {} phase; {subject} and \
                 anything else new there is not learned",
                self.phase
            ),
            EventKind::Ended { syscalls, egress_bytes, events, outcome, reason, .. } => {
                write!(
                    f,
                    "ended {outcome}: {events} events, {} syscalls ({} distinct), {egress_bytes} egress bytes",
                    syscalls.values().sum::<u64>(),
                    syscalls.len()
                )?;
                match reason {
                    Some(reason) => write!(f, "; killed: {reason}"),
                    None => Ok(()),
                }
            }
        }
    }
}
