//! Killing every process of an investigation: `cgroup.kill` on its cgroup (Linux 5.14+),
//! else SIGKILL to every process listed below it until none is left; then every process
//! the kernel still tracks for it wherever it is (one that moved itself out of the cgroup),
//! through a pidfd opened while the kernel's map still names it as the investigation's, so
//! a recycled pid is never signalled.
use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::mpsc;

use super::KillOrder;
use crate::{host::cgroups, kernel::Kernel};

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

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: as above.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// SIGKILL every process the kernel tracks for `instance`; how many were signalled.
pub fn kill_tracked(kernel: &Mutex<Kernel>, instance: u32) -> usize {
    let mut killed = 0;
    // New processes may be forked by the ones being killed: a few rounds.
    for _ in 0..8 {
        let tgids = kernel.lock().unwrap_or_else(|e| e.into_inner()).maps.processes_of(instance);
        if tgids.is_empty() {
            break;
        }
        let opened: Vec<(u32, OwnedFd)> =
            tgids.into_iter().filter_map(|tgid| pidfd_open(tgid).map(|fd| (tgid, fd))).collect();
        // Still the investigation's after the pidfd was opened: then the pidfd is that
        // process (an exiting process leaves the map before its pid can be reused).
        let still = kernel.lock().unwrap_or_else(|e| e.into_inner()).maps.processes_of(instance);
        for (tgid, fd) in opened.iter().filter(|(tgid, _)| still.contains(tgid)) {
            // SAFETY: a pidfd we own; no siginfo.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if r == 0 {
                killed += 1;
            } else {
                tracing::debug!(pid = tgid, error = %io::Error::last_os_error(), "pidfd kill");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    killed
}

/// Carry out kill orders as they come.
pub async fn run(
    mut orders: mpsc::UnboundedReceiver<KillOrder>,
    kernel: Option<Arc<Mutex<Kernel>>>,
) {
    while let Some(order) = orders.recv().await {
        let started = Instant::now();
        let result = kill_cgroup(&order.cgroup);
        let outside = match &kernel {
            Some(kernel) => {
                let kernel = kernel.clone();
                let instance = order.instance;
                tokio::task::spawn_blocking(move || kill_tracked(&kernel, instance))
                    .await
                    .unwrap_or(0)
            }
            None => 0,
        };
        match result {
            Ok(()) => tracing::warn!(
                investigation = %order.investigation,
                cgroup = %order.cgroup.display(),
                took_us = started.elapsed().as_micros() as u64,
                signalled_by_pid = outside,
                reason = %order.reason,
                "investigation killed"
            ),
            Err(e) => tracing::error!(
                investigation = %order.investigation,
                cgroup = %order.cgroup.display(),
                signalled_by_pid = outside,
                error = %e,
                "cannot kill the investigation's cgroup"
            ),
        }
    }
}
