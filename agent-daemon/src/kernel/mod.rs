//! Everything that touches the kernel: filesystems, BTF offsets, loading and attaching the
//! programs, the maps that say what is tracked, and the ring-buffer reader.
mod attach;
mod bpf_sys;
pub mod btf;
mod carry;
pub mod config;
pub mod decode;
#[cfg(test)]
mod decode_props;
#[cfg(test)]
mod decode_records;
mod fullness;
mod generation;
mod load;
pub mod metrics;
pub mod mounts;
#[cfg(test)]
mod mounts_props;
pub mod pins;
mod policy;
pub mod reader;
mod sideload;
mod tracking;

pub use generation::Retired;
pub use load::{Kernel, Limits, LoadOptions};
pub use policy::{KernelPolicy, PolicyMaps};
pub use tracking::{SlotCounters, TrackError};
