//! `paddock daemon`: build the pieces (`build`), serve until SIGTERM or SIGINT, and take
//! them apart in order (`serve`).
//!
//! - `build`: files, listeners, the kernel, the baselines, sinks, pipeline, adoption of
//!   what an earlier daemon left, the workload sources; every task in a tracker;
//! - `serve`: metrics registration, the servers, the signal, the ordered stop;
//! - `socket`: the lock and the control socket's file;
//! - `settings`: what the daemon derives from the configuration for the kernel and cgroups;
//! - `report`: what it logs as it runs, and the investigations' sampling;
//! - `cleanup`: `paddock daemon --cleanup`.
use std::time::Duration;

mod build;
mod cleanup;
mod report;
mod serve;
mod settings;
mod socket;

pub use cleanup::cleanup;

use crate::config::Config;

/// Kernel records decoded and waiting for the pipeline (two reader batches, about 2 MiB).
/// Beyond it the reader waits and the kernel's ring buffer (`kernel.ring_buffer_bytes`)
/// holds the rest, compactly; what that cannot hold is lost and counted per investigation.
pub const RECORDS_QUEUE: usize = 8 * 1024;
/// Events waiting for the metrics sink, which only counts them.
pub const METRICS_QUEUE: usize = 16 * 1024;

/// How long a stopping daemon lets exports catch up with the store.
pub const EXPORT_DRAIN: Duration = Duration::from_secs(10);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let built = build::build(&config).await?;
    serve::serve(built).await
}
