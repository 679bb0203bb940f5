//! Everything that touches the kernel: filesystems, BTF offsets, loading and attaching the
//! programs, the maps that say what is tracked, and the ring-buffer reader.
pub mod btf;
pub mod decode;
mod fullness;
mod load;
pub mod mounts;
mod policy;
pub mod reader;
mod sideload;
mod tracking;

pub use load::{Kernel, Limits, LoadOptions, attach_empty_hook};
pub use policy::PolicyMaps;
pub use tracking::{SlotCounters, TrackError};
