//! Is an observation inside its phase's baseline? If not, say what and why.
use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use super::{Baseline, Blind, Observation, generalise};
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
    /// What was done (`/usr/bin/curl`, `tcp 10.0.0.9 port 22`, `processes 12`): one verdict
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
        Observation::Egress(d) if !b.egress.iter().any(|r| r.allows(d)) => deviation(
            DeviationKind::Egress,
            d.to_string(),
            format!(
                "egress to {d}: no rule matches among the {} egress rules the {} baseline (revision {}) allows: {}",
                b.egress.len(),
                b.phase,
                b.revision,
                sample(&b.egress)
            ),
        ),
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
mod tests {
    use super::*;
    use crate::{
        baseline::{Destination, EnvelopeSample, Protocol, learn},
        identity::Phase,
    };

    fn learned() -> Baseline {
        let mut b = Baseline::empty(Phase::ReadOnly);
        b.revision = 3;
        for o in [
            Observation::Syscall("read".into()),
            Observation::Exec { path: "/usr/bin/ls".into(), literal: false },
            Observation::FileWrite("/tmp/tmp.Ab12cd/out.txt".into()),
            Observation::FileRead("/etc/hostname".into()),
            Observation::Egress(Destination {
                protocol: Protocol::Tcp,
                addr: "10.0.0.7".parse().unwrap(),
                port: 443,
            }),
            Observation::Envelope(EnvelopeSample {
                processes: 4,
                syscalls_per_second: 1000,
                egress_bytes: 100,
            }),
        ] {
            learn(&mut b, &o);
        }
        b
    }

    #[test]
    fn what_was_learned_passes() {
        let b = learned();
        for o in [
            Observation::Syscall("read".into()),
            Observation::Exec { path: "/usr/bin/ls".into(), literal: false },
            Observation::FileWrite("/tmp/tmp.Zz99yy/other.txt".into()),
            Observation::FileRead("/etc/passwd".into()),
            Observation::Egress(Destination {
                protocol: Protocol::Tcp,
                addr: "10.0.0.7".parse().unwrap(),
                port: 443,
            }),
            Observation::Envelope(EnvelopeSample {
                processes: 8,
                syscalls_per_second: 2000,
                egress_bytes: 200,
            }),
        ] {
            assert_eq!(check(&b, &o), None, "{o:?}");
        }
    }

    #[test]
    fn each_kind_of_deviation_names_what_and_why() {
        let b = learned();
        let cases = [
            (
                Observation::Syscall("ptrace".into()),
                DeviationKind::Syscall,
                "ptrace",
                "syscall ptrace: not among the 1 syscalls the read-only baseline (revision 3) allows: read",
            ),
            (
                Observation::Exec { path: "/usr/bin/curl".into(), literal: false },
                DeviationKind::Exec,
                "/usr/bin/curl",
                "exec of /usr/bin/curl",
            ),
            (
                Observation::FileWrite("/etc/passwd".into()),
                DeviationKind::FileWrite,
                "/etc/passwd",
                "write to /etc/passwd: not among the 1 write prefixes",
            ),
            (
                Observation::FileRead("/root/.ssh/id_rsa".into()),
                DeviationKind::FileRead,
                "/root/.ssh/id_rsa",
                "read prefixes the read-only baseline (revision 3) allows: /etc/",
            ),
            (
                Observation::Egress(Destination {
                    protocol: Protocol::Tcp,
                    addr: "10.0.0.7".parse().unwrap(),
                    port: 22,
                }),
                DeviationKind::Egress,
                "tcp 10.0.0.7 port 22",
                "allows: tcp 10.0.0.7/32 port 443",
            ),
            (
                Observation::Envelope(EnvelopeSample {
                    processes: 9,
                    syscalls_per_second: 0,
                    egress_bytes: 0,
                }),
                DeviationKind::Envelope,
                "processes at once",
                "9 processes at once: above the read-only baseline's envelope (revision 3) of 4 x 2 = 8",
            ),
        ];
        for (observation, kind, subject, reason) in cases {
            let d = check(&b, &observation).unwrap_or_else(|| panic!("{observation:?} passed"));
            assert_eq!(d.kind, kind);
            assert_eq!(d.subject, subject);
            assert!(d.reason.contains(reason), "{}", d.reason);
        }
    }

    #[test]
    fn a_climb_out_of_a_learned_prefix_is_judged_where_it_lands() {
        let b = learned();
        let climb = Observation::FileWrite("/tmp/tmp.Ab12cd/../../etc/passwd".into());
        let d = check(&b, &climb).expect("outside /tmp/<random>/");
        assert_eq!(d.kind, DeviationKind::FileWrite);
    }

    #[test]
    fn unreadable_paths_and_blindness_are_always_deviations() {
        let mut b = learned();
        b.file_reads.insert("/".into());
        for o in [
            Observation::FileRead(String::new()),
            Observation::Blind(Blind::LostRecords { lost: 1, throttled: 0 }),
            Observation::Blind(Blind::Untracked(1)),
            Observation::Blind(Blind::Escape { pid: 7 }),
            Observation::Blind(Blind::UnreadablePath { what: "open".into() }),
            Observation::Syscall("ia32:open".into()),
        ] {
            assert!(check(&b, &o).is_some(), "{o:?} passed");
        }
        b.syscalls.insert("ia32:open".into());
        assert!(check(&b, &Observation::Syscall("ia32:open".into())).is_some(), "even learned");
        b.syscalls.insert("ia32:getpid".into());
        assert_eq!(check(&b, &Observation::Syscall("ia32:getpid".into())), None);
    }

    #[test]
    fn executables_through_a_descriptor_are_matched_literally() {
        let mut b = learned();
        learn(&mut b, &Observation::Exec { path: "/tmp/tmp.Ab12cd/tool".into(), literal: false });
        learn(&mut b, &Observation::Exec { path: "/memfd:jit (deleted)".into(), literal: true });
        let ok = |path: &str, literal| {
            check(&b, &Observation::Exec { path: path.into(), literal }).is_none()
        };
        assert!(ok("/tmp/tmp.Zz99yy/tool", false), "the pattern a run learned");
        assert!(!ok("/tmp/tmp.Zz99yy/evil", false), "not the learned file name");
        assert!(!ok("/tmp/payload1", false));
        assert!(ok("/memfd:jit (deleted)", true));
        assert!(!ok("/memfd:other (deleted)", true));
    }

    #[test]
    fn an_empty_baseline_allows_nothing() {
        let b = Baseline::empty(Phase::Shadow);
        let d = check(&b, &Observation::Exec { path: "/bin/true".into(), literal: false }).unwrap();
        assert!(d.reason.ends_with("allows: nothing"), "{}", d.reason);
    }
}
