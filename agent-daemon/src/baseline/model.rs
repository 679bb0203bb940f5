//! The baseline of one trust phase.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{egress::EgressRule, sockets::SocketKind};
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
    pub egress: BTreeSet<EgressRule>,
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
    pub envelope: Envelope,
}

impl Baseline {
    pub fn empty(phase: Phase) -> Baseline {
        Baseline {
            phase,
            revision: 0,
            learned_from: 0,
            updated: None,
            syscalls: BTreeSet::new(),
            execs: BTreeSet::new(),
            egress: BTreeSet::new(),
            file_writes: BTreeSet::new(),
            file_reads: BTreeSet::new(),
            unix: BTreeSet::new(),
            sockets: BTreeSet::new(),
            io_uring: BTreeSet::new(),
            envelope: Envelope::default(),
        }
    }

    /// Entries in all sets.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.syscalls.len()
            + self.execs.len()
            + self.egress.len()
            + self.file_writes.len()
            + self.file_reads.len()
            + self.unix.len()
            + self.sockets.len()
            + self.io_uring.len()
    }
}
