//! How many entries each set of a phase's baseline may hold while it learns
//! (`[baseline]` in the configuration). A set at its cap learns nothing more: what would
//! have been a new entry is refused, counted and reported, never learned. A baseline that
//! already holds more (a file written under a higher cap, or imported) is kept whole: a cap
//! never drops what was recorded.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Baseline, Observation};

/// The sets of a baseline, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Set {
    Syscalls,
    Execs,
    Egress,
    FileWrites,
    FileReads,
    Unix,
    Sockets,
    IoUring,
    Dns,
}

impl Set {
    pub const ALL: [Set; 9] = [
        Set::Syscalls,
        Set::Execs,
        Set::Egress,
        Set::FileWrites,
        Set::FileReads,
        Set::Unix,
        Set::Sockets,
        Set::IoUring,
        Set::Dns,
    ];

    /// The set's name: its key in the baseline file and in `[baseline]`, and the `set`
    /// label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Set::Syscalls => "syscalls",
            Set::Execs => "execs",
            Set::Egress => "egress",
            Set::FileWrites => "file_writes",
            Set::FileReads => "file_reads",
            Set::Unix => "unix",
            Set::Sockets => "sockets",
            Set::IoUring => "io_uring",
            Set::Dns => "dns",
        }
    }

    /// The set an observation would be learned into; `None` for what is never a set entry
    /// (envelopes, blindness, control requests).
    pub fn of(observation: &Observation) -> Option<Set> {
        Some(match observation {
            Observation::Syscall(_) => Set::Syscalls,
            Observation::Exec { .. } => Set::Execs,
            Observation::Egress(_) | Observation::NamedEgress { .. } => Set::Egress,
            Observation::DnsQuery(_) => Set::Dns,
            Observation::FileWrite(_) => Set::FileWrites,
            Observation::FileRead(_) => Set::FileReads,
            Observation::Unix { .. } => Set::Unix,
            Observation::Socket(_) => Set::Sockets,
            Observation::Uring(_) => Set::IoUring,
            Observation::Envelope(_)
            | Observation::Blind(_)
            | Observation::Control(_)
            | Observation::Unwatched => {
                return None;
            }
        })
    }

    /// Entries of this set in `baseline` (egress: address and name rules together; dns: 0
    /// while queries are not learned).
    pub fn len(self, baseline: &Baseline) -> usize {
        match self {
            Set::Syscalls => baseline.syscalls.len(),
            Set::Execs => baseline.execs.len(),
            Set::Egress => baseline.egress.len() + baseline.egress_names.len(),
            Set::FileWrites => baseline.file_writes.len(),
            Set::FileReads => baseline.file_reads.len(),
            Set::Unix => baseline.unix.len(),
            Set::Sockets => baseline.sockets.len(),
            Set::IoUring => baseline.io_uring.len(),
            Set::Dns => baseline.dns.as_ref().map_or(0, |d| d.len()),
        }
    }

    /// One bit per set, for small sets of sets.
    pub fn bit(self) -> u16 {
        1 << self as u8
    }
}

impl fmt::Display for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[baseline]`: the cap of each set, the same for every phase.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Caps {
    pub syscalls: usize,
    pub execs: usize,
    pub egress: usize,
    pub file_writes: usize,
    pub file_reads: usize,
    pub unix: usize,
    pub sockets: usize,
    pub io_uring: usize,
    /// Names and patterns in the `dns` set.
    pub dns: usize,
    /// Runs in a row without new behaviour after which a phase's baseline is reported as
    /// settled (`paddock phase report`, the `Settled` condition): not a cap, the one
    /// setting of `[baseline]` that is not.
    pub settle_after_runs: u64,
}

/// Runs without new behaviour before a baseline counts as settled, by default.
pub const SETTLE_AFTER_RUNS: u64 = 20;

/// The largest cap accepted: far more than any phase should need, small enough that a
/// baseline stays a file an operator can review and the daemon's memory stays bounded.
pub const MAX_CAP: usize = 1 << 20;

impl Default for Caps {
    /// Sized so that the four phases' executables and unix sockets (3072 + 1024 each), egress
    /// rules (2048 each) and socket kinds (256 each) fit the kernel's default policy maps
    /// (`kernel.policy_paths` 16384, `policy_egress` 8192, `policy_sockets` 1024) even when
    /// every phase enforces a full baseline. Syscalls: every identity there is (native,
    /// ia32, x32, out of table) fits. io_uring: every operation. DNS names: as many as unix
    /// sockets.
    fn default() -> Self {
        Caps {
            syscalls: 1024,
            execs: 3072,
            egress: 2048,
            file_writes: 4096,
            file_reads: 4096,
            unix: 1024,
            sockets: 256,
            io_uring: 64,
            dns: 1024,
            settle_after_runs: SETTLE_AFTER_RUNS,
        }
    }
}

impl Caps {
    /// No cap at all (for code that learns outside the daemon, and tests).
    pub fn unlimited() -> Caps {
        Caps {
            syscalls: usize::MAX,
            execs: usize::MAX,
            egress: usize::MAX,
            file_writes: usize::MAX,
            file_reads: usize::MAX,
            unix: usize::MAX,
            sockets: usize::MAX,
            io_uring: usize::MAX,
            dns: usize::MAX,
            settle_after_runs: SETTLE_AFTER_RUNS,
        }
    }

    pub fn cap(&self, set: Set) -> usize {
        match set {
            Set::Syscalls => self.syscalls,
            Set::Execs => self.execs,
            Set::Egress => self.egress,
            Set::FileWrites => self.file_writes,
            Set::FileReads => self.file_reads,
            Set::Unix => self.unix,
            Set::Sockets => self.sockets,
            Set::IoUring => self.io_uring,
            Set::Dns => self.dns,
        }
    }

    /// The first cap out of range, as (`baseline.<set>`, its value).
    pub fn invalid(&self) -> Option<(&'static str, usize)> {
        Set::ALL
            .into_iter()
            .map(|set| (set, self.cap(set)))
            .find_map(|(set, cap)| (cap == 0 || cap > MAX_CAP).then(|| (field(set), cap)))
    }

    /// The sets of `baseline` at or over their cap.
    pub fn full(&self, baseline: &Baseline) -> Vec<Set> {
        Set::ALL.into_iter().filter(|s| s.len(baseline) >= self.cap(*s)).collect()
    }
}

/// `baseline.<set>`, as a configuration error names it.
pub fn field(set: Set) -> &'static str {
    match set {
        Set::Syscalls => "baseline.syscalls",
        Set::Execs => "baseline.execs",
        Set::Egress => "baseline.egress",
        Set::FileWrites => "baseline.file_writes",
        Set::FileReads => "baseline.file_reads",
        Set::Unix => "baseline.unix",
        Set::Sockets => "baseline.sockets",
        Set::IoUring => "baseline.io_uring",
        Set::Dns => "baseline.dns",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{baseline::learn, identity::Phase};

    #[test]
    fn every_observation_of_a_set_names_it_and_the_names_are_the_file_keys() {
        // `dns` is written once queries are learned (an empty set, here).
        let b = Baseline { dns: Some(Default::default()), ..Baseline::empty(Phase::Shadow) };
        let text = crate::baseline::file::render(&b);
        for set in Set::ALL {
            assert!(text.contains(&format!("\n{} = []", set.as_str())), "{set} in {text}");
            assert_eq!(field(set), format!("baseline.{set}"));
        }
        assert_eq!(Set::of(&Observation::Syscall("read".into())), Some(Set::Syscalls));
        assert_eq!(Set::of(&Observation::Control("x".into())), None);
        assert_eq!(Set::of(&Observation::DnsQuery("example.com".into())), Some(Set::Dns));
        let named = Observation::NamedEgress {
            name: "example.com".into(),
            destination: crate::baseline::Destination {
                protocol: crate::baseline::Protocol::Tcp,
                addr: std::net::Ipv4Addr::LOCALHOST.into(),
                port: 443,
            },
        };
        assert_eq!(Set::of(&named), Some(Set::Egress));
        let bits: u16 = Set::ALL.iter().map(|s| s.bit()).fold(0, |a, b| a | b);
        assert_eq!(bits, 0x1ff, "one bit each");
    }

    #[test]
    fn defaults_fit_the_kernel_maps_of_four_enforcing_phases() {
        let c = Caps::default();
        let phases = agent_common::policy::PHASES as usize;
        assert!(phases * (c.execs + c.unix) <= agent_common::policy::MAX_ALLOWED_PATHS as usize);
        assert!(phases * c.egress <= agent_common::policy::MAX_EGRESS_RULES as usize);
        assert!(phases * c.sockets <= agent_common::policy::MAX_ALLOWED_SOCKETS as usize);
        assert!(c.syscalls >= agent_common::tracking::SYSCALL_IDS as usize);
        assert_eq!(c.invalid(), None);
    }

    #[test]
    fn a_cap_out_of_range_is_named() {
        let c = Caps { egress: 0, ..Caps::default() };
        assert_eq!(c.invalid(), Some(("baseline.egress", 0)));
        let c = Caps { io_uring: MAX_CAP + 1, ..Caps::default() };
        assert_eq!(c.invalid(), Some(("baseline.io_uring", MAX_CAP + 1)));
    }

    #[test]
    fn full_sets_are_those_at_their_cap() {
        let mut b = Baseline::empty(Phase::Shadow);
        learn(&mut b, &Observation::Syscall("read".into()));
        learn(&mut b, &Observation::Syscall("write".into()));
        let caps = Caps { syscalls: 2, ..Caps::default() };
        assert_eq!(caps.full(&b), [Set::Syscalls]);
        assert!(Caps::default().full(&b).is_empty());
        // No dns set yet: it counts as empty.
        let caps = Caps { dns: 1, ..Caps::default() };
        assert!(caps.full(&b).is_empty());
        learn(&mut b, &Observation::DnsQuery("example.com".into()));
        assert_eq!(caps.full(&b), [Set::Dns]);
    }
}
