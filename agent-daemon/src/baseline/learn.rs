//! Folding what an investigation did into its phase's baseline.
use chrono::{SubsecRound as _, Utc};

use super::{
    Baseline, EgressRule, Observation,
    check::{exec_entry, unix_entry},
    generalise,
};

/// Fold `observation` in. True when a set gained an entry (the baseline learned something
/// new); envelope maxima only grow, and do not count as new behaviour.
pub fn learn(baseline: &mut Baseline, observation: &Observation) -> bool {
    let new = match observation {
        Observation::Syscall(name) => baseline.syscalls.insert(name.clone()),
        Observation::Exec { path, literal } => baseline.execs.insert(exec_entry(path, *literal)),
        Observation::Unix { path, literal } => baseline.unix.insert(unix_entry(path, *literal)),
        Observation::Socket(kind) => baseline.sockets.insert(*kind),
        Observation::Uring(name) => baseline.io_uring.insert(name.clone()),
        // What paddock could not see, and requests to paddock, are never learned.
        Observation::Blind(_) | Observation::Control(_) | Observation::Unwatched => false,
        Observation::Egress(d) => {
            !baseline.egress.iter().any(|r| r.allows(d))
                && baseline.egress.insert(EgressRule::exact(d))
        }
        Observation::FileWrite(path) if !path.is_empty() => {
            !baseline.file_writes.iter().any(|p| generalise::under(path, p))
                && baseline.file_writes.insert(generalise::prefix(path))
        }
        Observation::FileRead(path) if !path.is_empty() => {
            !baseline.file_reads.iter().any(|p| generalise::under(path, p))
                && baseline.file_reads.insert(generalise::prefix(path))
        }
        Observation::FileWrite(_) | Observation::FileRead(_) => false,
        Observation::Envelope(sample) => {
            let e = &mut baseline.envelope;
            e.max_processes = e.max_processes.max(sample.processes);
            e.max_syscalls_per_second = e.max_syscalls_per_second.max(sample.syscalls_per_second);
            e.max_egress_bytes = e.max_egress_bytes.max(sample.egress_bytes);
            false
        }
    };
    if new {
        // To the second, as the file keeps it.
        baseline.updated = Some(Utc::now().trunc_subsecs(0));
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{Destination, EnvelopeSample, Protocol},
        identity::Phase,
    };

    #[test]
    fn learns_exactly_what_was_done_generalised() {
        let mut b = Baseline::empty(Phase::ReadOnly);
        let seen = [
            Observation::Syscall("read".into()),
            Observation::Exec { path: "/usr/bin/ls".into(), literal: false },
            Observation::Exec { path: "/tmp/tmp.Ab12cd/tool".into(), literal: false },
            Observation::FileWrite("/tmp/tmp.Ab12cd/out.txt".into()),
            Observation::FileRead("/etc/hostname".into()),
            Observation::Egress(Destination {
                protocol: Protocol::Tcp,
                addr: "10.0.0.7".parse().unwrap(),
                port: 443,
            }),
        ];
        for o in &seen {
            assert!(learn(&mut b, o), "{o:?} is new");
            assert!(!learn(&mut b, o), "{o:?} again is not");
        }
        assert_eq!(b.syscalls.iter().collect::<Vec<_>>(), ["read"]);
        assert_eq!(b.execs.iter().collect::<Vec<_>>(), ["/tmp/<random>/tool", "/usr/bin/ls"]);
        assert_eq!(b.file_writes.iter().collect::<Vec<_>>(), ["/tmp/<random>/"]);
        assert_eq!(b.file_reads.iter().collect::<Vec<_>>(), ["/etc/"]);
        assert_eq!(
            b.egress.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            ["tcp 10.0.0.7/32 port 443"]
        );
        assert_eq!(b.size(), 6);
        assert!(b.updated.is_some());
    }

    #[test]
    fn another_run_of_the_same_shape_adds_nothing() {
        let mut b = Baseline::empty(Phase::Shadow);
        learn(&mut b, &Observation::FileWrite("/tmp/tmp.Ab12cd/out.txt".into()));
        learn(&mut b, &Observation::FileRead("/proc/77/status".into()));
        assert!(!learn(&mut b, &Observation::FileWrite("/tmp/tmp.Qq98zz/other.txt".into())));
        assert!(!learn(&mut b, &Observation::FileRead("/proc/4242/status".into())));
        assert!(learn(&mut b, &Observation::FileRead("/proc/4242/maps".into())));
    }

    #[test]
    fn envelopes_keep_maxima_without_counting_as_new() {
        let mut b = Baseline::empty(Phase::Shadow);
        let sample = |p, r, e| {
            Observation::Envelope(EnvelopeSample {
                processes: p,
                syscalls_per_second: r,
                egress_bytes: e,
            })
        };
        assert!(!learn(&mut b, &sample(3, 100, 10)));
        learn(&mut b, &sample(2, 500, 5));
        assert_eq!(
            (
                b.envelope.max_processes,
                b.envelope.max_syscalls_per_second,
                b.envelope.max_egress_bytes
            ),
            (3, 500, 10)
        );
        assert_eq!(b.updated, None);
    }

    #[test]
    fn unreadable_paths_are_not_learned() {
        let mut b = Baseline::empty(Phase::Shadow);
        assert!(!learn(&mut b, &Observation::FileRead(String::new())));
        assert_eq!(b.size(), 0);
    }
}
