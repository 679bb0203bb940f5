//! The demo's and the benchmarks' daemon: the tests' harness (`paddock-harness`) on the
//! daemon's defaults, with `on_stop = "detach"` so that nothing of a demo or a benchmark
//! stays attached.
use std::path::Path;

pub use paddock_harness::Daemon;
use paddock_harness::Places;

/// Start `paddock daemon` of its own, named after `kind` (`demo`, `bench-dns`...).
pub fn start(paddock: &Path, kind: &str) -> anyhow::Result<Daemon> {
    let config: toml::Table =
        "[daemon]\non_stop = \"detach\"\n[http]\nlisten = \"127.0.0.1:0\"\n".parse()?;
    Ok(Daemon::start(paddock, Places::new(kind)?, config, &[])?.ready()?)
}
