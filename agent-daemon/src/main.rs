//! `paddock`: the node agent. See `DESIGN.md` for the shape; the data path runs
//! kernel -> reader -> decode -> pipeline (attribute) -> hub -> sinks.
mod api;
mod baseline;
mod bench;
mod cli;
mod cluster;
mod config;
#[cfg(test)]
mod config_props;
mod daemon;
mod enforce;
mod events;
mod hub;
mod identity;
mod judge;
mod kernel;
mod metrics;
mod phases;
mod pipeline;
mod sinks;
mod syscalls;
#[cfg(test)]
mod text_edits;
mod workloads;

fn main() {
    std::process::exit(cli::main());
}
