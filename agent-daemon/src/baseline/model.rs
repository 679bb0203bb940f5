//! The baseline of one trust phase.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{egress::EgressRule, names::NameRule, sockets::SocketKind};
use crate::identity::Phase;

/// Limits on quantities, learned as the largest seen; exceeded when a measurement goes
/// above `max * tolerance`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub max_processes: u64,
    pub max_syscalls_per_second: u64,
    pub max_egress_bytes: u64,
    pub tolerance: f64,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            max_processes: 0,
            max_syscalls_per_second: 0,
            max_egress_bytes: 0,
            tolerance: 2.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub phase: Phase,
    /// Bumped on every change that is saved.
    pub revision: u64,
    /// Investigations folded in while the phase learned.
    pub learned_from: u64,
    /// When the baseline last gained something new (an entry in a set).
    pub updated: Option<DateTime<Utc>>,
    pub syscalls: BTreeSet<String>,
    /// Executed paths, generalised.
    pub execs: BTreeSet<String>,
    /// Egress rules by address (network).
    pub egress: BTreeSet<EgressRule>,
    /// Egress rules by name: for a destination the kernel bound to a name a DNS answer of
    /// the investigation gave. Kept in the file's `egress` with the address rules, and
    /// counted with them against the egress cap.
    pub egress_names: BTreeSet<NameRule>,
    /// File-write prefixes (see `generalise::prefix`).
    pub file_writes: BTreeSet<String>,
    pub file_reads: BTreeSet<String>,
    /// Unix sockets connected or sent to, by path (generalised like files; `@name` for
    /// abstract sockets).
    pub unix: BTreeSet<String>,
    /// Socket kinds other than TCP, UDP and unix (raw, ICMP, packet, netlink...).
    pub sockets: BTreeSet<SocketKind>,
    /// io_uring operations, by name (`read`, `openat`...).
    pub io_uring: BTreeSet<String>,
    /// Names (and `*.` patterns, see `names::generalise_name`) the phase may ask its
    /// resolver for. `None`: the baseline predates DNS learning (written without a `dns`
    /// key), and queries are not judged at all, so that an upgrade never turns a phase
    /// already enforcing against its queries; `Some` of an empty set: no query is allowed.
    /// [`Baseline::empty`] starts at `None`; learning a query makes it `Some`.
    pub dns: Option<BTreeSet<String>>,
    pub envelope: Envelope,
}

impl Baseline {
    /// A baseline that holds nothing, with `dns` `None` (queries unjudged until one is
    /// learned).
    pub fn empty(phase: Phase) -> Baseline {
        Baseline {
            phase,
            revision: 0,
            learned_from: 0,
            updated: None,
            syscalls: BTreeSet::new(),
            execs: BTreeSet::new(),
            egress: BTreeSet::new(),
            egress_names: BTreeSet::new(),
            file_writes: BTreeSet::new(),
            file_reads: BTreeSet::new(),
            unix: BTreeSet::new(),
            sockets: BTreeSet::new(),
            io_uring: BTreeSet::new(),
            dns: None,
            envelope: Envelope::default(),
        }
    }

    /// Entries in all sets.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.syscalls.len()
            + self.execs.len()
            + self.egress.len()
            + self.egress_names.len()
            + self.file_writes.len()
            + self.file_reads.len()
            + self.unix.len()
            + self.sockets.len()
            + self.io_uring.len()
            + self.dns.as_ref().map_or(0, BTreeSet::len)
    }
}
