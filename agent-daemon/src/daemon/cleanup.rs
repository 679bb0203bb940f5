//! `paddock daemon --cleanup`.
use crate::{config::Config, workloads::saved::SavedRuns};

/// `paddock daemon --cleanup`: remove everything a daemon leaves pinned and the record of
/// running investigations; their processes run on, untracked (said for each).
pub fn cleanup(config: &Config) -> anyhow::Result<()> {
    let removed = crate::kernel::pins::cleanup(&config.kernel.pin_dir, &config.kernel.bpffs)?;
    for path in &removed {
        println!("unpinned {}", path.display());
    }
    let dir = config.daemon.state_dir.join("running");
    if dir.is_dir() {
        let saved = SavedRuns::open(&config.daemon.state_dir)?;
        let (running, _) = saved.load()?;
        for active in &running {
            println!(
                "forgot investigation {} (instance {}, cgroup {}): its processes, if any, are no longer tracked",
                active.id,
                active.instance,
                active.cgroup.display()
            );
        }
        saved.clear()?;
    }
    if removed.is_empty() {
        println!("nothing pinned at {}", config.kernel.pin_dir.display());
    }
    Ok(())
}
