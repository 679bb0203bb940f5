//! Per-phase behavioural baselines: what Jobs of a trust phase normally do, learned from
//! them, checked against them, kept as plain versioned files.
//!
//! Pure logic: no aya, kube or tokio. The kernel and the cluster reach it only through
//! [`Observation`]s made from typed events.
pub mod caps;
pub mod check;
pub mod diff;
pub mod egress;
pub mod evidence;
pub mod file;
#[cfg(test)]
mod file_props;
pub mod generalise;
#[cfg(test)]
mod generalise_props;
pub mod learn;
pub mod merge;
#[cfg(test)]
mod merge_props;
pub mod mode;
pub mod model;
pub mod names;
#[cfg(test)]
mod names_props;
pub mod report;
pub mod sockets;
pub mod store;
pub mod uring;

pub use caps::{Caps, Set};
pub use check::{Deviation, DeviationKind, check};
pub use egress::{Destination, EgressRule, Protocol};
pub use learn::{Learned, learn, learn_within};
pub use mode::Mode;
pub use model::{Baseline, Envelope};
pub use names::{NameRule, generalise_name, name_matches};
pub use sockets::SocketKind;

/// What one event says about an investigation's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Syscall(String),
    /// An executable; `literal` ones (run through a descriptor, or a file with no name) are
    /// never generalised.
    Exec {
        path: String,
        literal: bool,
    },
    Egress(Destination),
    /// A connect or send to an address the kernel had bound to `name` (lowercase, no
    /// trailing dot) from a DNS answer of this investigation: allowed by an address rule
    /// or by a name rule.
    NamedEgress {
        name: String,
        destination: Destination,
    },
    /// A name asked of a resolver (lowercase, no trailing dot).
    DnsQuery(String),
    FileWrite(String),
    FileRead(String),
    /// A unix socket reached; `literal` when its path was relative (judged as written).
    Unix {
        path: String,
        literal: bool,
    },
    Socket(SocketKind),
    /// An io_uring operation, by name.
    Uring(String),
    /// Measured so far in one investigation.
    Envelope(EnvelopeSample),
    /// Something paddock could not see in full: never learned, always a deviation where
    /// the phase is judged.
    Blind(Blind),
    /// A request to paddock's control socket a process of the investigation may not make
    /// (`what`): never learned, always a deviation where the phase is judged.
    Control(String),
    /// The kernel doomed the investigation (refused or killed something of it) while no
    /// daemon ran: always a deviation where the phase is judged, never learned.
    Unwatched,
}

/// Ways an investigation can leave paddock's sight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blind {
    /// Records of it were lost (ring buffer full) or throttled (over its rate).
    LostRecords { lost: u64, throttled: u64 },
    /// Processes of it the kernel could not track (over its quota, or a map full).
    Untracked(u64),
    /// A process of it moved out of its cgroups.
    Escape { pid: u32 },
    /// A path it acted on that could not be read or was cut short (`what` says which act).
    UnreadablePath { what: String },
}

/// Envelope measurements of one investigation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvelopeSample {
    /// Most processes alive at once.
    pub processes: u64,
    /// Highest syscall rate seen over a sampling interval (calls per second).
    pub syscalls_per_second: u64,
    /// Bytes sent so far.
    pub egress_bytes: u64,
}
