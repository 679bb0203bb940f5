//! Sources of tracked workloads and the bookkeeping they share: which investigation holds
//! which slot, and how an investigation begins and ends across kernel, pipeline and
//! cgroups.
pub use crate::host::{cgroups, processes};
pub mod kubernetes;
pub mod local;
pub mod pids;
mod registry;
pub mod saved;
mod tracker;

pub use registry::{Active, PodOwner};
pub use tracker::{Tracker, TrackerError};
