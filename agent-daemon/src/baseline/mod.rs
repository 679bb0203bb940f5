//! Per-phase behavioural baselines: what Jobs of a trust phase normally do, learned from
//! them, checked against them, kept as plain versioned files.
//!
//! Pure logic: no aya, kube or tokio. The kernel and the cluster reach it only through
//! [`Observation`]s made from typed events.
pub mod check;
pub mod diff;
pub mod egress;
pub mod file;
pub mod generalise;
pub mod learn;
pub mod mode;
pub mod model;
pub mod store;

pub use check::{Deviation, DeviationKind, check};
pub use egress::{Destination, EgressRule, Protocol};
pub use learn::learn;
pub use mode::Mode;
pub use model::{Baseline, Envelope};

/// What one event says about an investigation's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Syscall(String),
    Exec(String),
    Egress(Destination),
    FileWrite(String),
    FileRead(String),
    /// Measured so far in one investigation.
    Envelope(EnvelopeSample),
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
