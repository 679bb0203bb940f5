//! `cargo xtask bench ...`: each benchmark compares paddock with a baseline measured on the
//! same machine in the same run, and prints ratios.
mod dns;
mod enforce;
mod export;
mod kstats;
mod overhead;
mod pipeline;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Which {
    /// Cost of the syscall hook: null syscalls with no probes, an empty hook, paddock
    /// (untracked) and paddock (tracked).
    Overhead {
        /// Calls per sample.
        #[arg(long, default_value_t = 2_000_000)]
        calls: u64,
        /// Interleaved rounds.
        #[arg(long, default_value_t = 8)]
        rounds: usize,
    },
    /// DNS on the packet hooks: lookups and other UDP round trips with no paddock, and
    /// with paddock for an untracked client, a learning one and an enforcing one.
    Dns {
        /// Round trips per sample.
        #[arg(long, default_value_t = 20_000)]
        lookups: u32,
        /// Interleaved rounds.
        #[arg(long, default_value_t = 4)]
        rounds: usize,
    },
    /// Enforcement latency: from a straying action to the verdict and to every process of
    /// the investigation gone.
    Enforce {
        #[arg(long, default_value_t = 150)]
        runs: usize,
    },
    /// Data-path throughput on one CPU (decode, judge, sinks, audit store) at increasing
    /// rates, peak RSS, and audit page queries on a million events.
    Pipeline {
        /// Seconds per rate.
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        /// Events of the investigation the audit queries run on.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
    /// Export to PostgreSQL: a store of realistic events exported whole to a throwaway
    /// PostgreSQL by 1, then N concurrent exporters (nodes); events/s.
    Export {
        /// Events in the store each exporter sends.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Concurrent exporters of each run, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4])]
        exporters: Vec<u32>,
    },
}

pub fn run(which: Which) -> anyhow::Result<()> {
    crate::util::require_root("benchmarks")?;
    crate::setup::run_setup_steps()?;
    crate::util::build(true)?;
    crate::util::build_bench()?;
    match which {
        Which::Overhead { calls, rounds } => overhead::run(calls, rounds),
        Which::Enforce { runs } => enforce::run(runs),
        Which::Dns { lookups, rounds } => dns::run(lookups, rounds),
        Which::Pipeline { seconds, events } => pipeline::run(seconds, events),
        Which::Export { events, exporters } => export::run_bench(events, &exporters),
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}
