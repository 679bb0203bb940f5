//! `paddock-bench`: what `cargo xtask bench` runs besides the daemon, kept out of the
//! `paddock` binary. It uses the daemon's own library, so what it measures is the
//! product's code; its kernel program comes from an object of its own (`agent-ebpf-bench`).
mod drivers;
mod empty_hook;
mod export;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "paddock-bench", about = "benchmark drivers for `cargo xtask bench`")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach an empty program to `sys_enter` until SIGTERM or SIGINT (the benchmark floor).
    EmptyHook,
    /// Push synthetic kernel records through the data path at a fixed rate, on one CPU.
    Pipeline(drivers::PipelineArgs),
    /// Time one-page audit queries on an investigation of a million events.
    AuditQuery(drivers::QueryArgs),
    /// Export a store of a million events to PostgreSQL, with one or more exporters.
    Export(export::ExportArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::EmptyHook => empty_hook::run(),
        Command::Pipeline(args) => drivers::pipeline(args),
        Command::AuditQuery(args) => drivers::audit_query(args),
        Command::Export(args) => export::export(args),
    };
    std::process::exit(match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paddock-bench: {e:#}");
            1
        }
    });
}
