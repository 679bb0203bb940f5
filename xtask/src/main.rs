//! `cargo xtask`: the one place that knows how to set up, build, test, demo and benchmark
//! paddock.
mod bench;
mod daemon;
mod demo;
mod k8s;
mod layers;
mod lint;
mod rules;
mod servers;
mod setup;
mod test;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what a fresh machine lacks: nightly rust-src, bpf-linker (LLVM 22), packages.
    Setup,
    /// Build the daemon (and its kernel programs) and the test binaries.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up, then run the unit tests and the root integration tests.
    Test {
        /// Only the tests of this file of `tests/tests` (`observe`, `evasion/uring`), or else
        /// the integration tests whose name contains this.
        filter: Option<String>,
    },
    /// Set up, build, and show paddock watching a local investigation (needs root).
    Demo,
    /// rustfmt --check and clippy (warnings are errors) on every host crate.
    Lint,
    /// promtool check and unit-test the alerting rules in deploy/monitoring/.
    Rules,
    /// The tests' Kubernetes control plane, for developers: `start` leaves it running,
    /// `env` prints what to export to use it, `stop` ends it.
    K8s {
        #[command(subcommand)]
        action: k8s::Action,
    },
    /// Benchmarks (needs root); results go to stdout, see BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::Build { release } => util::build(release),
        Command::Test { filter } => test::run(filter.as_deref()),
        Command::Demo => demo::run(),
        Command::Lint => lint::run(),
        Command::Rules => rules::run(),
        Command::K8s { action } => k8s::run(action),
        Command::Bench { which } => bench::run(which),
    }
}
