//! Killing every process of an investigation: `cgroup.kill` on its cgroup (Linux 5.14+),
//! else SIGKILL to every process listed below it until none is left.
use std::{io, path::Path, time::Instant};

use tokio::sync::mpsc;

use super::KillOrder;
use crate::workloads::cgroups;

pub fn kill_cgroup(dir: &Path) -> io::Result<()> {
    match std::fs::write(dir.join("cgroup.kill"), "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.exists() => {
            // No cgroup.kill: signal what is there; new forks show up on the next pass.
            for _ in 0..100 {
                let pids = cgroups::processes(dir)?;
                if pids.is_empty() {
                    return Ok(());
                }
                for pid in pids {
                    // SAFETY: signalling a process id read from the cgroup.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            Err(io::Error::other("processes keep appearing"))
        }
        Err(e) => Err(e),
    }
}

/// Carry out kill orders as they come.
pub async fn run(mut orders: mpsc::UnboundedReceiver<KillOrder>) {
    while let Some(order) = orders.recv().await {
        let started = Instant::now();
        match kill_cgroup(&order.cgroup) {
            Ok(()) => tracing::warn!(
                investigation = %order.investigation,
                cgroup = %order.cgroup.display(),
                took_us = started.elapsed().as_micros() as u64,
                reason = %order.reason,
                "investigation killed"
            ),
            Err(e) => tracing::error!(
                investigation = %order.investigation,
                cgroup = %order.cgroup.display(),
                error = %e,
                "cannot kill the investigation"
            ),
        }
    }
}
