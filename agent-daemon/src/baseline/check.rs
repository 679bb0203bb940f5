//! Is an observation inside its phase's baseline? If not, say what and why.
use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use super::{Baseline, Blind, Observation, generalise, names::name_matches};
use crate::syscalls;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviationKind {
    Syscall,
    Exec,
    Egress,
    FileWrite,
    FileRead,
    Unix,
    Socket,
    IoUring,
    /// A name asked of a resolver that the baseline's `dns` set does not hold.
    Dns,
    Envelope,
    /// Records lost or throttled: paddock did not see all it did.
    LostRecords,
    /// Processes the kernel could not track.
    Untracked,
    /// A process moved out of the investigation's cgroups.
    Escape,
    /// A path that could not be read.
    UnreadablePath,
    /// A request to paddock it may not make (switch a phase, start an investigation...).
    Control,
    /// The kernel doomed it while no daemon ran (what for is in its records, unless they
    /// were lost).
    Unwatched,
}

impl DeviationKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviationKind::Syscall => "syscall",
            DeviationKind::Exec => "exec",
            DeviationKind::Egress => "egress",
            DeviationKind::FileWrite => "file_write",
            DeviationKind::FileRead => "file_read",
            DeviationKind::Unix => "unix",
            DeviationKind::Socket => "socket",
            DeviationKind::IoUring => "io_uring",
            DeviationKind::Dns => "dns",
            DeviationKind::Envelope => "envelope",
            DeviationKind::LostRecords => "lost_records",
            DeviationKind::Untracked => "untracked",
            DeviationKind::Escape => "escape",
            DeviationKind::UnreadablePath => "unreadable_path",
            DeviationKind::Control => "control",
            DeviationKind::Unwatched => "unwatched",
        }
    }

    /// Deviations that say paddock could not see something, rather than that the
    /// investigation did something new (`enforcement.fail_closed` decides what they do).
    pub const fn is_blindness(self) -> bool {
        matches!(self, DeviationKind::LostRecords | DeviationKind::Untracked)
    }
}

impl fmt::Display for DeviationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    pub kind: DeviationKind,
    /// What was done (`/usr/bin/curl`, `tcp 10.0.0.9 port 22`, `tcp api.example.com port 443
    /// (203.0.113.9)`, `processes 12`): one verdict
    /// per (kind, subject) and investigation.
    pub subject: String,
    /// Why it is outside the baseline, naming the phase, its revision and what it allows.
    pub reason: String,
}

/// Up to three entries of `set`, and how many there are.
fn sample<T: fmt::Display>(set: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = set.into_iter().map(|i| i.to_string()).collect();
    match items.len() {
        0 => "nothing".into(),
        n if n <= 3 => items.join(", "),
        n => format!("{} and {} more", items[..3].join(", "), n - 3),
    }
}

fn outside<T: fmt::Display>(what: &str, b: &Baseline, set: &BTreeSet<T>) -> String {
    format!(
        "not among the {} {what} the {} baseline (revision {}) allows: {}",
        set.len(),
        b.phase,
        b.revision,
        sample(set)
    )
}

/// Why an egress is outside `b`: its egress rules, by address and by name, and a sample.
fn no_egress_rule(what: &str, b: &Baseline) -> String {
    let rules = b.egress.iter().map(ToString::to_string);
    let rules: Vec<String> = rules.chain(b.egress_names.iter().map(ToString::to_string)).collect();
    format!(
        "egress to {what}: no rule matches among the {} egress rules the {} baseline (revision {}) allows: {}",
        rules.len(),
        b.phase,
        b.revision,
        sample(rules)
    )
}

/// The baseline entry an executable is learned and matched as.
pub fn exec_entry(path: &str, literal: bool) -> String {
    if literal { path.to_owned() } else { generalise::exec(path) }
}

/// The baseline entry a unix socket is learned and matched as.
pub fn unix_entry(path: &str, literal: bool) -> String {
    if literal { path.to_owned() } else { generalise::path(path) }
}

fn blindness(b: &Baseline, blind: &Blind) -> Deviation {
    let (kind, subject, reason) = match blind {
        Blind::LostRecords { lost, throttled } => (
            DeviationKind::LostRecords,
            "records".to_owned(),
            format!(
                "{lost} records lost (ring buffer full) and {throttled} throttled (over the \
                 investigation's rate): paddock cannot vouch for what it did not see in the {} phase",
                b.phase
            ),
        ),
        Blind::Untracked(n) => (
            DeviationKind::Untracked,
            "processes".to_owned(),
            format!(
                "{n} processes or cgroups left untracked (over the investigation's quota, or \
                 the kernel's maps full): their actions would go unseen in the {} phase",
                b.phase
            ),
        ),
        Blind::Escape { pid } => (
            DeviationKind::Escape,
            format!("pid {pid}"),
            format!(
                "process {pid} moved out of the investigation's cgroups (a {} investigation \
                 never leaves them)",
                b.phase
            ),
        ),
        Blind::UnreadablePath { what } => (
            DeviationKind::UnreadablePath,
            what.clone(),
            format!(
                "{what}: the path could not be read, so it cannot be judged in the {} phase",
                b.phase
            ),
        ),
    };
    Deviation { kind, subject, reason }
}

/// Check `observation` against `baseline`.
pub fn check(baseline: &Baseline, observation: &Observation) -> Option<Deviation> {
    let b = baseline;
    let deviation =
        |kind, subject: String, reason: String| Some(Deviation { kind, subject, reason });
    match observation {
        Observation::Syscall(name) if syscalls::IA32_UNJUDGED.contains(&name.as_str()) => {
            deviation(
                DeviationKind::Syscall,
                name.clone(),
                format!(
                    "syscall {name}: a 32-bit call that opens files by a path paddock cannot see; \
                 never allowed in the {} phase's flag or enforce mode",
                    b.phase
                ),
            )
        }
        Observation::Syscall(name) if !b.syscalls.contains(name) => deviation(
            DeviationKind::Syscall,
            name.clone(),
            format!("syscall {name}: {}", outside("syscalls", b, &b.syscalls)),
        ),
        Observation::Exec { path, literal } if !b.execs.contains(&exec_entry(path, *literal)) => {
            deviation(
                DeviationKind::Exec,
                path.clone(),
                format!("exec of {path}: {}", outside("executables", b, &b.execs)),
            )
        }
        Observation::Unix { path, literal } if !b.unix.contains(&unix_entry(path, *literal)) => {
            deviation(
                DeviationKind::Unix,
                path.clone(),
                format!("unix socket {path}: {}", outside("unix sockets", b, &b.unix)),
            )
        }
        Observation::Socket(kind) if !b.sockets.contains(kind) => deviation(
            DeviationKind::Socket,
            kind.to_string(),
            format!("socket {kind}: {}", outside("socket kinds", b, &b.sockets)),
        ),
        Observation::Uring(name) if !b.io_uring.contains(name) => deviation(
            DeviationKind::IoUring,
            name.clone(),
            format!("io_uring {name}: {}", outside("io_uring operations", b, &b.io_uring)),
        ),
        Observation::Blind(blind) => Some(blindness(b, blind)),
        Observation::Control(what) => deviation(
            DeviationKind::Control,
            what.clone(),
            format!(
                "asked paddock's control socket for what no investigation may have ({what}): \
                 a {} process never changes paddock",
                b.phase
            ),
        ),
        Observation::Unwatched => deviation(
            DeviationKind::Unwatched,
            "while no daemon ran".into(),
            format!(
                "the kernel refused or killed something of it (outside the {} baseline) while \
                 no paddock daemon ran",
                b.phase
            ),
        ),
        Observation::Egress(d) if !b.egress.iter().any(|r| r.allows(d)) => {
            deviation(DeviationKind::Egress, d.to_string(), no_egress_rule(&d.to_string(), b))
        }
        Observation::NamedEgress { name, destination: d }
            if !b.egress.iter().any(|r| r.allows(d))
                && !b.egress_names.iter().any(|r| r.allows(d.protocol, name, d.port)) =>
        {
            let subject = format!("{} {name} port {} ({})", d.protocol, d.port, d.addr);
            deviation(DeviationKind::Egress, subject.clone(), no_egress_rule(&subject, b))
        }
        // Not judged while the baseline has no `dns` set (it predates DNS learning).
        Observation::DnsQuery(name) => match &b.dns {
            Some(dns) if !dns.iter().any(|p| name_matches(p, name)) => deviation(
                DeviationKind::Dns,
                name.clone(),
                format!("DNS query for {name}: {}", outside("names", b, dns)),
            ),
            _ => None,
        },
        Observation::FileWrite(path)
            if !b.file_writes.iter().any(|p| generalise::under(path, p)) =>
        {
            deviation(
                DeviationKind::FileWrite,
                path.clone(),
                format!("write to {path}: {}", outside("write prefixes", b, &b.file_writes)),
            )
        }
        Observation::FileRead(path) if !b.file_reads.iter().any(|p| generalise::under(path, p)) => {
            deviation(
                DeviationKind::FileRead,
                path.clone(),
                format!("read of {path}: {}", outside("read prefixes", b, &b.file_reads)),
            )
        }
        Observation::Envelope(s) => {
            let e = &b.envelope;
            let over = |value: u64, max: u64| value as f64 > max as f64 * e.tolerance;
            let (what, value, max) = if over(s.processes, e.max_processes) {
                ("processes at once", s.processes, e.max_processes)
            } else if over(s.syscalls_per_second, e.max_syscalls_per_second) {
                ("syscalls per second", s.syscalls_per_second, e.max_syscalls_per_second)
            } else if over(s.egress_bytes, e.max_egress_bytes) {
                ("egress bytes", s.egress_bytes, e.max_egress_bytes)
            } else {
                return None;
            };
            deviation(
                DeviationKind::Envelope,
                what.into(),
                format!(
                    "{value} {what}: above the {} baseline's envelope (revision {}) of {max} x {} = {:.0}",
                    b.phase,
                    b.revision,
                    e.tolerance,
                    max as f64 * e.tolerance
                ),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
