//! paddock, the node agent, as a library: the `paddock` binary (`main.rs`) only parses its
//! command line and dispatches here. The data path runs kernel -> reader -> decode ->
//! pipeline (attribute, judge) -> hub -> sinks; `docs/design.md` draws it and says where each
//! kind of change goes.
pub mod api;
pub mod baseline;
pub mod cli;
pub mod cluster;
pub mod config;
#[cfg(test)]
mod config_props;
pub mod daemon;
pub mod egress;
pub mod enforce;
pub mod events;
pub mod host;
pub mod hub;
pub mod identity;
pub mod judge;
pub mod kernel;
pub mod lifecycle;
pub mod outcome;
pub mod phases;
pub mod pipeline;
pub mod scrape;
pub mod sinks;
pub mod syscalls;
#[cfg(test)]
mod text_edits;
pub mod workloads;
