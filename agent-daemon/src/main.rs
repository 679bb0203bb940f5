//! `paddock`: the node agent. See `DESIGN.md` for the shape; the data path runs
//! kernel -> reader -> decode -> pipeline (attribute) -> hub -> sinks.
mod api;
mod baseline;
mod bench;
mod cli;
mod config;
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
mod workloads;

fn main() {
    std::process::exit(cli::main());
}
