//! Waiting for processes by pid, through pidfds (a pidfd turns readable when its process
//! exits), for investigations whose processes left their cgroups: the cgroup says nothing
//! about those.
use std::os::fd::{FromRawFd as _, OwnedFd};

use tokio::io::{Interest, unix::AsyncFd};

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: as above.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether process `pid` lives (it exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

/// Wait until every process of `pids` has exited (those already gone count as exited).
pub async fn wait_exits(pids: &[u32]) {
    let fds: Vec<AsyncFd<OwnedFd>> = pids
        .iter()
        .filter_map(|pid| pidfd_open(*pid))
        .filter_map(|fd| {
            // SAFETY: the pidfd is owned by the `AsyncFd`, which keeps it open while it is
            // registered.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
        })
        .collect();
    for fd in &fds {
        let _ = fd.readable().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_or_a_missing_process_is_not_alive() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(pid) {
            assert!(std::time::Instant::now() < deadline, "an exited child is a zombie");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.wait();
        assert!(!alive(pid));
    }

    #[tokio::test]
    async fn waits_for_a_child_to_exit_and_not_longer() {
        let mut child = std::process::Command::new("sleep").arg("0.3").spawn().unwrap();
        let started = std::time::Instant::now();
        wait_exits(&[child.id(), u32::MAX]).await;
        let waited = started.elapsed();
        assert!(waited >= std::time::Duration::from_millis(250), "{waited:?}");
        assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
        let _ = child.wait();
    }
}
